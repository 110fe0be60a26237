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
