package call_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/call"
	"github.com/parleyhq/parley/plugins/plugintest"
	"github.com/parleyhq/parley/sdkapi/sdkapitest"
)

// fakeMedia is a media plane that answers every offer and lets the test
// play the PeerConnections' part: their states, candidates and offers.
type fakeMedia struct {
	mu     sync.Mutex
	ev     call.MediaEvents
	calls  []string                    // what the plugin asked, in order: "offer call user device video"
	peers  map[string]call.MediaDevice // by call/device
	failOn string                      // an SDP Offer refuses with validation_error
	glare  string                      // an offer of the plane's waiting for the device's answer: Offer answers a *call.Glare with it
	// afterDevices runs once Devices took its snapshot
	afterDevices func()
	// Notify calls: with callbacks (a Start), without (an abort)
	attached, detached int
}

// notified returns how often the plugin attached to and detached from
// the plane.
func (m *fakeMedia) notified() (attached, detached int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.attached, m.detached
}

var _ call.Media = (*fakeMedia)(nil)

func newFakeMedia() *fakeMedia { return &fakeMedia{peers: map[string]call.MediaDevice{}} }

func (m *fakeMedia) record(s string) {
	m.mu.Lock()
	m.calls = append(m.calls, s)
	m.mu.Unlock()
}

func (m *fakeMedia) Offer(_ context.Context, callID, user, device, sdp string, video bool) (string, error) {
	if sdp == m.failOn {
		return "", plugins.Errorf(call.CodeValidation, "unparsable SDP")
	}
	m.mu.Lock()
	glare := m.glare
	m.mu.Unlock()
	if glare != "" {
		return "", &call.Glare{Offer: glare}
	}
	m.record(fmt.Sprintf("offer %s %s %s %v", callID, user, device, video))
	m.mu.Lock()
	if _, ok := m.peers[callID+"/"+device]; !ok {
		m.peers[callID+"/"+device] = call.MediaDevice{CallID: callID, User: user, Device: device, State: "new"}
	}
	m.mu.Unlock()
	return "answer to " + sdp, nil
}

func (m *fakeMedia) Answer(_ context.Context, callID, user, device, sdp string) error {
	m.record(fmt.Sprintf("answer %s %s %s %s", callID, user, device, sdp))
	return nil
}

func (m *fakeMedia) AddCandidate(_ context.Context, callID, user, device, c string) error {
	m.record(fmt.Sprintf("candidate %s %s %s %s", callID, user, device, c))
	return nil
}

func (m *fakeMedia) Leave(_ context.Context, callID, user, device string) error {
	m.record(fmt.Sprintf("leave %s %s %s", callID, user, device))
	m.mu.Lock()
	delete(m.peers, callID+"/"+device)
	m.mu.Unlock()
	return nil
}

func (m *fakeMedia) EndCall(_ context.Context, callID string) error {
	m.record("end " + callID)
	m.mu.Lock()
	for k := range m.peers {
		if strings.HasPrefix(k, callID+"/") {
			delete(m.peers, k)
		}
	}
	m.mu.Unlock()
	return nil
}

// left reports whether the plugin closed device's media in call.
func (m *fakeMedia) left(callID, user, device string) bool {
	return slices.Contains(m.log(), fmt.Sprintf("leave %s %s %s", callID, user, device))
}

func (m *fakeMedia) Devices(callID string) []call.MediaDevice {
	m.mu.Lock()
	var ds []call.MediaDevice
	for _, d := range m.peers {
		if callID == "" || d.CallID == callID {
			ds = append(ds, d)
		}
	}
	after := m.afterDevices
	m.mu.Unlock()
	if after != nil {
		after() // a state change that comes just after the snapshot
	}
	return ds
}

func (m *fakeMedia) Notify(ev call.MediaEvents) {
	m.mu.Lock()
	m.ev = ev
	if ev.Offer == nil {
		m.detached++
	} else {
		m.attached++
	}
	m.mu.Unlock()
}

func (m *fakeMedia) events() call.MediaEvents {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ev
}

// state plays a PeerConnection state change.
func (m *fakeMedia) state(callID, user, device, state string) {
	m.mu.Lock()
	if d, ok := m.peers[callID+"/"+device]; ok {
		d.State = state
		m.peers[callID+"/"+device] = d
	}
	m.mu.Unlock()
	m.events().State(callID, user, device, state)
}

func (m *fakeMedia) log() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

func (m *fakeMedia) open(callID string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k := range m.peers {
		if strings.HasPrefix(k, callID+"/") {
			n++
		}
	}
	return n
}

// clock is a fake clock: real time plus an offset the test moves.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

type obj = map[string]any

// env is a plugin under plugintest with a company of users:
//
//	acme: alice (plus), bob, carol, frank (basic), erin (plus, no video), dave (deactivated)
//	other: olga (plus)
type env struct {
	t     *testing.T
	k     *plugintest.Kernel
	p     *call.Plugin
	media *fakeMedia
	clock *clock
	cfg   call.Config
}

const acme, other = "acme", "other"

func newEnv(t *testing.T, cfg call.Config) *env {
	t.Helper()
	e := &env{t: t, media: newFakeMedia(), clock: &clock{}}
	if cfg.Now == nil {
		cfg.Now = e.clock.Now
	}
	if cfg.Settle == 0 {
		cfg.Settle = time.Millisecond
	}
	e.cfg = cfg
	var m call.Media = e.media
	if cfg.UDPPort == -1 { // no media plane at all
		m = nil
	}
	e.p = call.NewWith(cfg, m)
	e.k = plugintest.New(t, e.p)
	e.k.SetClock(cfg.Now) // the log's times are the plugin's clock's
	for _, u := range []struct {
		company, id, role string
		video             bool
	}{
		{acme, "alice", "plus", true}, {acme, "bob", "basic", true}, {acme, "carol", "basic", true},
		{acme, "frank", "basic", true}, {acme, "erin", "plus", false}, {acme, "dave", "basic", true},
		{other, "olga", "plus", true},
	} {
		e.user("user.created", u.company, obj{"user_id": u.id, "role": u.role, "can_video": u.video, "active": true})
	}
	e.user("user.deactivated", acme, obj{"user_id": "dave"})
	return e
}

// restart starts a new activation of the plugin on the same log: its
// state rebuilt from the log.
func (e *env) restart() {
	e.t.Helper()
	e.p.Stop(context.Background()) // as a crash would end it; plugintest drops the old one without
	e.activate()
}

// abortRestart is restart after the host killed the activation: Abort,
// not Stop, and the media plane kept.
func (e *env) abortRestart() {
	e.t.Helper()
	e.p.Abort(context.Background())
	e.activate()
}

func (e *env) activate() {
	e.t.Helper()
	fresh := call.NewWith(e.cfg, e.media)
	if err := e.k.Restart(context.Background(), fresh); err != nil {
		e.t.Fatal(err)
	}
	e.p = fresh
}

// user injects a kernel user event.
func (e *env) user(typ, company string, payload obj) {
	e.t.Helper()
	_, err := e.k.InjectAs(context.Background(), company, "apikey:"+company, plugins.NewEvent{
		Type: typ, Stream: "user/" + company + "/" + payload["user_id"].(string), Payload: mustJSON(payload),
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// run executes a client method as the session does: the stream from the
// manifest's template, the user as actor, the device.
func (e *env) run(company, actor, device, name string, params obj) ([]plugins.Event, error) {
	e.t.Helper()
	p := mustJSON(params)
	var tmpl string
	for _, c := range e.p.Manifest().Client {
		if c.Name == name {
			tmpl = c.Stream
		}
	}
	stream, err := plugins.ExpandStream(tmpl, company, actor, p)
	if err != nil {
		return nil, err
	}
	return e.k.Execute(context.Background(), plugins.Command{Name: name, Stream: stream, Company: company, Actor: actor, Device: device, Payload: p})
}

// ok runs a command that must succeed.
func (e *env) ok(actor, device, name string, params obj) []plugins.Event {
	e.t.Helper()
	evs, err := e.run(acme, actor, device, name, params)
	if err != nil {
		e.t.Fatalf("%s (%s) %s %s: %v", actor, device, name, mustJSON(params), err)
	}
	return evs
}

// fails runs a command that must be refused with code.
func (e *env) fails(code plugins.Code, actor, device, name string, params obj) {
	e.t.Helper()
	_, err := e.run(acme, actor, device, name, params)
	if got := plugins.AsCoded(err); got == nil || got.Code != code {
		e.t.Errorf("%s (%s) %s %s: %v, want %s", actor, device, name, mustJSON(params), err, code)
	}
}

// create has alice call bob from device a1 and returns the call id.
func (e *env) create(caller, device, callee string, options obj) string {
	e.t.Helper()
	evs := e.ok(caller, device, call.CmdCreate, obj{"users": []string{callee}, "options": options})
	if len(evs) != 1 || evs[0].Type != call.EvCreated {
		e.t.Fatalf("createCall decided %+v", evs)
	}
	return decode[call.CallCreated](e.t, evs[0].Payload).CallID
}

// view is the call as actor sees it.
func (e *env) view(company, actor, callID string) call.CallView {
	e.t.Helper()
	ans, err := e.k.Query(context.Background(), plugins.Query{Name: call.QueryGet, Company: company, Actor: actor, Payload: mustJSON(obj{"callId": callID})})
	if err != nil {
		e.t.Fatalf("call.get %s as %s: %v", callID, actor, err)
	}
	return decode[call.CallView](e.t, ans)
}

// status waits until the call's status is want (the scheduler's
// transitions are asynchronous) and returns the view.
func (e *env) status(callID, want string) call.CallView {
	e.t.Helper()
	var v call.CallView
	eventually(e.t, func() bool { v = e.view(acme, "apikey:"+acme, callID); return v.Status == want }, "call %s %s", callID, want)
	return v
}

// last returns the last appended event of type typ.
func (e *env) last(typ string) plugins.Event {
	e.t.Helper()
	evs := e.k.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type == typ {
			return evs[i]
		}
	}
	e.t.Fatalf("no %s event in %d events", typ, len(evs))
	return plugins.Event{}
}

// published returns the ephemeral events of type typ published so far.
func (e *env) published(typ string) []plugins.NewEvent {
	var out []plugins.NewEvent
	for _, p := range e.k.Published() {
		if p.Type == typ {
			out = append(out, p)
		}
	}
	return out
}

// connect plays both participants' media coming up and waits for the call
// to be connected.
func (e *env) connect(callID string, devices map[string]string) {
	e.t.Helper()
	for u, d := range devices {
		e.media.state(callID, u, d, "connected")
	}
	e.status(callID, call.StatusConnected)
}

// answeredWithMedia is a call from alice (a1) to bob, answered on b1,
// both devices' media offered.
func (e *env) answeredWithMedia() string {
	e.t.Helper()
	id := e.create("alice", "a1", "bob", obj{})
	e.ok("bob", "b1", call.CmdAnswer, obj{"callId": id})
	e.ok("alice", "a1", call.CmdMediaOffer, obj{"callId": id, "sdp": "o"})
	e.ok("bob", "b1", call.CmdMediaOffer, obj{"callId": id, "sdp": "o"})
	return id
}

// linkCallWithMedia is the call of a new room of alice's and bob's:
// bob opened his link on lb0, alice hers on la0, both offered media.
func (e *env) linkCallWithMedia() (room, id string) {
	e.t.Helper()
	room = e.room(pair("alice", "bob"))
	evs := e.ok("bob", "lb0", call.CmdRoomJoin, obj{"roomId": room})
	id = decode[call.CallCreated](e.t, evs[0].Payload).CallID
	e.ok("bob", "lb0", call.CmdMediaOffer, obj{"callId": id, "sdp": "o"})
	e.ok("alice", "la0", call.CmdRoomJoin, obj{"roomId": room})
	e.ok("alice", "la0", call.CmdMediaOffer, obj{"callId": id, "sdp": "o"})
	return room, id
}

func eventually(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func decode[T any](t testing.TB, data json.RawMessage) T {
	t.Helper()
	return sdkapitest.Decode[T](t, data)
}

var mustJSON = sdkapitest.MustJSON

func codeOf(err error) plugins.Code {
	var c *plugins.Error
	if errors.As(err, &c) {
		return c.Code
	}
	return ""
}
