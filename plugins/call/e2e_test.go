package call_test

// End-to-end: the call plugin under a real kernel, driven by real
// WebSocket clients through the sdkapi session (connect and joinCallURL)
// and by the REST API over real HTTP. Every case runs twice, with the
// plugin in process and out of process (this test binary re-executed as
// the plugin, as the kernel binary runs `kernel plugin serve parley.call`).
// The media plane is autoMedia: it answers every offer and reports the
// device's media connected, so calls reach "connected" without real
// peers (the SFU's own tests drive real pion peers).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/kernel/kerneltest"
	"github.com/parleyhq/parley/kernel/pluginhost"
	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/call"
	"github.com/parleyhq/parley/plugins/chat"
	"github.com/parleyhq/parley/sdkapi"
	"github.com/parleyhq/parley/sdkapi/rest"
	"github.com/parleyhq/parley/sdkapi/sdkapitest"
	"github.com/parleyhq/parley/sdkapi/session"
	"github.com/parleyhq/parley/sdkapi/token"
)

// pluginEnv makes the test binary serve the call plugin instead of
// running tests: the out-of-process transport starts it that way.
const pluginEnv = "PARLEY_TEST_CALL_PLUGIN" // not PARLEY_CALL_: ConfigFromEnv refuses unknown settings

func TestMain(m *testing.M) {
	if os.Getenv(pluginEnv) == "1" {
		cfg, err := call.ConfigFromEnv(os.Environ())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		plugins.Serve(call.NewWith(cfg, &autoMedia{}))
		return
	}
	os.Exit(m.Run())
}

// autoMedia answers every offer and, a moment later, reports the device's
// media connected.
type autoMedia struct {
	mu sync.Mutex
	ev call.MediaEvents
}

func (m *autoMedia) Offer(_ context.Context, callID, user, device, sdp string, video bool) (string, error) {
	m.mu.Lock()
	state := m.ev.State
	m.mu.Unlock()
	go state(callID, user, device, "connected") // as the ICE agent would, after the answer
	return fmt.Sprintf("answer to %s (video %v)", sdp, video), nil
}
func (*autoMedia) Answer(context.Context, string, string, string, string) error       { return nil }
func (*autoMedia) AddCandidate(context.Context, string, string, string, string) error { return nil }
func (*autoMedia) Leave(context.Context, string, string, string) error                { return nil }
func (*autoMedia) EndCall(context.Context, string) error                              { return nil }
func (*autoMedia) Devices(string) []call.MediaDevice                                  { return nil }
func (m *autoMedia) Notify(ev call.MediaEvents) {
	m.mu.Lock()
	m.ev = ev
	m.mu.Unlock()
}

var transports = []pluginhost.Transport{pluginhost.InProcess, pluginhost.OutOfProcess}

// TestEndToEnd runs every case on both transports.
func TestEndToEnd(t *testing.T) {
	cases := []struct {
		name string
		run  func(*testing.T, pluginhost.Transport)
	}{
		{"a call on both sides", e2eCall},
		{"two users calling each other at once", e2eRace},
		{"dial timeout", e2eTimeout},
		{"restart", e2eRestart},
		{"call links", e2eLinks},
		{"call link errors", e2eLinkErrors},
		{"a call-link session reaches nothing else", e2eLinkScope},
		{"rooms over REST", e2eRooms},
	}
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, tr) })
			}
		})
	}
}

func e2eCall(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	a1, a2, b1, b2, c1 := w.connect("alice"), w.connect("alice"), w.connect("bob"), w.connect("bob"), w.connect("carol")

	// createCall: the answer carries call.created; every device of both
	// users hears it (call:incoming on bob's), carol nothing.
	res := a1.Cmd(call.CmdCreate, obj{"users": []string{"bob"}, "options": obj{"callType": "audio_video", "recordingType": "manual", "isAdmin": true}})
	if len(res.Events) != 1 || res.Events[0].Event != call.EvCreated || res.Seq != res.Events[0].Seq {
		t.Fatalf("createCall answered %+v", res)
	}
	created := decode[call.CallCreated](t, res.Events[0].Data)
	if created.Caller != "alice" || created.Callee != "bob" || created.CallerDevice != a1.ID || created.Options.RecordingType != "manual" || !created.Options.Recording {
		t.Fatalf("call.created %+v", created)
	}
	id := created.CallID
	for _, d := range []*device{a2, b1, b2} {
		d.expect(res.Events[0])
	}
	var v call.CallView
	b1.Query(call.QueryGet, obj{"callId": id}, &v)
	if v.Direction != "incoming" || v.Status != "dialing" || v.IsAdmin || v.Options.CallType != "audio_video" {
		t.Fatalf("bob's view %+v", v)
	}
	a2.Query(call.QueryGet, obj{"callId": id}, &v)
	if v.Direction != "outgoing" || !v.IsAdmin {
		t.Fatalf("alice's view %+v", v)
	}
	c1.Fails(call.CodeCallNotFound, call.QueryGet, obj{"callId": id})
	c1.Fails(call.CodeAllUsersBusy, call.CmdCreate, obj{"users": []string{"bob"}})

	// The caller's media may start while it rings: the answer SDP comes
	// back to a1 alone, as an ephemeral push.
	a1.Cmd(call.CmdMediaOffer, obj{"callId": id, "sdp": "offer-a1"})
	sdp := a1.expectType(call.EvMediaSDP)
	if p := decode[call.SDPPayload](t, sdp.Data); sdp.Seq != 0 || p.Type != "answer" || p.SDP != "answer to offer-a1 (video true)" {
		t.Fatalf("a1's answer %+v", sdp)
	}
	b1.Fails(call.CodeInvalidCallStatus, call.CmdMediaOffer, obj{"callId": id, "sdp": "too early"})

	// bob answers on b2: everyone hears call.answered naming b2; b1 (which
	// the SDK shows answered_of_another_device) may not end it.
	ans := b2.Cmd(call.CmdAnswer, obj{"callId": id})
	answered := decode[call.CallAnswered](t, ans.Events[0].Data)
	if answered.Device != b2.ID || answered.Status != "connecting" {
		t.Fatalf("call.answered %+v", answered)
	}
	for _, d := range []*device{a1, a2, b1} {
		d.expect(ans.Events[0])
	}
	b1.Fails(call.CodeUserNotInDialing, call.CmdEnd, obj{"callId": id})
	b1.Fails(call.CodeInvalidCallStatus, call.CmdAnswer, obj{"callId": id})
	b1.Fails(call.CodeInvalidCallStatus, call.CmdMediaOffer, obj{"callId": id, "sdp": "not mine"})

	// b2 negotiates; both media up: call.connected, to every device.
	b2.Cmd(call.CmdMediaOffer, obj{"callId": id, "sdp": "offer-b2"})
	if p := decode[call.SDPPayload](t, b2.expectType(call.EvMediaSDP).Data); p.SDP != "answer to offer-b2 (video true)" {
		t.Fatalf("b2's answer %+v", p)
	}
	b2.Cmd(call.CmdMediaCandidate, obj{"callId": id, "candidate": obj{"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}})
	conn := a1.expectType(call.EvConnected)
	for _, d := range []*device{a2, b1, b2} {
		d.expect(conn)
	}
	a1.Query(call.QueryGet, obj{"callId": id}, &v)
	if v.Status != "connected" {
		t.Fatalf("status %s", v.Status)
	}

	// alice hangs up: hang_up, to every device.
	end := a1.Cmd(call.CmdEnd, obj{"callId": id})
	x := decode[call.CallEnded](t, end.Events[0].Data)
	if x.EndReason != "hang_up" || x.UserID != "alice" || x.Status != "ended" {
		t.Fatalf("call.ended %+v", x)
	}
	for _, d := range []*device{a2, b1, b2} {
		d.expect(end.Events[0])
	}
	b2.Fails(call.CodeInvalidCallStatus, call.CmdEnd, obj{"callId": id})
	// carol heard nothing of it: her next event is her own call.
	mine := c1.Cmd(call.CmdCreate, obj{"users": []string{"alice"}})
	a1.expect(mine.Events[0])
	c1.expectNothing()
}

// e2eRace: alice and bob call each other at the same instant, again and
// again: each round makes exactly one call, and the other caller is told
// another_call_in_progress.
func e2eRace(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	w.restWant("PUT", "/v2/users/bob", `{"role":"plus"}`, 200, nil)
	a, b := w.connect("alice"), w.connect("bob")
	type outcome struct {
		res json.RawMessage
		err *plugins.Error
	}
	for round := range 8 {
		results := make([]outcome, 2)
		var wg sync.WaitGroup
		for i, pair := range [][2]any{{a, "bob"}, {b, "alice"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := pair[0].(*device)
				results[i].res, results[i].err = d.Call(call.CmdCreate, obj{"users": []string{pair[1].(string)}})
			}()
		}
		wg.Wait()
		var made []string
		for i, r := range results {
			switch {
			case r.err == nil:
				var res commandResult
				json.Unmarshal(r.res, &res)
				made = append(made, decode[call.CallCreated](t, res.Events[0].Data).CallID)
			case r.err.Code != call.CodeAnotherCallInProgress:
				t.Fatalf("round %d, caller %d: %v", round, i, r.err)
			}
		}
		if len(made) != 1 {
			t.Fatalf("round %d: %d calls made", round, len(made))
		}
		var l call.ListAnswer
		a.Query(call.QueryList, obj{}, &l)
		if len(l.Calls) != 1 || l.Calls[0].CallID != made[0] {
			t.Fatalf("round %d: alice's calls %+v", round, l)
		}
		a.Cmd(call.CmdEnd, obj{"callId": made[0]})
		a.Drain()
		b.Drain()
	}
}

func e2eTimeout(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, &call.Config{DialTimeout: time.Second})
	a, b := w.connect("alice"), w.connect("bob")
	res := a.Cmd(call.CmdCreate, obj{"users": []string{"bob"}})
	b.expect(res.Events[0])
	for _, d := range []*device{a, b} {
		ev := d.expectType(call.EvEnded)
		if x := decode[call.CallEnded](t, ev.Data); x.EndReason != "timeout" || x.CallID != decode[call.CallCreated](t, res.Events[0].Data).CallID {
			t.Fatalf("%s: %+v", d.Name, x)
		}
	}
}

// e2eRestart: a call survives a restart of the whole kernel; the one that
// was ringing is still ringing and can be answered.
func e2eRestart(t *testing.T, tr pluginhost.Transport) {
	dir := t.TempDir()
	var ts tenants
	var id string
	t.Run("first run", func(t *testing.T) {
		w := start(t, dir, tr, nil)
		ts = w.tenants
		a := w.connect("alice")
		id = decode[call.CallCreated](t, a.Cmd(call.CmdCreate, obj{"users": []string{"bob"}}).Events[0].Data).CallID
	})
	if id == "" {
		t.FailNow()
	}
	w := startWith(t, dir, tr, nil, &ts, nil)
	b := w.connect("bob")
	var l call.ListAnswer
	b.Query(call.QueryList, obj{}, &l)
	if len(l.Calls) != 1 || l.Calls[0].CallID != id || l.Calls[0].Status != "dialing" || l.Calls[0].Direction != "incoming" {
		t.Fatalf("after the restart: %+v", l)
	}
	b.Cmd(call.CmdAnswer, obj{"callId": id})
}

func e2eLinks(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	b1 := w.connect("bob") // bob, connected as usual too
	room := w.room(`{"participants":[{"user_id":"alice","is_admin":true},{"user_id":"bob","tools":{"chat":true}}],"call_type":"audio_only","live":true}`)
	if len(room.UserURLs) != 2 || room.UserURLs[0].User != "alice" || !room.UserURLs[0].IsAdmin || string(room.UserURLs[1].Tools) != `{"chat":true}` {
		t.Fatalf("room %+v", room)
	}
	for _, u := range room.UserURLs {
		if !strings.HasPrefix(u.URL, w.srv.HTTP.URL+"/eu/"+rest.LinkPath+"/") {
			t.Fatalf("link %s", u.URL)
		}
	}

	// alice opens her link: a session restricted to the room's call, which
	// starts ringing bob (live), on his usual device too.
	la, joined := w.link(room.UserURLs[0].URL, nil)
	if joined.RoomID != room.RoomID || joined.CallID == "" || joined.Call.Status != "dialing" || joined.Call.Direction != "outgoing" ||
		!joined.Call.IsAdmin || joined.Call.Options.CallType != "audio_only" || len(joined.Join.Events) != 1 || joined.ExpiresAt != nil {
		t.Fatalf("joinCallURL answered %+v", joined)
	}
	created := b1.expect(joined.Join.Events[0])
	if c := decode[call.CallCreated](t, created.Data); !c.Link || !c.Options.Live || c.Caller != "alice" {
		t.Fatalf("bob heard %+v", c)
	}
	// bob opens his: it answers the call from his link's device.
	lb, joinedB := w.link(room.UserURLs[1].URL, obj{"userId": "bob"})
	if joinedB.CallID != joined.CallID || joinedB.Call.Status != "connecting" || joinedB.Call.Direction != "incoming" {
		t.Fatalf("bob's join %+v", joinedB)
	}
	ans := joinedB.Join.Events[0]
	if a := decode[call.CallAnswered](t, ans.Data); ans.Event != call.EvAnswered || a.Device != lb.ID {
		t.Fatalf("bob's join answered %+v", ans)
	}
	la.expect(ans)
	b1.expect(ans) // his usual device: answered elsewhere
	// Both negotiate through their link sessions: connected.
	la.Cmd(call.CmdMediaOffer, obj{"callId": joined.CallID, "sdp": "o"})
	if p := decode[call.SDPPayload](t, la.expectType(call.EvMediaSDP).Data); p.SDP != "answer to o (video false)" {
		t.Fatalf("audio_only answered %+v", p)
	}
	lb.Cmd(call.CmdMediaOffer, obj{"callId": joined.CallID, "sdp": "o"})
	lb.expectType(call.EvMediaSDP)
	conn := la.expectType(call.EvConnected)
	lb.expect(conn)
	b1.expect(conn)
	var users struct {
		Users []string `json:"users"`
	}
	json.Unmarshal(la.MustCall("getOnlineUsers", obj{}), &users)
	if !slices.Equal(users.Users, []string{"bob"}) {
		t.Fatalf("online users in a link session: %v", users.Users)
	}

	// bob hangs up from his link: both link sessions close with the call.
	end := lb.Cmd(call.CmdEnd, obj{"callId": joined.CallID})
	la.expect(end.Events[0])
	b1.expect(end.Events[0])
	for _, d := range []*device{la, lb} {
		if code, reason := d.Closed(); code != 4005 || reason != "call_ended" {
			t.Fatalf("%s closed with %d %q", d.Name, code, reason)
		}
	}
	// The room can be used again; a disabled one cannot.
	la2, again := w.link(room.UserURLs[0].URL, nil)
	if again.CallID == joined.CallID || again.Call.Status != "dialing" {
		t.Fatalf("a new call %+v", again)
	}
	var r struct{ Room rest.Room }
	w.restWant("PUT", "/v2/rooms/"+room.RoomID+"/disable", "", 200, &r)
	if !r.Room.Disabled || r.Room.CallID != "" {
		t.Fatalf("disabled room %+v", r.Room)
	}
	x := decode[call.CallEnded](t, la2.expectType(call.EvEnded).Data)
	if x.EndReason != "room_closed" {
		t.Fatalf("ended %+v", x)
	}
	if code, _ := la2.Closed(); code != 4005 {
		t.Fatalf("closed with %d", code)
	}
	w.linkFails(room.UserURLs[0].URL, nil, call.CodeInvalidToken)
}

func e2eLinkErrors(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	room := w.room(`{"participants":[{"user_id":"alice"},{"user_id":"bob"}]}`)
	url := room.UserURLs[0].URL
	tok := url[strings.LastIndex(url, "/")+1:]
	base := w.srv.HTTP.URL
	three := w.room(`{"participants":[{"user_id":"alice"},{"user_id":"bob"},{"user_id":"carol"}]}`)
	basic := w.room(`{"participants":[{"user_id":"alice"},{"user_id":"bob"}]}`)
	for _, c := range []struct {
		name   string
		params obj
		want   plugins.Code
	}{
		{"no url", obj{"sdkVersion": "3.0.0"}, session.CodeInvalidAccessLink},
		{"url not a string", obj{"url": 7, "sdkVersion": "3.0.0"}, session.CodeInvalidAccessLink},
		{"not a url", obj{"url": "::nope", "sdkVersion": "3.0.0"}, session.CodeInvalidURL},
		{"not a link", obj{"url": base + "/eu/elsewhere/" + tok, "sdkVersion": "3.0.0"}, session.CodeInvalidURL},
		{"no token", obj{"url": base + "/eu/" + rest.LinkPath + "/", "sdkVersion": "3.0.0"}, session.CodeInvalidURL},
		{"another region", obj{"url": base + "/in/" + rest.LinkPath + "/" + tok, "sdkVersion": "3.0.0"}, session.CodeInvalidAccessLink},
		{"a forged token", obj{"url": url[:len(url)-4] + "AAAA", "sdkVersion": "3.0.0"}, token.CodeLinkInvalid},
		{"an access token", obj{"url": base + "/eu/" + rest.LinkPath + "/" + w.accessToken("alice"), "sdkVersion": "3.0.0"}, token.CodeLinkInvalid},
		{"another user configured", obj{"url": url, "userId": "bob", "sdkVersion": "3.0.0"}, session.CodeUserNotAssociated},
		{"another company configured", obj{"url": url, "appId": w.y.app, "sdkVersion": "3.0.0"}, session.CodeAppIDInvalid},
		{"no sdk version", obj{"url": url}, session.CodeSDKVersionInvalid},
		{"an old sdk", obj{"url": url, "sdkVersion": "1.9.0"}, session.CodeSDKVersionUnsupported},
		{"three participants", obj{"url": three.UserURLs[0].URL, "sdkVersion": "3.0.0"}, call.CodeJoinURLMTM},
	} {
		t.Run(c.name, func(t *testing.T) { w.linkFails("", c.params, c.want) })
	}
	// No plus user any more in the room.
	w.restWant("PUT", "/v2/users/alice", `{"role":"basic"}`, 200, nil)
	w.linkFails(basic.UserURLs[1].URL, nil, call.CodeNoPlusUser)
	w.restWant("PUT", "/v2/users/alice", `{"role":"plus"}`, 200, nil)
	// Busy in a call made with createCall.
	a := w.connect("alice")
	a.Cmd(call.CmdCreate, obj{"users": []string{"carol"}})
	w.linkFails(url, nil, call.CodeCurrentUserBusy)
	// A deactivated user; a deleted room.
	w.restWant("PUT", "/v2/users/bob", `{"active":false}`, 200, nil)
	w.linkFails(room.UserURLs[1].URL, nil, "user_not_found")
	w.restWant("DELETE", "/v2/rooms/"+basic.RoomID, "", 204, nil)
	w.linkFails(basic.UserURLs[0].URL, nil, call.CodeInvalidToken)
}

// e2eLinkScope: a call-link session reaches its call and the chat with
// the room's other participant, and nothing else: no other call, no other
// channel, no other method, and none of their events.
func e2eLinkScope(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	a1, c1 := w.connect("alice"), w.connect("carol")
	// alice has a channel with carol, and carol a call with bob.
	ac := decode[chat.ChannelAdded](t, a1.Cmd(chat.CmdChannelAdd, obj{"userId": "carol"}).Events[0].Data).ChannelID
	c1.Drain()
	other := decode[call.CallCreated](t, w.connect("erin").Cmd(call.CmdCreate, obj{"users": []string{"frank"}}).Events[0].Data).CallID

	room := w.room(`{"participants":[{"user_id":"alice"},{"user_id":"bob"}]}`)
	la, joined := w.link(room.UserURLs[0].URL, nil)
	a1.expectType(call.EvCreated) // her call, on her usual device too
	for _, c := range []struct {
		method string
		params obj
	}{
		{call.CmdCreate, obj{"users": []string{"carol"}}},
		{call.CmdEnd, obj{"callId": other}},
		{call.QueryGet, obj{"callId": other}},
		{call.CmdMediaOffer, obj{"callId": other, "sdp": "o"}},
		{call.QueryList, obj{}},
		{call.CmdRoomJoin, obj{"roomId": room.RoomID}},
		{chat.QueryChannels, obj{}},
		{chat.CmdMessageSend, obj{"channelId": ac, "text": "hi carol"}},
		{chat.QueryMessages, obj{"channelId": ac}},
		{chat.CmdChannelAdd, obj{"userId": "carol"}},
		{chat.CmdChannelRemove, obj{"userId": "bob"}},
		{"updateAccessToken", obj{"accessToken": "x"}},
		{"connect", obj{}},
	} {
		la.Fails(plugins.CodePermissionDenied, c.method, c.params)
	}
	// What it may do: its call, and the chat with bob.
	var v call.CallView
	la.Query(call.QueryGet, obj{"callId": joined.CallID}, &v)
	add := la.Cmd(chat.CmdChannelAdd, obj{"userId": "bob"})
	a1.expect(add.Events[0]) // alice's usual device hears of her new channel
	ab := decode[chat.ChannelAdded](t, add.Events[0].Data).ChannelID
	msg := la.Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": "hello from the link"})
	a1.expect(msg.Events[0])
	var page chat.FetchAnswer
	la.Query(chat.QueryMessages, obj{"channelId": ab}, &page)
	if len(page.Messages) != 1 || page.Messages[0].Text != "hello from the link" {
		t.Fatalf("the link's chat %+v", page)
	}
	// Events of alice's other channel do not reach it: carol writes to
	// alice; the link session's next events are its own call's.
	c1.Cmd(chat.CmdMessageSend, obj{"channelId": ac, "text": "hi alice"})
	a1.expectType(chat.EvMessageSent)
	lb, _ := w.link(room.UserURLs[1].URL, nil)
	end := lb.Cmd(call.CmdEnd, obj{"callId": joined.CallID})
	la.expectType(call.EvAnswered)
	la.expect(end.Events[0])
	la.Closed()
}

func e2eRooms(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	room := w.room(`{"participants":[{"user_id":"alice"},{"user_id":"bob","tools":{}}],"recording":"automatic","duration":120}`)
	if room.Recording != "automatic" || room.Duration != 120 || room.CallType != "audio_video" || room.Live || !room.Link {
		t.Fatalf("room %+v", room)
	}
	var list struct{ Rooms []rest.Room }
	w.restWant("GET", "/v2/rooms", "", 200, &list)
	if len(list.Rooms) != 1 || list.Rooms[0].RoomID != room.RoomID || list.Rooms[0].UserURLs != nil {
		t.Fatalf("rooms %+v", list)
	}
	var one struct{ Room rest.Room }
	w.restWant("GET", "/v2/rooms/"+room.RoomID, "", 200, &one)
	if one.Room.RoomID != room.RoomID || len(one.Room.UserURLs) != 2 {
		t.Fatalf("room %+v", one)
	}
	// Another company sees none of it.
	w.restErrKey(w.y.key, "GET", "/v2/rooms/"+room.RoomID, "", 404, rest.CodeRoomNotFound)
	for _, c := range []struct {
		body   string
		status int
		code   plugins.Code
	}{
		{`{"participants":[{"user_id":"alice"}]}`, 400, call.CodeValidation},
		{`{"participants":[{"user_id":"alice"},{"user_id":"bob"}],"duration":30}`, 400, call.CodeValidation},
		{`{"participants":[{"user_id":"alice"},{"user_id":"bob"}],"recording":"sometimes"}`, 400, call.CodeValidation},
		{`{"participants":[{"user_id":"alice"},{"user_id":"bob","tools":{"teleport":true}}]}`, 400, call.CodeValidation},
		{`{"participants":[{"user_id":"alice"},{"user_id":"zed"}]}`, 404, "user_not_found"},
		{`{"participants":[{"user_id":"bob"},{"user_id":"carol"}]}`, 400, call.CodeNoPlusUser},
		{`{"participants":[{"user_id":"alice"},{"user_id":"bob"}],"color":"red"}`, 400, rest.CodeMalformedJSON},
	} {
		w.restErrKey(w.x.key, "POST", "/v2/rooms", c.body, c.status, c.code)
	}
	// A createCall call's room answers too, without links.
	a := w.connect("alice")
	created := decode[call.CallCreated](t, a.Cmd(call.CmdCreate, obj{"users": []string{"bob"}}).Events[0].Data)
	one.Room = rest.Room{}
	w.restWant("GET", "/v2/rooms/"+created.RoomID, "", 200, &one)
	if one.Room.Link || one.Room.CallID != created.CallID || one.Room.CallStatus != "dialing" || one.Room.UserURLs != nil {
		t.Fatalf("createCall's room %+v", one.Room)
	}
	w.restWant("DELETE", "/v2/rooms/"+room.RoomID, "", 204, nil)
	w.restErrKey(w.x.key, "GET", "/v2/rooms/"+room.RoomID, "", 404, rest.CodeRoomNotFound)
	w.restErrKey(w.x.key, "DELETE", "/v2/rooms/"+room.RoomID, "", 404, rest.CodeRoomNotFound)
	w.restErrKey(w.x.key, "PUT", "/v2/rooms/room_nope/disable", "", 404, rest.CodeRoomNotFound)
}

// TestRoomsWithoutTheCallPlugin: a kernel that runs no call plugin answers
// the rooms' routes 503 unavailable.
func TestRoomsWithoutTheCallPlugin(t *testing.T) {
	w := startWith(t, t.TempDir(), "", nil, nil, nil)
	w.restErrKey(w.x.key, "POST", "/v2/rooms", `{"participants":[{"user_id":"alice"},{"user_id":"bob"}]}`, 503, plugins.CodeUnavailable)
	w.restErrKey(w.x.key, "GET", "/v2/rooms", "", 503, plugins.CodeUnavailable)
	w.restErrKey(w.x.key, "GET", "/v2/rooms/room_1", "", 503, plugins.CodeUnavailable)
	w.restErrKey(w.x.key, "DELETE", "/v2/rooms/room_1", "", 503, plugins.CodeUnavailable)
}

// TestRESTKnowsTheCallCodes: sdkapi spells the call plugin's codes itself
// (it does not import plugins); they must be the plugin's.
func TestRESTKnowsTheCallCodes(t *testing.T) {
	for sc, cc := range map[plugins.Code]plugins.Code{
		rest.CodeRoomNotFound:         call.CodeRoomNotFound,
		token.CodeLinkInvalid:         call.CodeInvalidToken,
		session.CodeUserNotAssociated: call.CodeUserNotAssociatedLink,
	} {
		if sc != cc {
			t.Errorf("sdkapi says %s, the call plugin %s", sc, cc)
		}
	}
	for code, want := range map[plugins.Code]int{call.CodeRoomNotFound: 404, call.CodeNoPlusUser: 400, call.CodeValidation: 400} {
		if got := rest.Status(code); got != want {
			t.Errorf("%s: %d, want %d", code, got, want)
		}
	}
}

// --- the harness ---

type tenants struct{ x, y tenant }

type tenant struct{ app, key string }

type world struct {
	tenants
	t   *testing.T
	srv *sdkapitest.Server
}

// start runs a kernel on dir with the call plugin on transport tr
// (configured with cfg; nil: the defaults) and the chat in process, and a
// company of users:
//
//	x: alice (plus), bob, carol, erin (plus), frank
//	y: olga (plus)
func start(t *testing.T, dir string, tr pluginhost.Transport, cfg *call.Config) *world {
	return startWith(t, dir, tr, cfg, nil, nil)
}

// startWith is start with the tenants of an earlier run on dir (ts), and
// a media plane (m, in process; nil: autoMedia).
func startWith(t *testing.T, dir string, tr pluginhost.Transport, cfg *call.Config, ts *tenants, m call.Media) *world {
	t.Helper()
	ctx := context.Background()
	s := sdkapitest.Start(t, kerneltest.Config(dir), sdkapi.Options{Session: session.Config{RequestsPerSecond: 1000}})
	w := &world{t: t, srv: s}
	c, key, err := s.Svc.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ts != nil {
		w.tenants = *ts
	} else {
		w.x = tenant{c.AppID, key}
		app, keyY := s.Company(t, "Other clinic")
		w.y = tenant{app, keyY}
		for co, users := range map[tenant][]string{w.x: {"alice:plus", "bob:basic", "carol:basic", "erin:plus", "frank:basic"}, w.y: {"olga:plus"}} {
			for _, u := range users {
				id, role, _ := strings.Cut(u, ":")
				w.restWantKey(co.key, "POST", "/v2/users", `{"id":"`+id+`","role":"`+role+`"}`, 201, nil)
			}
		}
	}
	if tr == "" {
		return w
	}
	h, err := pluginhost.New(s.K, pluginhost.Config{StartTimeout: 20 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c0 := call.Config{Settle: 20 * time.Millisecond}
	if cfg != nil {
		c0 = *cfg
	}
	spec := pluginhost.Spec{ID: call.ID, Transport: tr}
	if tr == pluginhost.InProcess {
		if m == nil {
			m = &autoMedia{}
		}
		spec.New = func() plugins.Plugin { return call.NewWith(c0, m) }
	} else {
		spec.Path, spec.Args, spec.Env = os.Args[0], []string{"-test.run=^$"}, append(pluginhost.PluginEnv(), pluginEnv+"=1")
		if c0.DialTimeout > 0 {
			spec.Env = append(spec.Env, call.EnvDialTimeout+"="+c0.DialTimeout.String())
		}
	}
	for _, sp := range []pluginhost.Spec{spec, {ID: chat.ID, Transport: pluginhost.InProcess, New: chat.New}} {
		if err := h.Add(sp); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(h.Close) // before the kernel closes
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, st := range h.List() {
		if st.State != pluginhost.StateRunning {
			t.Fatalf("not running: %+v", st)
		}
	}
	return w
}

func (w *world) restKey(key, method, path, body string) (int, []byte) {
	w.t.Helper()
	req, err := http.NewRequest(method, w.srv.HTTP.URL+path, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("apikey", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (w *world) restWantKey(key, method, path, body string, status int, v any) {
	w.t.Helper()
	got, b := w.restKey(key, method, path, body)
	if got != status {
		w.t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, got, b, status)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			w.t.Fatalf("%s %s: %s: %v", method, path, b, err)
		}
	}
}

// restWant calls company x's REST API.
func (w *world) restWant(method, path, body string, status int, v any) {
	w.t.Helper()
	w.restWantKey(w.x.key, method, path, body, status, v)
}

func (w *world) restErrKey(key, method, path, body string, status int, code plugins.Code) {
	w.t.Helper()
	got, b := w.restKey(key, method, path, body)
	var e plugins.Error
	if json.Unmarshal(b, &e) != nil || got != status || e.Code != code {
		w.t.Errorf("%s %s %s: %d %s, want %d %s", method, path, body, got, b, status, code)
	}
}

// room creates a room of company x.
func (w *world) room(body string) rest.Room {
	w.t.Helper()
	var r struct{ Room rest.Room }
	w.restWant("POST", "/v2/rooms", body, 201, &r)
	return r.Room
}

func (w *world) accessToken(user string) string {
	w.t.Helper()
	var cred struct {
		AccessToken string `json:"access_token"`
	}
	w.restWant("POST", "/v2/sdk/credentials", `{"user_id":"`+user+`","expires_in":3600}`, 200, &cred)
	return cred.AccessToken
}

// device is one connected browser: sdkapitest's WebSocket client, with
// the call's view of pushes. Events its own commands' answers carried
// are not expected again as pushes.
type device struct{ *sdkapitest.Device }

type (
	frame         = sdkapitest.Frame
	commandResult = sdkapitest.CommandResult
)

// linkAnswer is joinCallURL's answer.
type linkAnswer struct {
	UserID    string          `json:"userId"`
	Device    string          `json:"device"`
	ExpiresAt *string         `json:"expiresAt"`
	RoomID    string          `json:"roomId"`
	CallID    string          `json:"callId"`
	Call      call.CallView   `json:"call"`
	Join      commandResult   `json:"join"`
	Online    []string        `json:"onlineUsers"`
	Raw       json.RawMessage `json:"-"`
}

func (w *world) dial(name string) *device {
	w.t.Helper()
	return &device{w.srv.Dial(w.t, name)}
}

// connect opens a session for a user of company x.
func (w *world) connect(user string) *device {
	w.t.Helper()
	d := w.dial(user)
	ans, err := d.Call("connect", obj{"appId": w.x.app, "userId": user, "accessToken": w.accessToken(user), "sdkVersion": "3.0.0"})
	if err != nil {
		w.t.Fatalf("connect %s: %v", user, err)
	}
	var r struct {
		Device string `json:"device"`
	}
	json.Unmarshal(ans, &r)
	d.ID = r.Device
	return d
}

// link opens a call-link session with joinCallURL; extra params are added.
func (w *world) link(url string, extra obj) (*device, linkAnswer) {
	w.t.Helper()
	params := obj{"url": url, "sdkVersion": "3.0.0"}
	for k, v := range extra {
		params[k] = v
	}
	d := w.dial("link")
	ans, err := d.Call("joinCallURL", params)
	if err != nil {
		w.t.Fatalf("joinCallURL %s: %v", url, err)
	}
	var la linkAnswer
	if err := json.Unmarshal(ans, &la); err != nil {
		w.t.Fatalf("joinCallURL answered %s: %v", ans, err)
	}
	d.Name, d.ID = "link of "+la.UserID, la.Device
	for _, e := range la.Join.Events {
		d.Answered[e.Seq] = true
	}
	return d, la
}

// linkFails opens a call-link session that must be refused with code;
// params, when given, are joinCallURL's whole params.
func (w *world) linkFails(url string, params obj, code plugins.Code) {
	w.t.Helper()
	if params == nil {
		params = obj{"url": url, "sdkVersion": "3.0.0"}
	}
	d := w.dial("refused link")
	if ans, err := d.Call("joinCallURL", params); err == nil || err.Code != code {
		w.t.Errorf("joinCallURL %v: %s %v, want %s", params, ans, err, code)
		return
	}
	if c, _ := d.Closed(); c != 4001 {
		w.t.Errorf("a refused joinCallURL closed with %d", c)
	}
}

// quiet is a push the call's tests pass over: presence and media states
// (which interleave with everything), and events the device had in an
// answer.
func (d *device) quiet(f frame) bool {
	return f.Event == "user:status:changed" || f.Event == call.EvMediaState || (f.Seq != 0 && d.Answered[f.Seq])
}

// push returns the device's next push, durable or ephemeral, that it has
// not had in an answer; presence, token warnings and media states (which
// interleave with everything) are skipped.
func (d *device) push() frame {
	d.T.Helper()
	for {
		f := d.Pending("an event")
		switch {
		case f.ID != nil:
			d.T.Fatalf("%s: an answer nobody asked for: %s", d.Name, f.ID)
		case strings.HasPrefix(f.Event, "client:") || d.quiet(f):
			continue
		}
		d.Seen = max(d.Seen, f.Seq)
		return f
	}
}

// expect wants the next push to be want.
func (d *device) expect(want frame) frame {
	d.T.Helper()
	got := d.push()
	if got.Event != want.Event || got.Seq != want.Seq || string(got.Data) != string(want.Data) {
		d.T.Fatalf("%s got %d %s %s, want %d %s %s", d.Name, got.Seq, got.Event, got.Data, want.Seq, want.Event, want.Data)
	}
	return got
}

// expectType wants the next push to be of type typ.
func (d *device) expectType(typ string) frame {
	d.T.Helper()
	got := d.push()
	if got.Event != typ {
		d.T.Fatalf("%s got %d %s %s, want a %s", d.Name, got.Seq, got.Event, got.Data, typ)
	}
	return got
}

// expectNothing wants no push for a moment.
func (d *device) expectNothing() {
	d.T.Helper()
	for _, f := range d.TakeQueue() {
		if !d.quiet(f) {
			d.T.Fatalf("%s: unexpected %d %s %s", d.Name, f.Seq, f.Event, f.Data)
		}
	}
	deadline := time.After(200 * time.Millisecond)
	for {
		select {
		case f, ok := <-d.Frames():
			if !ok || d.quiet(f) {
				continue
			}
			d.T.Fatalf("%s: unexpected %d %s %s", d.Name, f.Seq, f.Event, f.Data)
		case <-deadline:
			return
		}
	}
}
