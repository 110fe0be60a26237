package demo_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/demo"
	"github.com/parleyhq/parley/plugins/plugintest"
)

func TestEchoAndTally(t *testing.T) {
	ctx := context.Background()
	k := plugintest.New(t, demo.New())
	for i := range 3 {
		evs, err := k.Execute(ctx, plugins.Command{Name: "demo.echo", Stream: "demo/echo", Payload: json.RawMessage(`{"text":"hi"}`)})
		if err != nil || len(evs) != 1 || evs[0].Version != uint64(i+1) {
			t.Fatalf("echo %d: %v %v", i, evs, err)
		}
	}
	if string(k.KV()["tally"]) != `{"echoes":3,"last_seq":3}` {
		t.Fatalf("tally %s", k.KV()["tally"])
	}
	if _, err := k.Execute(ctx, plugins.Command{Name: "demo.echo", Stream: "demo/echo", Payload: json.RawMessage(`{"text":""}`)}); plugins.AsCoded(err).Code != plugins.CodeInvalidCommand {
		t.Fatalf("empty text: %v", err)
	}
}

// TestTallyQueryAndClientMethods: the tally is answered as a query, and a
// user's echo lands on the stream its client method's template names.
func TestTallyQueryAndClientMethods(t *testing.T) {
	ctx := context.Background()
	k := plugintest.New(t, demo.New())
	if ans, err := k.Query(ctx, plugins.Query{Name: "demo.tally", Actor: "alice"}); err != nil || string(ans) != `{"echoes":0,"last_seq":0}` {
		t.Fatalf("tally before any echo: %s %v", ans, err)
	}
	m := demo.New().Manifest()
	var echo plugins.ClientMethod
	for _, c := range m.Client {
		if c.Name == "demo.echo" {
			echo = c
		}
	}
	params := json.RawMessage(`{"text":"hi"}`)
	stream, err := plugins.ExpandStream(echo.Stream, "acme", "alice", params)
	if err != nil || stream != "demo/acme/alice" {
		t.Fatalf("stream %q, %v", stream, err)
	}
	if _, err := k.Execute(ctx, plugins.Command{Name: echo.Name, Stream: stream, Company: "acme", Actor: "alice", Payload: params}); err != nil {
		t.Fatal(err)
	}
	if ans, err := k.Query(ctx, plugins.Query{Name: "demo.tally", Actor: "alice"}); err != nil || string(ans) != `{"echoes":1,"last_seq":1}` {
		t.Fatalf("tally after an echo: %s %v", ans, err)
	}
}
