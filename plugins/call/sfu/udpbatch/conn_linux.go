//go:build linux

package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conn is a UDP socket read in batches; for the SFU, the media socket
// under pion's ICE UDP mux. The mux's single reader goroutine calls
// ReadFromAddrPort once per datagram; Conn serves those calls from a batch that one recvmmsg(2) filled, so a busy
// socket costs one system call (and one wake-up of the reader) per batch
// instead of one recvfrom per datagram plus the EAGAIN that ends every
// burst. A quiet socket behaves like a plain one: recvmmsg returns the one
// datagram there is. Writes go straight to the socket (sendto), as they
// come from many goroutines deep inside pion and cannot be deferred to a
// batch without adding a hand-off per packet (see the sfu package's
// Caveats).
//
// Both system calls are non-blocking (MSG_DONTWAIT) and made raw, outside
// the Go scheduler's syscall bookkeeping: a syscall the scheduler knows of
// wakes its monitor thread (sysmon) when the process was idle, which at a
// few thousand packets a second, each arriving to an idle process, cost
// more than the system calls themselves. A call that would block returns
// EAGAIN at once: the read then waits in the poller, the write is made
// again the ordinary way, which waits for room.
//
// It implements ice.AddrPortReaderWriter, so the mux uses netip.AddrPort
// and allocates nothing per datagram.
type Conn struct {
	*net.UDPConn
	raw syscall.RawConn

	wmu    sync.RWMutex // writers share it; Close takes it to retire fd
	fd     int          // the socket, for raw sendto; -1 once closed
	family int          // AF_INET or AF_INET6

	mu      sync.Mutex // one reader at a time (the mux has one; this guards misuse)
	msgs    []mmsghdr
	iovs    []unix.Iovec
	names   []unix.RawSockaddrInet6
	bufs    [][]byte
	n       int   // datagrams in the current batch
	next    int   // the next one to hand out
	errno   error // set by recv
	recv    func(fd uintptr) bool
	receive func(b []byte, from netip.AddrPort) bool // Options.Receive
}

// mmsghdr is struct mmsghdr of recvmmsg(2); Go's alignment pads it like C.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// New wraps c, which the Conn then owns (Close closes it).
func New(c *net.UDPConn, o Options) (net.PacketConn, error) {
	batch := max(o.Batch, 1)
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udpbatch: %w", err)
	}
	var fd, family int
	var ferr error
	if err := raw.Control(func(s uintptr) {
		fd = int(s)
		family, ferr = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil || ferr != nil {
		return nil, fmt.Errorf("udpbatch: %w", errors.Join(err, ferr))
	}
	b := &Conn{
		UDPConn: c, raw: raw, fd: fd, family: family,
		msgs:    make([]mmsghdr, batch),
		iovs:    make([]unix.Iovec, batch),
		names:   make([]unix.RawSockaddrInet6, batch),
		bufs:    make([][]byte, batch),
		receive: o.Receive,
	}
	for i := range b.msgs {
		b.bufs[i] = make([]byte, MaxDatagram)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(MaxDatagram)
		b.msgs[i].hdr.Iov = &b.iovs[i]
		b.msgs[i].hdr.SetIovlen(1)
		b.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	b.recv = b.recvmmsg // one closure for the life of the conn: no allocation per read
	return b, nil
}

// recvmmsg is the RawConn.Read callback: false asks the poller to wait.
func (b *Conn) recvmmsg(fd uintptr) bool {
	for i := range b.msgs {
		b.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.msgs[i].hdr.Flags = 0
	}
	n, _, e := syscall.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), uintptr(len(b.msgs)), unix.MSG_DONTWAIT, 0, 0)
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
func (b *Conn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		for b.next >= b.n {
			if err := b.fill(); err != nil {
				return 0, netip.AddrPort{}, err
			}
		}
		i := b.next
		b.next++
		if b.msgs[i].hdr.Flags&unix.MSG_TRUNC != 0 {
			continue // longer than MaxDatagram: no media packet is
		}
		d, from := b.bufs[i][:b.msgs[i].len], sockaddrToAddrPort(&b.names[i])
		if b.receive != nil && b.receive(d, from) {
			continue
		}
		return copy(p, d), from, nil
	}
}

// fill reads the next batch.
func (b *Conn) fill() error {
	b.n, b.next = 0, 0
	if err := b.raw.Read(b.recv); err != nil {
		return err
	}
	if b.errno != nil {
		err := b.errno
		b.errno = nil
		return &net.OpError{Op: "recvmmsg", Net: "udp", Addr: b.LocalAddr(), Err: err}
	}
	return nil
}

// ReadFrom is net.PacketConn's read, for callers that do not know
// ReadFromAddrPort; it allocates the address.
func (b *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, ap, err := b.ReadFromAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// WriteToAddrPort is ice.AddrPortReaderWriter's write: one raw,
// non-blocking sendto; if the socket's buffer is full, an ordinary one
// that waits for room.
func (b *Conn) WriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	n, err := b.TryWriteToAddrPort(p, addr)
	if errors.Is(err, syscall.EAGAIN) {
		return b.UDPConn.WriteToUDPAddrPort(p, addr)
	}
	return n, err
}

// TryWriteToAddrPort sends p to addr with one raw, non-blocking sendto:
// EAGAIN when the socket's buffer is full.
func (b *Conn) TryWriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	if len(p) == 0 {
		return b.UDPConn.WriteToUDPAddrPort(p, addr)
	}
	var sa4 unix.RawSockaddrInet4
	var sa6 unix.RawSockaddrInet6
	var sa unsafe.Pointer
	var salen uintptr
	ip, port := addr.Addr(), addr.Port()
	switch {
	case b.family == unix.AF_INET && ip.Unmap().Is4():
		sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.Unmap().As4()}
		putPort(&sa4.Port, port)
		sa, salen = unsafe.Pointer(&sa4), unix.SizeofSockaddrInet4
	case b.family == unix.AF_INET6:
		sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()}
		putPort(&sa6.Port, port)
		sa, salen = unsafe.Pointer(&sa6), unix.SizeofSockaddrInet6
	default:
		return b.UDPConn.WriteToUDPAddrPort(p, addr)
	}
	b.wmu.RLock()
	defer b.wmu.RUnlock()
	if b.fd < 0 {
		return 0, net.ErrClosed
	}
	// syscall.RawSyscall6, not x/sys/unix's wrapper: it keeps the
	// pointers passed as uintptr alive on every architecture.
	n, _, e := syscall.RawSyscall6(unix.SYS_SENDTO, uintptr(b.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		unix.MSG_DONTWAIT, uintptr(sa), salen)
	if e != 0 {
		return 0, &net.OpError{Op: "sendto", Net: "udp", Source: b.LocalAddr(), Addr: net.UDPAddrFromAddrPort(addr), Err: e}
	}
	return int(n), nil
}

// putPort stores port in network byte order.
func putPort(dst *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(dst))
	b[0], b[1] = byte(port>>8), byte(port)
}

// Close retires the descriptor the raw writes use, then closes the socket.
func (b *Conn) Close() error {
	b.wmu.Lock()
	b.fd = -1
	b.wmu.Unlock()
	return b.UDPConn.Close()
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
