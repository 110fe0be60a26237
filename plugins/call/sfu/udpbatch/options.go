package udpbatch

import "net/netip"

// MaxDatagram is the largest datagram a Conn reads whole; a longer one is
// dropped (no media packet is longer).
const MaxDatagram = 1500

// DefaultBatch is the batch the SFU reads its media socket with unless
// configured otherwise.
const DefaultBatch = 32

// Options are how a socket is read.
type Options struct {
	// Batch is how many datagrams one system call may read; 0 or 1 reads
	// one at a time.
	Batch int
	// Receive, if set, sees each datagram b from from as it is read, on
	// the reader's goroutine, and reports whether it took it; a datagram
	// taken is not returned by ReadFromAddrPort. b is valid only during
	// the call.
	Receive func(b []byte, from netip.AddrPort) bool
}
