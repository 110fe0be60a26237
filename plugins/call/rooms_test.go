package call_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/call"
)

const api = "apikey:" + acme

// room creates a call link's room through the REST API's command and
// returns its id.
func (e *env) room(body obj) string {
	e.t.Helper()
	evs := e.ok(api, "", call.CmdRoomCreate, body)
	if len(evs) != 1 || evs[0].Type != call.EvRoomCreated || len(evs[0].Audience) != 0 {
		e.t.Fatalf("room create decided %+v", evs)
	}
	return decode[call.RoomCreated](e.t, evs[0].Payload).RoomID
}

func (e *env) roomView(id string) call.RoomView {
	e.t.Helper()
	ans, err := e.k.Query(context.Background(), plugins.Query{Name: call.QueryRoom, Company: acme, Actor: api, Payload: mustJSON(obj{"room_id": id})})
	if err != nil {
		e.t.Fatalf("room %s: %v", id, err)
	}
	return decode[call.RoomView](e.t, ans)
}

func pair(a, b string) obj {
	return obj{"participants": []obj{{"user_id": a, "is_admin": true}, {"user_id": b, "tools": obj{"chat": true}}}}
}

// TestRoomCreate: POST /v2/rooms' command: defaults, validation, the plus
// rule, and only the company's REST API may use it.
func TestRoomCreate(t *testing.T) {
	e := newEnv(t, call.Config{})
	id := e.room(obj{
		"participants": []obj{{"user_id": "alice", "is_admin": true}, {"user_id": "bob", "tools": obj{}}, {"user_id": "carol", "tools": obj{"whiteboard": obj{"wb_pen": true}, "chat": false}}},
		"recording":    "manual", "duration": 60, "call_type": "audio_only", "live": true,
	})
	v := e.roomView(id)
	if v.RoomID != id || v.Recording != "manual" || v.Duration != 60 || v.CallType != "audio_only" || !v.Live || !v.Link || v.Disabled || v.CreatedAt == "" || len(v.Participants) != 3 {
		t.Fatalf("room %+v", v)
	}
	var all map[string]bool
	json.Unmarshal(v.Participants[0].Tools, &all)
	if len(all) != len(call.Tools) || !all["chat"] || !v.Participants[0].IsAdmin || string(v.Participants[1].Tools) != "{}" {
		t.Fatalf("tools %s %s", v.Participants[0].Tools, v.Participants[1].Tools)
	}
	d := e.roomView(e.room(pair("alice", "bob")))
	if d.Recording != "none" || d.CallType != "audio_video" || d.Duration != 0 || d.Live {
		t.Fatalf("defaults %+v", d)
	}
	ans, err := e.k.Query(context.Background(), plugins.Query{Name: call.QueryRooms, Company: acme, Actor: api})
	if err != nil || len(decode[call.RoomsAnswer](t, ans).Rooms) != 2 {
		t.Fatalf("rooms %s %v", ans, err)
	}

	many := make([]obj, 26)
	for i := range many {
		many[i] = obj{"user_id": "alice"}
	}
	for _, c := range []struct {
		name string
		body obj
		want plugins.Code
	}{
		{"one participant", obj{"participants": []obj{{"user_id": "alice"}}}, call.CodeValidation},
		{"26 participants", obj{"participants": many}, call.CodeValidation},
		{"twice the same", obj{"participants": []obj{{"user_id": "alice"}, {"user_id": "alice"}}}, call.CodeValidation},
		{"an unknown user", pair("alice", "zed"), call.CodeValidation},
		{"a deactivated user", pair("alice", "dave"), call.CodeValidation},
		{"an unknown tool", obj{"participants": []obj{{"user_id": "alice", "tools": obj{"teleport": true}}, {"user_id": "bob"}}}, call.CodeValidation},
		{"a tool not boolean", obj{"participants": []obj{{"user_id": "alice", "tools": obj{"chat": "yes"}}, {"user_id": "bob"}}}, call.CodeValidation},
		{"an unknown whiteboard tool", obj{"participants": []obj{{"user_id": "alice", "tools": obj{"whiteboard": obj{"wb_laser": true}}}, {"user_id": "bob"}}}, call.CodeValidation},
		{"a short duration", withKV(pair("alice", "bob"), "duration", 59), call.CodeValidation},
		{"an unknown recording", withKV(pair("alice", "bob"), "recording", "always"), call.CodeValidation},
		{"an unknown call type", withKV(pair("alice", "bob"), "call_type", "video"), call.CodeValidation},
		{"no plus user", pair("bob", "carol"), call.CodeNoPlusUser},
	} {
		t.Run(c.name, func(t *testing.T) { e.fails(c.want, api, "", call.CmdRoomCreate, c.body) })
	}
	e.fails(call.CodePermissionDenied, "alice", "a1", call.CmdRoomCreate, pair("alice", "bob"))
	e.fails(call.CodePermissionDenied, "alice", "a1", call.CmdRoomDelete, obj{"room_id": id})
	if _, err := e.k.Query(context.Background(), plugins.Query{Name: call.QueryRooms, Company: acme, Actor: "alice"}); codeOf(err) != call.CodePermissionDenied {
		t.Fatalf("a user listed rooms: %v", err)
	}
}

func withKV(o obj, k string, v any) obj {
	o[k] = v
	return o
}

// TestRoomJoin: the first participant to open their link starts the
// room's call (without live it rings nobody and does not time out); the
// other, opening theirs, answers it; opening a link again moves the
// user's media to the new device.
func TestRoomJoin(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: 100 * time.Millisecond, ConnectTimeout: time.Hour})
	room := e.room(pair("alice", "bob"))
	evs := e.ok("bob", "lb1", call.CmdRoomJoin, obj{"roomId": room})
	c := decode[call.CallCreated](t, evs[0].Payload)
	if evs[0].Type != call.EvCreated || c.RoomID != room || !c.Link || c.Caller != "bob" || c.Callee != "alice" || c.CallerDevice != "lb1" || c.DialDeadline != "" || c.Options.Live || !slices.Equal(evs[0].Audience, []string{"bob"}) || !slices.Equal(c.Admins, []string{"alice"}) {
		t.Fatalf("join created %+v to %v", c, evs[0].Audience)
	}
	if v := e.roomView(room); v.CallID != c.CallID || v.CallStatus != call.StatusDialing {
		t.Fatalf("room %+v", v)
	}
	// The call link's tools are the viewer's.
	if v := e.view(acme, "bob", c.CallID); string(v.Tools) != `{"chat":true}` || !v.Link || v.IsAdmin {
		t.Fatalf("bob's view %+v", v)
	}
	time.Sleep(200 * time.Millisecond) // no dial timeout
	// Alice never rang: she cannot decline, she joins.
	e.fails(call.CodeDialDecline, "alice", "a1", call.CmdEnd, obj{"callId": c.CallID})
	evs = e.ok("alice", "la1", call.CmdRoomJoin, obj{"roomId": room})
	if a := decode[call.CallAnswered](t, evs[0].Payload); evs[0].Type != call.EvAnswered || a.Device != "la1" || evs[0].Stream != call.CallStream(acme, c.CallID) {
		t.Fatalf("second join %+v", evs[0])
	}
	evs = e.ok("bob", "lb2", call.CmdRoomJoin, obj{"roomId": room})
	if r := decode[call.CallRejoined](t, evs[0].Payload); evs[0].Type != call.EvRejoined || r.Device != "lb2" || r.UserID != "bob" {
		t.Fatalf("rejoin %+v", evs[0])
	}
	if v := e.view(acme, "bob", c.CallID); v.Devices["bob"] != "lb2" || v.Devices["alice"] != "la1" {
		t.Fatalf("devices %v", v.Devices)
	}
	e.fails(call.CodeUserNotInDialing, "bob", "lb1", call.CmdEnd, obj{"callId": c.CallID})
	e.ok("bob", "lb2", call.CmdEnd, obj{"callId": c.CallID})
	if v := e.roomView(room); v.CallID != "" {
		t.Fatalf("the room keeps its ended call: %+v", v)
	}
	// The room can be used again: a new call.
	evs = e.ok("alice", "la2", call.CmdRoomJoin, obj{"roomId": room})
	if n := decode[call.CallCreated](t, evs[0].Payload); n.CallID == c.CallID || n.Caller != "alice" {
		t.Fatalf("a new call %+v", n)
	}
}

// TestRoomRejoinClosesOldMedia: a user opening their link again, over and
// over, has one peer connection in the call: the new device's offer
// closes the old device's, which would otherwise go on forwarding beside
// it until the call ends.
func TestRoomRejoinClosesOldMedia(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour, ConnectTimeout: time.Hour})
	room, id := e.linkCallWithMedia()
	for i := 1; i <= 5; i++ {
		d := fmt.Sprintf("lb%d", i)
		e.ok("bob", d, call.CmdRoomJoin, obj{"roomId": room})
		e.ok("bob", d, call.CmdMediaOffer, obj{"callId": id, "sdp": "o"})
		if n := e.media.open(id); n != 2 {
			t.Fatalf("after bob's rejoin %d: %d peer connections in the call, want 2 (bob's %s and alice's)", i, n, d)
		}
	}
	if !e.media.left(id, "bob", "lb4") {
		t.Errorf("bob's lb4 was not closed when lb5 offered:\n%v", e.media.log())
	}
	// A new device whose offer fails leaves the old one's media as it was.
	e.media.failOn = "garbage"
	e.ok("bob", "lb6", call.CmdRoomJoin, obj{"roomId": room})
	e.fails(call.CodeValidation, "bob", "lb6", call.CmdMediaOffer, obj{"callId": id, "sdp": "garbage"})
	if e.media.left(id, "bob", "lb5") || e.media.open(id) != 2 {
		t.Errorf("a failed offer closed bob's lb5 (%d peer connections open):\n%v", e.media.open(id), e.media.log())
	}
}

// TestRoomRejoinAcrossAnAbort: a user whose media moved to a new device
// around a kill of the plugin keeps one peer connection: the activation
// that takes over the kept media plane closes the old device's when the
// new one has media, and otherwise when the new one's offer succeeds.
func TestRoomRejoinAcrossAnAbort(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour, ConnectTimeout: time.Hour})
	room, id := e.linkCallWithMedia()
	// Rejoined on lb1, killed before lb1 offers: lb0 keeps bob's media
	// until lb1's offer succeeds, and a failed one changes nothing.
	e.ok("bob", "lb1", call.CmdRoomJoin, obj{"roomId": room})
	e.abortRestart()
	if n := e.media.open(id); n != 2 {
		t.Fatalf("after the abort: %d peer connections in the call, want 2 (alice's, bob's lb0)", n)
	}
	e.media.failOn = "garbage"
	e.fails(call.CodeValidation, "bob", "lb1", call.CmdMediaOffer, obj{"callId": id, "sdp": "garbage"})
	e.ok("bob", "lb1", call.CmdMediaOffer, obj{"callId": id, "sdp": "o"})
	if !e.media.left(id, "bob", "lb0") || e.media.open(id) != 2 {
		t.Fatalf("after lb1's offer: %d peer connections; lb0 closed: %v", e.media.open(id), e.media.left(id, "bob", "lb0"))
	}
	// Rejoined on lb2, which offered, killed before lb1 was closed (as if
	// the kill came between the two): the next activation closes lb1.
	e.ok("bob", "lb2", call.CmdRoomJoin, obj{"roomId": room})
	if _, err := e.media.Offer(context.Background(), id, "bob", "lb2", "o", true); err != nil {
		t.Fatal(err)
	}
	e.abortRestart()
	if !e.media.left(id, "bob", "lb1") || e.media.open(id) != 2 {
		t.Fatalf("after the second abort: %d peer connections, want 2 (alice's, bob's lb2)", e.media.open(id))
	}
}

// TestRoomCallWaitingLeavesCalleeFree: the call of a room that rang
// nobody (not live) does not make its other participant busy: they can be
// called and call, and opening the link while in another call is refused
// without taking them out of it.
func TestRoomCallWaitingLeavesCalleeFree(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour, ConnectTimeout: time.Hour})
	room := e.room(withKV(pair("erin", "bob"), "live", false))
	evs := e.ok("erin", "e0", call.CmdRoomJoin, obj{"roomId": room})
	y := decode[call.CallCreated](t, evs[0].Payload).CallID
	e.restart()                                // the state rebuilt from the log says the same
	x := e.create("alice", "a1", "bob", obj{}) // bob can be called
	e.ok("bob", "b1", call.CmdAnswer, obj{"callId": x})
	e.fails(call.CodeCurrentUserBusy, "bob", "lb1", call.CmdRoomJoin, obj{"roomId": room}) // in x on b1
	e.fails(call.CodeDialAnswer, "bob", "b2", call.CmdAnswer, obj{"callId": y})            // nor answer it: it rang nobody
	e.ok("erin", "e0", call.CmdEnd, obj{"callId": y})
	// Bob is still in x: nobody can call him, and he cannot call.
	e.fails(call.CodeAllUsersBusy, "erin", "e1", call.CmdCreate, obj{"users": []string{"bob"}})
	e.fails(call.CodeAnotherCallInProgress, "bob", "b1", call.CmdCreate, obj{"users": []string{"carol"}})
	if v := e.view(acme, "bob", x); v.Status != call.StatusConnecting && v.Status != call.StatusConnected {
		t.Fatalf("bob's call x is %s", v.Status)
	}
	e.ok("bob", "b1", call.CmdEnd, obj{"callId": x})
	// Free again, bob opens the link of a new waiting call and answers it.
	evs = e.ok("erin", "e0", call.CmdRoomJoin, obj{"roomId": room})
	z := decode[call.CallCreated](t, evs[0].Payload).CallID
	evs = e.ok("bob", "lb2", call.CmdRoomJoin, obj{"roomId": room})
	if evs[0].Type != call.EvAnswered {
		t.Fatalf("bob's join: %s", evs[0].Type)
	}
	e.restart()
	e.fails(call.CodeAllUsersBusy, "alice", "a1", call.CmdCreate, obj{"users": []string{"bob"}})
	e.ok("bob", "lb2", call.CmdEnd, obj{"callId": z})
}

// TestRoomJoinLive: a live room rings the other participant, who may
// answer from any device, and times out like a call.
func TestRoomJoinLive(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: 150 * time.Millisecond})
	room := e.room(withKV(pair("alice", "bob"), "live", true))
	evs := e.ok("alice", "la1", call.CmdRoomJoin, obj{"roomId": room})
	c := decode[call.CallCreated](t, evs[0].Payload)
	if !slices.Equal(evs[0].Audience, []string{"alice", "bob"}) || c.DialDeadline == "" || !c.Options.Live {
		t.Fatalf("live join %+v to %v", c, evs[0].Audience)
	}
	if v := e.status(c.CallID, call.StatusEnded); *v.EndReason != call.ReasonTimeout {
		t.Fatalf("ended %s", *v.EndReason)
	}
	// All users busy: the other participant is in another call.
	e.create("erin", "e1", "bob", obj{})
	e.fails(call.CodeAllUsersBusy, "alice", "la2", call.CmdRoomJoin, obj{"roomId": room})
}

// TestRoomJoinErrors: every refusal of a join.
func TestRoomJoinErrors(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour})
	room := e.room(pair("alice", "bob"))
	three := e.room(obj{"participants": []obj{{"user_id": "alice"}, {"user_id": "bob"}, {"user_id": "carol"}}})
	basic := e.room(pair("alice", "bob"))
	disabled := e.room(pair("alice", "bob"))
	deleted := e.room(pair("alice", "bob"))
	e.ok(api, "", call.CmdRoomDisable, obj{"room_id": disabled})
	e.ok(api, "", call.CmdRoomDelete, obj{"room_id": deleted})
	e.user("user.updated", acme, obj{"user_id": "alice", "role": "basic", "can_video": true, "active": true})
	e.fails(call.CodeNoPlusUser, "bob", "lb1", call.CmdRoomJoin, obj{"roomId": basic})
	e.user("user.updated", acme, obj{"user_id": "alice", "role": "plus", "can_video": true, "active": true})
	for _, c := range []struct {
		name, as, device, room string
		want                   plugins.Code
	}{
		{"no room id", "alice", "la1", "", call.CodeValidation},
		{"no device", "alice", "", room, call.CodeValidation},
		{"an unknown room", "alice", "la1", "room_nope", call.CodeInvalidToken},
		{"a disabled room", "alice", "la1", disabled, call.CodeInvalidToken},
		{"a deleted room", "alice", "la1", deleted, call.CodeInvalidToken},
		{"not a participant", "carol", "lc1", room, call.CodeUserNotAssociatedLink},
		{"three participants", "alice", "la1", three, call.CodeJoinURLMTM},
		{"a deactivated user", "dave", "ld1", room, call.CodeCurrentUserNotAvail},
	} {
		t.Run(c.name, func(t *testing.T) { e.fails(c.want, c.as, c.device, call.CmdRoomJoin, obj{"roomId": c.room}) })
	}
	// Busy elsewhere.
	e.create("alice", "a1", "carol", obj{})
	e.fails(call.CodeCurrentUserBusy, "alice", "la1", call.CmdRoomJoin, obj{"roomId": room})
	e.create("erin", "e1", "bob", obj{})
	e.fails(call.CodeAnotherCallInProgress, "bob", "lb1", call.CmdRoomJoin, obj{"roomId": room})
	// Without a media plane.
	n := newEnv(t, call.Config{UDPPort: -1})
	r := n.room(pair("alice", "bob"))
	n.fails(call.CodeRoomCreate, "alice", "la1", call.CmdRoomJoin, obj{"roomId": r})
}

// TestRoomClose: disabling or deleting a room ends its call with
// room_closed; disabling twice decides nothing; a missing room is
// room_not_found.
func TestRoomClose(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour})
	for _, cmd := range []string{call.CmdRoomDisable, call.CmdRoomDelete} {
		room := e.room(pair("alice", "bob"))
		id := decode[call.CallCreated](t, e.ok("alice", "la1", call.CmdRoomJoin, obj{"roomId": room})[0].Payload).CallID
		evs := e.ok(api, "", cmd, obj{"room_id": room})
		if len(evs) != 2 || evs[1].Type != call.EvEnded || evs[1].Stream != call.CallStream(acme, id) || !slices.Equal(evs[1].Audience, []string{"alice", "bob"}) {
			t.Fatalf("%s decided %+v", cmd, evs)
		}
		if v := e.view(acme, "alice", id); *v.EndReason != call.ReasonRoomClosed {
			t.Fatalf("ended %s", *v.EndReason)
		}
	}
	room := e.room(pair("alice", "bob"))
	e.ok(api, "", call.CmdRoomDisable, obj{"room_id": room})
	if evs := e.ok(api, "", call.CmdRoomDisable, obj{"room_id": room}); len(evs) != 0 {
		t.Fatalf("disabled twice: %+v", evs)
	}
	if v := e.roomView(room); !v.Disabled {
		t.Fatalf("room %+v", v)
	}
	e.ok(api, "", call.CmdRoomDelete, obj{"room_id": room})
	e.fails(call.CodeRoomNotFound, api, "", call.CmdRoomDelete, obj{"room_id": room})
	e.fails(call.CodeRoomNotFound, api, "", call.CmdRoomDisable, obj{"room_id": "room_nope"})
	if _, err := e.k.Query(context.Background(), plugins.Query{Name: call.QueryRoom, Company: acme, Actor: api, Payload: mustJSON(obj{"room_id": room})}); codeOf(err) != call.CodeRoomNotFound {
		t.Fatalf("a deleted room: %v", err)
	}
	// The room of a createCall call answers too, as the company sees it.
	id := e.create("alice", "a1", "bob", obj{"callType": "audio_only"})
	v := e.roomView(e.view(acme, "alice", id).RoomID)
	if v.Link || v.CallID != id || v.CallType != "audio_only" || len(v.Participants) != 2 {
		t.Fatalf("createCall's room %+v", v)
	}
}

// TestRoomDuration: a room's duration counts time with both connected,
// over its calls; 30 s before the end both are warned, at the end the call
// ends with duration_expired.
func TestRoomDuration(t *testing.T) {
	e := newEnv(t, call.Config{ConnectTimeout: time.Hour, MediaGrace: time.Hour})
	room := e.room(withKV(pair("alice", "bob"), "duration", 60))
	id := decode[call.CallCreated](t, e.ok("alice", "la1", call.CmdRoomJoin, obj{"roomId": room})[0].Payload).CallID
	e.ok("bob", "lb1", call.CmdRoomJoin, obj{"roomId": room})
	e.connect(id, map[string]string{"alice": "la1", "bob": "lb1"})
	e.clock.advance(31 * time.Second)
	e.p.Kick(id)
	eventually(t, func() bool { return len(e.published(call.EvRoomExpiring)) == 1 }, "the warning")
	w := decode[call.ExpiringPayload](t, e.published(call.EvRoomExpiring)[0].Payload)
	if w.CallID != id || w.RoomID != room || w.Remaining < 28 || w.Remaining > 30 {
		t.Fatalf("warning %+v", w)
	}
	e.clock.advance(30 * time.Second)
	e.p.Kick(id)
	if v := e.status(id, call.StatusEnded); *v.EndReason != call.ReasonDurationExpired {
		t.Fatalf("ended %s", *v.EndReason)
	}
	if n := len(e.published(call.EvRoomExpiring)); n != 1 {
		t.Fatalf("%d warnings", n)
	}
}

// A room whose duration is used up cannot be opened again: a new call
// would ring the other participant only to end with duration_expired as
// soon as both connected.
func TestExhaustedRoomRefusesJoins(t *testing.T) {
	e := newEnv(t, call.Config{ConnectTimeout: time.Hour, MediaGrace: time.Hour})
	room := e.room(withKV(withKV(pair("alice", "bob"), "duration", 60), "live", true))
	id := decode[call.CallCreated](t, e.ok("alice", "la1", call.CmdRoomJoin, obj{"roomId": room})[0].Payload).CallID
	e.ok("bob", "lb1", call.CmdRoomJoin, obj{"roomId": room})
	e.connect(id, map[string]string{"alice": "la1", "bob": "lb1"})
	e.clock.advance(61 * time.Second)
	e.p.Kick(id)
	if v := e.status(id, call.StatusEnded); *v.EndReason != call.ReasonDurationExpired {
		t.Fatalf("ended %s, want %s", *v.EndReason, call.ReasonDurationExpired)
	}
	_, err := e.run(acme, "alice", "la2", call.CmdRoomJoin, obj{"roomId": room})
	if c := plugins.AsCoded(err); c == nil || c.Code != call.CodeInvalidToken {
		t.Fatalf("joining a room whose duration is used up: %v, want %s", err, call.CodeInvalidToken)
	}

	// Nearly used up: a call hung up at 45 s of 60 leaves 15 s, less than
	// the 30 s warning a call gets; one at 20 s leaves enough.
	for _, c := range []struct {
		after time.Duration
		ok    bool
	}{{20 * time.Second, true}, {45 * time.Second, false}} {
		room := e.room(withKV(pair("alice", "bob"), "duration", 60))
		id := decode[call.CallCreated](t, e.ok("alice", "la1", call.CmdRoomJoin, obj{"roomId": room})[0].Payload).CallID
		e.ok("bob", "lb1", call.CmdRoomJoin, obj{"roomId": room})
		e.connect(id, map[string]string{"alice": "la1", "bob": "lb1"})
		e.clock.advance(c.after)
		e.ok("alice", "la1", call.CmdEnd, obj{"callId": id})
		e.status(id, call.StatusEnded)
		evs, err := e.run(acme, "alice", "la3", call.CmdRoomJoin, obj{"roomId": room})
		if coded := plugins.AsCoded(err); c.ok != (err == nil) || (!c.ok && (coded == nil || coded.Code != call.CodeInvalidToken)) {
			t.Fatalf("joining again after %v of 60 s: %v, want ok %v", c.after, err, c.ok)
		}
		if err == nil { // the room's next call: end it, alice is free again
			again := decode[call.CallCreated](t, evs[0].Payload).CallID
			e.ok("alice", "la3", call.CmdEnd, obj{"callId": again})
			e.status(again, call.StatusEnded)
		}
	}
}

// duration is bounded: a value the timers' arithmetic overflowed (584
// years ended the call within a second of connecting) is refused.
func TestRoomDurationIsBounded(t *testing.T) {
	e := newEnv(t, call.Config{ConnectTimeout: time.Hour, MediaGrace: time.Hour})
	e.fails(call.CodeValidation, api, "", call.CmdRoomCreate, withKV(pair("alice", "bob"), "duration", 18446744074)) // 584 years
	e.fails(call.CodeValidation, api, "", call.CmdRoomCreate, withKV(pair("alice", "bob"), "duration", call.MaxDuration+1))
	// A room logged before the limit, with the 584 years, is read as a
	// year: its call does not end within a second of connecting.
	r := call.RoomCreated{RoomID: "room_old", Participants: []call.Participant{{UserID: "alice"}, {UserID: "bob"}},
		Recording: call.RecordingNone, Duration: 18446744074, CallType: call.TypeAudioVideo}
	if _, err := e.k.Inject(context.Background(), plugins.NewEvent{Type: call.EvRoomCreated, Stream: call.RoomsStream(acme), Company: acme, Payload: mustJSON(r)}); err != nil {
		t.Fatal(err)
	}
	id := decode[call.CallCreated](t, e.ok("alice", "la1", call.CmdRoomJoin, obj{"roomId": "room_old"})[0].Payload).CallID
	e.ok("bob", "lb1", call.CmdRoomJoin, obj{"roomId": "room_old"})
	e.connect(id, map[string]string{"alice": "la1", "bob": "lb1"})
	e.clock.advance(time.Second)
	e.p.Kick(id)
	time.Sleep(200 * time.Millisecond)
	if v := e.view(acme, "alice", id); v.Status == call.StatusEnded {
		t.Fatalf("a room logged with 584 years ended a second after its call connected: %s", *v.EndReason)
	}
}

// A join decides on the room's call (answer it, or move the user's media)
// but is a command on the rooms' stream: its event on the call's stream
// carries the call stream's version it was decided on, so a join that an
// end or an answer overtook appends nothing and is decided again (the
// kernel's rule for Expect on another stream).
func TestJoinHoldsToTheCallItDecidedOn(t *testing.T) {
	e := newEnv(t, call.Config{ConnectTimeout: time.Hour, MediaGrace: time.Hour})
	room := e.room(withKV(pair("alice", "bob"), "live", true))
	id := decode[call.CallCreated](t, e.ok("alice", "la1", call.CmdRoomJoin, obj{"roomId": room})[0].Payload).CallID
	// call.created is on the rooms' stream: the call's own is still empty.
	const at = uint64(0)
	for _, ev := range e.k.Events() {
		if ev.Stream == call.CallStream(acme, id) {
			t.Fatalf("an event on the new call's stream: %s", ev.Type)
		}
	}
	p := mustJSON(obj{"roomId": room})
	decided, err := e.p.HandleCommand(context.Background(), plugins.Command{Name: call.CmdRoomJoin, Stream: call.RoomsStream(acme), Company: acme, Actor: "bob", Device: "lb1", Payload: p})
	if err != nil {
		t.Fatal(err)
	}
	if len(decided) != 1 || decided[0].Type != call.EvAnswered || decided[0].Expect == nil || *decided[0].Expect != at {
		t.Fatalf("bob's join decided %+v, want call.answered expecting the call's stream at %d", decided, at)
	}
	// Closing the room ends its call the same way: an end() at the same
	// instant wins, and the close is decided again (ending nothing).
	decided, err = e.p.HandleCommand(context.Background(), plugins.Command{Name: call.CmdRoomDisable, Stream: call.RoomsStream(acme), Company: acme, Actor: api, Payload: mustJSON(obj{"room_id": room})})
	if err != nil {
		t.Fatal(err)
	}
	var ended *plugins.NewEvent
	for i := range decided {
		if decided[i].Type == call.EvEnded {
			ended = &decided[i]
		}
	}
	if ended == nil || ended.Expect == nil || *ended.Expect != at {
		t.Fatalf("closing the room decided %+v, want call.ended expecting the call's stream at %d", decided, at)
	}
}

// A call link's call waiting for its other participant (who is in no call
// yet) ends when that participant is deleted: user_removed, naming them.
func TestRemovedUserEndsTheLinkCallWaitingForThem(t *testing.T) {
	e := newEnv(t, call.Config{ConnectTimeout: time.Hour, MediaGrace: time.Hour})
	room := e.room(pair("alice", "bob")) // not live: bob's devices do not ring
	id := decode[call.CallCreated](t, e.ok("alice", "la1", call.CmdRoomJoin, obj{"roomId": room})[0].Payload).CallID
	e.user("user.deleted", acme, obj{"user_id": "bob"})
	if v := e.status(id, call.StatusEnded); *v.EndReason != call.ReasonUserRemoved {
		t.Fatalf("ended %s, want %s", *v.EndReason, call.ReasonUserRemoved)
	}
	if ended := decode[call.CallEnded](t, e.last(call.EvEnded).Payload); ended.UserID != "bob" {
		t.Fatalf("call.ended names %q, want bob", ended.UserID)
	}
}
