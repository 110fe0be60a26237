package call_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/call"
)

// TestCreateCall: createCall decides call.created to both users, with the
// options filled in from the defaults, on the company's rooms stream.
func TestCreateCall(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour})
	evs := e.ok("alice", "a1", call.CmdCreate, obj{"users": []string{"bob"}, "options": obj{"callType": "audio_upgradable", "isAdmin": true}})
	ev := evs[0]
	c := decode[call.CallCreated](t, ev.Payload)
	switch {
	case ev.Stream != call.RoomsStream(acme) || !slices.Equal(ev.Audience, []string{"alice", "bob"}):
		t.Fatalf("call.created on %s to %v", ev.Stream, ev.Audience)
	case !strings.HasPrefix(c.CallID, "call_") || !strings.HasPrefix(c.RoomID, "room_") || c.Status != call.StatusDialing:
		t.Fatalf("ids and status: %+v", c)
	case c.Caller != "alice" || c.Callee != "bob" || !slices.Equal(c.Participants, []string{"alice", "bob"}) || c.CallerDevice != "a1":
		t.Fatalf("who: %+v", c)
	case c.Options != (call.Options{CallType: "audio_upgradable", RecordingType: "none", Live: true}) || !slices.Equal(c.Admins, []string{"alice"}):
		t.Fatalf("options: %+v admins %v", c.Options, c.Admins)
	case c.Link || c.DialDeadline == "" || c.CreationDate == "":
		t.Fatalf("dates: %+v", c)
	}
	created, _ := time.Parse(time.RFC3339, c.CreationDate)
	deadline, _ := time.Parse(time.RFC3339, c.DialDeadline)
	if deadline.Sub(created) != time.Hour {
		t.Fatalf("dial deadline %s after creation %s", c.DialDeadline, c.CreationDate)
	}
	// Each participant sees their direction; the company sees none.
	for who, dir := range map[string]string{"alice": "outgoing", "bob": "incoming", "apikey:acme": ""} {
		v := e.view(acme, who, c.CallID)
		if v.Direction != dir || v.Status != call.StatusDialing || v.EndReason != nil || v.IsAdmin != (who == "alice") || v.RecordingState != "stopped" {
			t.Errorf("%s sees %+v", who, v)
		}
	}
	// Options: defaults, both spellings of the call type, recording.
	for _, c := range []struct {
		options obj
		want    call.Options
	}{
		{obj{}, call.Options{CallType: "audio_video", RecordingType: "none", Live: true}},
		{obj{"call_type": "audio_only"}, call.Options{CallType: "audio_only", RecordingType: "none", Live: true}},
		{obj{"callType": "audio_only", "call_type": "audio_only"}, call.Options{CallType: "audio_only", RecordingType: "none", Live: true}},
		{obj{"recordingType": "manual"}, call.Options{CallType: "audio_video", Recording: true, RecordingType: "manual", Live: true}},
		{obj{"recordingType": "automatic", "recording": true}, call.Options{CallType: "audio_video", Recording: true, RecordingType: "automatic", Live: true}},
		{obj{"recordingType": "automatic", "recording": false}, call.Options{CallType: "audio_video", RecordingType: "none", Live: true}},
	} {
		e := newEnv(t, call.Config{})
		id := e.create("alice", "a1", "bob", c.options)
		if got := e.view(acme, "alice", id).Options; got != c.want {
			t.Errorf("options %v: %+v, want %+v", c.options, got, c.want)
		}
	}
}

// TestTransitions walks every transition of the state machine and every
// end reason a command decides, step by step.
func TestTransitions(t *testing.T) {
	type step struct {
		as, device, cmd string
		want            plugins.Code // "" for success
		status, reason  string       // after the step, when it succeeded
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"cancel", []step{{"alice", "a1", call.CmdEnd, "", "ended", "canceled"}}},
		{"decline", []step{{"bob", "b1", call.CmdEnd, "", "ended", "declined"}}},
		{"decline from a device that never answered", []step{{"bob", "b2", call.CmdEnd, "", "ended", "declined"}}},
		{"answer", []step{{"bob", "b1", call.CmdAnswer, "", "connecting", ""}}},
		{"answer then the caller hangs up", []step{
			{"bob", "b1", call.CmdAnswer, "", "connecting", ""},
			{"alice", "a1", call.CmdEnd, "", "ended", "hang_up"},
		}},
		{"answer then the callee hangs up", []step{
			{"bob", "b1", call.CmdAnswer, "", "connecting", ""},
			{"bob", "b1", call.CmdEnd, "", "ended", "hang_up"},
		}},
		{"answer twice", []step{
			{"bob", "b1", call.CmdAnswer, "", "connecting", ""},
			{"bob", "b2", call.CmdAnswer, call.CodeInvalidCallStatus, "", ""},
		}},
		{"the caller answers", []step{{"alice", "a1", call.CmdAnswer, call.CodeInvalidCallStatus, "", ""}}},
		{"an outsider answers", []step{{"carol", "c1", call.CmdAnswer, call.CodeDialAnswer, "", ""}}},
		{"an outsider ends", []step{{"carol", "c1", call.CmdEnd, call.CodeDialStop, "", ""}}},
		{"a user of another company ends", []step{{"olga", "o1", call.CmdEnd, call.CodeDialStop, "", ""}}},
		{"answered on one device, ended on the other", []step{
			{"bob", "b1", call.CmdAnswer, "", "connecting", ""},
			{"bob", "b2", call.CmdEnd, call.CodeUserNotInDialing, "", ""},
			{"bob", "b1", call.CmdEnd, "", "ended", "hang_up"},
		}},
		{"cancel from the caller's other device", []step{
			{"alice", "a2", call.CmdEnd, call.CodeDialStop, "", ""},
			{"alice", "a1", call.CmdEnd, "", "ended", "canceled"},
		}},
		{"hang up from the caller's other device", []step{
			{"bob", "b1", call.CmdAnswer, "", "connecting", ""},
			{"alice", "a2", call.CmdEnd, call.CodeUserNotInDialing, "", ""},
		}},
		{"end an ended call", []step{
			{"alice", "a1", call.CmdEnd, "", "ended", "canceled"},
			{"bob", "b1", call.CmdEnd, call.CodeInvalidCallStatus, "", ""},
			{"alice", "a1", call.CmdEnd, call.CodeInvalidCallStatus, "", ""},
		}},
		{"answer an ended call", []step{
			{"bob", "b1", call.CmdEnd, "", "ended", "declined"},
			{"bob", "b1", call.CmdAnswer, call.CodeInvalidCallStatus, "", ""},
		}},
		{"answer without a device", []step{{"bob", "", call.CmdAnswer, call.CodeDialAnswer, "", ""}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, call.Config{DialTimeout: time.Hour})
			id := e.create("alice", "a1", "bob", obj{})
			for i, s := range c.steps {
				evs, err := e.run(acme, s.as, s.device, s.cmd, obj{"callId": id})
				if s.want != "" {
					if codeOf(err) != s.want {
						t.Fatalf("step %d: %s %s: %v, want %s", i, s.as, s.cmd, err, s.want)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %s %s: %v", i, s.as, s.cmd, err)
				}
				if len(evs) != 1 || evs[0].Stream != call.CallStream(acme, id) || !slices.Equal(evs[0].Audience, []string{"alice", "bob"}) {
					t.Fatalf("step %d decided %+v", i, evs)
				}
				v := e.view(acme, "alice", id)
				reason := ""
				if v.EndReason != nil {
					reason = *v.EndReason
				}
				if v.Status != s.status || reason != s.reason {
					t.Fatalf("step %d: %s %s, want %s %s", i, v.Status, reason, s.status, s.reason)
				}
				if s.cmd == call.CmdEnd {
					x := decode[call.CallEnded](t, evs[0].Payload)
					if x.UserID != s.as || x.Device != s.device || x.Status != "ended" || x.EndReason != s.reason {
						t.Fatalf("call.ended %+v", x)
					}
				}
			}
		})
	}
}

// TestAnswerOnOneOfTwoDevices: bob rings on two devices and answers on
// one; call.answered names it, so the other stops ringing
// (answered_of_another_device, in the SDK), and only the answering device
// carries bob's media.
func TestAnswerOnOneOfTwoDevices(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour})
	id := e.create("alice", "a1", "bob", obj{})
	evs := e.ok("bob", "b2", call.CmdAnswer, obj{"callId": id})
	a := decode[call.CallAnswered](t, evs[0].Payload)
	if a.Device != "b2" || a.UserID != "bob" || a.Status != call.StatusConnecting || evs[0].Type != call.EvAnswered {
		t.Fatalf("call.answered %+v", a)
	}
	v := e.view(acme, "bob", id)
	if v.Devices["bob"] != "b2" || v.Devices["alice"] != "a1" {
		t.Fatalf("devices %v", v.Devices)
	}
	e.fails(call.CodeInvalidCallStatus, "bob", "b1", call.CmdMediaOffer, obj{"callId": id, "sdp": "v=0"})
	e.fails(call.CodeUserNotInDialing, "bob", "b1", call.CmdEnd, obj{"callId": id})
	e.ok("bob", "b2", call.CmdMediaOffer, obj{"callId": id, "sdp": "v=0"})
}

// TestCreateErrors: every refusal of createCall, with its code.
func TestCreateErrors(t *testing.T) {
	type c struct {
		name         string
		as, device   string
		users        any
		options      obj
		want         plugins.Code
		before       func(e *env)
		withoutMedia bool
	}
	busy := func(e *env) { e.create("alice", "a1", "bob", obj{}) }
	cases := []c{
		{"no users", "alice", "a1", []string{}, nil, call.CodeValidation, nil, false},
		{"two users", "alice", "a1", []string{"bob", "carol"}, nil, call.CodeValidation, nil, false},
		{"users not a list", "alice", "a1", "bob", nil, call.CodeValidation, nil, false},
		{"a malformed user id", "alice", "a1", []string{"b o b"}, nil, call.CodeValidation, nil, false},
		{"oneself", "alice", "a1", []string{"alice"}, nil, call.CodeValidation, nil, false},
		{"an unknown callee", "alice", "a1", []string{"zed"}, nil, call.CodeValidation, nil, false},
		{"a deactivated callee", "alice", "a1", []string{"dave"}, nil, call.CodeValidation, nil, false},
		{"a user of another company", "alice", "a1", []string{"olga"}, nil, call.CodeValidation, nil, false},
		{"an unknown call type", "alice", "a1", []string{"bob"}, obj{"callType": "video_only"}, call.CodeValidation, nil, false},
		{"call types that disagree", "alice", "a1", []string{"bob"}, obj{"callType": "audio_only", "call_type": "audio_video"}, call.CodeValidation, nil, false},
		{"an unknown recording type", "alice", "a1", []string{"bob"}, obj{"recordingType": "always"}, call.CodeValidation, nil, false},
		{"recording without a type", "alice", "a1", []string{"bob"}, obj{"recording": true}, call.CodeValidation, nil, false},
		{"isAdmin not a boolean", "alice", "a1", []string{"bob"}, obj{"isAdmin": "yes"}, call.CodeValidation, nil, false},
		{"no device", "alice", "", []string{"bob"}, nil, call.CodeValidation, nil, false},
		{"the REST API", "apikey:acme", "", []string{"bob"}, nil, call.CodeValidation, nil, false},
		{"a deactivated caller", "dave", "d1", []string{"alice"}, nil, call.CodeCurrentUserNotAvail, nil, false},
		{"an unknown caller", "zed", "z1", []string{"alice"}, nil, call.CodeCurrentUserNotAvail, nil, false},
		{"the caller calls again from the same device", "alice", "a1", []string{"carol"}, nil, call.CodeAnotherCallInProgress, busy, false},
		{"the callee, ringing, calls", "bob", "b1", []string{"carol"}, nil, call.CodeAnotherCallInProgress, busy, false},
		{"the callee calls back", "bob", "b1", []string{"alice"}, nil, call.CodeAnotherCallInProgress, busy, false},
		{"the caller calls from another device", "alice", "a2", []string{"carol"}, nil, call.CodeCurrentUserBusy, busy, false},
		{"the callee answered on another device", "bob", "b2", []string{"carol"}, nil, call.CodeCurrentUserBusy, func(e *env) {
			id := e.create("alice", "a1", "bob", obj{})
			e.ok("bob", "b1", call.CmdAnswer, obj{"callId": id})
		}, false},
		{"calling someone in a call", "erin", "e1", []string{"bob"}, nil, call.CodeAllUsersBusy, busy, false},
		{"calling a caller", "erin", "e1", []string{"alice"}, nil, call.CodeAllUsersBusy, busy, false},
		{"two basic users", "bob", "b1", []string{"carol"}, nil, call.CodeNoPlusUser, nil, false},
		{"a basic user made plus", "bob", "b1", []string{"carol"}, nil, "", func(e *env) {
			e.user("user.updated", acme, obj{"user_id": "carol", "role": "plus", "can_video": true, "active": true})
		}, false},
		{"a plus user made basic", "alice", "a1", []string{"bob"}, nil, call.CodeNoPlusUser, func(e *env) {
			e.user("user.updated", acme, obj{"user_id": "alice", "role": "basic", "can_video": true, "active": true})
		}, false},
		{"no media plane", "alice", "a1", []string{"bob"}, nil, call.CodeRoomCreate, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := call.Config{DialTimeout: time.Hour}
			if c.withoutMedia {
				cfg.UDPPort = -1
			}
			e := newEnv(t, cfg)
			if c.before != nil {
				c.before(e)
			}
			params := obj{"users": c.users}
			if c.options != nil {
				params["options"] = c.options
			}
			_, err := e.run(acme, c.as, c.device, call.CmdCreate, params)
			if codeOf(err) != c.want {
				t.Fatalf("%v, want %q", err, c.want)
			}
		})
	}
}

// TestAnswerCallerGone: the caller deactivated while the call rang: the
// answer is refused with callee_not_available; the callee can still
// decline.
func TestAnswerCallerGone(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour})
	id := e.create("alice", "a1", "bob", obj{})
	e.user("user.deactivated", acme, obj{"user_id": "alice"})
	e.fails(call.CodeCalleeNotAvailable, "bob", "b1", call.CmdAnswer, obj{"callId": id})
	e.user("user.deleted", acme, obj{"user_id": "alice"})
	e.fails(call.CodeCalleeNotAvailable, "bob", "b1", call.CmdAnswer, obj{"callId": id})
	e.ok("bob", "b1", call.CmdEnd, obj{"callId": id})
	// A deactivated callee cannot answer either.
	id = e.create("erin", "e1", "bob", obj{})
	e.user("user.deactivated", acme, obj{"user_id": "bob"})
	e.fails(call.CodeDialAnswer, "bob", "b1", call.CmdAnswer, obj{"callId": id})
}

// TestInternalServerError: a command on a stream the projection cannot
// reach in time is refused with internal_server_error, not decided on
// stale state.
func TestInternalServerError(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour})
	id := e.create("alice", "a1", "bob", obj{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.p.HandleCommand(ctx, plugins.Command{
		Name: call.CmdAnswer, Stream: call.CallStream(acme, id), Company: acme, Actor: "bob", Device: "b1",
		Payload: mustJSON(obj{"callId": id}), Version: 7, // the log holds none of it
	})
	if codeOf(err) != call.CodeInternalServer {
		t.Fatalf("%v, want internal_server_error", err)
	}
	_, err = e.p.HandleQuery(ctx, plugins.Query{Name: call.QueryGet, Company: acme, Actor: "bob", Payload: mustJSON(obj{"callId": id, "minSeq": 1 << 40})})
	if codeOf(err) != call.CodeInternalServer {
		t.Fatalf("query: %v, want internal_server_error", err)
	}
}

// TestCommandShapes: requests on the wrong stream, or malformed.
func TestCommandShapes(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour})
	id := e.create("alice", "a1", "bob", obj{})
	ctx := context.Background()
	for _, c := range []plugins.Command{
		{Name: call.CmdCreate, Stream: call.CallStream(acme, id), Company: acme, Actor: "carol", Device: "c1", Payload: mustJSON(obj{"users": []string{"frank"}})},
		{Name: call.CmdAnswer, Stream: call.RoomsStream(acme), Company: acme, Actor: "bob", Device: "b1", Payload: mustJSON(obj{"callId": id})},
		{Name: call.CmdAnswer, Stream: "call/acme/rooms", Company: acme, Actor: "bob", Device: "b1", Payload: mustJSON(obj{"callId": "rooms"})},
		{Name: call.CmdEnd, Stream: call.CallStream(acme, id), Company: acme, Actor: "bob", Device: "b1", Payload: []byte(`{"callId": 7}`)},
		{Name: call.CmdMediaOffer, Stream: call.CallStream(acme, id), Company: acme, Actor: "alice", Device: "a1", Payload: mustJSON(obj{"callId": id, "sdp": "v=0"})},
	} {
		if _, err := e.k.Execute(ctx, c); codeOf(err) != call.CodeValidation {
			t.Errorf("%s on %s %s: %v, want validation_error", c.Name, c.Stream, c.Payload, err)
		}
	}
}

// TestDialTimeout: a call nobody answers ends with timeout; the
// scheduler appends call.ended through the kernel API, to both users.
func TestDialTimeout(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: 150 * time.Millisecond})
	id := e.create("alice", "a1", "bob", obj{})
	v := e.status(id, call.StatusEnded)
	if *v.EndReason != call.ReasonTimeout {
		t.Fatalf("ended %s", *v.EndReason)
	}
	ev := e.last(call.EvEnded)
	if ev.Actor != "plugin:"+call.ID || ev.Company != acme || ev.Stream != call.CallStream(acme, id) || !slices.Equal(ev.Audience, []string{"alice", "bob"}) {
		t.Fatalf("call.ended %+v", ev)
	}
	// Both are free again.
	e.create("bob", "b1", "alice", obj{})
	// An answered call does not time out.
	e2 := newEnv(t, call.Config{DialTimeout: 150 * time.Millisecond, ConnectTimeout: time.Hour})
	id = e2.create("alice", "a1", "bob", obj{})
	e2.ok("bob", "b1", call.CmdAnswer, obj{"callId": id})
	time.Sleep(300 * time.Millisecond)
	if v := e2.view(acme, "bob", id); v.Status != call.StatusConnecting {
		t.Fatalf("answered call: %s", v.Status)
	}
}

// TestStartClosesMediaOfEndedCalls: a media plane kept from an aborted
// activation may hold the media of a call whose end that activation
// logged but did not get to close; the next Start closes it, and leaves
// the media of the calls still open.
func TestStartClosesMediaOfEndedCalls(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour, ConnectTimeout: time.Hour})
	ended := e.create("alice", "a1", "bob", obj{})
	e.ok("alice", "a1", call.CmdEnd, obj{"callId": ended})
	e.status(ended, call.StatusEnded)
	eventually(t, func() bool { return slices.Contains(e.media.log(), "end "+ended) }, "the ended call's media to close")
	open := e.create("erin", "e1", "carol", obj{})
	e.ok("erin", "e1", call.CmdMediaOffer, obj{"callId": open, "sdp": "o"})
	// As if the activation that ended the call was killed before closing its media.
	if _, err := e.media.Offer(context.Background(), ended, "alice", "a1", "o", true); err != nil {
		t.Fatal(err)
	}
	e.restart()
	if n := e.media.open(ended); n != 0 {
		t.Errorf("the ended call keeps %d peer connections after Start", n)
	}
	if n := e.media.open(open); n != 1 {
		t.Errorf("the open call has %d peer connections after Start, want 1", n)
	}
}

// TestAbortKeepsConnectedCalls: after the host killed the plugin (Abort
// keeps the media plane), the next activation takes the media states as
// the plane reports them: a connected call stays connected past
// ConnectTimeout, though no state changes again.
func TestAbortKeepsConnectedCalls(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour, ConnectTimeout: 200 * time.Millisecond, MediaGrace: 100 * time.Millisecond})
	id := e.answeredWithMedia()
	e.connect(id, map[string]string{"alice": "a1", "bob": "b1"})
	e.abortRestart()
	if _, detached := e.media.notified(); detached != 1 || e.media.events().Offer == nil {
		t.Fatal("the abort did not detach the plugin from the media plane (which holds its signalling), or the next Start did not attach")
	}
	time.Sleep(600 * time.Millisecond) // three ConnectTimeouts
	if v := e.view(acme, "alice", id); v.Status != call.StatusConnected {
		t.Fatalf("after the abort the call is %s", v.Status)
	}
	// And media lost after the abort is still noticed.
	e.media.state(id, "bob", "b1", "failed")
	if v := e.status(id, call.StatusEnded); *v.EndReason != call.ReasonConnectionLost {
		t.Fatalf("ended %s", *v.EndReason)
	}
}

// TestAbortDuringStart: an activation the host aborts while its Start
// still runs (past the start timeout, rebuilding a long log) attaches
// nothing when its Start gets there: the media plane stays detached for
// the next activation, and the Start fails.
func TestAbortDuringStart(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour, ConnectTimeout: time.Hour})
	late := call.NewWith(e.cfg, e.media)
	late.Abort(context.Background()) // as the host does at the start timeout, before Start attached
	before, _ := e.media.notified()
	if err := e.k.Restart(context.Background(), late); err == nil {
		t.Fatal("the aborted activation's Start succeeded")
	}
	if after, _ := e.media.notified(); after != before || e.media.events().Offer != nil {
		t.Fatalf("the aborted activation attached to the media plane (%d attaches, %d before)", after, before)
	}
	e.activate() // the next activation attaches
	if e.media.events().Offer == nil {
		t.Fatal("the next activation is not attached")
	}
}

// TestAbortTakeoverKeepsNewerStates: a state reported to the new
// activation after the plane's snapshot (Media.Devices) is newer than the
// snapshot, which does not overwrite it.
func TestAbortTakeoverKeepsNewerStates(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour, ConnectTimeout: time.Hour})
	id := e.answeredWithMedia()
	e.media.state(id, "alice", "a1", "connecting")
	e.media.state(id, "bob", "b1", "connecting")
	e.media.afterDevices = func() {
		e.media.afterDevices = nil
		e.media.state(id, "alice", "a1", "connected")
		e.media.state(id, "bob", "b1", "connected")
	}
	e.abortRestart()
	e.status(id, call.StatusConnected)
}

// TestRestart: the state is rebuilt from the log; a call that should have
// timed out while the plugin was down times out at Start, one still
// within its time keeps ringing.
func TestRestart(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Minute, ConnectTimeout: time.Hour})
	ringing := e.create("alice", "a1", "bob", obj{})
	answered := e.create("erin", "e1", "carol", obj{})
	e.ok("carol", "c1", call.CmdAnswer, obj{"callId": answered})
	e.clock.advance(30 * time.Second)
	restart := e.restart
	restart()
	if v := e.view(acme, "alice", ringing); v.Status != call.StatusDialing {
		t.Fatalf("within its time: %s", v.Status)
	}
	if v := e.view(acme, "carol", answered); v.Status != call.StatusConnecting || v.Devices["carol"] != "c1" {
		t.Fatalf("answered: %+v", v)
	}
	e.fails(call.CodeAllUsersBusy, "frank", "f1", call.CmdCreate, obj{"users": []string{"bob"}})
	e.clock.advance(31 * time.Second)
	restart()
	if v := e.status(ringing, call.StatusEnded); *v.EndReason != call.ReasonTimeout {
		t.Fatalf("past its deadline: %s", *v.EndReason)
	}
	// Exactly one call.ended, though two activations saw the call.
	n := 0
	for _, ev := range e.k.Events() {
		if ev.Type == call.EvEnded {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d call.ended events", n)
	}
}

// TestStats: call.stats counts over the log, for the kernel alone.
func TestStats(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour})
	a := e.create("alice", "a1", "bob", obj{})
	e.create("erin", "e1", "carol", obj{})
	e.ok("bob", "b1", call.CmdEnd, obj{"callId": a})
	ans, err := e.k.Query(context.Background(), plugins.Query{Name: call.QueryStats, Actor: "kernel"})
	if err != nil {
		t.Fatal(err)
	}
	st := decode[call.Stats](t, ans)
	if st.Created != 2 || st.Ended["declined"] != 1 || st.Active["dialing"] != 1 || st.Active["connected"] != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := e.k.Query(context.Background(), plugins.Query{Name: call.QueryStats, Company: acme, Actor: "alice"}); codeOf(err) != call.CodePermissionDenied {
		t.Fatalf("a user asked for stats: %v", err)
	}
}

// TestList: call.list answers the user's call in progress.
func TestList(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour})
	id := e.create("alice", "a1", "bob", obj{})
	for who, n := range map[string]int{"alice": 1, "bob": 1, "carol": 0} {
		ans, err := e.k.Query(context.Background(), plugins.Query{Name: call.QueryList, Company: acme, Actor: who})
		if err != nil {
			t.Fatal(err)
		}
		l := decode[call.ListAnswer](t, ans)
		if len(l.Calls) != n || (n == 1 && l.Calls[0].CallID != id) {
			t.Fatalf("%s: %+v", who, l)
		}
	}
	if _, err := e.k.Query(context.Background(), plugins.Query{Name: call.QueryGet, Company: acme, Actor: "carol", Payload: mustJSON(obj{"callId": id})}); codeOf(err) != call.CodeCallNotFound {
		t.Fatalf("an outsider's call.get: %v", err)
	}
	if _, err := e.k.Query(context.Background(), plugins.Query{Name: call.QueryGet, Company: other, Actor: "apikey:other", Payload: mustJSON(obj{"callId": id})}); codeOf(err) != call.CodeCallNotFound {
		t.Fatalf("another company's call.get: %v", err)
	}
}

// A participant deactivated or deleted while in a call is taken out of
// it: the call ends (user_removed, naming them) and its media closes, so
// an account that no longer belongs to the company reaches no call.
func TestRemovedUserLeavesTheirCall(t *testing.T) {
	for _, typ := range []string{"user.deleted", "user.deactivated"} {
		t.Run(typ, func(t *testing.T) {
			e := newEnv(t, call.Config{ConnectTimeout: time.Hour, MediaGrace: time.Hour})
			id := e.answeredWithMedia()
			e.connect(id, map[string]string{"alice": "a1", "bob": "b1"})
			e.user(typ, acme, obj{"user_id": "bob"})
			v := e.status(id, call.StatusEnded)
			if *v.EndReason != call.ReasonUserRemoved {
				t.Fatalf("ended %s, want %s", *v.EndReason, call.ReasonUserRemoved)
			}
			eventually(t, func() bool { return e.media.open(id) == 0 }, "the ended call's media closed")
		})
	}
}
