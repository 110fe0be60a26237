package chat_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/chat"
	"github.com/parleyhq/parley/plugins/plugintest"
)

const company = "acme"

// env is a chat plugin on the in-memory kernel, with users alice, bob,
// carol and erin (active) and dave (deactivated) in company acme, and
// alice and olga in company other.
type env struct {
	t   *testing.T
	ctx context.Context
	k   *plugintest.Kernel
	p   plugins.Plugin
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, chat.New())
}

func newEnvWith(t *testing.T, p plugins.Plugin) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), p: p}
	e.k = plugintest.New(t, p)
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		e.userEvent(company, "user.created", u)
	}
	e.userEvent(company, "user.deactivated", "dave")
	e.userEvent("other", "user.created", "alice")
	e.userEvent("other", "user.created", "olga")
	return e
}

// userEvent injects a kernel user event the way the directory writes it.
func (e *env) userEvent(co, typ, id string) {
	e.t.Helper()
	payload := fmt.Sprintf(`{"user_id":%q}`, id)
	if typ == "user.created" || typ == "user.updated" {
		payload = fmt.Sprintf(`{"user_id":%q,"role":"basic","can_video":true,"active":true}`, id)
	}
	if _, err := e.k.InjectAs(e.ctx, co, "kernel", plugins.NewEvent{Type: typ, Stream: "user/" + co + "/" + id, Audience: []string{id}, Payload: json.RawMessage(payload)}); err != nil {
		e.t.Fatal(err)
	}
}

func raw(params any) json.RawMessage {
	switch v := params.(type) {
	case string:
		return json.RawMessage(v)
	case json.RawMessage:
		return v
	}
	b, err := json.Marshal(params)
	if err != nil {
		panic(err)
	}
	return b
}

type obj = map[string]any

// clientMethod returns the manifest's client method of that name.
func clientMethod(t testing.TB, name string) plugins.ClientMethod {
	for _, c := range chat.New().Manifest().Client {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no client method %s", name)
	return plugins.ClientMethod{}
}

// do runs a command as the session would: on the stream its client
// method's template names, in company acme.
func (e *env) do(actor, name string, params any) ([]plugins.Event, error) {
	return e.doIn(company, actor, name, params)
}

func (e *env) doIn(co, actor, name string, params any) ([]plugins.Event, error) {
	e.t.Helper()
	payload := raw(params)
	stream, err := plugins.ExpandStream(clientMethod(e.t, name).Stream, co, actor, payload)
	if err != nil {
		return nil, err
	}
	return e.k.Execute(e.ctx, plugins.Command{Name: name, Stream: stream, Company: co, Actor: actor, Payload: payload})
}

func (e *env) must(actor, name string, params any) []plugins.Event {
	e.t.Helper()
	evs, err := e.do(actor, name, params)
	if err != nil {
		e.t.Fatalf("%s %s %s: %v", actor, name, raw(params), err)
	}
	return evs
}

func (e *env) ask(actor, name string, params any) (json.RawMessage, error) {
	return e.k.Query(e.ctx, plugins.Query{Name: name, Company: company, Actor: actor, Payload: raw(params)})
}

func askAs[T any](e *env, actor, name string, params any) (T, error) {
	e.t.Helper()
	var v T
	ans, err := e.ask(actor, name, params)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(ans, &v); err != nil {
		e.t.Fatalf("%s answer %s: %v", name, ans, err)
	}
	return v, nil
}

func (e *env) channels(actor string) []chat.ChannelView {
	e.t.Helper()
	a, err := askAs[chat.ChannelsAnswer](e, actor, chat.QueryChannels, obj{})
	if err != nil {
		e.t.Fatalf("channels of %s: %v", actor, err)
	}
	return a.Channels
}

func (e *env) fetch(actor string, params obj) (chat.FetchAnswer, error) {
	e.t.Helper()
	return askAs[chat.FetchAnswer](e, actor, chat.QueryMessages, params)
}

// addChannel opens the channel between a and b and returns its id.
func (e *env) addChannel(a, b string) string {
	e.t.Helper()
	evs := e.must(a, chat.CmdChannelAdd, obj{"userId": b})
	if len(evs) != 1 {
		e.t.Fatalf("add %s-%s: %d events", a, b, len(evs))
	}
	var added chat.ChannelAdded
	if err := json.Unmarshal(evs[0].Payload, &added); err != nil {
		e.t.Fatal(err)
	}
	return added.ChannelID
}

// opened returns the event of that seq as a plugin reads it from the log.
func (e *env) opened(seq uint64) plugins.Event {
	e.t.Helper()
	evs, err := e.k.ReadLog(e.ctx, seq, 1)
	if err != nil || len(evs) != 1 {
		e.t.Fatalf("read seq %d: %v %v", seq, evs, err)
	}
	return evs[0]
}

// send sends a message and returns it as the log holds it.
func (e *env) send(actor, channelID, text string) chat.Message {
	e.t.Helper()
	evs := e.must(actor, chat.CmdMessageSend, obj{"channelId": channelID, "text": text})
	if len(evs) != 1 {
		e.t.Fatalf("send: %d events", len(evs))
	}
	var m chat.Message
	if err := json.Unmarshal(e.opened(evs[0].Seq).Payload, &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) head() uint64 {
	evs := e.k.Events()
	return evs[len(evs)-1].Seq
}

func codeOf(err error) plugins.Code {
	if err == nil {
		return ""
	}
	return plugins.AsCoded(err).Code
}

func ids(ms []chat.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.MessageID
	}
	return out
}

var isoDate = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestManifest(t *testing.T) {
	m := chat.New().Manifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.ID != "parley.chat" || !m.Allows(plugins.PermRead) || !m.Allows(plugins.PermKeys) || m.Allows(plugins.PermAppend) {
		t.Fatalf("manifest %+v", m)
	}
	want := map[string]string{
		chat.CmdChannelAdd:    "chat/{company}/channels",
		chat.CmdChannelRemove: "chat/{company}/channels",
		chat.CmdMessageSend:   "chat/{company}/ch/{params.channelId}",
		chat.CmdChannelRead:   "chat/{company}/ch/{params.channelId}",
		chat.QueryChannels:    "",
		chat.QueryChannelGet:  "",
		chat.QueryMessages:    "",
	}
	if len(m.Client) != len(want) {
		t.Fatalf("client methods %v", m.Client)
	}
	for _, c := range m.Client {
		if s, ok := want[c.Name]; !ok || s != c.Stream {
			t.Errorf("client method %+v", c)
		}
	}
}

func TestAddChannel(t *testing.T) {
	e := newEnv(t)
	evs := e.must("bob", chat.CmdChannelAdd, obj{"userId": "alice"})
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[0]
	var added chat.ChannelAdded
	if err := json.Unmarshal(ev.Payload, &added); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "channel.added" || ev.Stream != "chat/acme/channels" || ev.Company != company || ev.Actor != "bob" ||
		!slices.Equal(ev.Audience, []string{"alice", "bob"}) || !slices.Equal(added.Participants, []string{"alice", "bob"}) ||
		!strings.HasPrefix(added.ChannelID, "ch_") || !isoDate.MatchString(added.CreationDate) {
		t.Fatalf("event %+v payload %+v", ev, added)
	}
	// Adding it again, from either side, decides nothing.
	for _, a := range [][2]string{{"bob", "alice"}, {"alice", "bob"}} {
		if evs, err := e.do(a[0], chat.CmdChannelAdd, obj{"userId": a[1]}); err != nil || len(evs) != 0 {
			t.Fatalf("again %v: %v %v", a, evs, err)
		}
	}
	// Channel ids are unique.
	if other := e.addChannel("alice", "carol"); other == added.ChannelID {
		t.Fatal("two channels share an id")
	}

	e.userEvent(company, "user.created", "frank")
	e.userEvent(company, "user.deleted", "frank")
	for _, c := range []struct {
		name, actor string
		params      any
		want        plugins.Code
	}{
		{"no userId", "alice", obj{}, chat.CodeValidation},
		{"empty payload", "alice", "", chat.CodeValidation},
		{"not an object", "alice", `[1]`, chat.CodeValidation},
		{"userId not a string", "alice", obj{"userId": 7}, chat.CodeValidation},
		{"bad userId", "alice", obj{"userId": "a b"}, chat.CodeValidation},
		{"yourself", "alice", obj{"userId": "alice"}, chat.CodeValidation},
		{"unknown user", "alice", obj{"userId": "zed"}, chat.CodeCreateChannel},
		{"deactivated user", "alice", obj{"userId": "dave"}, chat.CodeCreateChannel},
		{"deleted user", "alice", obj{"userId": "frank"}, chat.CodeCreateChannel},
		{"user of another company", "alice", obj{"userId": "olga"}, chat.CodeCreateChannel},
		{"unknown actor", "zed", obj{"userId": "alice"}, chat.CodeAuthentication},
		{"deactivated actor", "dave", obj{"userId": "alice"}, chat.CodeAuthentication},
		{"operator", plugins.ActorOperator, obj{"userId": "alice"}, chat.CodeAuthentication},
		{"plugin", "plugin:x.y", obj{"userId": "alice"}, chat.CodeAuthentication},
		{"another company's API", "apikey:other", obj{"userId": "alice", "asUser": "bob"}, chat.CodeAuthentication},
	} {
		evs, err := e.do(c.actor, chat.CmdChannelAdd, c.params)
		if codeOf(err) != c.want || len(evs) != 0 {
			t.Errorf("%s: %v %v, want %s", c.name, evs, err, c.want)
		}
	}
	// A command on another stream than its own is refused: it would not be serialised.
	_, err := e.k.Execute(e.ctx, plugins.Command{Name: chat.CmdChannelAdd, Stream: "chat/acme/elsewhere", Company: company, Actor: "erin", Payload: raw(obj{"userId": "bob"})})
	if codeOf(err) != chat.CodeValidation {
		t.Fatalf("wrong stream: %v", err)
	}
	// Users are per company: alice of company other has no channel.
	ans, err := e.k.Query(e.ctx, plugins.Query{Name: chat.QueryChannels, Company: "other", Actor: "alice", Payload: raw(obj{})})
	if err != nil || string(ans) != `{"channels":[]}` {
		t.Fatalf("other company: %s %v", ans, err)
	}
}

func TestGetChannelAndList(t *testing.T) {
	e := newEnv(t)
	ab := e.addChannel("alice", "bob")
	ac := e.addChannel("carol", "alice")
	got, err := askAs[chat.ChannelView](e, "bob", chat.QueryChannelGet, obj{"userId": "alice"})
	if err != nil || got.ChannelID != ab || !slices.Equal(got.Participants, []string{"alice", "bob"}) || got.UnreadMessages != 0 || got.LastMessage != nil || !isoDate.MatchString(got.CreationDate) {
		t.Fatalf("get: %+v %v", got, err)
	}
	for _, c := range []struct {
		actor  string
		params any
		want   plugins.Code
	}{
		{"bob", obj{"userId": "carol"}, chat.CodeChannelNotFound},
		{"bob", obj{"userId": "zed"}, chat.CodeChannelNotFound},
		{"bob", obj{}, chat.CodeValidation},
		{"bob", obj{"userId": "bob"}, chat.CodeValidation},
		{"zed", obj{"userId": "alice"}, chat.CodeAuthentication},
	} {
		if _, err := e.ask(c.actor, chat.QueryChannelGet, c.params); codeOf(err) != c.want {
			t.Errorf("get %s %v: %v, want %s", c.actor, c.params, err, c.want)
		}
	}
	// Most recently active first: creation, then messages.
	order := func(actor string) []string {
		var out []string
		for _, c := range e.channels(actor) {
			out = append(out, c.ChannelID)
		}
		return out
	}
	if got := order("alice"); !slices.Equal(got, []string{ac, ab}) {
		t.Fatalf("alice's channels %v, want %v", got, []string{ac, ab})
	}
	m := e.send("bob", ab, "hi")
	chans := e.channels("alice")
	if got := order("alice"); !slices.Equal(got, []string{ab, ac}) || chans[0].LastMessage == nil || *chans[0].LastMessage != m {
		t.Fatalf("after a message: %v %+v", got, chans[0])
	}
	if got := order("carol"); !slices.Equal(got, []string{ac}) {
		t.Fatalf("carol's channels %v", got)
	}
	if got := order("erin"); len(got) != 0 {
		t.Fatalf("erin's channels %v", got)
	}
}

func TestSendMessage(t *testing.T) {
	e := newEnv(t)
	ch := e.addChannel("alice", "bob")
	evs := e.must("alice", chat.CmdMessageSend, obj{"channelId": ch, "text": "hello"})
	ev := evs[0]
	if ev.Type != "channel.message.sent" || ev.Stream != "chat/acme/ch/"+ch || !slices.Equal(ev.Audience, []string{"alice", "bob"}) {
		t.Fatalf("event %+v", ev)
	}
	var m chat.Message
	if err := json.Unmarshal(e.opened(ev.Seq).Payload, &m); err != nil {
		t.Fatal(err)
	}
	if m.ChannelID != ch || m.Sender != "alice" || m.Text != "hello" || m.MessageID == "" || !isoDate.MatchString(m.CreationDate) {
		t.Fatalf("message %+v", m)
	}
	// Ids are unique and sort in send order.
	prev := m.MessageID
	for i := range 12 {
		next := e.send([]string{"alice", "bob"}[i%2], ch, fmt.Sprint("m", i)).MessageID
		if next <= prev {
			t.Fatalf("message id %q after %q", next, prev)
		}
		prev = next
	}
	long := strings.Repeat("é", chat.MaxTextRunes)
	if got := e.send("bob", ch, long); got.Text != long {
		t.Fatal("a 4,096-character text was changed")
	}
	other := e.addChannel("carol", "erin")
	for _, c := range []struct {
		name, actor string
		params      any
		want        plugins.Code
	}{
		{"empty text", "alice", obj{"channelId": ch, "text": ""}, chat.CodeValidation},
		{"no text", "alice", obj{"channelId": ch}, chat.CodeValidation},
		{"text too long", "alice", obj{"channelId": ch, "text": long + "x"}, chat.CodeValidation},
		{"text not a string", "alice", obj{"channelId": ch, "text": 1}, chat.CodeValidation},
		{"no channelId", "alice", obj{"text": "x"}, chat.CodeValidation},
		{"unknown channel", "alice", obj{"channelId": "ch_nope", "text": "x"}, chat.CodeChannelNotExists},
		{"not a participant", "carol", obj{"channelId": ch, "text": "x"}, chat.CodeChannelNotExists},
		{"someone else's channel", "alice", obj{"channelId": other, "text": "x"}, chat.CodeChannelNotExists},
		{"unknown actor", "zed", obj{"channelId": ch, "text": "x"}, chat.CodeAuthentication},
	} {
		evs, err := e.do(c.actor, chat.CmdMessageSend, c.params)
		if codeOf(err) != c.want || len(evs) != 0 {
			t.Errorf("%s: %v %v, want %s", c.name, evs, err, c.want)
		}
	}
	// The channel's id in the payload must be the stream's.
	_, err := e.k.Execute(e.ctx, plugins.Command{Name: chat.CmdMessageSend, Stream: "chat/acme/ch/" + other, Company: company, Actor: "alice", Payload: raw(obj{"channelId": ch, "text": "x"})})
	if codeOf(err) != chat.CodeValidation {
		t.Fatalf("stream of another channel: %v", err)
	}
}

// TestOutsiders: a user who does not take part in a channel can neither
// read, send, fetch, remove nor mark it read, and learns nothing of it.
func TestOutsiders(t *testing.T) {
	e := newEnv(t)
	ch := e.addChannel("alice", "bob")
	m := e.send("alice", ch, "private")
	before := len(e.k.Events())
	if _, err := e.do("carol", chat.CmdMessageSend, obj{"channelId": ch, "text": "x"}); codeOf(err) != chat.CodeChannelNotExists {
		t.Errorf("send: %v", err)
	}
	if _, err := e.fetch("carol", obj{"channelId": ch}); codeOf(err) != chat.CodeChannelNotExists {
		t.Errorf("fetch: %v", err)
	}
	if _, err := e.do("carol", chat.CmdChannelRead, obj{"channelId": ch, "messageId": m.MessageID}); codeOf(err) != chat.CodeChannelNotExists {
		t.Errorf("read: %v", err)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := e.do("carol", chat.CmdChannelRemove, obj{"userId": u}); codeOf(err) != chat.CodeDeleteChannel {
			t.Errorf("remove with %s: %v", u, err)
		}
		if _, err := e.ask("carol", chat.QueryChannelGet, obj{"userId": u}); codeOf(err) != chat.CodeChannelNotFound {
			t.Errorf("get with %s: %v", u, err)
		}
	}
	if len(e.channels("carol")) != 0 || len(e.k.Events()) != before {
		t.Fatal("an outsider changed or saw something")
	}
	if got, err := e.fetch("bob", obj{"channelId": ch}); err != nil || len(got.Messages) != 1 {
		t.Fatalf("the channel is intact: %+v %v", got, err)
	}
}

func TestFetchPaging(t *testing.T) {
	e := newEnv(t)
	ch := e.addChannel("alice", "bob")
	var all []string
	for i := range 45 {
		all = append(all, e.send([]string{"alice", "bob"}[i%3%2], ch, fmt.Sprint("message ", i)).MessageID)
	}
	page := func(params obj) chat.FetchAnswer {
		t.Helper()
		params["channelId"] = ch
		a, err := e.fetch("alice", params)
		if err != nil {
			t.Fatalf("fetch %v: %v", params, err)
		}
		return a
	}
	check := func(a chat.FetchAnswer, lo, hi int, anchor string) {
		t.Helper()
		if !slices.Equal(ids(a.Messages), all[lo:hi]) || a.Anchor != anchor {
			t.Fatalf("page %v anchor %q, want messages %d..%d anchor %q", ids(a.Messages), a.Anchor, lo, hi-1, anchor)
		}
	}
	// Backwards (the default) from the newest, by 20 (the default).
	a := page(obj{})
	check(a, 25, 45, all[25])
	a = page(obj{"anchor": a.Anchor, "direction": "backwards"})
	check(a, 5, 25, all[5])
	a = page(obj{"anchor": a.Anchor})
	check(a, 0, 5, "")
	for i, m := range a.Messages {
		if m.Text != fmt.Sprint("message ", i) || m.ChannelID != ch {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	// Afterward from the oldest.
	a = page(obj{"direction": "afterward", "messagesToFetch": 20})
	check(a, 0, 20, all[19])
	a = page(obj{"direction": "afterward", "anchor": a.Anchor})
	check(a, 20, 40, all[39])
	a = page(obj{"direction": "afterward", "anchor": a.Anchor})
	check(a, 40, 45, "")
	// Edges and spellings.
	check(page(obj{"anchor": all[0]}), 0, 0, "")
	check(page(obj{"anchor": all[44], "direction": "afterward"}), 45, 45, "")
	check(page(obj{"anchor": []string{all[10]}, "messagesToFetch": 3}), 7, 10, all[7])
	check(page(obj{"anchor": all[10], "messageToFetch": 2, "direction": "afterwards"}), 11, 13, all[12])
	check(page(obj{"messagesToFetch": 100}), 0, 45, "")
	check(page(obj{"messagesToFetch": 1, "anchor": all[1]}), 0, 1, "")

	for _, c := range []struct {
		params obj
		want   plugins.Code
	}{
		{obj{"channelId": ch, "messagesToFetch": 0}, chat.CodeValidation},
		{obj{"channelId": ch, "messagesToFetch": 101}, chat.CodeValidation},
		{obj{"channelId": ch, "messagesToFetch": -1}, chat.CodeValidation},
		{obj{"channelId": ch, "messagesToFetch": "5"}, chat.CodeValidation},
		{obj{"channelId": ch, "direction": "sideways"}, chat.CodeValidation},
		{obj{"channelId": ch, "anchor": 5}, chat.CodeValidation},
		{obj{"channelId": ch, "anchor": []string{"a", "b"}}, chat.CodeValidation},
		{obj{}, chat.CodeValidation},
		{obj{"channelId": ch, "anchor": "msg_nope"}, chat.CodeMessageAnchor},
		{obj{"channelId": "ch_nope"}, chat.CodeChannelNotExists},
	} {
		if _, err := e.fetch("alice", c.params); codeOf(err) != c.want {
			t.Errorf("fetch %v: %v, want %s", c.params, err, c.want)
		}
	}
	// An anchor of another channel is not an anchor here.
	other := e.addChannel("alice", "carol")
	m := e.send("carol", other, "x")
	if _, err := e.fetch("alice", obj{"channelId": ch, "anchor": m.MessageID}); codeOf(err) != chat.CodeMessageAnchor {
		t.Errorf("anchor of another channel: %v", err)
	}
}

// TestFetchStableUnderConcurrentSends: paging backwards from an anchor
// while messages keep arriving yields exactly the older messages, and
// paging afterward then yields exactly the new ones.
func TestFetchStableUnderConcurrentSends(t *testing.T) {
	e := newEnv(t)
	ch := e.addChannel("alice", "bob")
	var old []string
	for i := range 30 {
		old = append(old, e.send("alice", ch, fmt.Sprint("old ", i)).MessageID)
	}
	first, err := e.fetch("bob", obj{"channelId": ch, "messagesToFetch": 10})
	if err != nil || !slices.Equal(ids(first.Messages), old[20:]) {
		t.Fatalf("first page: %v %v", ids(first.Messages), err)
	}
	var wg sync.WaitGroup
	var sent []string
	wg.Go(func() {
		for i := range 60 {
			evs, err := e.do("bob", chat.CmdMessageSend, obj{"channelId": ch, "text": fmt.Sprint("new ", i)})
			if err != nil {
				t.Error(err)
				return
			}
			var m chat.Message
			if evs, err := e.k.ReadLog(e.ctx, evs[0].Seq, 1); err == nil && json.Unmarshal(evs[0].Payload, &m) == nil {
				sent = append(sent, m.MessageID)
			}
		}
	})
	var got []string
	for anchor := first.Anchor; anchor != ""; {
		a, err := e.fetch("bob", obj{"channelId": ch, "messagesToFetch": 3, "anchor": anchor})
		if err != nil {
			t.Fatal(err)
		}
		got = append(ids(a.Messages), got...)
		anchor = a.Anchor
		if _, err := e.fetch("alice", obj{"channelId": ch}); err != nil { // the newest, while they change
			t.Fatal(err)
		}
	}
	wg.Wait()
	if !slices.Equal(got, old[:20]) {
		t.Fatalf("paged backwards %v, want %v", got, old[:20])
	}
	var after []string
	for anchor := old[29]; ; {
		a, err := e.fetch("alice", obj{"channelId": ch, "messagesToFetch": 7, "anchor": anchor, "direction": "afterward"})
		if err != nil {
			t.Fatal(err)
		}
		after = append(after, ids(a.Messages)...)
		if a.Anchor == "" {
			break
		}
		anchor = a.Anchor
	}
	if !slices.Equal(after, sent) || len(sent) != 60 {
		t.Fatalf("paged afterward %d messages, sent %d", len(after), len(sent))
	}
}

func unread(e *env, actor, ch string) int {
	e.t.Helper()
	for _, c := range e.channels(actor) {
		if c.ChannelID == ch {
			return c.UnreadMessages
		}
	}
	e.t.Fatalf("%s has no channel %s", actor, ch)
	return 0
}

// TestUnreadAndReadCursors: unread counts follow the read cursor across
// two devices of the same user, and the cursor never moves backwards.
func TestUnreadAndReadCursors(t *testing.T) {
	e := newEnv(t)
	ch := e.addChannel("alice", "bob")
	var m []chat.Message
	for i := range 3 {
		m = append(m, e.send("bob", ch, fmt.Sprint("b", i)))
	}
	mine := e.send("alice", ch, "a0")
	if unread(e, "alice", ch) != 3 || unread(e, "bob", ch) != 1 {
		t.Fatalf("unread alice %d bob %d", unread(e, "alice", ch), unread(e, "bob", ch))
	}
	// Device 1 reads the first message.
	evs := e.must("alice", chat.CmdChannelRead, obj{"channelId": ch, "messageId": m[0].MessageID})
	var r chat.ChannelRead
	if len(evs) != 1 || json.Unmarshal(evs[0].Payload, &r) != nil || evs[0].Type != "channel.read" ||
		!slices.Equal(evs[0].Audience, []string{"alice"}) || r != (chat.ChannelRead{ChannelID: ch, UserID: "alice", MessageID: m[0].MessageID}) {
		t.Fatalf("read event %+v %+v", evs, r)
	}
	if unread(e, "alice", ch) != 2 {
		t.Fatalf("after reading one: %d", unread(e, "alice", ch))
	}
	// Device 2 reads up to the last of bob's; device 1, behind, marks the second: nothing moves back.
	e.must("alice", chat.CmdChannelRead, obj{"channelId": ch, "messageId": m[2].MessageID})
	if evs := e.must("alice", chat.CmdChannelRead, obj{"channelId": ch, "messageId": m[1].MessageID}); len(evs) != 0 {
		t.Fatalf("a cursor moved backwards: %+v", evs)
	}
	if evs := e.must("alice", chat.CmdChannelRead, obj{"channelId": ch, "messageId": m[2].MessageID}); len(evs) != 0 {
		t.Fatalf("reading the same message again: %+v", evs)
	}
	if unread(e, "alice", ch) != 0 || unread(e, "bob", ch) != 1 {
		t.Fatalf("unread alice %d bob %d", unread(e, "alice", ch), unread(e, "bob", ch))
	}
	// Reading one's own message moves the cursor too; bob's count is his own.
	e.must("alice", chat.CmdChannelRead, obj{"channelId": ch, "messageId": mine.MessageID})
	e.send("bob", ch, "b3")
	if unread(e, "alice", ch) != 1 {
		t.Fatalf("a new message: %d", unread(e, "alice", ch))
	}
	e.must("bob", chat.CmdChannelRead, obj{"channelId": ch, "messageId": mine.MessageID})
	if unread(e, "bob", ch) != 0 {
		t.Fatalf("bob after reading: %d", unread(e, "bob", ch))
	}
	other := e.addChannel("alice", "carol")
	o := e.send("carol", other, "x")
	for _, c := range []struct {
		params obj
		want   plugins.Code
	}{
		{obj{"channelId": ch}, chat.CodeValidation},
		{obj{"channelId": ch, "messageId": ""}, chat.CodeValidation},
		{obj{"channelId": ch, "messageId": "msg_nope"}, chat.CodeMessageAnchor},
		{obj{"channelId": ch, "messageId": o.MessageID}, chat.CodeMessageAnchor},
		{obj{"channelId": "ch_nope", "messageId": o.MessageID}, chat.CodeChannelNotExists},
	} {
		if _, err := e.do("alice", chat.CmdChannelRead, c.params); codeOf(err) != c.want {
			t.Errorf("read %v: %v, want %s", c.params, err, c.want)
		}
	}
}

// answers collects what users see, to compare two plugin instances.
func answers(e *env) string {
	var b strings.Builder
	for _, u := range []string{"alice", "bob", "carol", "erin"} {
		chans := e.channels(u)
		js, _ := json.Marshal(chans)
		fmt.Fprintf(&b, "%s: %s\n", u, js)
		for _, c := range chans {
			for _, dir := range []string{"backwards", "afterward"} {
				a, err := e.ask(u, chat.QueryMessages, obj{"channelId": c.ChannelID, "messagesToFetch": 100, "direction": dir})
				fmt.Fprintf(&b, "  %s %s: %s %v\n", c.ChannelID, dir, a, err)
			}
		}
	}
	return b.String()
}

// TestRestartRebuildsAndIgnoresRedelivery: a fresh instance over the same
// log answers the same, and events delivered again change nothing.
func TestRestartRebuildsAndIgnoresRedelivery(t *testing.T) {
	e := newEnv(t)
	ab := e.addChannel("alice", "bob")
	ac := e.addChannel("alice", "carol")
	be := e.addChannel("bob", "erin")
	var last chat.Message
	for i := range 7 {
		last = e.send([]string{"alice", "bob"}[i%2], ab, fmt.Sprint("ab ", i))
		e.send("carol", ac, fmt.Sprint("ac ", i))
	}
	e.send("erin", be, "gone soon")
	e.must("alice", chat.CmdChannelRead, obj{"channelId": ab, "messageId": last.MessageID})
	e.must("bob", chat.CmdChannelRemove, obj{"userId": "erin"})
	want := answers(e)
	if unread(e, "alice", ab) != 0 || unread(e, "bob", ab) != 4 || unread(e, "alice", ac) != 7 {
		t.Fatalf("unread before the restart:\n%s", want)
	}

	fresh := chat.New()
	if err := e.k.Restart(e.ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if got := answers(e); got != want {
		t.Fatalf("after a restart:\n%s\nwant:\n%s", got, want)
	}
	// At least once: the whole log again, through delivery.
	all, err := e.k.ReadLog(e.ctx, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.(plugins.EventApplier).ApplyEvents(e.ctx, all); err != nil {
		t.Fatal(err)
	}
	if got := answers(e); got != want {
		t.Fatalf("after redelivery:\n%s\nwant:\n%s", got, want)
	}
	// And it carries on: cursors and ids continue.
	next := e.send("bob", ab, "after the restart")
	if next.MessageID <= last.MessageID || unread(e, "alice", ab) != 1 {
		t.Fatalf("after the restart: %+v, alice's unread %d", next, unread(e, "alice", ab))
	}
}

func TestRemoveChannelErasesMessages(t *testing.T) {
	e := newEnv(t)
	ch := e.addChannel("alice", "bob")
	var seqs []uint64
	for i := range 3 {
		evs := e.must("alice", chat.CmdMessageSend, obj{"channelId": ch, "text": fmt.Sprint("secret ", i)})
		seqs = append(seqs, evs[0].Seq)
	}
	if ev := e.opened(seqs[0]); ev.Erased || !strings.Contains(string(ev.Payload), "secret 0") {
		t.Fatalf("before removal: %+v", ev)
	}
	evs := e.must("bob", chat.CmdChannelRemove, obj{"userId": "alice"})
	var removed chat.ChannelRemoved
	if len(evs) != 2 || evs[0].Type != "channel.removed" || evs[0].Stream != "chat/acme/channels" ||
		evs[1].Type != chat.EvChannelClosed || evs[1].Stream != "chat/acme/ch/"+ch || len(evs[1].Audience) != 0 ||
		!slices.Equal(evs[0].Audience, []string{"alice", "bob"}) || json.Unmarshal(evs[0].Payload, &removed) != nil ||
		removed.ChannelID != ch || !slices.Equal(removed.Participants, []string{"alice", "bob"}) {
		t.Fatalf("removed: %+v", evs)
	}
	for _, s := range seqs {
		if ev := e.opened(s); !ev.Erased || len(ev.Payload) != 0 || ev.Type != "channel.message.sent" {
			t.Fatalf("message %d after removal: %+v", s, ev)
		}
	}
	if _, err := e.fetch("alice", obj{"channelId": ch}); codeOf(err) != chat.CodeChannelNotExists {
		t.Fatalf("fetch after removal: %v", err)
	}
	if _, err := e.do("alice", chat.CmdMessageSend, obj{"channelId": ch, "text": "x"}); codeOf(err) != chat.CodeChannelNotExists {
		t.Fatalf("send after removal: %v", err)
	}
	if _, err := e.ask("alice", chat.QueryChannelGet, obj{"userId": "bob"}); codeOf(err) != chat.CodeChannelNotFound {
		t.Fatalf("get after removal: %v", err)
	}
	if _, err := e.do("alice", chat.CmdChannelRemove, obj{"userId": "bob"}); codeOf(err) != chat.CodeDeleteChannel {
		t.Fatalf("remove again: %v", err)
	}
	for _, c := range []struct {
		params any
		want   plugins.Code
	}{{obj{}, chat.CodeValidation}, {obj{"userId": "alice"}, chat.CodeValidation}, {obj{"userId": "zed"}, chat.CodeDeleteChannel}} {
		if _, err := e.do("alice", chat.CmdChannelRemove, c.params); codeOf(err) != c.want {
			t.Errorf("remove %v: %v, want %s", c.params, err, c.want)
		}
	}
	if len(e.channels("alice")) != 0 || len(e.channels("bob")) != 0 {
		t.Fatal("the channel is still listed")
	}
	// A new channel between them is a new channel, with no history.
	again := e.addChannel("alice", "bob")
	if a, err := e.fetch("bob", obj{"channelId": again}); again == ch || err != nil || len(a.Messages) != 0 {
		t.Fatalf("re-added: %s %+v %v", again, a, err)
	}
	e.send("bob", again, "fresh")
	if ev := e.opened(e.head()); ev.Erased {
		t.Fatal("the new channel's messages are erased")
	}
}

// flakyErase fails EraseKey while fail is set.
type flakyErase struct {
	plugins.Kernel
	mu    sync.Mutex
	fail  bool
	calls []string
}

func (f *flakyErase) EraseKey(ctx context.Context, company, name string) error {
	f.mu.Lock()
	f.calls = append(f.calls, company+" "+name)
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return plugins.Errorf(plugins.CodeUnavailable, "keystore down")
	}
	return f.Kernel.EraseKey(ctx, company, name)
}

func (f *flakyErase) setFail(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = v
}

// flakyChat is the chat plugin calling the kernel through flakyErase.
type flakyChat struct {
	*chat.Plugin
	f *flakyErase
}

func (c *flakyChat) Start(ctx context.Context, k plugins.Kernel) error {
	c.f.Kernel = k
	return c.Plugin.Start(ctx, c.f)
}

// TestErasureIsRepaired: a removal whose erasure failed is erased when the
// event comes again, or when a restart meets it in the log.
func TestErasureIsRepaired(t *testing.T) {
	for _, how := range []string{"redelivery", "restart"} {
		t.Run(how, func(t *testing.T) {
			fc := &flakyChat{Plugin: chat.New().(*chat.Plugin), f: &flakyErase{}}
			e := newEnvWith(t, fc)
			ch := e.addChannel("alice", "bob")
			msg := e.must("alice", chat.CmdMessageSend, obj{"channelId": ch, "text": "secret"})[0].Seq
			fc.f.setFail(true)
			evs, err := e.do("alice", chat.CmdChannelRemove, obj{"userId": "bob"})
			if err == nil || len(evs) != 2 {
				t.Fatalf("the removal's delivery should fail: %v %v", evs, err)
			}
			if e.opened(msg).Erased {
				t.Fatal("erased although the keystore failed")
			}
			fc.f.setFail(false)
			switch how {
			case "redelivery":
				if err := fc.ApplyEvents(e.ctx, []plugins.Event{e.opened(evs[0].Seq)}); err != nil {
					t.Fatal(err)
				}
			case "restart":
				if err := e.k.Restart(e.ctx, chat.New()); err != nil {
					t.Fatal(err)
				}
			}
			if !e.opened(msg).Erased {
				t.Fatal("not erased after the " + how)
			}
			if _, err := e.fetch("alice", obj{"channelId": ch}); codeOf(err) != chat.CodeChannelNotExists {
				t.Fatalf("fetch: %v", err)
			}
		})
	}
}

// TestLateMessageIsErased: a send decided before a removal but appended
// after it (they are on different streams) does not outlive the channel.
func TestLateMessageIsErased(t *testing.T) {
	e := newEnv(t)
	ch := e.addChannel("alice", "bob")
	stream := chat.ChannelStream(company, ch)
	decided, err := e.p.(plugins.CommandHandler).HandleCommand(e.ctx, plugins.Command{
		Name: chat.CmdMessageSend, Stream: stream, Company: company, Actor: "alice", Payload: raw(obj{"channelId": ch, "text": "late"}),
	})
	if err != nil || len(decided) != 1 || decided[0].Seal != chat.KeyName(ch) {
		t.Fatalf("decided %+v %v", decided, err)
	}
	e.must("bob", chat.CmdChannelRemove, obj{"userId": "alice"})
	late := decided[0]
	late.Stream = stream
	evs, err := e.k.InjectAs(e.ctx, company, "alice", late)
	if err != nil && len(evs) == 0 {
		return // the kernel refused to seal under an erased key: nothing outlives the channel
	}
	if err != nil {
		t.Fatal(err)
	}
	if ev := e.opened(evs[0].Seq); !ev.Erased {
		t.Fatalf("the late message is readable: %+v", ev)
	}
}

func TestAdminActsAsUser(t *testing.T) {
	e := newEnv(t)
	api := plugins.ActorAPIKeyPrefix + company
	evs, err := e.do(api, chat.CmdChannelAdd, obj{"userId": "bob", "asUser": "alice"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("add: %v %v", evs, err)
	}
	var added chat.ChannelAdded
	json.Unmarshal(evs[0].Payload, &added)
	ch := added.ChannelID
	evs, err = e.do(api, chat.CmdMessageSend, obj{"channelId": ch, "text": "from the server", "asUser": "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var m chat.Message
	if json.Unmarshal(e.opened(evs[0].Seq).Payload, &m); m.Sender != "alice" {
		t.Fatalf("sender %+v", m)
	}
	list, err := askAs[chat.ChannelsAnswer](e, api, chat.QueryChannels, obj{"asUser": "bob"})
	if err != nil || len(list.Channels) != 1 || list.Channels[0].UnreadMessages != 1 {
		t.Fatalf("bob's channels through the API: %+v %v", list, err)
	}
	page, err := askAs[chat.FetchAnswer](e, api, chat.QueryMessages, obj{"asUser": "bob", "channelId": ch})
	if err != nil || len(page.Messages) != 1 || page.Messages[0] != m {
		t.Fatalf("fetch through the API: %+v %v", page, err)
	}
	if _, err := e.do(api, chat.CmdChannelRead, obj{"asUser": "bob", "channelId": ch, "messageId": m.MessageID}); err != nil || unread(e, "bob", ch) != 0 {
		t.Fatalf("read through the API: %v", err)
	}
	if got, err := askAs[chat.ChannelView](e, api, chat.QueryChannelGet, obj{"asUser": "bob", "userId": "alice"}); err != nil || got.ChannelID != ch {
		t.Fatalf("get through the API: %+v %v", got, err)
	}
	// A deactivated user's channels can still be listed by the company.
	if _, err := e.ask(api, chat.QueryChannels, obj{"asUser": "dave"}); err != nil {
		t.Fatalf("dave's channels: %v", err)
	}
	for _, c := range []struct {
		name   string
		params obj
		want   plugins.Code
	}{
		{"no asUser", obj{"userId": "bob"}, chat.CodeValidation},
		{"bad asUser", obj{"userId": "bob", "asUser": "a b"}, chat.CodeValidation},
		{"unknown asUser", obj{"userId": "bob", "asUser": "zed"}, chat.CodeValidation},
		{"asUser of another company", obj{"userId": "bob", "asUser": "olga"}, chat.CodeValidation},
	} {
		if _, err := e.do(api, chat.CmdChannelRemove, c.params); codeOf(err) != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
	// For a user, asUser means nothing: carol stays carol.
	if _, err := e.fetch("carol", obj{"channelId": ch, "asUser": "alice"}); codeOf(err) != chat.CodeChannelNotExists {
		t.Fatalf("carol as alice: %v", err)
	}
	// Deleted users: the company may act for a deleted participant of the
	// channel it names (to read and remove a channel of two deleted
	// users), for nobody else, and a user actor never.
	e.userEvent(company, "user.deleted", "carol")
	e.userEvent(company, "user.deleted", "bob")
	if _, err := askAs[chat.FetchAnswer](e, api, chat.QueryMessages, obj{"asUser": "bob", "channelId": ch}); err != nil {
		t.Fatalf("fetch as deleted bob, of his channel: %v", err)
	}
	for _, c := range []struct {
		name   string
		params obj
	}{
		{"as deleted carol, not in it", obj{"asUser": "carol", "channelId": ch}},
		{"as deleted bob, without the channel", obj{"asUser": "bob", "channelId": ""}},
	} {
		if _, err := e.ask(api, chat.QueryMessages, c.params); err == nil {
			t.Errorf("fetch %s: answered", c.name)
		}
	}
	if _, err := e.do(api, chat.CmdChannelRemove, obj{"userId": "alice", "asUser": "carol", "channelId": ch}); err == nil {
		t.Fatal("remove as deleted carol, not in the channel: done")
	}
	if _, err := e.fetch("bob", obj{"channelId": ch}); codeOf(err) != chat.CodeAuthentication {
		t.Fatalf("deleted bob himself: %v", err)
	}
	if evs, err := e.do(api, chat.CmdChannelRemove, obj{"userId": "alice", "asUser": "bob", "channelId": ch}); err != nil || len(evs) != 2 {
		t.Fatalf("remove through the API as deleted bob: %v %v", evs, err)
	}
}

// TestChannelByID: chat.channel.get by channelId answers its participants
// and the company's REST API (without asUser too), nobody else; a
// channelId in chat.channel.remove must be the pair's channel.
func TestChannelByID(t *testing.T) {
	e := newEnv(t)
	api := plugins.ActorAPIKeyPrefix + company
	ab := e.addChannel("alice", "bob")
	e.send("alice", ab, "hello")
	for _, c := range []struct {
		name, actor string
		params      obj
		unread      int
	}{
		{"participant", "bob", obj{"channelId": ab}, 1},
		{"sender", "alice", obj{"channelId": ab}, 0},
		{"the API as nobody", api, obj{"channelId": ab}, 0},
		{"the API as a participant", api, obj{"channelId": ab, "asUser": "bob"}, 1},
	} {
		got, err := askAs[chat.ChannelView](e, c.actor, chat.QueryChannelGet, c.params)
		if err != nil || got.ChannelID != ab || !slices.Equal(got.Participants, []string{"alice", "bob"}) || got.UnreadMessages != c.unread || got.LastMessage == nil {
			t.Errorf("%s: %+v %v", c.name, got, err)
		}
	}
	for _, c := range []struct {
		name, actor string
		co          string
		params      obj
		want        plugins.Code
	}{
		{"outsider", "carol", company, obj{"channelId": ab}, chat.CodeChannelNotFound},
		{"the API as an outsider", api, company, obj{"channelId": ab, "asUser": "carol"}, chat.CodeChannelNotFound},
		{"unknown id", api, company, obj{"channelId": "ch_nope"}, chat.CodeChannelNotFound},
		{"both keys", api, company, obj{"channelId": ab, "userId": "bob"}, chat.CodeValidation},
		{"another company's user", "alice", "other", obj{"channelId": ab}, chat.CodeChannelNotFound},
		{"another company's API", "apikey:other", "other", obj{"channelId": ab}, chat.CodeChannelNotFound},
		{"the API of another company", "apikey:other", company, obj{"channelId": ab}, chat.CodeAuthentication},
		{"operator", plugins.ActorOperator, company, obj{"channelId": ab}, chat.CodeAuthentication},
	} {
		_, err := e.k.Query(e.ctx, plugins.Query{Name: chat.QueryChannelGet, Company: c.co, Actor: c.actor, Payload: raw(c.params)})
		if codeOf(err) != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}

	// Removed and added again: a removal naming the old id leaves the new one.
	e.must("bob", chat.CmdChannelRemove, obj{"userId": "alice"})
	again := e.addChannel("alice", "bob")
	if _, err := e.do(api, chat.CmdChannelRemove, obj{"userId": "bob", "asUser": "alice", "channelId": ab}); codeOf(err) != chat.CodeDeleteChannel {
		t.Fatalf("remove by an old id: %v", err)
	}
	if _, err := e.ask(api, chat.QueryChannelGet, obj{"channelId": again}); err != nil {
		t.Fatalf("the new channel: %v", err)
	}
	if evs, err := e.do(api, chat.CmdChannelRemove, obj{"userId": "bob", "asUser": "alice", "channelId": again}); err != nil || len(evs) == 0 || evs[0].Type != chat.EvChannelRemoved {
		t.Fatalf("remove by its id: %v %v", evs, err)
	}
	if _, err := e.ask(api, chat.QueryChannelGet, obj{"channelId": again}); codeOf(err) != chat.CodeChannelNotFound {
		t.Fatalf("after removal: %v", err)
	}
}

// TestCatchesUpFromTheLog: an instance that delivery has not reached yet
// (events still in flight) decides and answers on the log's state: a
// command waits for its stream's version, a query for its minSeq.
func TestCatchesUpFromTheLog(t *testing.T) {
	e := newEnv(t)
	lagging := chat.New()
	if err := lagging.(plugins.Starter).Start(e.ctx, e.k); err != nil { // started, never delivered to
		t.Fatal(err)
	}
	e.userEvent(company, "user.created", "gina")
	ch := e.addChannel("gina", "alice")
	m := e.send("gina", ch, "one")

	q := lagging.(plugins.QueryHandler)
	ans, err := q.HandleQuery(e.ctx, plugins.Query{Name: chat.QueryChannels, Company: company, Actor: "alice", Payload: raw(obj{"minSeq": e.head()})})
	var list chat.ChannelsAnswer
	if err != nil || json.Unmarshal(ans, &list) != nil || len(list.Channels) != 1 || list.Channels[0].UnreadMessages != 1 {
		t.Fatalf("with minSeq: %s %v", ans, err)
	}

	e.send("alice", ch, "two")
	e.send("alice", ch, "three")
	stream := chat.ChannelStream(company, ch)
	version := e.k.Events()[len(e.k.Events())-1].Version
	decided, err := lagging.(plugins.CommandHandler).HandleCommand(e.ctx, plugins.Command{
		Name: chat.CmdChannelRead, Stream: stream, Company: company, Actor: "gina", Version: version,
		Payload: raw(obj{"channelId": ch, "messageId": m.MessageID}),
	})
	if err != nil || len(decided) != 1 {
		t.Fatalf("read on a lagging instance: %+v %v", decided, err)
	}
	decided, err = lagging.(plugins.CommandHandler).HandleCommand(e.ctx, plugins.Command{
		Name: chat.CmdMessageSend, Stream: stream, Company: company, Actor: "gina", Version: version,
		Payload: raw(obj{"channelId": ch, "text": "four"}),
	})
	var four chat.Message
	if err != nil || json.Unmarshal(decided[0].Payload, &four) != nil || four.MessageID <= m.MessageID {
		t.Fatalf("send on a lagging instance: %+v %v", four, err)
	}

	// A seq the log has not reached: the query gives up with the context.
	ctx, cancel := context.WithTimeout(e.ctx, 100*time.Millisecond)
	defer cancel()
	_, err = q.HandleQuery(ctx, plugins.Query{Name: chat.QueryChannels, Company: company, Actor: "alice", Payload: raw(obj{"minSeq": e.head() + 10})})
	if codeOf(err) != chat.CodeUnavailable {
		t.Fatalf("minSeq beyond the head: %v", err)
	}
}

func TestUnknownNames(t *testing.T) {
	p := chat.New()
	if _, err := p.(plugins.CommandHandler).HandleCommand(context.Background(), plugins.Command{Name: "chat.nope"}); codeOf(err) != plugins.CodeInvalidCommand {
		t.Fatalf("command: %v", err)
	}
	if _, err := p.(plugins.QueryHandler).HandleQuery(context.Background(), plugins.Query{Name: "chat.nope"}); codeOf(err) != plugins.CodeInvalidCommand {
		t.Fatalf("query: %v", err)
	}
}
