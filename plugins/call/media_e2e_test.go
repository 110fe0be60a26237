package call_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/parleyhq/parley/kernel/pluginhost"
	"github.com/parleyhq/parley/plugins/call"
	"github.com/parleyhq/parley/plugins/call/sfu"
	"github.com/parleyhq/parley/plugins/call/sfu/sfutest"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// TestRealMedia: the plugin in front of the real SFU, driven by real pion
// peers (sfutest clients, playing browsers) that negotiate through the
// session protocol exactly as the SDK does: offers and answers as
// call.media.* commands, the SFU's answers and renegotiation offers as
// call.media.sdp pushes. Each participant receives the other's audio and
// video, the call becomes connected by itself, ending it closes the
// peer connections on the server, and a participant whose network drops
// ends the call with connection_lost once the grace period is over.
func TestRealMedia(t *testing.T) {
	if testing.Short() {
		t.Skip("real media")
	}
	reg := prometheus.NewRegistry()
	s, err := sfu.New(sfu.Config{
		ListenIP: "127.0.0.1", Registerer: reg,
		ICEDisconnectedTimeout: time.Second, ICEFailedTimeout: 2 * time.Second, ICEKeepaliveInterval: 200 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // after the plugin stops (cleanups run last first)
	w := startWith(t, t.TempDir(), pluginhost.InProcess, &call.Config{Settle: 20 * time.Millisecond, MediaGrace: 500 * time.Millisecond, ConnectTimeout: 20 * time.Second}, nil, call.SFUMedia(s))
	alice, bob := w.peer("alice"), w.peer("bob")

	id := alice.call(t, bob)
	ca, cb := alice.client(t, id, false), bob.client(t, id, false)
	for _, c := range []*sfutest.Client{ca, cb} {
		if _, err := c.WaitFrames(webrtc.RTPCodecTypeAudio, 1, 25, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitFrames(webrtc.RTPCodecTypeVideo, 1, 15, 15*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	alice.wait(t, call.EvConnected, id)
	bob.wait(t, call.EvConnected, id)
	if n := peers(t, reg); n != 2 {
		t.Fatalf("%v peer connections on the server, want 2", n)
	}
	alice.mustRequest(t, call.CmdEnd, obj{"callId": id})
	bob.wait(t, call.EvEnded, id)
	eventually(t, func() bool { return peers(t, reg) == 0 }, "the server's peer connections to close")
	ca.Close()
	cb.Close()

	// An audio_upgradable call starts with audio; video added later
	// renegotiates through the sessions and reaches the other side.
	id = alice.callTyped(t, bob, "audio_upgradable")
	ua, ub := alice.clientWith(t, id, sfutest.Options{Video: true, Verify: true}, false), bob.clientWith(t, id, sfutest.Options{Video: true, Verify: true}, false)
	for _, c := range []*sfutest.Client{ua, ub} {
		if _, err := c.WaitFrames(webrtc.RTPCodecTypeAudio, 1, 10, 15*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := ua.PublishVideo("camera"); err != nil {
		t.Fatal(err)
	}
	if err := ua.Negotiate(); err != nil {
		t.Fatal(err)
	}
	if _, err := ub.WaitFrames(webrtc.RTPCodecTypeVideo, 1, 15, 15*time.Second); err != nil {
		t.Fatalf("bob got no video after alice's upgrade: %v", err)
	}
	alice.mustRequest(t, call.CmdEnd, obj{"callId": id})
	bob.wait(t, call.EvEnded, id)
	ua.Close()
	ub.Close()

	// Every 10th VP8 packet alice sends is lost on its way to the SFU:
	// NACKs get it resent, and bob's frames are all whole.
	id = alice.callTyped(t, bob, "audio_video")
	na := alice.clientWith(t, id, sfutest.Options{Video: true, Verify: true, DropEvery: 10}, true)
	nb := bob.clientWith(t, id, sfutest.Options{Video: true, Verify: true}, true)
	tracks, err := nb.WaitFrames(webrtc.RTPCodecTypeVideo, 1, 60, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if na.Dropped() == 0 || na.Resent() == 0 || tracks[0].Missing > 0 || tracks[0].Corrupt > 0 {
		t.Fatalf("alice dropped %d and resent %d; bob: %d frames, %d missing, %d corrupt",
			na.Dropped(), na.Resent(), tracks[0].Frames, tracks[0].Missing, tracks[0].Corrupt)
	}
	alice.mustRequest(t, call.CmdEnd, obj{"callId": id})
	bob.wait(t, call.EvEnded, id)
	na.Close()
	nb.Close()

	// bob's network drops for good: the SFU reports his peer connection
	// disconnected, then failed; past the grace period the call ends.
	id = alice.call(t, bob)
	ca, cb = alice.client(t, id, false), bob.client(t, id, true)
	defer ca.Close()
	defer cb.Close()
	alice.wait(t, call.EvConnected, id)
	cb.Pause(true)
	ended := alice.wait(t, call.EvEnded, id)
	if x := decode[call.CallEnded](t, ended.Data); x.EndReason != call.ReasonConnectionLost || x.UserID != "bob" {
		t.Fatalf("ended %+v", x)
	}
}

// peers reads the SFU's peer connection gauge.
func peers(t *testing.T, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "parley_sfu_peer_connections" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// mediaPeer is a connected session that signals for a pion client: it is
// the client's sfutest.Signaller, over the session protocol.
type mediaPeer struct {
	name, device string
	c            *websocket.Conn

	wmu     sync.Mutex
	mu      sync.Mutex
	nextID  int
	pending map[string]chan frame
	answers chan string                // the SFU's answers to our offers (call.media.sdp, answer)
	clients map[string]*sfutest.Client // by call
	events  chan frame                 // durable pushes
}

func (w *world) peer(user string) *mediaPeer {
	w.t.Helper()
	c := w.srv.WS(w.t)
	p := &mediaPeer{name: user, c: c, pending: map[string]chan frame{}, answers: make(chan string, 8), clients: map[string]*sfutest.Client{}, events: make(chan frame, 256)}
	go p.read() // until the socket closes
	ans, err := p.request(context.Background(), "connect", obj{"appId": w.x.app, "userId": user, "accessToken": w.accessToken(user), "sdkVersion": "3.0.0"})
	if err != nil {
		w.t.Fatalf("connect %s: %v", user, err)
	}
	var r struct {
		Device string `json:"device"`
	}
	json.Unmarshal(ans, &r)
	p.device = r.Device
	return p
}

func (p *mediaPeer) read() {
	for {
		_, b, err := p.c.Read(context.Background())
		if err != nil {
			p.mu.Lock()
			for _, ch := range p.pending {
				close(ch)
			}
			p.pending = map[string]chan frame{}
			p.mu.Unlock()
			return
		}
		var f frame
		if json.Unmarshal(b, &f) != nil {
			continue
		}
		switch {
		case f.ID != nil:
			p.mu.Lock()
			ch := p.pending[string(f.ID)]
			delete(p.pending, string(f.ID))
			p.mu.Unlock()
			if ch != nil {
				ch <- f
			}
		case f.Event == call.EvMediaSDP:
			var sdp call.SDPPayload
			json.Unmarshal(f.Data, &sdp)
			if sdp.Type == "answer" {
				p.answers <- sdp.SDP
				continue
			}
			p.mu.Lock()
			c := p.clients[sdp.CallID]
			p.mu.Unlock()
			if c != nil {
				go c.ServerOffer(sdp.SDP) // it answers through Answer, below
			}
		case f.Event == call.EvMediaICE:
			var ice struct {
				CallID    string                  `json:"callId"`
				Candidate webrtc.ICECandidateInit `json:"candidate"`
			}
			json.Unmarshal(f.Data, &ice)
			p.mu.Lock()
			c := p.clients[ice.CallID]
			p.mu.Unlock()
			if c != nil {
				c.PC().AddICECandidate(ice.Candidate)
			}
		case f.Seq != 0:
			p.events <- f
		}
	}
}

// request sends a request and waits for its answer.
func (p *mediaPeer) request(ctx context.Context, method string, params any) (json.RawMessage, error) {
	ch := make(chan frame, 1)
	p.mu.Lock()
	p.nextID++
	id := strconv.Itoa(p.nextID)
	p.pending[id] = ch
	p.mu.Unlock()
	req := mustJSON(obj{"id": json.RawMessage(id), "method": method, "params": params})
	p.wmu.Lock()
	err := p.c.Write(ctx, websocket.MessageText, req)
	p.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case f, ok := <-ch:
		switch {
		case !ok:
			return nil, fmt.Errorf("%s: the socket closed", p.name)
		case f.Error != nil:
			return nil, f.Error
		}
		return f.Result, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *mediaPeer) mustRequest(t *testing.T, method string, params any) commandResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ans, err := p.request(ctx, method, params)
	if err != nil {
		t.Fatalf("%s: %s: %v", p.name, method, err)
	}
	var res commandResult
	json.Unmarshal(ans, &res)
	return res
}

// Offer is sfutest.Signaller's: call.media.offer, then the answer push.
func (p *mediaPeer) Offer(ctx context.Context, callID, _, _, sdp string, _ bool) (string, error) {
	if _, err := p.request(ctx, call.CmdMediaOffer, obj{"callId": callID, "sdp": sdp}); err != nil {
		return "", err
	}
	select {
	case a := <-p.answers:
		return a, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Answer is sfutest.Signaller's: call.media.answer.
func (p *mediaPeer) Answer(callID, _, sdp string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.request(ctx, call.CmdMediaAnswer, obj{"callId": callID, "sdp": sdp})
	return err
}

// wait returns the next durable push of type typ for the call, skipping
// others.
func (p *mediaPeer) wait(t *testing.T, typ, callID string) frame {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case f := <-p.events:
			var c struct {
				CallID string `json:"callId"`
			}
			json.Unmarshal(f.Data, &c)
			if f.Event == typ && c.CallID == callID {
				return f
			}
		case <-timeout:
			t.Fatalf("%s: no %s for %s", p.name, typ, callID)
		}
	}
}

// call has p call other, who answers; it returns the call id.
func (p *mediaPeer) call(t *testing.T, other *mediaPeer) string {
	t.Helper()
	return p.callTyped(t, other, "audio_video")
}

// callTyped is call with a call type.
func (p *mediaPeer) callTyped(t *testing.T, other *mediaPeer, callType string) string {
	t.Helper()
	res := p.mustRequest(t, call.CmdCreate, obj{"users": []string{other.name}, "options": obj{"callType": callType}})
	id := decode[call.CallCreated](t, res.Events[0].Data).CallID
	other.wait(t, call.EvCreated, id)
	other.mustRequest(t, call.CmdAnswer, obj{"callId": id})
	return id
}

// client joins the call's media with a pion peer publishing audio and
// video.
func (p *mediaPeer) client(t *testing.T, callID string, pausable bool) *sfutest.Client {
	t.Helper()
	return p.clientWith(t, callID, sfutest.Options{Video: true, Verify: true, Pausable: pausable}, true)
}

// clientWith joins the call's media with a pion peer publishing audio,
// and video when withVideo.
func (p *mediaPeer) clientWith(t *testing.T, callID string, o sfutest.Options, withVideo bool) *sfutest.Client {
	t.Helper()
	c, err := sfutest.NewClient(p, callID, p.name, p.device, o)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.clients[callID] = c
	p.mu.Unlock()
	if err := c.PublishAudio(); err != nil {
		t.Fatal(err)
	}
	if withVideo {
		if err := c.PublishVideo("camera"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Negotiate(); err != nil {
		t.Fatal(err)
	}
	return c
}

var _ sfutest.Signaller = (*mediaPeer)(nil)
