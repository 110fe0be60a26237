package kernel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/kerneltest"
	"github.com/parleyhq/parley/kernel/keystore"
)

// vault seals what vault.put is given under the key of its stream; with
// "forge" it emits a payload that looks sealed, with "badkey" a key name
// the store cannot hold.
var vault = kernel.HandlerFunc(func(_ context.Context, cmd kernel.Command) ([]kernel.NewEvent, error) {
	switch string(cmd.Payload) {
	case `"forge"`:
		return []kernel.NewEvent{{Type: "vault.stored", Payload: json.RawMessage(`{"$sealed":{"key":"vault/1","nonce":"","data":""}}`)}}, nil
	case `"badkey"`:
		return []kernel.NewEvent{{Type: "vault.stored", Payload: cmd.Payload, Seal: "vault/\n"}}, nil
	}
	return []kernel.NewEvent{
		{Type: "vault.stored", Payload: cmd.Payload, Seal: cmd.Stream},
		{Type: "vault.peek", Payload: cmd.Payload, Seal: cmd.Stream}, // ephemeral: not sealed
	}, nil
})

func startVault(t *testing.T, dir string) *kernel.Kernel {
	return kerneltest.Start(t, kerneltest.Config(dir), nil, func(k *kernel.Kernel) {
		k.EventTypes().Declare(kernel.EventType{Name: "vault.stored", Durable: true}, kernel.EventType{Name: "vault.peek"})
		k.Handle("vault.put", vault)
	})
}

func TestSealedCommandEvents(t *testing.T) {
	dir := t.TempDir()
	k := startVault(t, dir)
	ctx := context.Background()
	put := func(payload string) ([]eventlog.Event, error) {
		return k.Execute(ctx, kernel.Command{Name: "vault.put", Stream: "vault/1", Company: "acme", Actor: "alice", Payload: json.RawMessage(payload)})
	}
	const secret = `{"text":"a very private vault entry"}`
	evs, err := put(secret)
	if err != nil || len(evs) != 1 || string(evs[0].Payload) != secret {
		t.Fatalf("execute: %v %v", evs, err)
	}
	var stored eventlog.Event
	k.Log().ReadStream(ctx, "vault/1", 1, func(e eventlog.Event) error { stored = e; return nil })
	if !bytes.HasPrefix(stored.Payload, []byte(`{"$sealed":{"key":"vault/1",`)) || bytes.Contains(stored.Payload, []byte("private")) || !json.Valid(stored.Payload) {
		t.Fatalf("stored payload %s", stored.Payload)
	}
	if opened, erased, err := k.OpenEvent(stored); err != nil || erased || string(opened.Payload) != secret || opened.Hash != stored.Hash {
		t.Fatalf("open: %s %v %v", opened.Payload, erased, err)
	}

	for payload, want := range map[string]kernel.Code{
		`{"$sealed":{"key":"vault/1"}}`: kernel.CodeInvalidCommand,   // from the caller
		`"forge"`:                       kernel.CodePermissionDenied, // from the handler
		`"badkey"`:                      kernel.CodeInvalidCommand,
	} {
		if _, err := put(payload); kernel.AsError(err).Code != want {
			t.Errorf("%s: %v, want %s", payload, err, want)
		}
	}

	for range 2 { // idempotent: one event, for the key that existed
		if err := k.EraseKey(ctx, "acme", "vault/1", "operator"); err != nil {
			t.Fatal(err)
		}
	}
	if opened, erased, err := k.OpenEvent(stored); err != nil || !erased || opened.Payload != nil {
		t.Fatalf("after erasure: %s %v %v", opened.Payload, erased, err)
	}
	var erasures []eventlog.Event
	k.Log().ReadStream(ctx, "kernel", 1, func(e eventlog.Event) error {
		if e.Type == "kernel.key.erased" {
			erasures = append(erasures, e)
		}
		return nil
	})
	if len(erasures) != 1 || erasures[0].Company != "acme" || erasures[0].Actor != "operator" || string(erasures[0].Payload) != `{"generation":1,"key":"vault/1"}` {
		t.Fatalf("erasure events %v", erasures)
	}
	if rep, err := k.Log().Verify(ctx); err != nil {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

func TestMasterKeyFileSetting(t *testing.T) {
	dir := t.TempDir()
	load := func(args []string, env ...string) kernel.Config {
		t.Helper()
		c, err := kernel.LoadConfig(flag.NewFlagSet("test", flag.ContinueOnError), append([]string{"--data-dir", dir}, args...), env)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := load(nil); c.MasterKeyPath() != filepath.Join(dir, "master.key") {
		t.Fatalf("default %s", c.MasterKeyPath())
	}
	if c := load(nil, "PARLEY_MASTER_KEY_FILE=/env/key"); c.MasterKeyPath() != "/env/key" {
		t.Fatalf("env %s", c.MasterKeyPath())
	}
	keyFile := filepath.Join(t.TempDir(), "m.key")
	if c := load([]string{"--master-key-file", keyFile}, "PARLEY_MASTER_KEY_FILE=/env/key"); c.MasterKeyPath() != keyFile {
		t.Fatalf("flag %s", c.MasterKeyPath())
	}

	// The kernel generates the file, and refuses to start with another.
	cfg := load([]string{"--master-key-file", keyFile})
	k, err := kernel.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	k.Close(context.Background(), "test")
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(keyFile, bytes.Repeat([]byte("k"), keystore.MasterKeySize), 0o600)
	if _, err := kernel.Open(cfg, nil); !errors.Is(err, keystore.ErrWrongMasterKey) || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("wrong master key: %v", err)
	}
}

// TestInterruptedErasureIsFinished: EraseKey records kernel.key.erased
// before it destroys the key; after a crash in between, the next start
// destroys it. A record of an older generation leaves a newer key alone.
func TestInterruptedErasureIsFinished(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	put := func(k *kernel.Kernel) eventlog.Event {
		evs, err := k.Execute(ctx, kernel.Command{Name: "vault.put", Stream: "vault/1", Company: "acme", Actor: "alice", Payload: json.RawMessage(`{"text":"secret"}`)})
		if err != nil {
			t.Fatal(err)
		}
		var stored eventlog.Event
		k.Log().Read(ctx, evs[0].Seq, evs[0].Seq, func(e eventlog.Event) error { stored = e; return nil })
		return stored
	}
	crashAfterRecording := func(generation int) { // the record, without the erasure
		l, err := eventlog.Open(dir, eventlog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		p := fmt.Sprintf(`{"key":"vault/1","generation":%d}`, generation)
		if _, err := l.Append(ctx, eventlog.Draft{Type: "kernel.key.erased", Stream: "kernel", Company: "acme", Actor: "operator", Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	k := startVault(t, dir)
	first := put(k)
	k.Close(ctx, "test")
	crashAfterRecording(1)
	k = startVault(t, dir)
	if _, erased, err := k.OpenEvent(first); err != nil || !erased {
		t.Fatalf("after the restart: erased %v, %v", erased, err)
	}
	second := put(k) // a new generation of the same name
	k.Close(ctx, "test")
	crashAfterRecording(1) // a stale record: generation 1 is long gone
	k = startVault(t, dir)
	if opened, erased, err := k.OpenEvent(second); err != nil || erased || string(opened.Payload) != `{"text":"secret"}` {
		t.Fatalf("generation 2 after a stale record: %s %v %v", opened.Payload, erased, err)
	}
	k.Close(ctx, "test")
}
