package plugins_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/parleyhq/parley/plugins"
)

func manifest() plugins.Manifest {
	return plugins.Manifest{
		ID: "tool.acme.poll", Version: "1", Protocol: plugins.ProtocolVersion,
		Commands: []string{"poll.create"}, Subscribes: []string{"poll"},
		Events:      []plugins.EventType{{Name: "poll.created", Durable: true}, {Name: "poll.typing"}},
		Permissions: []plugins.Permission{plugins.PermAppend, plugins.PermKV}, Streams: []string{"poll/"},
	}
}

func TestManifestValidate(t *testing.T) {
	for _, c := range []struct {
		edit func(*plugins.Manifest)
		ok   bool
	}{
		{func(*plugins.Manifest) {}, true},
		{func(m *plugins.Manifest) { m.ID = "Poll" }, false},
		{func(m *plugins.Manifest) { m.ID = "poll" }, false},
		{func(m *plugins.Manifest) { m.Permissions = append(m.Permissions, "root") }, false},
		{func(m *plugins.Manifest) { m.Events = append(m.Events, plugins.EventType{Name: "undotted"}) }, false},
		{func(m *plugins.Manifest) { m.Events = append(m.Events, plugins.EventType{Name: "kernel.stopped"}) }, false},
		{func(m *plugins.Manifest) { m.Streams = []string{""} }, false},
		{func(m *plugins.Manifest) { m.Streams = []string{"poll"} }, false},
		{func(m *plugins.Manifest) { m.Streams = []string{"plugin/"} }, false},
		{func(m *plugins.Manifest) { m.Streams = []string{"company/"} }, false},
		{func(m *plugins.Manifest) {
			m.Events = []plugins.EventType{{Name: "company.apikey.created", Durable: true}}
		}, false},
		{func(m *plugins.Manifest) { m.Events = []plugins.EventType{{Name: "user.deleted", Durable: true}} }, false},
		{func(m *plugins.Manifest) { m.Queries = []string{"poll.results"} }, true},
		{func(m *plugins.Manifest) { m.Queries = []string{"poll.create"} }, false},
	} {
		m := manifest()
		c.edit(&m)
		if err := m.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: %v", m, err)
		}
	}
}

func TestExceeds(t *testing.T) {
	granted := manifest()
	asks := manifest()
	if over := asks.Exceeds(&granted); len(over) != 0 {
		t.Fatalf("same manifest exceeds: %v", over)
	}
	asks.Permissions = append(asks.Permissions, plugins.PermPublish)
	asks.Commands = append(asks.Commands, "poll.delete")
	asks.Streams = []string{"channel/"}
	asks.Events = append(asks.Events, plugins.EventType{Name: "poll.typing", Durable: true})
	asks.Subscribes = append(asks.Subscribes, "channel")
	want := "[permission publish command poll.delete stream prefix channel/ event type poll.typing subscription channel]"
	if got := fmt.Sprint(asks.Exceeds(&granted)); got != want {
		t.Fatalf("exceeds %s, want %s", got, want)
	}
}

// TestExceedsQueriesAndClient: a plugin may not answer more queries, or
// expose more to users, than it was granted; a new stream template for a
// granted client method is more too.
func TestExceedsQueriesAndClient(t *testing.T) {
	granted := manifest()
	granted.Commands = []string{"poll.create", "poll.vote"}
	granted.Queries = []string{"poll.results"}
	granted.Client = []plugins.ClientMethod{{Name: "poll.create", Stream: "poll/{company}/{actor}"}, {Name: "poll.results"}}
	for _, c := range []struct {
		name string
		edit func(*plugins.Manifest)
		want string
	}{
		{"same", func(*plugins.Manifest) {}, "[]"},
		{"fewer", func(m *plugins.Manifest) { m.Queries, m.Client = nil, nil }, "[]"},
		{"another query", func(m *plugins.Manifest) { m.Queries = append(m.Queries, "poll.voters") }, "[query poll.voters]"},
		{"a command made client-callable", func(m *plugins.Manifest) {
			m.Client = append(m.Client, plugins.ClientMethod{Name: "poll.vote", Stream: "poll/{company}/{params.pollId}"})
		}, "[client method poll.vote]"},
		{"a new stream template", func(m *plugins.Manifest) { m.Client[0].Stream = "poll/{company}/{params.pollId}" }, "[client method poll.create]"},
	} {
		asks := granted
		asks.Client = slices.Clone(granted.Client)
		c.edit(&asks)
		if err := asks.Validate(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := fmt.Sprint(asks.Exceeds(&granted)); got != c.want {
			t.Errorf("%s: exceeds %s, want %s", c.name, got, c.want)
		}
	}
}

func TestChecks(t *testing.T) {
	m := manifest()
	code := func(err error) plugins.Code {
		var e *plugins.Error
		if errors.As(err, &e) {
			return e.Code
		}
		return ""
	}
	cases := []struct {
		name string
		err  error
		want plugins.Code
	}{
		{"append owned", m.CheckAppend(plugins.NewEvent{Type: "poll.created", Stream: "poll/1"}), ""},
		{"append foreign stream", m.CheckAppend(plugins.NewEvent{Type: "poll.created", Stream: "channel/1"}), plugins.CodePermissionDenied},
		{"append ephemeral type", m.CheckAppend(plugins.NewEvent{Type: "poll.typing", Stream: "poll/1"}), plugins.CodePermissionDenied},
		{"publish without permission", m.CheckPublish(plugins.NewEvent{Type: "poll.typing"}), plugins.CodePermissionDenied},
		{"read without permission", m.Need(plugins.PermRead), plugins.CodePermissionDenied},
		{"decided into the command's owned stream", m.CheckDecided(plugins.Command{Stream: "poll/1"}, []plugins.NewEvent{{Type: "poll.created"}}), ""},
		{"decided into a command stream it does not own", m.CheckDecided(plugins.Command{Stream: "kernel"}, []plugins.NewEvent{{Type: "poll.created"}}), plugins.CodePermissionDenied},
		{"decided undeclared", m.CheckDecided(plugins.Command{Stream: "x/1"}, []plugins.NewEvent{{Type: "poll.closed"}}), plugins.CodePermissionDenied},
		{"decided foreign stream", m.CheckDecided(plugins.Command{Stream: "x/1"}, []plugins.NewEvent{{Type: "poll.created", Stream: "y/1"}}), plugins.CodePermissionDenied},
	}
	for _, c := range cases {
		if got := code(c.err); got != c.want {
			t.Errorf("%s: %v, want %q", c.name, c.err, c.want)
		}
	}
}

func TestMatchesTopic(t *testing.T) {
	for _, c := range []struct {
		topic, typ string
		want       bool
	}{
		{"channel", "channel.message.sent", true},
		{"channel", "channel", true},
		{"channel", "channels.x", false},
		{"channel.message", "channel.message.sent", true},
		{"call", "channel.message.sent", false},
		{"*", "anything", true},
	} {
		if got := plugins.MatchesTopic(c.topic, c.typ); got != c.want {
			t.Errorf("MatchesTopic(%q, %q) = %v", c.topic, c.typ, got)
		}
	}
}

func TestErrorJSON(t *testing.T) {
	b, _ := json.Marshal(plugins.Errorf("poll_closed", "poll %d is closed", 7))
	if string(b) != `{"code":"poll_closed","message":"poll 7 is closed"}` {
		t.Fatal(string(b))
	}
	if plugins.AsCoded(errors.New("boom")).Code != plugins.CodeInternal {
		t.Fatal("uncoded error not internal")
	}
}
