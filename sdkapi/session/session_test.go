package session_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/kerneltest"
	"github.com/parleyhq/parley/sdkapi"
	"github.com/parleyhq/parley/sdkapi/sdkapitest"
	"github.com/parleyhq/parley/sdkapi/session"
	"github.com/parleyhq/parley/sdkapi/token"
)

type env struct {
	t        *testing.T
	k        *kernel.Kernel
	svc      *sdkapi.Service
	srv      *httptest.Server
	app      string
	key      string
	otherApp string
	otherKey string
}

func newEnv(t *testing.T, opts sdkapi.Options) *env {
	t.Helper()
	s := sdkapitest.Start(t, kerneltest.Config(t.TempDir()), opts)
	k, svc, srv := s.K, s.Svc, s.HTTP
	c, key, err := svc.Bootstrap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	otherApp, okey := s.Company(t, "Other")
	e := &env{t: t, k: k, svc: svc, srv: srv, app: c.AppID, key: key, otherApp: otherApp, otherKey: okey}
	for _, u := range []string{"alice", "bob", "carol"} {
		e.rest(key, "POST", "/v2/users", `{"id":"`+u+`"}`)
		e.rest(okey, "POST", "/v2/users", `{"id":"`+u+`"}`)
	}
	return e
}

func (e *env) rest(key, method, path, body string) int {
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("apikey", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *env) token(app, user string) string {
	tok, _, err := e.svc.Tokens.Issue(context.Background(), app, user, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// client is a real WebSocket client speaking the session protocol.
type client struct {
	t      *testing.T
	c      *websocket.Conn
	frames chan map[string]any
	closed chan websocket.StatusCode
	nextID int
}

func (e *env) dial() *client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/v2/ws", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	cl := &client{t: e.t, c: c, frames: make(chan map[string]any, 1000), closed: make(chan websocket.StatusCode, 1)}
	go func() { // reads until the socket closes
		for {
			var m map[string]any
			if err := wsjson.Read(context.Background(), c, &m); err != nil {
				cl.closed <- websocket.CloseStatus(err)
				close(cl.frames)
				return
			}
			cl.frames <- m
		}
	}()
	e.t.Cleanup(func() { c.CloseNow() })
	return cl
}

func (cl *client) send(method string, params any) int {
	cl.nextID++
	frame := map[string]any{"id": cl.nextID, "method": method}
	if params != nil {
		frame["params"] = params
	}
	if err := wsjson.Write(context.Background(), cl.c, frame); err != nil {
		cl.t.Fatal(err)
	}
	return cl.nextID
}

// next returns the next frame matching pred, failing after a deadline.
func (cl *client) next(what string, pred func(map[string]any) bool) map[string]any {
	cl.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-cl.frames:
			if !ok {
				cl.t.Fatalf("socket closed (%v) waiting for %s", <-cl.closed, what)
			}
			if pred(m) {
				return m
			}
		case <-timeout:
			cl.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (cl *client) answer(id int) map[string]any {
	return cl.next(fmt.Sprintf("answer %d", id), func(m map[string]any) bool { return m["id"] == float64(id) })
}

func (cl *client) push(event string) map[string]any {
	return cl.next("push "+event, func(m map[string]any) bool { return m["event"] == event })
}

func errCode(m map[string]any) string {
	if e, ok := m["error"].(map[string]any); ok {
		return e["code"].(string)
	}
	return ""
}

func (cl *client) closedWith() websocket.StatusCode {
	cl.t.Helper()
	select {
	case s := <-cl.closed:
		return s
	case <-time.After(10 * time.Second):
		cl.t.Fatal("socket not closed")
		return 0
	}
}

func connectParams(app, user, tok string) map[string]any {
	return map[string]any{"appId": app, "userId": user, "accessToken": tok, "sdkVersion": "3.2.1"}
}

func (e *env) connect(user string) *client {
	e.t.Helper()
	cl := e.dial()
	ans := cl.answer(cl.send("connect", connectParams(e.app, user, e.token(e.app, user))))
	if errCode(ans) != "" {
		e.t.Fatalf("connect %s: %v", user, ans)
	}
	return cl
}

func TestConnectErrors(t *testing.T) {
	e := newEnv(t, sdkapi.Options{Session: session.Config{MaxSessionsPerUser: 2}})
	alice := e.token(e.app, "alice")
	past := token.NewWithClock(e.k.Log(), func() time.Time { return time.Now().Add(-2 * time.Hour) })
	expired, _, _ := past.Issue(context.Background(), e.app, "alice", 10*time.Minute)
	parts := strings.Split(alice, ".")
	sig := []byte(parts[2])
	if sig[5] == 'A' {
		sig[5] = 'B'
	} else {
		sig[5] = 'A'
	}
	tampered := parts[0] + "." + parts[1] + "." + string(sig)
	e.rest(e.key, "DELETE", "/v2/users/carol", "")
	carol := e.token(e.app, "carol")
	withParams := func(edit func(p map[string]any)) map[string]any {
		p := connectParams(e.app, "alice", alice)
		edit(p)
		return p
	}
	cases := []struct {
		name   string
		method string
		params any
		code   string
	}{
		{"unknown app", "connect", withParams(func(p map[string]any) { p["appId"] = "app-nope" }), "app_id_invalid"},
		{"expired token", "connect", withParams(func(p map[string]any) { p["accessToken"] = expired }), "access_token_expired"},
		{"garbage token", "connect", withParams(func(p map[string]any) { p["accessToken"] = "x.y.z" }), "access_token_invalid"},
		{"tampered token", "connect", withParams(func(p map[string]any) { p["accessToken"] = tampered }), "access_token_invalid_signature"},
		{"another user's token", "connect", withParams(func(p map[string]any) { p["userId"] = "bob" }), "access_token_invalid_user"},
		{"deleted user", "connect", connectParams(e.app, "carol", carol), "user_not_found"},
		{"token of another company", "connect", withParams(func(p map[string]any) { p["accessToken"] = e.token(e.otherApp, "alice") }), "access_token_invalid"},
		{"bad sdk version", "connect", withParams(func(p map[string]any) { p["sdkVersion"] = "latest" }), "sdk_version_invalid"},
		{"sdk version of the wrong type", "connect", withParams(func(p map[string]any) { p["sdkVersion"] = 3 }), "sdk_version_invalid"},
		{"old sdk", "connect", withParams(func(p map[string]any) { p["sdkVersion"] = "1.9.0" }), "sdk_version_unsupported"},
		{"user id of the wrong type", "connect", withParams(func(p map[string]any) { p["userId"] = 5 }), "validation_error"},
		{"not connect first", "getOnlineUsers", nil, "not_connected"},
	}
	for _, c := range cases {
		cl := e.dial()
		ans := cl.answer(cl.send(c.method, c.params))
		if errCode(ans) != c.code {
			t.Errorf("%s: %v, want %s", c.name, ans, c.code)
			continue
		}
		if s := cl.closedWith(); s != 4001 {
			t.Errorf("%s: closed with %d, want 4001", c.name, s)
		}
	}
	// Malformed first frame.
	cl := e.dial()
	cl.c.Write(context.Background(), websocket.MessageText, []byte(`{"id":1,"method":`))
	if ans := cl.next("error", func(map[string]any) bool { return true }); errCode(ans) != "malformed_frame" {
		t.Errorf("malformed: %v", ans)
	}
	// Sessions per user.
	e.connect("alice")
	e.connect("alice")
	cl = e.dial()
	if ans := cl.answer(cl.send("connect", connectParams(e.app, "alice", alice))); errCode(ans) != "too_many_sessions" {
		t.Errorf("third device: %v", ans)
	}
}

// TestConnectRate: every session is logged (client.connected), so a
// user's connects are rate limited: past the burst (twice
// MaxSessionsPerUser) of sessions opened, a connect is refused with
// rate_limited and logs nothing. Connects refused for another reason
// (too_many_sessions) do not count; other users are not held back.
func TestConnectRate(t *testing.T) {
	e := newEnv(t, sdkapi.Options{Session: session.Config{MaxSessionsPerUser: 1, ConnectsPerSecond: 0.001}}) // a burst of 2
	alice := e.token(e.app, "alice")
	connect := func() (*client, string) {
		cl := e.dial()
		return cl, errCode(cl.answer(cl.send("connect", connectParams(e.app, "alice", alice))))
	}
	closeAndWait := func(cl *client, disconnects int) {
		cl.c.Close(websocket.StatusNormalClosure, "")
		kerneltest.Eventually(t, "the closed session ended", func() bool {
			return strings.Count(e.clientEvents(), "client.disconnected") >= disconnects
		})
	}
	first, code := connect()
	if code != "" {
		t.Fatalf("first connect: %s", code)
	}
	for range 3 {
		if _, code := connect(); code != "too_many_sessions" {
			t.Fatalf("a second device: %q", code)
		}
	}
	closeAndWait(first, 1)
	second, code := connect() // the refused ones took nothing from the burst
	if code != "" {
		t.Fatalf("second session: %q", code)
	}
	closeAndWait(second, 2)
	logged := strings.Count(e.clientEvents(), "client.connected")
	if _, code := connect(); code != "rate_limited" {
		t.Fatalf("a connect past the burst: %q", code)
	}
	if n := strings.Count(e.clientEvents(), "client.connected"); n != logged {
		t.Fatalf("a refused connect was logged: %d client.connected, %d before", n, logged)
	}
	e.connect("bob")
}

func TestRequestsAndLimits(t *testing.T) {
	e := newEnv(t, sdkapi.Options{Session: session.Config{RequestsPerSecond: 5, MaxFrame: 4096}})
	cl := e.connect("alice")
	if ans := cl.answer(cl.send("fly", nil)); errCode(ans) != "method_unknown" {
		t.Fatalf("unknown method: %v", ans)
	}
	cl.c.Write(context.Background(), websocket.MessageText, []byte(`not json`))
	if ans := cl.next("malformed", func(m map[string]any) bool { return errCode(m) == "malformed_frame" }); ans == nil {
		t.Fatal("no malformed_frame")
	}
	limited := 0
	ids := []int{}
	for range 30 {
		ids = append(ids, cl.send("getOnlineUsers", nil))
	}
	for _, id := range ids {
		if errCode(cl.answer(id)) == "rate_limited" {
			limited++
		}
	}
	if limited == 0 || limited == 30 {
		t.Fatalf("%d of 30 rate limited", limited)
	}
	// Still alive after all that; then a frame over the limit closes it.
	time.Sleep(time.Second) // let the bucket refill
	if ans := cl.answer(cl.send("getOnlineUsers", nil)); errCode(ans) != "" {
		t.Fatalf("after the flood: %v", ans)
	}
	cl.send("getOnlineUsers", map[string]string{"pad": strings.Repeat("x", 5000)})
	if s := cl.closedWith(); s != websocket.StatusMessageTooBig {
		t.Fatalf("oversized frame: closed with %d", s)
	}
}

func TestTokenLifecycle(t *testing.T) {
	// Tokens from this service expire 2 s after they are issued (the clock
	// is 358 s behind and the shortest lifetime is 360 s).
	e := newEnv(t, sdkapi.Options{
		Clock:   func() time.Time { return time.Now().Add(-358 * time.Second) },
		Session: session.Config{TokenLead: time.Second},
	})
	fresh := token.New(e.k.Log()) // a clock on time: its tokens last
	short := func(user string) *client {
		tok, _, err := e.svc.Tokens.Issue(context.Background(), e.app, user, token.MinTTL)
		if err != nil {
			t.Fatal(err)
		}
		cl := e.dial()
		if ans := cl.answer(cl.send("connect", connectParams(e.app, user, tok))); errCode(ans) != "" {
			t.Fatalf("connect: %v", ans)
		}
		return cl
	}
	refreshed := short("alice")
	warned := refreshed.push("client:access_token:about_to_expire")
	if warned["data"].(map[string]any)["expiresAt"] == "" {
		t.Fatalf("about_to_expire without expiresAt: %v", warned)
	}
	newTok, exp, _ := fresh.Issue(context.Background(), e.app, "alice", time.Hour)
	ans := refreshed.answer(refreshed.send("updateAccessToken", map[string]string{"accessToken": newTok}))
	if ans["result"].(map[string]any)["expiresAt"] != exp.UTC().Format(time.RFC3339) {
		t.Fatalf("updateAccessToken: %v", ans)
	}
	bobTok, _, _ := fresh.Issue(context.Background(), e.app, "bob", time.Hour)
	if ans := refreshed.answer(refreshed.send("updateAccessToken", map[string]string{"accessToken": bobTok})); errCode(ans) != "access_token_invalid_user" {
		t.Fatalf("someone else's token: %v", ans)
	}

	lapsed := short("bob")
	lapsed.push("client:access_token:about_to_expire")
	lapsed.push("client:access_token:expired")
	if s := lapsed.closedWith(); s != 4002 {
		t.Fatalf("expired session closed with %d", s)
	}
	// The refreshed one outlives the first token.
	time.Sleep(time.Second)
	if ans := refreshed.answer(refreshed.send("getOnlineUsers", nil)); errCode(ans) != "" {
		t.Fatalf("refreshed session: %v", ans)
	}
	types := e.clientEvents()
	for _, want := range []string{"client.connected", "client.token.refreshed", "client.token.expired", "client.disconnected"} {
		if !strings.Contains(types, want) {
			t.Errorf("no %s in the log: %s", want, types)
		}
	}
}

func (e *env) clientEvents() string {
	var types []string
	e.k.Log().Read(context.Background(), 1, 0, func(ev eventlog.Event) error {
		if strings.HasPrefix(ev.Type, "client.") {
			types = append(types, ev.Type)
		}
		return nil
	})
	return strings.Join(types, ",")
}

func TestForceDisconnectEveryDevice(t *testing.T) {
	e := newEnv(t, sdkapi.Options{})
	phone, laptop := e.connect("alice"), e.connect("alice")
	bob := e.connect("bob")
	if code := e.rest(e.key, "PUT", "/v2/users/alice", `{"active":false}`); code != 200 {
		t.Fatalf("deactivate: %d", code)
	}
	for _, d := range []*client{phone, laptop} {
		d.push("client:force_disconnect")
		if s := d.closedWith(); s != 4003 {
			t.Fatalf("closed with %d", s)
		}
	}
	if ans := bob.answer(bob.send("getOnlineUsers", nil)); errCode(ans) != "" {
		t.Fatalf("bob was disconnected too: %v", ans)
	}
	cl := e.dial()
	if ans := cl.answer(cl.send("connect", connectParams(e.app, "alice", e.token(e.app, "alice")))); errCode(ans) != "user_not_found" {
		t.Fatalf("deactivated user reconnects: %v", ans)
	}
	if n := strings.Count(e.clientEvents(), "client.force_disconnected"); n != 2 {
		t.Fatalf("%d force_disconnected events, want one per device", n)
	}
}

func TestPresence(t *testing.T) {
	e := newEnv(t, sdkapi.Options{Session: session.Config{PresenceGrace: 300 * time.Millisecond}})
	bob := e.connect("bob")
	status := func(user, s string) func(map[string]any) bool {
		return func(m map[string]any) bool {
			list, _ := m["data"].([]any)
			for _, c := range list {
				if d := c.(map[string]any); d["userId"] == user && d["status"] == s {
					return m["event"] == "user:status:changed"
				}
			}
			return false
		}
	}
	phone := e.connect("alice")
	bob.next("alice online", status("alice", "online"))
	laptop := e.connect("alice")
	ans := bob.answer(bob.send("getOnlineUsers", nil))
	if fmt.Sprint(ans["result"].(map[string]any)["users"]) != "[alice bob]" {
		t.Fatalf("online users %v", ans)
	}
	// One device leaving changes nothing; a flap within the grace period
	// neither.
	phone.c.Close(websocket.StatusNormalClosure, "")
	laptop.c.Close(websocket.StatusNormalClosure, "")
	again := e.connect("alice")
	time.Sleep(500 * time.Millisecond)
	again.c.Close(websocket.StatusNormalClosure, "")
	got := bob.next("alice offline", func(m map[string]any) bool { return m["event"] == "user:status:changed" })
	if !status("alice", "offline")(got) {
		t.Fatalf("first presence change after the flap: %v", got)
	}
	// Another company's users are not seen.
	other := e.dial()
	other.answer(other.send("connect", connectParams(e.otherApp, "carol", e.token(e.otherApp, "carol"))))
	ans = bob.answer(bob.send("getOnlineUsers", nil))
	if fmt.Sprint(ans["result"].(map[string]any)["users"]) != "[bob]" {
		t.Fatalf("online users %v", ans)
	}
}

// appendFor appends an event of company app whose audience is users.
func (e *env) appendFor(app string, n int, users ...string) []uint64 {
	var seqs []uint64
	for i := range n {
		evs, err := e.k.Log().Append(context.Background(), eventlog.Draft{
			Type: "test.note", Stream: "test/" + app, Company: app, Audience: users, Payload: []byte(fmt.Sprintf(`{"i":%d}`, i)),
		})
		if err != nil {
			e.t.Fatal(err)
		}
		seqs = append(seqs, evs[0].Seq)
	}
	return seqs
}

func TestDeliveryAndResume(t *testing.T) {
	e := newEnv(t, sdkapi.Options{Session: session.Config{ResyncLimit: 20}})
	cl := e.dial()
	cl.answer(cl.send("connect", connectParams(e.app, "alice", e.token(e.app, "alice"))))
	live := e.appendFor(e.app, 3, "alice")
	e.appendFor(e.otherApp, 2, "alice") // another company's alice
	e.appendFor(e.app, 2, "bob")
	for _, s := range live {
		got := cl.push("test.note")
		if uint64(got["seq"].(float64)) != s {
			t.Fatalf("live: got seq %v, want %d", got["seq"], s)
		}
	}
	cl.c.Close(websocket.StatusNormalClosure, "")
	missed := e.appendFor(e.app, 4, "alice", "bob")
	// Resume from the last seq seen: exactly the missed events, in order, then live ones.
	cl = e.dial()
	p := connectParams(e.app, "alice", e.token(e.app, "alice"))
	p["lastSeq"] = live[len(live)-1]
	if ans := cl.answer(cl.send("connect", p)); ans["result"].(map[string]any)["resync"] != false {
		t.Fatalf("resume: %v", ans)
	}
	after := e.appendFor(e.app, 2, "alice")
	want := append(missed, after...)
	for _, s := range want {
		got := cl.push("test.note")
		if uint64(got["seq"].(float64)) != s {
			t.Fatalf("resume: got seq %v, want %d (want %v)", got["seq"], s, want)
		}
	}
	select {
	case m := <-cl.frames:
		if m["event"] == "test.note" {
			t.Fatalf("extra event after resume: %v", m)
		}
	case <-time.After(200 * time.Millisecond):
	}
	// Too far back: resync.
	cl2 := e.dial()
	p["lastSeq"] = 0 // everything since the beginning: more than ResyncLimit
	if ans := cl2.answer(cl2.send("connect", p)); ans["result"].(map[string]any)["resync"] != true {
		t.Fatalf("far resume: %v", ans)
	}
}

// TestSlowConsumerIsClosedAndResumes: a client that stops reading is
// disconnected with slow_consumer (4004) instead of holding anyone up, and
// resumes from its last seq with nothing lost.
func TestSlowConsumerIsClosedAndResumes(t *testing.T) {
	e := newEnv(t, sdkapi.Options{Session: session.Config{ResyncLimit: 100_000}})
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/v2/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(-1)
	wsjson.Write(ctx, c, map[string]any{"id": 1, "method": "connect", "params": connectParams(e.app, "alice", e.token(e.app, "alice"))})
	var ans struct {
		Result struct {
			Seq uint64 `json:"seq"`
		} `json:"result"`
	}
	if err := wsjson.Read(ctx, c, &ans); err != nil {
		t.Fatal(err)
	}
	bob := e.connect("bob") // a reading client of the same company, unaffected

	// alice stops reading; 1,000 events of 32 KiB fill the socket buffers,
	// then her queue in the hub.
	big := strings.Repeat("x", 32<<10)
	var seqs []uint64
	for i := range 1000 {
		evs, err := e.k.Log().Append(ctx, eventlog.Draft{Type: "test.note", Stream: "test/a", Company: e.app, Audience: []string{"alice"},
			Payload: []byte(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, big))})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, evs[0].Seq)
	}
	kerneltest.Eventually(t, "alice disconnected as a slow consumer", func() bool { return strings.Contains(e.disconnectReasons(), "slow_consumer") })
	note := e.appendFor(e.app, 1, "bob")
	if got := bob.push("test.note"); uint64(got["seq"].(float64)) != note[0] {
		t.Fatalf("bob got %v", got)
	}

	// Read what got through, up to the end: 4004 when the close frame got
	// through, or a cut connection when the socket stayed full for the
	// server's write timeout (a client that is not reading cannot be told).
	last := ans.Result.Seq
	for {
		var m struct {
			Event string `json:"event"`
			Seq   uint64 `json:"seq"`
		}
		err := wsjson.Read(ctx, c, &m)
		if err != nil {
			if s := websocket.CloseStatus(err); s != 4004 && s != -1 {
				t.Fatalf("closed with %v, want 4004", err)
			}
			break
		}
		if m.Event == "test.note" {
			last = m.Seq
		}
	}
	if last >= seqs[len(seqs)-1] {
		t.Fatal("alice read everything: the test did not make her slow")
	}
	// Resume: exactly the rest, in order.
	cl := e.dial()
	cl.c.SetReadLimit(-1)
	p := connectParams(e.app, "alice", e.token(e.app, "alice"))
	p["lastSeq"] = last
	cl.answer(cl.send("connect", p))
	for _, s := range seqs {
		if s <= last {
			continue
		}
		if got := cl.push("test.note"); uint64(got["seq"].(float64)) != s {
			t.Fatalf("resume: got seq %v, want %d", got["seq"], s)
		}
	}
}

// disconnectReasons lists the reasons of the client.disconnected events.
func (e *env) disconnectReasons() string {
	var reasons []string
	e.k.Log().Read(context.Background(), 1, 0, func(ev eventlog.Event) error {
		if ev.Type == "client.disconnected" {
			reasons = append(reasons, string(ev.Payload))
		}
		return nil
	})
	return strings.Join(reasons, ",")
}

// TestEphemeralEventsReachDevices: an ephemeral event published on the bus
// reaches every device of its audience, or the one device it names, with
// no seq; other users and companies get nothing.
func TestEphemeralEventsReachDevices(t *testing.T) {
	e := newEnv(t, sdkapi.Options{})
	connect := func(app, user string) (*client, string) {
		cl := e.dial()
		ans := cl.answer(cl.send("connect", connectParams(app, user, e.token(app, user))))
		return cl, ans["result"].(map[string]any)["device"].(string)
	}
	phone, _ := connect(e.app, "alice")
	laptop, laptopID := connect(e.app, "alice")
	carol, _ := connect(e.app, "carol")
	foreign, _ := connect(e.otherApp, "alice")
	publish := func(typ string, device string) {
		ne := kernel.NewEvent{Type: typ, Audience: []string{"alice"}, Payload: []byte(`{"x":1}`), Device: device}
		if err := e.k.Bus().PublishEphemeral(kernel.EphemeralEvent(ne, e.app, "test")); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.k.EventTypes().Declare(kernel.EventType{Name: "test.ping"}, kernel.EventType{Name: "test.ice"}); err != nil {
		t.Fatal(err)
	}
	publish("test.ice", laptopID)
	publish("test.ping", "")
	if got := laptop.push("test.ice"); got["event"] != "test.ice" { // published first, so it comes first
		t.Fatal(got)
	}
	for _, cl := range []*client{phone, laptop} {
		got := cl.push("test.ping") // (push skips other frames: the phone's test.ice would be caught below)
		if _, ok := got["seq"]; ok || got["data"].(map[string]any)["x"] != float64(1) {
			t.Fatalf("ephemeral push %v", got)
		}
	}
	select {
	case m := <-phone.frames:
		if m["event"] == "test.ice" || m["event"] == "test.ping" {
			t.Fatalf("phone got %v", m)
		}
	case m := <-carol.frames:
		if m["event"] == "test.ping" || m["event"] == "test.ice" {
			t.Fatalf("carol got %v", m)
		}
	case m := <-foreign.frames:
		if m["event"] == "test.ping" || m["event"] == "test.ice" {
			t.Fatalf("the other company's alice got %v", m)
		}
	case <-time.After(300 * time.Millisecond):
	}
}

// A session back after a drop keeps its device when it gives back the
// device and deviceKey of its first connect's answer, so the calls bound
// to that device stay its own; a key for another user's device, a made-up
// key, or none gets a new device.
func TestResumeKeepsTheDevice(t *testing.T) {
	e := newEnv(t, sdkapi.Options{})
	first := e.dial()
	res := first.answer(first.send("connect", connectParams(e.app, "alice", e.token(e.app, "alice"))))["result"].(map[string]any)
	device, key := res["device"].(string), res["deviceKey"].(string)
	if device == "" || key == "" {
		t.Fatalf("connect's answer names no device or deviceKey: %v", res)
	}
	first.c.Close(websocket.StatusNormalClosure, "")
	bob := e.dial()
	bobRes := bob.answer(bob.send("connect", connectParams(e.app, "bob", e.token(e.app, "bob"))))["result"].(map[string]any)
	for _, c := range []struct {
		name        string
		device, key string
		keep        bool
	}{
		{"its own device and key", device, key, true},
		{"a made-up key", device, strings.Repeat("0", len(key)), false},
		{"bob's device and key", bobRes["device"].(string), bobRes["deviceKey"].(string), false},
		{"no key", device, "", false},
	} {
		cl := e.dial()
		p := connectParams(e.app, "alice", e.token(e.app, "alice"))
		p["device"], p["deviceKey"] = c.device, c.key
		got := cl.answer(cl.send("connect", p))["result"].(map[string]any)["device"]
		if (got == c.device) != c.keep {
			t.Errorf("%s: device %v, want it kept: %v", c.name, got, c.keep)
		}
		cl.c.Close(websocket.StatusNormalClosure, "")
	}
}
