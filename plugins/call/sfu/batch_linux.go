//go:build linux

package sfu

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchConn is the media socket under pion's ICE UDP mux. The mux's single
// reader goroutine calls ReadFromAddrPort once per datagram; batchConn
// serves those calls from a batch that one recvmmsg(2) filled, so a busy
// socket costs one system call (and one wake-up of the reader) per batch
// instead of one recvfrom per datagram plus the EAGAIN that ends every
// burst. A quiet socket behaves like a plain one: recvmmsg returns the one
// datagram there is. Writes go straight to the socket (sendto), as they
// come from many goroutines deep inside pion and cannot be deferred to a
// batch without adding a hand-off per packet (see doc.go, Caveats).
//
// It implements ice.AddrPortReaderWriter, so the mux uses netip.AddrPort
// and allocates nothing per datagram.
type batchConn struct {
	*net.UDPConn
	raw syscall.RawConn

	mu    sync.Mutex // one reader at a time (the mux has one; this guards misuse)
	msgs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	bufs  [][]byte
	n     int   // datagrams in the current batch
	next  int   // the next one to hand out
	errno error // set by recv
	recv  func(fd uintptr) bool
}

// mmsghdr is struct mmsghdr of recvmmsg(2); Go's alignment pads it like C.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

const maxDatagram = 1500

func newBatchConn(c *net.UDPConn, batch int) (net.PacketConn, error) {
	if batch <= 1 {
		return c, nil
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("media socket: %w", err)
	}
	b := &batchConn{
		UDPConn: c, raw: raw,
		msgs:  make([]mmsghdr, batch),
		iovs:  make([]unix.Iovec, batch),
		names: make([]unix.RawSockaddrInet6, batch),
		bufs:  make([][]byte, batch),
	}
	for i := range b.msgs {
		b.bufs[i] = make([]byte, maxDatagram)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(maxDatagram)
		b.msgs[i].hdr.Iov = &b.iovs[i]
		b.msgs[i].hdr.SetIovlen(1)
		b.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	b.recv = b.recvmmsg // one closure for the life of the conn: no allocation per read
	return b, nil
}

// recvmmsg is the RawConn.Read callback: false asks the poller to wait.
func (b *batchConn) recvmmsg(fd uintptr) bool {
	for i := range b.msgs {
		b.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.msgs[i].hdr.Flags = 0
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), uintptr(len(b.msgs)), unix.MSG_DONTWAIT, 0, 0)
	switch e {
	case 0:
		b.n, b.next, b.errno = int(n), 0, nil
		return true
	case unix.EAGAIN:
		return false
	case unix.EINTR:
		return false // retried by the poller
	default:
		b.errno = e
		return true
	}
}

// ReadFromAddrPort returns the next datagram of the batch, reading a new
// batch when this one is spent.
func (b *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.next >= b.n {
		b.n, b.next = 0, 0
		if err := b.raw.Read(b.recv); err != nil {
			return 0, netip.AddrPort{}, err
		}
		if b.errno != nil {
			err := b.errno
			b.errno = nil
			return 0, netip.AddrPort{}, &net.OpError{Op: "recvmmsg", Net: "udp", Addr: b.LocalAddr(), Err: err}
		}
	}
	i := b.next
	b.next++
	m := &b.msgs[i]
	n := copy(p, b.bufs[i][:m.len])
	return n, sockaddrToAddrPort(&b.names[i]), nil
}

// ReadFrom is net.PacketConn's read, for callers that do not know
// ReadFromAddrPort; it allocates the address.
func (b *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, ap, err := b.ReadFromAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// WriteToAddrPort is ice.AddrPortReaderWriter's write: one sendto.
func (b *batchConn) WriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	return b.UDPConn.WriteToUDPAddrPort(p, addr)
}

func sockaddrToAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(port[0])<<8|uint16(port[1]))
	case unix.AF_INET6:
		port := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(port[0])<<8|uint16(port[1]))
	}
	return netip.AddrPort{}
}
