//go:build !linux

package sfu

import "net"

// newBatchConn returns the socket as it is: batched reads need recvmmsg(2).
func newBatchConn(c *net.UDPConn, _ int) (net.PacketConn, error) { return c, nil }
