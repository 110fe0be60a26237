//go:build !linux

package udpbatch

import "net"

// New returns the socket as it is: batched reads need recvmmsg(2), and
// Options.Receive is never called (for the SFU: no direct path, every
// packet goes through pion).
func New(c *net.UDPConn, _ Options) (net.PacketConn, error) { return c, nil }
