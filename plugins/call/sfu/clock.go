package sfu

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// feedbackInterval is how often the SFU sends its periodic feedback to
// publishers (TWCC reports, NACKs): pion's default for both.
const feedbackInterval = 100 * time.Millisecond

// ticker is what the feedback clock drives: one peer connection's
// periodic feedback. tick must not block for long: it writes RTCP, which
// is a non-blocking send.
type ticker interface{ tick() }

// feedbackClock drives every peer connection's periodic feedback from one
// goroutine. Pion gives each interceptor of each peer connection a ticker
// of its own, which at 20 calls is 40 wake-ups every 100 ms for TWCC
// alone; one clock makes that one.
type feedbackClock struct {
	mu      sync.Mutex
	tickers map[ticker]struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newFeedbackClock() *feedbackClock {
	c := &feedbackClock{tickers: map[ticker]struct{}{}, stop: make(chan struct{})}
	c.wg.Add(1)
	go c.run()
	return c
}

func (c *feedbackClock) add(t ticker) {
	c.mu.Lock()
	c.tickers[t] = struct{}{}
	c.mu.Unlock()
}

func (c *feedbackClock) remove(t ticker) {
	c.mu.Lock()
	delete(c.tickers, t)
	c.mu.Unlock()
}

func (c *feedbackClock) run() {
	defer c.wg.Done()
	tk := time.NewTicker(feedbackInterval)
	defer tk.Stop()
	var due []ticker
	for {
		select {
		case <-c.stop:
			return
		case <-tk.C:
		}
		due = due[:0]
		c.mu.Lock()
		for t := range c.tickers {
			due = append(due, t)
		}
		c.mu.Unlock()
		for _, t := range due {
			t.tick()
		}
	}
}

// close stops the clock; the SFU closes it after every peer.
func (c *feedbackClock) close() {
	close(c.stop)
	c.wg.Wait()
}

// clockedSender is the part of a feedback interceptor the clock drives:
// it joins the clock once pion binds the peer connection's RTCP writer,
// sends what the interceptor's tick builds, and leaves the clock when the
// interceptor closes.
type clockedSender struct {
	clock *feedbackClock

	mu     sync.Mutex
	w      interceptor.RTCPWriter // nil until bound
	closed bool
}

// bind is the interceptor's BindRTCPWriter: t joins the clock.
func (c *clockedSender) bind(t ticker, w interceptor.RTCPWriter) interceptor.RTCPWriter {
	c.mu.Lock()
	join := c.w == nil && !c.closed
	c.w = w
	c.mu.Unlock()
	if join {
		c.clock.add(t)
	}
	return w
}

// send writes pkts, if there are any and a writer is bound.
func (c *clockedSender) send(pkts []rtcp.Packet) {
	c.mu.Lock()
	w := c.w
	c.mu.Unlock()
	if len(pkts) > 0 && w != nil {
		w.Write(pkts, nil)
	}
}

// leave is the interceptor's Close: t leaves the clock for good.
func (c *clockedSender) leave(t ticker) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.clock.remove(t)
	return nil
}

// randomSSRC is an SSRC for the RTCP the SFU originates.
func randomSSRC() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}
