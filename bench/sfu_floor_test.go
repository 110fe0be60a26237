package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins/call/sfu/udpbatch"
)

// The floor of BenchmarkSFU: what moving the same packets in and out costs
// on this machine with the SFU's socket design, with nothing else done to
// them. The child relays each
// datagram as it is, from one participant's socket to the other's, with
// the SFU's own socket layer (udpbatch: recvmmsg batches in Go's poller,
// a raw sendto per packet on the reader's goroutine). No SRTP, no RTP
// bookkeeping, no RTCP, no pion. The participants are plain UDP sockets
// in this process sending what a pion participant of the "sfu" runs puts
// on the wire (sizes with the TWCC extension and the SRTP tag), at the
// same rates, each sender starting at a random point of its period as
// independent browsers would.
//
// The SFU's figure less the floor's is roughly what its media work costs
// (SRTP, interceptors, RTCP and the wake-ups they bring). Roughly: the
// floor's senders put a frame's three packets on the wire back to back,
// pion's with its own work between them, and in the floor runs the
// benchmark's process (the participants) does less, which changes what
// waking the child costs; load-µs/pkt reports it for every mode.

// Wire sizes of a pion participant's packets in the "sfu" runs: Opus,
// AudioPayloadSize bytes of payload; a VP8 frame of VideoFrameSize bytes
// in three packets. Each has a 12-byte header, an 8-byte TWCC extension
// and a 16-byte SRTP tag.
var floorAudio, floorVideo = []int{116}, []int{1224, 1224, 172}

// floorRelay is the child's side of the floor.
type floorRelay struct {
	conn  floorConn
	to    atomic.Pointer[map[netip.AddrPort]netip.AddrPort] // replaced whole under mu
	mu    sync.Mutex
	count atomic.Int64
	done  chan struct{}
}

func newFloorRelay() (*floorRelay, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	f := &floorRelay{done: make(chan struct{})}
	f.to.Store(&map[netip.AddrPort]netip.AddrPort{})
	pc, err := udpbatch.New(c, udpbatch.Options{Batch: readBatch(), Receive: f.relay})
	if err != nil {
		c.Close()
		return nil, err
	}
	conn, ok := pc.(floorConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("the floor needs udpbatch's batched socket (Linux)")
	}
	f.conn = conn
	go func() { // the socket's reader, as pion's mux is the SFU's: the hook takes every datagram
		defer close(f.done)
		buf := make([]byte, udpbatch.MaxDatagram)
		for {
			if _, _, err := conn.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return f, nil
}

// floorConn is what the floor needs of udpbatch's socket (a *udpbatch.Conn,
// which only Linux has).
type floorConn interface {
	net.PacketConn
	TryWriteToAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// relay sends b on to the other participant of from's call.
func (f *floorRelay) relay(b []byte, from netip.AddrPort) bool {
	if to, ok := (*f.to.Load())[from]; ok {
		if _, err := f.conn.TryWriteToAddrPort(b, to); err == nil {
			f.count.Add(1)
		}
	}
	return true
}

func (f *floorRelay) addr() netip.AddrPort { return f.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// pair makes the two addresses each other's destination.
func (f *floorRelay) pair(addrs []string) error {
	if len(addrs) != 2 {
		return fmt.Errorf("pair: %d addresses, want 2", len(addrs))
	}
	a, err := netip.ParseAddrPort(addrs[0])
	if err != nil {
		return err
	}
	b, err := netip.ParseAddrPort(addrs[1])
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[netip.AddrPort]netip.AddrPort{a: b, b: a}
	for k, v := range *f.to.Load() {
		m[k] = v
	}
	f.to.Store(&m)
	return nil
}

func (f *floorRelay) forwarded() int64 { return f.count.Load() }
func (f *floorRelay) close()           { f.conn.Close(); <-f.done }

// Offer and Answer: the floor has no signalling.
func (f *floorRelay) Offer(_ context.Context, _, _, _, _ string, _ bool) (string, error) {
	return "", fmt.Errorf("the floor relays datagrams; it takes no offers")
}
func (f *floorRelay) Answer(_, _, _ string) error {
	return fmt.Errorf("the floor relays datagrams; it takes no answers")
}

// startFloorLoad starts calls pairs of participants sending through the
// child's relay, each also draining what it receives; stop ends them and
// checks that every participant received the other's packets.
func startFloorLoad(b *testing.B, child *sfuChild, calls int) (stop func()) {
	r := child.call(sfuMsg{Op: "floor-addr"})
	if r.Err != "" || len(r.Addrs) != 1 {
		b.Fatalf("floor address: %v %q", r.Addrs, r.Err)
	}
	relay := netip.MustParseAddrPort(r.Addrs[0])
	done := make(chan struct{})
	var wg sync.WaitGroup
	var socks []*net.UDPConn
	received := make([]atomic.Int64, 2*calls)
	started := false // every participant sending: each must have received
	stop = func() {
		close(done)
		for _, s := range socks {
			s.Close()
		}
		wg.Wait()
		for i := range received {
			if started && received[i].Load() == 0 {
				b.Errorf("participant %d of the floor received nothing", i)
			}
		}
	}
	for i := range calls {
		var pair [2]*net.UDPConn
		for j := range pair {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				stop()
				b.Fatal(err)
			}
			pair[j] = c
			socks = append(socks, c)
		}
		if r := child.call(sfuMsg{Op: "floor-pair", Addrs: []string{pair[0].LocalAddr().String(), pair[1].LocalAddr().String()}}); r.Err != "" {
			stop()
			b.Fatal(r.Err)
		}
		for j, c := range pair {
			n := &received[2*i+j]
			wg.Add(3)
			go func() { // what the other sends, read as a participant would
				defer wg.Done()
				buf := make([]byte, udpbatch.MaxDatagram)
				for {
					if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
						return
					}
					n.Add(1)
				}
			}()
			go floorSend(&wg, done, c, relay, 20*time.Millisecond, floorAudio)
			go floorSend(&wg, done, c, relay, time.Second/30, floorVideo)
		}
	}
	started = true
	return stop
}

// floorSend sends one packet of each size every period, from a random
// start within the first period.
func floorSend(wg *sync.WaitGroup, done <-chan struct{}, c *net.UDPConn, to netip.AddrPort, every time.Duration, sizes []int) {
	defer wg.Done()
	select {
	case <-done:
		return
	case <-time.After(rand.N(every)):
	}
	pkts := make([][]byte, len(sizes))
	for i, n := range sizes {
		pkts[i] = make([]byte, n)
		pkts[i][0] = 0x80 // RTP version 2
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			for _, p := range pkts {
				c.WriteToUDPAddrPort(p, to)
			}
		}
	}
}
