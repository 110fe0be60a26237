package main

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/plugintest"
)

func TestNoteAndCounts(t *testing.T) {
	ctx := context.Background()
	k := plugintest.New(t, &CRMLog{})
	evs, err := k.Execute(ctx, plugins.Command{Name: "crmlog.note", Stream: "crmlog/customer-7", Actor: "alice", Payload: json.RawMessage(`{"text":"called back"}`)})
	if err != nil || len(evs) != 1 || evs[0].Type != "crmlog.noted" || evs[0].Version != 1 {
		t.Fatalf("note: %v %v", evs, err)
	}
	k.Inject(ctx, plugins.NewEvent{Type: "demo.echoed", Stream: "demo/echo"})
	var c counts
	json.Unmarshal(k.KV()["counts"], &c)
	if c.ByType["crmlog.noted"] != 1 || c.ByType["demo.echoed"] != 1 || c.LastSeq != 2 {
		t.Fatalf("counts %+v", c)
	}
}

func TestRefusals(t *testing.T) {
	k := plugintest.New(t, &CRMLog{})
	for _, cmd := range []plugins.Command{
		{Name: "crmlog.note", Stream: "crmlog/1", Payload: json.RawMessage(`{"text":""}`)},
		{Name: "crmlog.note", Stream: "elsewhere/1", Payload: json.RawMessage(`{"text":"x"}`)},
		{Name: "crmlog.note", Stream: "crmlog/1", Payload: json.RawMessage(`not json`)},
	} {
		_, err := k.Execute(context.Background(), cmd)
		var pe *plugins.Error
		if !errors.As(err, &pe) || pe.Code != plugins.CodeInvalidCommand {
			t.Errorf("%s on %s: got %v", cmd.Payload, cmd.Stream, err)
		}
	}
	if len(k.Events()) != 0 {
		t.Fatal("a refused command appended events")
	}
}
