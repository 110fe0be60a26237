package sdk_test

import (
	"context"
	"net"
	"net/netip"
	"regexp"
	"sync"
	"testing"

	"github.com/parleyhq/parley/plugins/call"
)

// The browsers reach the SFU as from behind a NAT: the SFU advertises the
// address of a UDP relay (natRelay), which gives each browser address a
// socket of its own toward the SFU, and the browsers' own candidates are
// kept from the SFU (natMedia), so it learns each browser only from where
// its checks arrive (peer-reflexive), as it would a browser behind a NAT.
// The relay can go down (a network drop) and rebind (new sockets: the SFU
// then sees every browser at a new address, as after a change of network).

// natRelay forwards UDP between the browsers and the SFU.
type natRelay struct {
	front *net.UDPConn   // the address the SFU advertises; the browsers send here
	sfu   netip.AddrPort // the SFU's socket
	mu    sync.Mutex
	down  bool
	backs map[netip.AddrPort]*net.UDPConn // toward the SFU, by browser address
	wg    sync.WaitGroup
}

// startNATRelay listens on front (the SFU's advertised address and port)
// and forwards to sfu.
func startNATRelay(t *testing.T, front, sfu netip.AddrPort) *natRelay {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(front))
	if err != nil {
		t.Fatal(err)
	}
	r := &natRelay{front: c, sfu: sfu, backs: map[netip.AddrPort]*net.UDPConn{}}
	r.wg.Add(1)
	go r.fromBrowsers() // ended by the cleanup's Close
	t.Cleanup(func() {
		r.setDown(true) // no new socket toward the SFU after rebind's
		c.Close()
		r.rebind()
		r.wg.Wait()
	})
	return r
}

func (r *natRelay) fromBrowsers() {
	defer r.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, from, err := r.front.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if back := r.back(from); back != nil {
			back.WriteToUDPAddrPort(buf[:n], r.sfu)
		}
	}
}

// back is the socket toward the SFU for browser address from, made on its
// first datagram; nil while the relay is down.
func (r *natRelay) back(from netip.AddrPort) *net.UDPConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return nil
	}
	if b := r.backs[from]; b != nil {
		return b
	}
	b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil
	}
	r.backs[from] = b
	r.wg.Add(1)
	go r.toBrowser(b, from) // ended by rebind's Close
	return b
}

func (r *natRelay) toBrowser(b *net.UDPConn, to netip.AddrPort) {
	defer r.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, _, err := b.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		down := r.down
		r.mu.Unlock()
		if !down {
			r.front.WriteToUDPAddrPort(buf[:n], to)
		}
	}
}

// setDown drops everything both ways (true), or forwards again (false).
func (r *natRelay) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

// rebind closes the sockets toward the SFU: the next datagrams of each
// browser leave from a new one.
func (r *natRelay) rebind() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for from, b := range r.backs {
		b.Close()
		delete(r.backs, from)
	}
}

// natMedia is the call plugin's media plane with the browsers' ICE
// candidates kept from it: trickled ones are dropped, and those in offers
// and answers taken out.
type natMedia struct{ call.Media }

var candidateLine = regexp.MustCompile(`(?m)^a=(candidate|end-of-candidates).*\r?\n`)

func (m natMedia) Offer(ctx context.Context, callID, user, device, sdp string, allowVideo bool) (string, error) {
	return m.Media.Offer(ctx, callID, user, device, candidateLine.ReplaceAllString(sdp, ""), allowVideo)
}

func (m natMedia) Answer(ctx context.Context, callID, user, device, sdp string) error {
	return m.Media.Answer(ctx, callID, user, device, candidateLine.ReplaceAllString(sdp, ""))
}

func (m natMedia) AddCandidate(context.Context, string, string, string, string) error { return nil }
