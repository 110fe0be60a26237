//go:build !linux

package sfu

import "net"

// newBatchConn returns the socket as it is: batched reads need recvmmsg(2),
// and without a socket reader of the SFU's own there is no direct path
// (every packet goes through pion).
func newBatchConn(c *net.UDPConn, _ readOptions) (net.PacketConn, error) { return c, nil }
