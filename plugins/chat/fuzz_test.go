package chat_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/chat"
)

// FuzzRequests feeds arbitrary payloads to every command and query: the
// plugin never panics, refuses only with codes of its catalogue, and every
// event it decides carries a payload its own projection reads back.
func FuzzRequests(f *testing.F) {
	for _, s := range []string{
		`{}`, ``, `null`, `[]`, `"x"`, `7`, `{"userId":"bob"}`, `{"userId":"bob","asUser":"alice"}`,
		`{"channelId":"CH","text":"hi"}`, `{"channelId":"CH","messageId":"MSG"}`,
		`{"channelId":"CH","messagesToFetch":3,"anchor":["MSG"],"direction":"afterward"}`,
		`{"channelId":"CH","anchor":{"a":1},"minSeq":-1}`, `{"text":"\ud800"}`, `{"userId":"ALICE","minSeq":1e30}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		e := newEnv(t)
		ch := e.addChannel("alice", "bob")
		msg := e.send("bob", ch, "hello")
		// Let the payload name the real channel and message.
		payload = strings.NewReplacer("CH", ch, "MSG", msg.MessageID).Replace(payload)
		known := []plugins.Code{
			chat.CodeValidation, chat.CodeAuthentication, chat.CodeCreateChannel, chat.CodeDeleteChannel,
			chat.CodeChannelNotFound, chat.CodeChannelNotExists, chat.CodeMessageAnchor,
			chat.CodeUnavailable, // a minSeq beyond the log's head
		}
		m := chat.New().Manifest()
		for _, actor := range []string{"alice", "carol", plugins.ActorAPIKeyPrefix + company} {
			for _, name := range m.Commands {
				stream, err := plugins.ExpandStream(clientMethod(t, name).Stream, company, actor, json.RawMessage(payload))
				if err != nil {
					continue // the session refuses it before the plugin sees it
				}
				evs, err := e.k.Execute(context.Background(), plugins.Command{Name: name, Stream: stream, Company: company, Actor: actor, Payload: json.RawMessage(payload)})
				if err != nil && !slices.Contains(known, codeOf(err)) {
					t.Fatalf("%s %s %q: %v", actor, name, payload, err)
				}
				for _, ev := range evs {
					if !json.Valid(e.opened(ev.Seq).Payload) && !e.opened(ev.Seq).Erased {
						t.Fatalf("%s decided an event with a payload that is not JSON: %+v", name, ev)
					}
				}
			}
			for _, name := range m.Queries {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				ans, err := e.k.Query(ctx, plugins.Query{Name: name, Company: company, Actor: actor, Payload: json.RawMessage(payload)})
				cancel()
				if err != nil && !slices.Contains(known, codeOf(err)) {
					t.Fatalf("%s %s %q: %v", actor, name, payload, err)
				}
				if err == nil && !json.Valid(ans) {
					t.Fatalf("%s answered %q", name, ans)
				}
			}
		}
		// Whatever happened, a fresh instance rebuilds to the same answers.
		want := answers(e)
		if err := e.k.Restart(context.Background(), chat.New()); err != nil {
			t.Fatal(err)
		}
		if got := answers(e); got != want {
			t.Fatalf("after a restart:\n%s\nwant:\n%s", got, want)
		}
	})
}
