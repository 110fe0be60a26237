package call_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/call"
	"github.com/parleyhq/parley/plugins/call/sfu"
)

// TestSignalingRouting: a device's offer, answer, candidates and leave
// reach the media plane for its call, user and device; the SDP answer goes
// back to that device alone as an ephemeral call.media.sdp; server-side
// candidates and renegotiation offers are published to the device they
// belong to.
func TestSignalingRouting(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour, ConnectTimeout: time.Hour})
	id := e.create("alice", "a1", "bob", obj{})

	// The caller may negotiate while the call rings; the callee only once
	// answered, and only on the answering device.
	evs := e.ok("alice", "a1", call.CmdMediaOffer, obj{"callId": id, "sdp": "offer-a"})
	if len(evs) != 0 {
		t.Fatalf("an offer logged %+v", evs)
	}
	sdps := e.published(call.EvMediaSDP)
	if len(sdps) != 1 || sdps[0].Device != "a1" || !slices.Equal(sdps[0].Audience, []string{"alice"}) {
		t.Fatalf("answer published %+v", sdps)
	}
	if a := decode[call.SDPPayload](t, sdps[0].Payload); a != (call.SDPPayload{CallID: id, Type: "answer", SDP: "answer to offer-a"}) {
		t.Fatalf("answer %+v", a)
	}
	e.fails(call.CodeInvalidCallStatus, "bob", "b1", call.CmdMediaOffer, obj{"callId": id, "sdp": "offer-b"})
	e.ok("bob", "b1", call.CmdAnswer, obj{"callId": id})
	e.ok("bob", "b1", call.CmdMediaOffer, obj{"callId": id, "sdp": "offer-b"})
	e.ok("bob", "b1", call.CmdMediaCandidate, obj{"callId": id, "candidate": obj{"candidate": "candidate:1 1 udp 1 10.0.0.1 5000 typ host", "sdpMid": "0"}})
	e.ok("alice", "a1", call.CmdMediaCandidate, obj{"callId": id, "candidate": `{"candidate":"candidate:2"}`})
	e.ok("alice", "a1", call.CmdMediaAnswer, obj{"callId": id, "sdp": "answer-a"})

	// The plane's own candidates and offers go to the device they name.
	ev := e.media.events()
	ev.Candidate(id, "bob", "b1", `{"candidate":"candidate:9","sdpMid":"0","sdpMLineIndex":0}`)
	ev.Offer(id, "alice", "a1", "renegotiate")
	ice := e.published(call.EvMediaICE)
	if len(ice) != 1 || ice[0].Device != "b1" || ice[0].Company != acme || !slices.Equal(ice[0].Audience, []string{"bob"}) {
		t.Fatalf("server candidate %+v", ice)
	}
	if c := decode[call.ICEPayload](t, ice[0].Payload); c.CallID != id || string(c.Candidate) != `{"candidate":"candidate:9","sdpMid":"0","sdpMLineIndex":0}` {
		t.Fatalf("candidate %+v", c)
	}
	sdps = e.published(call.EvMediaSDP)
	if o := sdps[len(sdps)-1]; o.Device != "a1" || decode[call.SDPPayload](t, o.Payload).Type != "offer" {
		t.Fatalf("server offer %+v", o)
	}
	e.ok("alice", "a1", call.CmdMediaLeave, obj{"callId": id})

	want := []string{
		"offer " + id + " alice a1 true",
		"offer " + id + " bob b1 true",
		"candidate " + id + ` bob b1 {"candidate":"candidate:1 1 udp 1 10.0.0.1 5000 typ host","sdpMid":"0"}`,
		"candidate " + id + ` alice a1 {"candidate":"candidate:2"}`,
		"answer " + id + " alice a1 answer-a",
		"leave " + id + " alice a1",
	}
	if got := e.media.log(); !slices.Equal(got, want) {
		t.Fatalf("the media plane was asked\n%q\nwant\n%q", got, want)
	}
}

// TestSignalingRefusals: who may not signal, and malformed signaling.
func TestSignalingRefusals(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour, ConnectTimeout: time.Hour})
	id := e.create("alice", "a1", "bob", obj{})
	for _, c := range []struct {
		name, as, device, cmd string
		params                obj
		want                  plugins.Code
	}{
		{"an outsider", "carol", "c1", call.CmdMediaOffer, obj{"callId": id, "sdp": "x"}, call.CodeCallNotFound},
		{"another company", "olga", "o1", call.CmdMediaOffer, obj{"callId": id, "sdp": "x"}, call.CodeCallNotFound},
		{"an unknown call", "alice", "a1", call.CmdMediaOffer, obj{"callId": "call_nope", "sdp": "x"}, call.CodeCallNotFound},
		{"the caller's other device", "alice", "a2", call.CmdMediaOffer, obj{"callId": id, "sdp": "x"}, call.CodeInvalidCallStatus},
		{"no device", "alice", "", call.CmdMediaOffer, obj{"callId": id, "sdp": "x"}, call.CodeValidation},
		{"no sdp", "alice", "a1", call.CmdMediaOffer, obj{"callId": id}, call.CodeValidation},
		{"no callId", "alice", "a1", call.CmdMediaOffer, obj{"sdp": "x"}, call.CodeValidation},
		{"a candidate that is not one", "alice", "a1", call.CmdMediaCandidate, obj{"callId": id, "candidate": 7}, call.CodeValidation},
		{"an sdp the plane refuses", "alice", "a1", call.CmdMediaOffer, obj{"callId": id, "sdp": "garbage"}, call.CodeValidation},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.media.failOn = "garbage"
			e.fails(c.want, c.as, c.device, c.cmd, c.params)
		})
	}
	e.ok("alice", "a1", call.CmdEnd, obj{"callId": id})
	e.fails(call.CodeInvalidCallStatus, "alice", "a1", call.CmdMediaOffer, obj{"callId": id, "sdp": "x"})

	// Without a media plane, signaling is refused like calls are.
	n := newEnv(t, call.Config{UDPPort: -1})
	n.fails(call.CodeRoomCreate, "alice", "a1", call.CmdMediaOffer, obj{"callId": id, "sdp": "x"})
}

// TestVideoAllowed: audio_only calls and users without can_video offer
// with video refused; audio_upgradable and audio_video allow it.
func TestVideoAllowed(t *testing.T) {
	for _, c := range []struct {
		callType, caller string
		video            bool
	}{
		{"audio_only", "alice", false},
		{"audio_upgradable", "alice", true},
		{"audio_video", "alice", true},
		{"audio_video", "erin", false}, // can_video false
	} {
		e := newEnv(t, call.Config{DialTimeout: time.Hour})
		id := e.create(c.caller, "x1", "bob", obj{"callType": c.callType})
		e.ok(c.caller, "x1", call.CmdMediaOffer, obj{"callId": id, "sdp": "o"})
		want := "offer " + id + " " + c.caller + " x1 " + map[bool]string{true: "true", false: "false"}[c.video]
		if got := e.media.log(); len(got) != 1 || got[0] != want {
			t.Errorf("%s by %s: %q, want %q", c.callType, c.caller, got, want)
		}
	}
}

// TestConnected: the call is connected once both participants' media is;
// media that drops comes back within the grace period unnoticed, and past
// it ends the call with connection_lost, naming whose media it was; the
// call's media is then closed.
func TestConnected(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour, ConnectTimeout: time.Hour, MediaGrace: 300 * time.Millisecond})
	id := e.create("alice", "a1", "bob", obj{})
	e.ok("alice", "a1", call.CmdMediaOffer, obj{"callId": id, "sdp": "o"})
	e.media.state(id, "alice", "a1", "connected") // early media: nothing happens while it rings
	e.ok("bob", "b1", call.CmdAnswer, obj{"callId": id})
	e.ok("bob", "b1", call.CmdMediaOffer, obj{"callId": id, "sdp": "o"})
	e.media.state(id, "bob", "b2", "connected") // not bob's device in the call: ignored
	time.Sleep(50 * time.Millisecond)
	if v := e.view(acme, "bob", id); v.Status != call.StatusConnecting {
		t.Fatalf("status %s", v.Status)
	}
	e.media.state(id, "bob", "b1", "connected")
	e.status(id, call.StatusConnected)
	if ev := e.last(call.EvConnected); ev.Actor != "plugin:"+call.ID || !slices.Equal(ev.Audience, []string{"alice", "bob"}) {
		t.Fatalf("call.connected %+v", ev)
	}
	states := e.published(call.EvMediaState)
	if len(states) < 2 || decode[call.MediaStatePayload](t, states[len(states)-1].Payload) != (call.MediaStatePayload{CallID: id, UserID: "bob", State: "connected"}) {
		t.Fatalf("media states %+v", states)
	}

	// A blip shorter than the grace period.
	e.media.state(id, "bob", "b1", "disconnected")
	time.Sleep(100 * time.Millisecond)
	e.media.state(id, "bob", "b1", "connected")
	time.Sleep(400 * time.Millisecond)
	if v := e.view(acme, "bob", id); v.Status != call.StatusConnected {
		t.Fatalf("after a blip: %s", v.Status)
	}
	// A loss longer than it.
	e.media.state(id, "alice", "a1", "failed")
	v := e.status(id, call.StatusEnded)
	x := decode[call.CallEnded](t, e.last(call.EvEnded).Payload)
	if *v.EndReason != call.ReasonConnectionLost || x.UserID != "alice" {
		t.Fatalf("ended %s %+v", *v.EndReason, x)
	}
	eventually(t, func() bool { return slices.Contains(e.media.log(), "end "+id) && e.media.open(id) == 0 }, "the call's media to close")
}

// TestConnectTimeout: a participant whose media never comes up ends the
// call with connection_lost.
func TestConnectTimeout(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour, ConnectTimeout: 200 * time.Millisecond})
	id := e.create("alice", "a1", "bob", obj{})
	e.ok("bob", "b1", call.CmdAnswer, obj{"callId": id})
	e.media.state(id, "alice", "a1", "connected")
	v := e.status(id, call.StatusEnded)
	if x := decode[call.CallEnded](t, e.last(call.EvEnded).Payload); *v.EndReason != call.ReasonConnectionLost || x.UserID != "bob" {
		t.Fatalf("ended %s by %s", *v.EndReason, x.UserID)
	}
}

// TestEndClosesMedia: a call ended by a command has its media closed, and
// signaling for it is refused from then on.
func TestEndClosesMedia(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour, ConnectTimeout: time.Hour})
	id := e.answeredWithMedia()
	e.connect(id, map[string]string{"alice": "a1", "bob": "b1"})
	e.ok("bob", "b1", call.CmdEnd, obj{"callId": id})
	eventually(t, func() bool { return e.media.open(id) == 0 }, "the call's media to close")
	e.fails(call.CodeInvalidCallStatus, "alice", "a1", call.CmdMediaOffer, obj{"callId": id, "sdp": "o"})
}

// TestSettle: the scheduler does not append a transition of its own while
// a command on the call has just been decided: a timeout due at the
// moment of an answer waits for the answer to land, and the answer wins.
func TestSettle(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: 100 * time.Millisecond, ConnectTimeout: time.Hour, Settle: 500 * time.Millisecond})
	id := e.create("alice", "a1", "bob", obj{})
	time.Sleep(120 * time.Millisecond) // past the deadline, within the settle time of the creation
	e.ok("bob", "b1", call.CmdAnswer, obj{"callId": id})
	time.Sleep(600 * time.Millisecond)
	if v := e.view(acme, "bob", id); v.Status != call.StatusConnecting {
		t.Fatalf("status %s: the timeout overtook the answer", v.Status)
	}
}

// call.media.leave of a connected device is announced to the call
// (call.media.state closed) as the plane's own report would be; that
// report, coming after, changes nothing and announces nothing again.
func TestMediaLeaveIsAnnounced(t *testing.T) {
	e := newEnv(t, call.Config{ConnectTimeout: time.Hour, MediaGrace: time.Hour})
	id := e.answeredWithMedia()
	e.connect(id, map[string]string{"alice": "a1", "bob": "b1"})
	before := len(e.published(call.EvMediaState))
	e.ok("bob", "b1", call.CmdMediaLeave, obj{"callId": id})
	if n := len(e.published(call.EvMediaState)); n != before+1 {
		t.Fatalf("bob's media left: %d call.media.state published, want 1", n-before)
	}
	e.media.state(id, "bob", "b1", "closed") // the plane's report of the closed peer connection
	if n := len(e.published(call.EvMediaState)); n != before+1 {
		t.Fatalf("the plane's closed report after the leave published %d more", n-before-1)
	}
}

// An offer crossing one of the plane's to the device (glare) is not
// taken: call.media.offer answers with the plane's offer instead, for the
// device to answer first (the push that carried it may have been lost).
func TestMediaOfferOnGlareAnswersThePlanesOffer(t *testing.T) {
	e := newEnv(t, call.Config{ConnectTimeout: time.Hour, MediaGrace: time.Hour})
	id := e.answeredWithMedia()
	e.media.mu.Lock()
	e.media.glare = "the plane's offer"
	e.media.mu.Unlock()
	evs := e.ok("bob", "b1", call.CmdMediaOffer, obj{"callId": id, "sdp": "bob's crossing offer"})
	var got []call.SDPPayload
	for _, ev := range e.k.Published() {
		if ev.Type == call.EvMediaSDP && ev.Device == "b1" {
			got = append(got, decode[call.SDPPayload](t, ev.Payload))
		}
	}
	if len(evs) != 0 || len(got) == 0 || got[len(got)-1].Type != "offer" || got[len(got)-1].SDP != "the plane's offer" {
		t.Fatalf("call.media.offer on glare: durable %v, published to b1 %+v; want the plane's offer, type offer", evs, got)
	}
}

// The SFU's errors a device must act on reach it as such: glare as the
// SFU's waiting offer (answered in call.media.offer's place), an abandoned
// peer connection as media_reset (the SDK makes a new one), the rest as
// the client's mistakes.
func TestSFUErrorsReachTheDevice(t *testing.T) {
	var g *call.Glare
	if err := call.SFUError(fmt.Errorf("offer: %w", &sfu.GlareError{Offer: "the SFU's offer"})); !errors.As(err, &g) || g.Offer != "the SFU's offer" {
		t.Errorf("glare: %v, want a *call.Glare carrying the SFU's offer", err)
	}
	for err, want := range map[error]plugins.Code{
		fmt.Errorf("%w: apply offer: no ice-ufrag", sfu.ErrPeerAbandoned): call.CodeMediaReset,
		fmt.Errorf("%w: two m-lines of mid 0", sfu.ErrInvalidOffer):       call.CodeValidation,
	} {
		if c := plugins.AsCoded(call.SFUError(err)); c == nil || c.Code != want {
			t.Errorf("%v: %v, want %s", err, c, want)
		}
	}
}
