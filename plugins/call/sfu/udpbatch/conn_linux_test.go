package udpbatch

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func listen(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("listen %s: %v", addr, err)
	}
	return c
}

func addrOf(c net.PacketConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// Datagrams queued before a read come out of one batch in order, each with
// its sender; those the hook takes are not returned; one too long for a
// buffer is dropped, not cut.
func TestReadsBatchesThroughTheHook(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"udp4", "127.0.0.1:0"}, {"udp6", "[::1]:0"}} {
		t.Run(tc.network, func(t *testing.T) {
			var seen [][]byte
			pc, err := New(listen(t, tc.network, tc.addr), Options{Batch: 4, Receive: func(b []byte, from netip.AddrPort) bool {
				seen = append(seen, bytes.Clone(b))
				return b[0]%2 == 1 // odd ones taken
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			conn := pc.(*Conn)
			client := listen(t, tc.network, tc.addr)
			defer client.Close()
			to := addrOf(pc)
			for i := range 9 {
				size := 10
				if i == 4 {
					size = MaxDatagram + 1
				}
				p := make([]byte, size)
				p[0] = byte(i)
				if _, err := client.WriteToUDPAddrPort(p, to); err != nil {
					t.Fatal(err)
				}
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, MaxDatagram)
			var got []byte
			for i := range 3 { // 0, 2, 6, 8 are returned; 4 is too long
				n, from, err := conn.ReadFromAddrPort(buf)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 && conn.n != 4 { // all nine were queued: one system call read a whole batch
					t.Fatalf("the first read took %d datagrams from the socket, want a batch of 4", conn.n)
				}
				if from != addrOf(client) {
					t.Fatalf("from %v, want %v", from, addrOf(client))
				}
				if n != 10 {
					t.Fatalf("read %d bytes, want 10", n)
				}
				got = append(got, buf[0])
			}
			n, _, err := conn.ReadFrom(buf)
			if err != nil || n != 10 {
				t.Fatalf("ReadFrom: %d, %v", n, err)
			}
			got = append(got, buf[0])
			if !bytes.Equal(got, []byte{0, 2, 6, 8}) {
				t.Fatalf("returned %v, want [0 2 6 8]", got)
			}
			var hooked []byte
			for _, b := range seen {
				hooked = append(hooked, b[0])
			}
			if !bytes.Equal(hooked, []byte{0, 1, 2, 3, 5, 6, 7, 8}) {
				t.Fatalf("the hook saw %v, want every datagram but the long one", hooked)
			}
		})
	}
}

// Writes reach their address, IPv4 and IPv6; after Close they fail with
// net.ErrClosed.
func TestWrites(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"udp4", "127.0.0.1:0"}, {"udp6", "[::1]:0"}} {
		t.Run(tc.network, func(t *testing.T) {
			pc, err := New(listen(t, tc.network, tc.addr), Options{Batch: 8})
			if err != nil {
				t.Fatal(err)
			}
			conn := pc.(*Conn)
			client := listen(t, tc.network, tc.addr)
			defer client.Close()
			if _, err := conn.TryWriteToAddrPort([]byte("try"), addrOf(client)); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.WriteToAddrPort([]byte("write"), addrOf(client)); err != nil {
				t.Fatal(err)
			}
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 16)
			for _, want := range []string{"try", "write"} {
				n, from, err := client.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatal(err)
				}
				if string(buf[:n]) != want || from != addrOf(pc) {
					t.Fatalf("got %q from %v, want %q from %v", buf[:n], from, want, addrOf(pc))
				}
			}
			conn.Close()
			if _, err := conn.TryWriteToAddrPort([]byte("late"), addrOf(client)); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("write after Close: %v, want net.ErrClosed", err)
			}
			if _, _, err := conn.ReadFromAddrPort(buf); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read after Close: %v, want net.ErrClosed", err)
			}
		})
	}
}
