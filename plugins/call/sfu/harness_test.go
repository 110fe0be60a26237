package sfu

import (
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins/call/sfu/sfutest"
	"github.com/pion/webrtc/v4"
)

// harness is one SFU on loopback and the sfutest clients talking to it:
// real pion peers, signalling straight through the SFU's methods and
// callbacks.
type harness struct {
	t   *testing.T
	s   *SFU
	mu  sync.Mutex
	cs  map[string]*sfutest.Client // by device
	evs chan stateEvent

	answerDelay time.Duration // how long clients take to answer the SFU's offers (a browser over the kernel's session)
}

type stateEvent struct{ room, user, device, state string }

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	cfg.ListenIP = "127.0.0.1"
	s, err := New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, s: s, cs: map[string]*sfutest.Client{}, evs: make(chan stateEvent, 256)}
	s.OnOffer = func(room, device, sdp string) {
		if c := h.client(device); c != nil {
			go func() {
				time.Sleep(h.answerDelay)
				if err := c.ServerOffer(sdp); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	s.OnCandidate = func(room, device, cand string) {
		var init webrtc.ICECandidateInit
		if c := h.client(device); c != nil && json.Unmarshal([]byte(cand), &init) == nil {
			c.PC().AddICECandidate(init)
		}
	}
	s.OnState = func(room, user, device, state string) {
		select {
		case h.evs <- stateEvent{room, user, device, state}:
		default:
		}
	}
	t.Cleanup(func() {
		h.mu.Lock()
		cs := h.cs
		h.mu.Unlock()
		for _, c := range cs {
			c.Close()
		}
		s.Close()
	})
	return h
}

func (h *harness) client(device string) *sfutest.Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cs[device]
}

func (h *harness) newClient(room, user, device string, o sfutest.Options) *sfutest.Client {
	h.t.Helper()
	o.Verify = true
	c, err := sfutest.NewClient(h.s, room, user, device, o)
	if err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	h.cs[device] = c
	h.mu.Unlock()
	return c
}

// call starts a 1:1 call in room "r": caller (with o) and callee join with
// o.Video as their video flag and publish audio, and a camera if
// withVideo.
func (h *harness) call(o sfutest.Options, withVideo bool) (caller, callee *sfutest.Client) {
	h.t.Helper()
	caller = h.newClient("r", "alice", "alice-phone", o)
	callee = h.newClient("r", "bob", "bob-laptop", sfutest.Options{Video: o.Video})
	for _, c := range []*sfutest.Client{caller, callee} {
		must(h.t, c.PublishAudio())
		if withVideo {
			must(h.t, c.PublishVideo("camera"))
		}
		if err := c.Negotiate(); err != nil {
			h.t.Fatalf("%s joins: %v", c.Device, err)
		}
	}
	return caller, callee
}

// cameraHeld starts an audio call in room "r" whose caller then adds its
// camera: the SFU's offer of it to the callee is held (hold.next gives it),
// for a test of what the callee does meanwhile.
func (h *harness) cameraHeld() (caller, callee *sfutest.Client, hold *offerHold) {
	h.t.Helper()
	caller, callee = h.call(sfutest.Options{Video: true}, false) // audio so far
	hold = h.holdOffers(callee.Device)
	must(h.t, caller.PublishVideo("camera"))
	must(h.t, caller.Negotiate())
	return caller, callee, hold
}

// offerHold keeps the SFU's offers to one device from it (unanswered)
// until released; offers to the others go on as usual.
type offerHold struct {
	t       *testing.T
	held    chan string
	holding atomic.Bool
}

// holdOffers starts holding the SFU's offers to device. Set it up before
// the clients' signalling runs: it replaces OnOffer.
func (h *harness) holdOffers(device string) *offerHold {
	o := &offerHold{t: h.t, held: make(chan string, 4)}
	o.holding.Store(true)
	forward := h.s.OnOffer
	h.s.OnOffer = func(room, dev, sdp string) {
		if dev == device && o.holding.Load() {
			o.held <- sdp
			return
		}
		forward(room, dev, sdp)
	}
	return o
}

// next is the next offer held.
func (o *offerHold) next() string {
	o.t.Helper()
	select {
	case sdp := <-o.held:
		return sdp
	case <-time.After(10 * time.Second):
		o.t.Fatal("the SFU made the device no offer")
		return ""
	}
}

// release lets the offers to come through; those held stay held.
func (o *offerHold) release() { o.holding.Store(false) }

// waitState waits for device to report state.
func (h *harness) waitState(device, state string, d time.Duration) {
	h.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev := <-h.evs:
			if ev.device == device && ev.state == state {
				return
			}
		case <-deadline:
			h.t.Fatalf("%s: no %q state within %v", device, state, d)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitFrames(t *testing.T, c *sfutest.Client, kind webrtc.RTPCodecType, n, frames int) []sfutest.Track {
	t.Helper()
	ts, err := c.WaitFrames(kind, n, frames, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// checkClean fails the test if a track of c's lost or garbled a frame.
func checkClean(t *testing.T, c *sfutest.Client, kind webrtc.RTPCodecType) {
	t.Helper()
	for _, ts := range c.Tracks(kind) {
		if ts.Corrupt > 0 || ts.Missing > 0 {
			t.Errorf("%s: %s track %s/%s: %d frames, %d corrupt, %d missing", c.Device, kind, ts.Stream, ts.ID, ts.Frames, ts.Corrupt, ts.Missing)
		}
	}
}
