// Package udpbatch is the SFU's media socket: a UDP socket read in
// batches (recvmmsg(2), one system call for every datagram queued) and
// written with non-blocking sendto(2), both made as raw system calls
// outside the Go scheduler's bookkeeping. A hook sees each datagram as it
// is read and may take it, so a forwarder can handle a packet on the
// reader's goroutine, before the datagram reaches whoever reads the
// socket (pion's ICE UDP mux, for the SFU).
//
//	pc, err := udpbatch.New(conn, udpbatch.Options{Batch: 32, Receive: func(b []byte, from netip.AddrPort) bool {
//		return false // not taken: ReadFromAddrPort returns it
//	}})
//
// On Linux New returns a *Conn (a type only Linux has); elsewhere it
// returns the socket as it is (no batches, no hook). See Conn for why the
// system calls are raw. A Conn embeds its *net.UDPConn: that socket's own
// read and write methods (ReadFromUDP, WriteTo, …) still work but bypass
// the batch and the hook; use ReadFrom/ReadFromAddrPort and
// WriteToAddrPort/TryWriteToAddrPort.
package udpbatch
