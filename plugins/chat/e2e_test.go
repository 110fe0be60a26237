package chat_test

// End-to-end: the chat plugin under a real kernel, driven by real
// WebSocket clients through the sdkapi session and by the REST API over
// real HTTP. Every case runs twice, with the plugin in process and out of
// process (this test binary re-executed as the plugin, as the kernel
// binary runs `kernel plugin serve parley.chat`).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel/kerneltest"
	"github.com/parleyhq/parley/kernel/pluginhost"
	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/chat"
	"github.com/parleyhq/parley/sdkapi"
	"github.com/parleyhq/parley/sdkapi/rest"
	"github.com/parleyhq/parley/sdkapi/sdkapitest"
	"github.com/parleyhq/parley/sdkapi/session"
)

// pluginEnv makes the test binary serve the chat plugin instead of
// running tests: the out-of-process transport starts it that way.
const pluginEnv = "PARLEY_CHAT_TEST_PLUGIN"

func TestMain(m *testing.M) {
	if os.Getenv(pluginEnv) == "1" {
		plugins.Serve(chat.New())
		return
	}
	code := m.Run()
	if kernelBin.dir != "" {
		os.RemoveAll(kernelBin.dir)
	}
	os.Exit(code)
}

var transports = []pluginhost.Transport{pluginhost.InProcess, pluginhost.OutOfProcess}

// TestEndToEnd runs every case on both transports.
func TestEndToEnd(t *testing.T) {
	cases := []struct {
		name string
		run  func(*testing.T, pluginhost.Transport)
	}{
		{"channels", e2eChannels},
		{"messages", e2eMessages},
		{"fetch", e2eFetch},
		{"unread across devices and a restart", e2eUnreadAndRestart},
		{"outsiders", e2eOutsiders},
		{"removal erases", e2eErasure},
		{"rest", e2eREST},
		{"rest with the chat stopped", e2eRESTChatStopped},
		{"rest after both participants were deleted", e2eRESTDeletedUsers},
	}
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, tr) })
			}
		})
	}
}

// TestRESTWithoutTheChat: a kernel that runs no chat answers the chat
// routes 503 unavailable.
func TestRESTWithoutTheChat(t *testing.T) {
	w := start(t, t.TempDir(), "", nil)
	w.restErr(w.x.key, "GET", "/v2/users/alice/channels", "", 503, plugins.CodeUnavailable)
	w.restErr(w.x.key, "POST", "/v2/channels", `{"participants":["alice","bob"]}`, 503, plugins.CodeUnavailable)
	w.restErr(w.x.key, "DELETE", "/v2/channels/ch_1", "", 503, plugins.CodeUnavailable)
	w.restErr(w.x.key, "GET", "/v2/channels/ch_1/messages?user_id=alice", "", 503, plugins.CodeUnavailable)
	w.restErr(w.x.key, "GET", "/v2/channels/ch_1/messages", "", 503, plugins.CodeUnavailable)
}

// TestRESTKnowsTheChatCodes: sdkapi spells the chat's codes itself (it
// does not import plugins); they must be the plugin's.
func TestRESTKnowsTheChatCodes(t *testing.T) {
	for rc, cc := range map[plugins.Code]plugins.Code{
		rest.CodeChannelNotFound:  chat.CodeChannelNotFound,
		rest.CodeChannelNotExists: chat.CodeChannelNotExists,
		rest.CodeDeleteChannel:    chat.CodeDeleteChannel,
		rest.CodeMessageNotSaved:  chat.CodeMessageNotSaved,
	} {
		if rc != cc {
			t.Errorf("rest says %s, the chat %s", rc, cc)
		}
	}
	statuses := map[plugins.Code]int{
		chat.CodeChannelNotFound: 404, chat.CodeChannelNotExists: 404, chat.CodeDeleteChannel: 404,
		chat.CodeMessageNotSaved: 503, chat.CodeUnavailable: 503, chat.CodeValidation: 400,
		chat.CodeCreateChannel: 400, chat.CodeMessageAnchor: 400,
	}
	for code, want := range statuses {
		if got := rest.Status(code); got != want {
			t.Errorf("%s: %d, want %d", code, got, want)
		}
	}
}

func e2eChannels(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	a1, a2, b1, c1 := w.connect(w.x, "alice"), w.connect(w.x, "alice"), w.connect(w.x, "bob"), w.connect(w.x, "carol")

	// addChannel: the answer carries channel.added, every device of both
	// users gets it (alice's second device by a push).
	res := a1.Cmd(chat.CmdChannelAdd, obj{"userId": "bob"})
	if len(res.Events) != 1 || res.Seq != res.Events[0].Seq || res.Events[0].Event != chat.EvChannelAdded {
		t.Fatalf("add: %+v", res)
	}
	added := decode[chat.ChannelAdded](t, res.Events[0].Data)
	if !slices.Equal(added.Participants, []string{"alice", "bob"}) || !strings.HasPrefix(added.ChannelID, "ch_") || !isoDate.MatchString(added.CreationDate) {
		t.Fatalf("channel.added %s", res.Events[0].Data)
	}
	a2.expect(res.Events[0])
	b1.expect(res.Events[0])
	ab := added.ChannelID

	// Adding it again, from either side, decides nothing and pushes nothing.
	for _, d := range []*device{a1, b1} {
		other := map[*device]string{a1: "bob", b1: "alice"}[d]
		if again := d.Cmd(chat.CmdChannelAdd, obj{"userId": other}); again.Seq != 0 || len(again.Events) != 0 {
			t.Fatalf("add again: %+v", again)
		}
	}
	var view chat.ChannelView
	a2.Query(chat.QueryChannelGet, obj{"userId": "bob"}, &view)
	if view.ChannelID != ab || !slices.Equal(view.Participants, added.Participants) || view.CreationDate != added.CreationDate || view.UnreadMessages != 0 || view.LastMessage != nil {
		t.Fatalf("getChannel %+v", view)
	}

	for _, c := range []struct {
		name   string
		d      *device
		method string
		params obj
		want   plugins.Code
	}{
		{"add without userId", a1, chat.CmdChannelAdd, obj{}, chat.CodeValidation},
		{"add a malformed userId", a1, chat.CmdChannelAdd, obj{"userId": "no spaces"}, chat.CodeValidation},
		{"add oneself", a1, chat.CmdChannelAdd, obj{"userId": "alice"}, chat.CodeValidation},
		{"add an unknown user", a1, chat.CmdChannelAdd, obj{"userId": "zed"}, chat.CodeCreateChannel},
		{"add a deactivated user", a1, chat.CmdChannelAdd, obj{"userId": "dave"}, chat.CodeCreateChannel},
		{"add a user of another company", a1, chat.CmdChannelAdd, obj{"userId": "olga"}, chat.CodeCreateChannel},
		{"get without userId", b1, chat.QueryChannelGet, obj{}, chat.CodeValidation},
		{"get a missing channel", b1, chat.QueryChannelGet, obj{"userId": "carol"}, chat.CodeChannelNotFound},
		{"get an unknown user's channel", b1, chat.QueryChannelGet, obj{"userId": "zed"}, chat.CodeChannelNotFound},
		{"remove without userId", a1, chat.CmdChannelRemove, obj{}, chat.CodeValidation},
		{"remove a missing channel", a1, chat.CmdChannelRemove, obj{"userId": "carol"}, chat.CodeDeleteChannel},
	} {
		t.Run(c.name, func(t *testing.T) { c.d.Fails(c.want, c.method, c.params) })
	}

	// The next thing alice's and bob's devices hear is a message: nothing
	// came of the repeated adds nor of the refusals.
	msg := a1.Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": "marker"})
	a2.expect(msg.Events[0])
	b1.expect(msg.Events[0])

	// removeChannel: channel.removed {channelId, participants} to both users' devices.
	rm := removed(t, b1.Cmd(chat.CmdChannelRemove, obj{"userId": "alice"}))
	if !jsonEqual(rm.Data, mustJSON(obj{"channelId": ab, "participants": []string{"alice", "bob"}})) {
		t.Fatalf("channel.removed %s", rm.Data)
	}
	a1.expect(rm)
	a2.expect(rm)
	b1.Fails(chat.CodeDeleteChannel, chat.CmdChannelRemove, obj{"userId": "alice"})
	a1.Fails(chat.CodeChannelNotFound, chat.QueryChannelGet, obj{"userId": "bob"})
	var list chat.ChannelsAnswer
	if a2.Query(chat.QueryChannels, obj{}, &list); len(list.Channels) != 0 {
		t.Fatalf("alice's channels after the removal: %+v", list)
	}

	// carol heard nothing of it: the first event she gets is her own channel.
	ac := a2.Cmd(chat.CmdChannelAdd, obj{"userId": "carol"})
	c1.expect(ac.Events[0])
	a1.expect(ac.Events[0])
	// Added again, the pair has a new channel.
	again := a1.Cmd(chat.CmdChannelAdd, obj{"userId": "bob"})
	if decode[chat.ChannelAdded](t, again.Events[0].Data).ChannelID == ab {
		t.Fatal("a removed channel came back")
	}
	b1.expect(again.Events[0])
}

func e2eMessages(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	a1, a2, b1 := w.connect(w.x, "alice"), w.connect(w.x, "alice"), w.connect(w.x, "bob")
	ab := w.channel(a1, "bob", a2, b1)

	// sendMessage answers with the stored message; the sender's other
	// device and the receiver get channel.message.sent (the SDK tells
	// them apart as channel:message:sent and :received by the sender).
	res := a1.Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": "hello bob"})
	if len(res.Events) != 1 || res.Events[0].Event != chat.EvMessageSent {
		t.Fatalf("send: %+v", res)
	}
	m := decode[chat.Message](t, res.Events[0].Data)
	if m.ChannelID != ab || m.Sender != "alice" || m.Text != "hello bob" || !strings.HasPrefix(m.MessageID, "msg_") || !isoDate.MatchString(m.CreationDate) {
		t.Fatalf("message %+v", m)
	}
	a2.expect(res.Events[0])
	b1.expect(res.Events[0])
	reply := b1.Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": "hi alice"})
	a1.expect(reply.Events[0])
	a2.expect(reply.Events[0])

	// 4096 characters is the limit, counted in characters, not bytes.
	long := strings.Repeat("é", chat.MaxTextRunes)
	res = a2.Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": long})
	if decode[chat.Message](t, res.Events[0].Data).Text != long {
		t.Fatal("the longest message came back different")
	}
	a1.expect(res.Events[0])
	b1.expect(res.Events[0])
	for _, c := range []struct {
		name   string
		params obj
		want   plugins.Code
	}{
		{"empty", obj{"channelId": ab, "text": ""}, chat.CodeValidation},
		{"no text", obj{"channelId": ab}, chat.CodeValidation},
		{"too long", obj{"channelId": ab, "text": long + "x"}, chat.CodeValidation},
		{"no channel", obj{"text": "hi"}, chat.CodeValidation},
		{"unknown channel", obj{"channelId": "ch_nope", "text": "hi"}, chat.CodeChannelNotExists},
	} {
		t.Run(c.name, func(t *testing.T) { a1.Fails(c.want, chat.CmdMessageSend, c.params) })
	}
	var page chat.FetchAnswer
	a1.Query(chat.QueryMessages, obj{"channelId": ab}, &page)
	if len(page.Messages) != 3 || page.Messages[0] != m || page.Anchor != "" {
		t.Fatalf("messages %d %+v", len(page.Messages), page.Messages[0])
	}

	// After the removal: channel_not_exists for whatever names the channel.
	rm := removed(t, a1.Cmd(chat.CmdChannelRemove, obj{"userId": "bob"}))
	a2.expect(rm)
	b1.expect(rm)
	// Right after the answer, on another stream, from another device.
	b1.Fails(chat.CodeChannelNotExists, chat.CmdMessageSend, obj{"channelId": ab, "text": "still there?"})
	a2.Fails(chat.CodeChannelNotExists, chat.CmdChannelRead, obj{"channelId": ab, "messageId": m.MessageID})
	a1.Fails(chat.CodeChannelNotExists, chat.QueryMessages, obj{"channelId": ab})
}

func e2eFetch(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	a1, b1 := w.connect(w.x, "alice"), w.connect(w.x, "bob")
	ab := w.channel(a1, "bob", b1)
	var sent []chat.Message
	for i := range 8 {
		from, to := a1, b1
		if i%3 == 2 {
			from, to = b1, a1
		}
		res := from.Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": fmt.Sprintf("message %d", i)})
		to.expect(res.Events[0])
		sent = append(sent, decode[chat.Message](t, res.Events[0].Data))
	}
	all := ids(sent)
	if !slices.IsSorted(all) {
		t.Fatalf("message ids do not sort in send order: %v", all)
	}
	fetch := func(d *device, params obj) chat.FetchAnswer {
		t.Helper()
		params["channelId"] = ab
		var page chat.FetchAnswer
		d.Query(chat.QueryMessages, params, &page)
		return page
	}
	cases := []struct {
		name   string
		params obj
		want   []string
		anchor string
	}{
		{"newest", obj{"messagesToFetch": 3}, all[5:], all[5]},
		{"backwards from an anchor", obj{"messagesToFetch": 3, "anchor": all[5]}, all[2:5], all[2]},
		{"backwards to the start", obj{"messagesToFetch": 3, "anchor": all[2], "direction": "backwards"}, all[:2], ""},
		{"oldest", obj{"messagesToFetch": 3, "direction": "afterward"}, all[:3], all[2]},
		{"afterward from an anchor", obj{"messagesToFetch": 3, "anchor": all[2], "direction": "afterward"}, all[3:6], all[5]},
		{"afterward to the end", obj{"messagesToFetch": 3, "anchor": all[5], "direction": "afterward"}, all[6:], ""},
		{"after the newest", obj{"anchor": all[7], "direction": "afterward"}, []string{}, ""},
		{"the widget's spelling, anchor as String[]", obj{"messageToFetch": 2, "anchor": []string{all[4]}}, all[2:4], all[2]},
		{"default count", obj{}, all, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, d := range []*device{a1, b1} { // the same for both participants
				page := fetch(d, c.params)
				if got := ids(page.Messages); !slices.Equal(got, c.want) || page.Anchor != c.anchor {
					t.Errorf("%s: %v anchor %q, want %v anchor %q", d.Name, got, page.Anchor, c.want, c.anchor)
				}
			}
		})
	}
	if page := fetch(a1, obj{"messagesToFetch": 100}); !reflect.DeepEqual(page.Messages, sent) {
		t.Fatalf("the whole channel differs from what was sent:\n%+v\n%+v", page.Messages, sent)
	}
	for _, c := range []struct {
		name   string
		params obj
		want   plugins.Code
	}{
		{"unknown anchor", obj{"anchor": "msg_nope"}, chat.CodeMessageAnchor},
		{"another channel's anchor", obj{"anchor": strings.Replace(all[0], strings.TrimPrefix(ab, "ch_"), "0123", 1)}, chat.CodeMessageAnchor},
		{"bad direction", obj{"direction": "sideways"}, chat.CodeValidation},
		{"none to fetch", obj{"messagesToFetch": 0}, chat.CodeValidation},
		{"too many to fetch", obj{"messagesToFetch": chat.MaxFetch + 1}, chat.CodeValidation},
		{"two anchors", obj{"anchor": all[:2]}, chat.CodeValidation},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.params["channelId"] = ab
			a1.Fails(c.want, chat.QueryMessages, c.params)
		})
	}
	a1.Fails(chat.CodeValidation, chat.QueryMessages, obj{})
	a1.Fails(chat.CodeChannelNotExists, chat.QueryMessages, obj{"channelId": "ch_nope"})
}

func e2eUnreadAndRestart(t *testing.T, tr pluginhost.Transport) {
	dir := t.TempDir()
	var ts tenants
	var ab, before string
	var last chat.Message
	ok := t.Run("first run", func(t *testing.T) {
		w := start(t, dir, tr, nil)
		ts = w.tenants
		a1, b1, b2 := w.connect(w.x, "alice"), w.connect(w.x, "bob"), w.connect(w.x, "bob")
		ab = w.channel(a1, "bob", b1, b2)
		var sent []chat.Message
		for _, text := range []string{"one", "two", "three"} {
			res := a1.Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": text})
			b1.expect(res.Events[0])
			b2.expect(res.Events[0])
			sent = append(sent, decode[chat.Message](t, res.Events[0].Data))
		}
		for _, d := range []*device{b1, b2} {
			if n := unreadOf(d, ab); n != 3 {
				t.Fatalf("%s: %d unread, want 3", d.Name, n)
			}
		}
		if n := unreadOf(a1, ab); n != 0 {
			t.Fatalf("alice has %d unread of her own messages", n)
		}

		// bob reads up to "two" on one device: the other hears it and
		// counts one unread; alice is not told.
		read := b1.Cmd(chat.CmdChannelRead, obj{"channelId": ab, "messageId": sent[1].MessageID})
		if len(read.Events) != 1 || read.Events[0].Event != chat.EvChannelRead ||
			!jsonEqual(read.Events[0].Data, mustJSON(obj{"channelId": ab, "userId": "bob", "messageId": sent[1].MessageID})) {
			t.Fatalf("read: %+v", read)
		}
		b2.expect(read.Events[0])
		if n := unreadOf(b2, ab); n != 1 {
			t.Fatalf("bob's other device: %d unread, want 1", n)
		}
		// Reading an earlier message does not move the cursor back.
		if back := b2.Cmd(chat.CmdChannelRead, obj{"channelId": ab, "messageId": sent[0].MessageID}); back.Seq != 0 || len(back.Events) != 0 {
			t.Fatalf("read backwards: %+v", back)
		}
		b2.Fails(chat.CodeMessageAnchor, chat.CmdChannelRead, obj{"channelId": ab, "messageId": "msg_nope"})
		b2.Fails(chat.CodeValidation, chat.CmdChannelRead, obj{"channelId": ab})
		// bob answers: alice's next event is his message, not his read
		// cursor; she has one unread, he still one.
		res := b2.Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": "four"})
		a1.expect(res.Events[0])
		b1.expect(res.Events[0])
		last = decode[chat.Message](t, res.Events[0].Data)
		if a, b := unreadOf(a1, ab), unreadOf(b1, ab); a != 1 || b != 1 {
			t.Fatalf("unread: alice %d, bob %d; want 1 and 1", a, b)
		}
		before = snapshot(w, ab, a1, b1)
	})
	if !ok {
		return
	}
	t.Run("after a restart", func(t *testing.T) {
		w := start(t, dir, tr, &ts)
		a1, b1 := w.connect(w.x, "alice"), w.connect(w.x, "bob")
		if after := snapshot(w, ab, a1, b1); after != before {
			t.Fatalf("answers changed across the restart:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		// And the chat goes on where it was.
		read := a1.Cmd(chat.CmdChannelRead, obj{"channelId": ab, "messageId": last.MessageID})
		if len(read.Events) != 1 || unreadOf(a1, ab) != 0 || unreadOf(b1, ab) != 1 {
			t.Fatalf("after the restart: %+v", read)
		}
	})
}

func e2eOutsiders(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	a1, b1 := w.connect(w.x, "alice"), w.connect(w.x, "bob")
	carol := w.connect(w.x, "carol")  // same company, not in the channel
	yAlice := w.connect(w.y, "alice") // another company's user with the same id
	ab := w.channel(a1, "bob", b1)
	res := a1.Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": "just us"})
	b1.expect(res.Events[0])
	m := decode[chat.Message](t, res.Events[0].Data)

	for _, d := range []*device{carol, yAlice} {
		t.Run(d.Name, func(t *testing.T) {
			d.Fails(chat.CodeChannelNotExists, chat.QueryMessages, obj{"channelId": ab})
			d.Fails(chat.CodeChannelNotExists, chat.QueryMessages, obj{"channelId": ab, "anchor": m.MessageID})
			d.Fails(chat.CodeChannelNotExists, chat.CmdMessageSend, obj{"channelId": ab, "text": "let me in"})
			d.Fails(chat.CodeChannelNotExists, chat.CmdChannelRead, obj{"channelId": ab, "messageId": m.MessageID})
			d.Fails(chat.CodeChannelNotFound, chat.QueryChannelGet, obj{"channelId": ab})
			d.Fails(chat.CodeChannelNotFound, chat.QueryChannelGet, obj{"userId": "bob"})
			d.Fails(chat.CodeDeleteChannel, chat.CmdChannelRemove, obj{"userId": "bob"})
			var list chat.ChannelsAnswer
			if d.Query(chat.QueryChannels, obj{}, &list); len(list.Channels) != 0 {
				t.Fatalf("channels %+v", list)
			}
		})
	}
	carol.Fails(chat.CodeDeleteChannel, chat.CmdChannelRemove, obj{"userId": "alice"})
	// A minSeq past the log's end is the client's mistake, refused at once
	// (it held the query, and the chat's catching up, for 5 s, and then
	// answered unavailable).
	a1.Fails(plugins.CodeValidation, chat.QueryChannels, obj{"minSeq": uint64(1) << 62})
	a1.Fails(plugins.CodeValidation, chat.QueryMessages, obj{"channelId": ab, "minSeq": uint64(1) << 62})
	yAlice.Fails(chat.CodeCreateChannel, chat.CmdChannelAdd, obj{"userId": "bob"}) // bob is not in her company
	// Another company's REST API neither.
	w.restErr(w.y.key, "GET", "/v2/channels/"+ab+"/messages", "", 404, chat.CodeChannelNotFound)
	w.restErr(w.y.key, "GET", "/v2/channels/"+ab+"/messages?user_id=alice", "", 404, chat.CodeChannelNotExists)
	w.restErr(w.y.key, "DELETE", "/v2/channels/"+ab, "", 404, chat.CodeChannelNotFound)
	w.restErr(w.y.key, "GET", "/v2/users/bob/channels", "", 404, "user_not_found")
	var list struct{ Channels []rest.Channel }
	if w.restWant(w.y.key, "GET", "/v2/users/alice/channels", "", 200, &list); len(list.Channels) != 0 {
		t.Fatalf("Y's alice sees %+v", list)
	}

	// The channel is intact, and nothing of it reached the outsiders: the
	// first event each of them gets is the next thing that is theirs.
	var page chat.FetchAnswer
	if b1.Query(chat.QueryMessages, obj{"channelId": ab}, &page); len(page.Messages) != 1 || page.Messages[0] != m {
		t.Fatalf("the channel after the attempts: %+v", page)
	}
	ac := a1.Cmd(chat.CmdChannelAdd, obj{"userId": "carol"})
	carol.expect(ac.Events[0])
	olga := w.connect(w.y, "olga")
	ya := olga.Cmd(chat.CmdChannelAdd, obj{"userId": "alice"})
	yAlice.expect(ya.Events[0])
	// Nor did alice of X hear of Y's channel: her next event is bob's.
	res = b1.Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": "still just us"})
	a1.expect(res.Events[0])
}

func e2eErasure(t *testing.T, tr pluginhost.Transport) {
	dir := t.TempDir()
	var ts tenants
	var texts []string
	var seqs []uint64
	var ab string
	ok := t.Run("remove", func(t *testing.T) {
		w := start(t, dir, tr, nil)
		ts = w.tenants
		a1, a2, b1 := w.connect(w.x, "alice"), w.connect(w.x, "alice"), w.connect(w.x, "bob")
		ab = w.channel(a1, "bob", a2, b1)
		for i := range 4 {
			text := "erasable " + strconv.Itoa(i) + " " + randomHex()
			from, others := a1, []*device{a2, b1}
			if i%2 == 1 {
				from, others = b1, []*device{a1, a2}
			}
			res := from.Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": text})
			for _, d := range others {
				if ev := d.expect(res.Events[0]); decode[chat.Message](t, ev.Data).Text != text { // readable on the wire
					t.Fatalf("pushed %s", ev.Data)
				}
			}
			texts, seqs = append(texts, text), append(seqs, res.Seq)
		}
		// Sealed at rest from the start; readable through the company key.
		if found := scan(t, dir, texts); len(found) > 0 {
			t.Fatalf("message text in the clear on disk: %v", found)
		}
		for i, seq := range seqs {
			e, opened, erased := w.stored(seq)
			if !bytes.Contains(e.Payload, []byte(plugins.SealedKey)) || erased || decode[chat.Message](t, opened.Payload).Text != texts[i] {
				t.Fatalf("seq %d before removal: %s (erased %v)", seq, e.Payload, erased)
			}
		}

		rm := removed(t, b1.Cmd(chat.CmdChannelRemove, obj{"userId": "alice"}))
		a1.expect(rm)
		a2.expect(rm)
		// The chat erases the key when it applies the removal, a moment
		// after the answer.
		kerneltest.Eventually(t, "the messages erased", func() bool {
			for _, seq := range seqs {
				if _, _, erased := w.stored(seq); !erased {
					return false
				}
			}
			return true
		})
		a1.Fails(chat.CodeChannelNotExists, chat.QueryMessages, obj{"channelId": ab})
		w.restErr(w.x.key, "GET", "/v2/channels/"+ab+"/messages", "", 404, chat.CodeChannelNotFound)
		// The pair may talk again, in a new channel without the old messages.
		again := w.channel(a1, "bob", a2, b1)
		var page chat.FetchAnswer
		if a1.Query(chat.QueryMessages, obj{"channelId": again}, &page); len(page.Messages) != 0 {
			t.Fatalf("the new channel has %+v", page.Messages)
		}
	})
	if !ok {
		return
	}
	// Stopped: nothing on disk reads, and the chain verifies, as the
	// kernel's audit does and as `kernel audit verify` reports.
	if found := scan(t, dir, texts); len(found) > 0 {
		t.Fatalf("message text on disk after the removal: %v", found)
	}
	if found := scan(t, dir, []string{ab}); len(found) == 0 { // the scan sees what is stored in the clear
		t.Fatalf("channel id %s not found on disk", ab)
	}
	l, err := eventlog.Open(dir, eventlog.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := l.Verify(context.Background())
	l.Close()
	if err != nil || rep.Head < seqs[len(seqs)-1] {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	auditVerify(t, dir)

	t.Run("after a restart", func(t *testing.T) {
		w := start(t, dir, tr, &ts)
		for _, seq := range seqs {
			if _, _, erased := w.stored(seq); !erased {
				t.Fatalf("seq %d opens again after a restart", seq)
			}
		}
		a1 := w.connect(w.x, "alice")
		a1.Fails(chat.CodeChannelNotExists, chat.QueryMessages, obj{"channelId": ab})
		var list chat.ChannelsAnswer
		if a1.Query(chat.QueryChannels, obj{}, &list); len(list.Channels) != 1 || list.Channels[0].ChannelID == ab || list.Channels[0].LastMessage != nil {
			t.Fatalf("alice's channels after a restart: %+v", list)
		}
	})
}

// e2eRESTDeletedUsers: a channel whose participants were both deleted
// can still be read and removed (its messages erased) through the REST
// API; it answered validation_error about an asUser the caller never sent.
func e2eRESTDeletedUsers(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	a1, b1 := w.connect(w.x, "alice"), w.connect(w.x, "bob")
	key := w.x.key
	ab := w.channel(a1, "bob", b1)
	a1.Cmd(chat.CmdMessageSend, obj{"channelId": ab, "text": "before they left"})
	w.restWant(key, "DELETE", "/v2/users/alice", "", 204, nil)
	w.restWant(key, "DELETE", "/v2/users/bob", "", 204, nil)
	var page rest.Messages
	if w.restWant(key, "GET", "/v2/channels/"+ab+"/messages", "", 200, &page); len(page.Messages) != 1 || page.Messages[0].Text != "before they left" {
		t.Fatalf("messages %+v", page)
	}
	w.restWant(key, "DELETE", "/v2/channels/"+ab, "", 204, nil)
	if got, b := w.rest(key, "GET", "/v2/channels/"+ab+"/messages", ""); got != 404 {
		t.Fatalf("messages of the removed channel: %d %s", got, b)
	}
	// A user who is not in the channel is still refused.
	if got, b := w.rest(key, "GET", "/v2/channels/"+ab+"/messages?user_id=carol", ""); got == 200 {
		t.Fatalf("as a user outside the channel: %d %s", got, b)
	}
}

func e2eREST(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	a1, b1 := w.connect(w.x, "alice"), w.connect(w.x, "bob")
	key := w.x.key

	// POST /v2/channels: 201 with the channel, pushed to both users.
	var ch rest.Channel
	w.restWant(key, "POST", "/v2/channels", `{"participants":["alice","bob"]}`, 201, &ch)
	if !strings.HasPrefix(ch.ChannelID, "ch_") || !slices.Equal(ch.Participants, []string{"alice", "bob"}) || !isoDate.MatchString(ch.CreatedAt) || ch.UnreadMessages != nil || ch.LastMessage != nil {
		t.Fatalf("created %+v", ch)
	}
	for _, d := range []*device{a1, b1} {
		ev := d.event()
		if ev.Event != chat.EvChannelAdded || !jsonEqual(ev.Data, mustJSON(obj{"channelId": ch.ChannelID, "participants": []string{"alice", "bob"}, "creationDate": ch.CreatedAt})) {
			t.Fatalf("%s got %+v", d.Name, ev)
		}
	}
	// Again, either way round: 200 with the same channel, and no event.
	var same rest.Channel
	if w.restWant(key, "POST", "/v2/channels", `{"participants":["bob","alice"]}`, 200, &same); !reflect.DeepEqual(same, ch) {
		t.Fatalf("again: %+v, want %+v", same, ch)
	}
	for _, c := range []struct {
		name, body string
		status     int
		code       plugins.Code
	}{
		{"one participant", `{"participants":["alice"]}`, 400, chat.CodeValidation},
		{"three participants", `{"participants":["alice","bob","carol"]}`, 400, chat.CodeValidation},
		{"twice the same", `{"participants":["alice","alice"]}`, 400, chat.CodeValidation},
		{"no participants", `{}`, 400, chat.CodeValidation},
		{"unknown field", `{"participants":["alice","bob"],"name":"x"}`, 400, rest.CodeMalformedJSON},
		{"not JSON", `{"participants":`, 400, rest.CodeMalformedJSON},
		{"unknown user", `{"participants":["alice","zed"]}`, 404, "user_not_found"},
		{"another company's user", `{"participants":["olga","alice"]}`, 404, "user_not_found"},
		{"deactivated user", `{"participants":["alice","dave"]}`, 400, chat.CodeCreateChannel},
	} {
		t.Run("create: "+c.name, func(t *testing.T) { w.restErr(key, "POST", "/v2/channels", c.body, c.status, c.code) })
	}
	w.restErr("", "POST", "/v2/channels", `{"participants":["alice","bob"]}`, 401, rest.CodeUnauthorized)
	w.restErr("pk_nope", "GET", "/v2/users/alice/channels", "", 401, rest.CodeUnauthorized)

	var sent []chat.Message
	for i := range 5 {
		res := a1.Cmd(chat.CmdMessageSend, obj{"channelId": ch.ChannelID, "text": fmt.Sprintf("rest %d", i)})
		b1.expect(res.Events[0])
		sent = append(sent, decode[chat.Message](t, res.Events[0].Data))
	}
	restMsg := func(m chat.Message) rest.Message {
		return rest.Message{MessageID: m.MessageID, ChannelID: m.ChannelID, Sender: m.Sender, Text: m.Text, CreatedAt: m.CreationDate}
	}
	lastMsg := restMsg(sent[4])

	// GET /v2/users/{user_id}/channels: with that user's unread count.
	for user, unread := range map[string]int{"alice": 0, "bob": 5} {
		var list struct {
			Channels []rest.Channel `json:"channels"`
		}
		w.restWant(key, "GET", "/v2/users/"+user+"/channels", "", 200, &list)
		if len(list.Channels) != 1 || list.Channels[0].ChannelID != ch.ChannelID || list.Channels[0].UnreadMessages == nil ||
			*list.Channels[0].UnreadMessages != unread || list.Channels[0].LastMessage == nil || *list.Channels[0].LastMessage != lastMsg {
			t.Fatalf("%s's channels: %+v", user, list)
		}
	}
	w.restErr(key, "GET", "/v2/users/zed/channels", "", 404, "user_not_found")
	var none struct{ Channels []rest.Channel }
	if w.restWant(key, "GET", "/v2/users/carol/channels", "", 200, &none); none.Channels == nil || len(none.Channels) != 0 {
		t.Fatalf("carol's channels: %+v", none)
	}

	// GET /v2/channels/{channel_id}/messages, paged both ways; the same
	// for either participant, or none named.
	var want []rest.Message
	for _, m := range sent {
		want = append(want, restMsg(m))
	}
	path := "/v2/channels/" + ch.ChannelID + "/messages"
	for _, c := range []struct {
		name, query string
		want        []rest.Message
		anchor      string
	}{
		{"all", "", want, ""},
		{"newest", "?limit=2", want[3:], want[3].MessageID},
		{"backwards", "?limit=2&anchor=" + want[3].MessageID, want[1:3], want[1].MessageID},
		{"to the start", "?limit=2&direction=backwards&anchor=" + want[1].MessageID, want[:1], ""},
		{"oldest", "?limit=3&direction=afterward", want[:3], want[2].MessageID},
		{"afterward", "?limit=3&direction=afterward&anchor=" + want[2].MessageID, want[3:], ""},
	} {
		t.Run("messages: "+c.name, func(t *testing.T) {
			for _, user := range []string{"", "alice", "bob"} {
				q := c.query
				if user != "" && q == "" {
					q = "?user_id=" + user
				} else if user != "" {
					q += "&user_id=" + user
				}
				var page rest.Messages
				w.restWant(key, "GET", path+q, "", 200, &page)
				if !reflect.DeepEqual(page.Messages, c.want) || page.Anchor != c.anchor {
					t.Errorf("%s as %q: %+v anchor %q, want %+v anchor %q", q, user, page.Messages, page.Anchor, c.want, c.anchor)
				}
			}
		})
	}
	for _, c := range []struct {
		name, query string
		status      int
		code        plugins.Code
	}{
		{"a non-participant", "?user_id=carol", 404, chat.CodeChannelNotExists},
		{"an unknown user", "?user_id=zed", 404, "user_not_found"},
		{"limit not a number", "?limit=ten", 400, chat.CodeValidation},
		{"limit zero", "?limit=0", 400, chat.CodeValidation},
		{"limit over the maximum", "?limit=101", 400, chat.CodeValidation},
		{"unknown anchor", "?anchor=msg_nope", 400, chat.CodeMessageAnchor},
		{"bad direction", "?direction=sideways", 400, chat.CodeValidation},
	} {
		t.Run("messages: "+c.name, func(t *testing.T) { w.restErr(key, "GET", path+c.query, "", c.status, c.code) })
	}
	w.restErr(key, "GET", "/v2/channels/ch_nope/messages", "", 404, chat.CodeChannelNotFound)
	// Reading through the API is not reading for the user.
	if n := unreadOf(b1, ch.ChannelID); n != 5 {
		t.Fatalf("bob's unread after the API read: %d", n)
	}

	// DELETE /v2/channels/{channel_id}: 204 once the chat has removed it
	// (a read right after agrees), channel.removed to both. The repeated
	// POST above pushed nothing: this is their next event.
	w.restWant(key, "DELETE", "/v2/channels/"+ch.ChannelID, "", 204, nil)
	w.restErr(key, "GET", path, "", 404, chat.CodeChannelNotFound)
	w.restErr(key, "GET", path+"?user_id=bob", "", 404, chat.CodeChannelNotExists)
	removed := mustJSON(obj{"channelId": ch.ChannelID, "participants": []string{"alice", "bob"}})
	for _, d := range []*device{a1, b1} {
		if ev := d.event(); ev.Event != chat.EvChannelRemoved || !jsonEqual(ev.Data, removed) {
			t.Fatalf("%s got %+v", d.Name, ev)
		}
	}
	w.restErr(key, "DELETE", "/v2/channels/"+ch.ChannelID, "", 404, chat.CodeChannelNotFound)
	if w.restWant(key, "GET", "/v2/users/bob/channels", "", 200, &none); len(none.Channels) != 0 {
		t.Fatalf("bob's channels after the removal: %+v", none)
	}
	var fresh rest.Channel
	if w.restWant(key, "POST", "/v2/channels", `{"participants":["bob","alice"]}`, 201, &fresh); fresh.ChannelID == ch.ChannelID {
		t.Fatal("the removed channel came back")
	}
	// A channel whose first participant was deleted can still be removed
	// and read through the API (it acts as the other participant).
	var ca rest.Channel
	w.restWant(key, "POST", "/v2/channels", `{"participants":["carol","alice"]}`, 201, &ca)
	if ca.Participants[0] != "alice" {
		t.Fatalf("participants %v", ca.Participants)
	}
	w.restWant(key, "DELETE", "/v2/users/alice", "", 204, nil)
	var page rest.Messages
	w.restWant(key, "GET", "/v2/channels/"+ca.ChannelID+"/messages", "", 200, &page)
	w.restWant(key, "DELETE", "/v2/channels/"+ca.ChannelID, "", 204, nil)
}

func e2eRESTChatStopped(t *testing.T, tr pluginhost.Transport) {
	w := start(t, t.TempDir(), tr, nil)
	var ch rest.Channel
	w.restWant(w.x.key, "POST", "/v2/channels", `{"participants":["alice","bob"]}`, 201, &ch)
	w.host.Close()
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v2/users/alice/channels", ""},
		{"POST", "/v2/channels", `{"participants":["alice","carol"]}`},
		{"DELETE", "/v2/channels/" + ch.ChannelID, ""},
		{"GET", "/v2/channels/" + ch.ChannelID + "/messages", ""},
		{"GET", "/v2/channels/" + ch.ChannelID + "/messages?user_id=bob", ""},
	} {
		w.restErr(w.x.key, r.method, r.path, r.body, 503, plugins.CodeUnavailable)
	}
}

// tenants are the two companies of a run: X has alice, bob, carol and
// dave (deactivated); Y has its own alice, and olga.
type tenants struct{ x, y tenant }

type tenant struct{ app, key string }

// world is the whole stack on one data directory: a kernel with the sdkapi
// service (REST and sessions) on a real HTTP server, and the chat plugin
// in a plugin host. Everything stops when the test ends.
type world struct {
	t    *testing.T
	dir  string
	srv  *sdkapitest.Server
	host *pluginhost.Host // nil without the chat
	tenants
}

// start runs the stack on dir with the chat on transport tr ("" for no
// chat). ts names the companies of a data directory used before; nil
// creates them, with their users, in a new one.
func start(t *testing.T, dir string, tr pluginhost.Transport, ts *tenants) *world {
	t.Helper()
	ctx := context.Background()
	s := sdkapitest.Start(t, kerneltest.Config(dir), sdkapi.Options{Session: session.Config{RequestsPerSecond: 1000}})
	w := &world{t: t, dir: dir, srv: s}
	c, key, err := s.Svc.Bootstrap(ctx) // also waits for the directory to read the log
	if err != nil {
		t.Fatal(err)
	}
	if ts != nil {
		w.tenants = *ts
	} else {
		w.x = tenant{c.AppID, key}
		app, keyY := s.Company(t, "Other clinic")
		w.y = tenant{app, keyY}
		for co, users := range map[tenant][]string{w.x: {"alice", "bob", "carol", "dave"}, w.y: {"alice", "olga"}} {
			for _, u := range users {
				w.restWant(co.key, "POST", "/v2/users", `{"id":"`+u+`"}`, 201, nil)
			}
		}
		w.restWant(w.x.key, "PUT", "/v2/users/dave", `{"active":false}`, 200, nil)
	}
	if tr == "" {
		return w
	}
	h, err := pluginhost.New(s.K, pluginhost.Config{StartTimeout: 20 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := pluginhost.Spec{ID: chat.ID, Transport: tr}
	if tr == pluginhost.InProcess {
		spec.New = chat.New
	} else {
		spec.Path, spec.Args, spec.Env = os.Args[0], []string{"-test.run=^$"}, append(pluginhost.PluginEnv(), pluginEnv+"=1")
	}
	if err := h.Add(spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close) // before the kernel closes
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if st := h.List()[0]; st.State != pluginhost.StateRunning || st.Transport != tr {
		t.Fatalf("the chat is not running: %+v", st)
	}
	w.host = h
	return w
}

// rest calls the REST API with key ("" for none).
func (w *world) rest(key, method, path, body string) (int, []byte) {
	w.t.Helper()
	req, err := http.NewRequest(method, w.srv.HTTP.URL+path, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("apikey", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// restWant calls the REST API, wants status and decodes the answer into
// v (when not nil).
func (w *world) restWant(key, method, path, body string, status int, v any) {
	w.t.Helper()
	got, b := w.rest(key, method, path, body)
	if got != status {
		w.t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, got, b, status)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			w.t.Fatalf("%s %s: %s: %v", method, path, b, err)
		}
	}
}

// restErr calls the REST API and wants a coded error with its status.
func (w *world) restErr(key, method, path, body string, status int, code plugins.Code) {
	w.t.Helper()
	got, b := w.rest(key, method, path, body)
	var e plugins.Error
	if json.Unmarshal(b, &e) != nil || got != status || e.Code != code {
		w.t.Errorf("%s %s %s: %d %s, want %d %s", method, path, body, got, b, status, code)
	}
}

// channel opens the channel between d's user and other, checks every
// device given hears of it, and returns its id.
func (w *world) channel(d *device, other string, devices ...*device) string {
	w.t.Helper()
	res := d.Cmd(chat.CmdChannelAdd, obj{"userId": other})
	if len(res.Events) != 1 {
		w.t.Fatalf("add %s: %+v", other, res)
	}
	for _, o := range devices {
		o.expect(res.Events[0])
	}
	return decode[chat.ChannelAdded](w.t, res.Events[0].Data).ChannelID
}

// stored returns the event of seq as the log holds it, opened with the
// company key, and whether that key is erased.
func (w *world) stored(seq uint64) (stored, opened eventlog.Event, erased bool) {
	w.t.Helper()
	err := w.srv.K.Log().Read(context.Background(), seq, seq, func(e eventlog.Event) error {
		stored = e
		return nil
	})
	if err != nil || stored.Seq != seq {
		w.t.Fatalf("read seq %d: %v", seq, err)
	}
	opened, erased, err = w.srv.K.OpenEvent(stored)
	if err != nil {
		w.t.Fatalf("open seq %d: %v", seq, err)
	}
	return stored, opened, erased
}

// device is one connected browser: sdkapitest's WebSocket client, with
// the chat's view of pushes. It keeps the seqs of the events it got, in
// its commands' answers and as pushes: an event pushed twice fails the
// test, and the push of an event its own command's answer carried is
// skipped, as the SDK skips it (the session avoids sending those, best
// effort). Its queries, and the chat's queries it expects to fail, read
// what it has seen (minSeq).
type device struct {
	*sdkapitest.Device
	pushed map[uint64]bool
}

type (
	frame         = sdkapitest.Frame
	commandResult = sdkapitest.CommandResult
)

// connect opens a session for user of company co, with a token from the
// REST API.
func (w *world) connect(co tenant, user string) *device {
	w.t.Helper()
	var cred struct {
		AccessToken string `json:"access_token"`
	}
	w.restWant(co.key, "POST", "/v2/sdk/credentials", `{"user_id":"`+user+`","expires_in":3600}`, 200, &cred)
	name := user
	if co != w.x {
		name += " of Y"
	}
	d := &device{Device: w.srv.Dial(w.t, name), pushed: map[uint64]bool{}}
	d.Queries = chat.New().Manifest().Queries
	if _, err := d.Call("connect", obj{"appId": co.app, "userId": user, "accessToken": cred.AccessToken, "sdkVersion": "3.0.0"}); err != nil {
		w.t.Fatalf("connect %s: %v", user, err)
	}
	return d
}

// event returns the next event pushed to the device that it has not had
// yet: presence and token pushes (no seq) are skipped, and so are events
// its own commands' answers carried.
func (d *device) event() frame {
	d.T.Helper()
	for {
		f := d.Pending("an event")
		switch {
		case f.ID != nil:
			d.T.Fatalf("%s: an answer nobody asked for: %s", d.Name, f.ID)
		case f.Seq == 0:
			continue
		case d.pushed[f.Seq]:
			d.T.Fatalf("%s: event %d (%s) pushed twice", d.Name, f.Seq, f.Event)
		}
		d.pushed[f.Seq] = true
		d.Seen = max(d.Seen, f.Seq)
		if !d.Answered[f.Seq] {
			return f
		}
	}
}

// expect wants the device's next event to be want (type, seq and data).
func (d *device) expect(want frame) frame {
	d.T.Helper()
	got := d.event()
	if got.Event != want.Event || got.Seq != want.Seq || !jsonEqual(got.Data, want.Data) {
		d.T.Fatalf("%s got event %d %s %s, want %d %s %s", d.Name, got.Seq, got.Event, got.Data, want.Seq, want.Event, want.Data)
	}
	return got
}

// removed returns the channel.removed event of removeChannel's answer,
// which must have exactly one; the others are the chat's own business
// (events pushed to nobody).
func removed(t *testing.T, res commandResult) frame {
	t.Helper()
	var out []frame
	for _, e := range res.Events {
		if e.Event == chat.EvChannelRemoved {
			out = append(out, e)
		}
	}
	if len(out) != 1 {
		t.Fatalf("removeChannel answered %+v", res)
	}
	return out[0]
}

// unreadOf is the device user's unread count of a channel.
func unreadOf(d *device, ch string) int {
	d.T.Helper()
	var list chat.ChannelsAnswer
	d.Query(chat.QueryChannels, obj{}, &list)
	for _, c := range list.Channels {
		if c.ChannelID == ch {
			return c.UnreadMessages
		}
	}
	d.T.Fatalf("%s has no channel %s: %+v", d.Name, ch, list)
	return 0
}

// snapshot is what alice (a) and bob (b) are answered about their channel
// ab, through the session and the REST API.
func snapshot(w *world, ab string, a, b *device) string {
	w.t.Helper()
	var out strings.Builder
	for _, d := range []*device{a, b} {
		other := map[*device]string{a: "bob", b: "alice"}[d]
		for _, q := range []struct {
			name   string
			params obj
		}{
			{chat.QueryChannels, obj{}},
			{chat.QueryChannelGet, obj{"userId": other}},
			{chat.QueryChannelGet, obj{"channelId": ab}},
			{chat.QueryMessages, obj{"channelId": ab, "messagesToFetch": chat.MaxFetch}},
			{chat.QueryMessages, obj{"channelId": ab, "messagesToFetch": 2, "direction": "afterward"}},
		} {
			ans, err := d.Call(q.name, q.params)
			fmt.Fprintf(&out, "%s %s %s: %s %v\n", d.Name, q.name, mustJSON(q.params), ans, err)
		}
	}
	for _, path := range []string{"/v2/users/alice/channels", "/v2/users/bob/channels", "/v2/channels/" + ab + "/messages?limit=2"} {
		status, body := w.rest(w.x.key, "GET", path, "")
		fmt.Fprintf(&out, "GET %s: %d %s", path, status, body)
	}
	return out.String()
}

// scan returns which of texts appear in any file under dir.
func scan(t *testing.T, dir string, texts []string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, text := range texts {
			if bytes.Contains(b, []byte(text)) {
				found = append(found, fmt.Sprintf("%q in %s", text, filepath.Base(path)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// kernelBin is the kernel binary, built once for auditVerify.
var kernelBin struct {
	once      sync.Once
	dir, path string
	err       error
}

// auditVerify runs `kernel audit verify` on dir, as an operator would.
func auditVerify(t *testing.T, dir string) {
	t.Helper()
	kernelBin.once.Do(func() {
		if kernelBin.dir, kernelBin.err = os.MkdirTemp("", "parley-chat-kernel-"); kernelBin.err != nil {
			return
		}
		kernelBin.path = filepath.Join(kernelBin.dir, "kernel")
		out, err := exec.Command("go", "build", "-o", kernelBin.path, "github.com/parleyhq/parley/cmd/kernel").CombinedOutput()
		if err != nil {
			kernelBin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if kernelBin.err != nil {
		t.Fatalf("building the kernel: %v", kernelBin.err)
	}
	cmd := exec.Command(kernelBin.path, "audit", "verify", "--data-dir", dir)
	cmd.Env = pluginhost.PluginEnv() // none of the caller's PARLEY_ settings
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok: ") {
		t.Fatalf("kernel audit verify: %v\n%s", err, out)
	}
}

func decode[T any](t testing.TB, data json.RawMessage) T {
	t.Helper()
	return sdkapitest.Decode[T](t, data)
}

var mustJSON = sdkapitest.MustJSON

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

func randomHex() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
