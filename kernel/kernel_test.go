package kernel_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/kerneltest"
	"github.com/parleyhq/parley/kernel/pluginhost"
	"github.com/parleyhq/parley/sdkapi"
)

func testConfig(t *testing.T, dir string) kernel.Config {
	cfg := kernel.DefaultConfig()
	cfg.DataDir = dir
	return cfg
}

func start(t *testing.T, dir string, setup func(k *kernel.Kernel)) *kernel.Kernel {
	return kerneltest.Start(t, kerneltest.Config(dir), nil, setup)
}

var eventually = kerneltest.Eventually

var noteTypes = []kernel.EventType{
	{Name: "note.added", Durable: true},
	{Name: "note.typing", Durable: false},
}

// notes is a small handler: note.add emits note.added (and a typing
// indicator), refusing empty text.
var notes = kernel.HandlerFunc(func(_ context.Context, cmd kernel.Command) ([]kernel.NewEvent, error) {
	var in struct{ Text string }
	if err := json.Unmarshal(cmd.Payload, &in); err != nil || in.Text == "" {
		return nil, kernel.Errorf(kernel.CodeInvalidCommand, "text required")
	}
	if in.Text == "panic" {
		panic("handler bug")
	}
	p, _ := json.Marshal(map[string]any{"text": in.Text, "after": cmd.Version})
	return []kernel.NewEvent{
		{Type: "note.typing", Audience: []string{"bob"}},
		{Type: "note.added", Audience: []string{"bob"}, Payload: p},
	}, nil
})

func noteCmd(stream, text string) kernel.Command {
	return kernel.Command{Name: "note.add", Stream: stream, Company: "acme", Actor: "alice", Payload: json.RawMessage(fmt.Sprintf(`{"Text":%q}`, text))}
}

type recorder struct {
	mu   sync.Mutex
	seqs []uint64
	typs []string
}

func (r *recorder) handle(_ context.Context, e eventlog.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs = append(r.seqs, e.Seq)
	r.typs = append(r.typs, e.Type)
	return nil
}

func (r *recorder) len() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.seqs) }

func TestExecuteAppendsThenDelivers(t *testing.T) {
	durable, ephemeral := &recorder{}, &recorder{}
	k := start(t, t.TempDir(), func(k *kernel.Kernel) {
		k.EventTypes().Declare(noteTypes...)
		k.Handle("note.add", notes)
		if err := k.Bus().Subscribe("test-notes", "note", durable.handle); err != nil {
			t.Fatal(err)
		}
		if err := k.Bus().SubscribeEphemeral("test-typing", "note", ephemeral.handle); err != nil {
			t.Fatal(err)
		}
	})
	ctx := context.Background()
	evs, err := k.Execute(ctx, noteCmd("notes/1", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Type != "note.added" || evs[0].Actor != "alice" || evs[0].Company != "acme" || evs[0].Version != 1 {
		t.Fatalf("appended %+v", evs)
	}
	// The answer came after the append: the event is already readable.
	if v, _ := k.Log().StreamVersion("notes/1"); v != 1 {
		t.Fatalf("stream version %d after Execute", v)
	}
	eventually(t, "durable delivery", func() bool { return durable.len() == 1 })
	eventually(t, "ephemeral delivery", func() bool { return ephemeral.len() == 1 })
	if durable.seqs[0] != evs[0].Seq || ephemeral.seqs[0] != 0 || ephemeral.typs[0] != "note.typing" {
		t.Fatalf("durable %v ephemeral %v %v", durable.seqs, ephemeral.seqs, ephemeral.typs)
	}
	// Nothing ephemeral reached the log.
	n := 0
	k.Log().Read(ctx, 1, 0, func(e eventlog.Event) error {
		if e.Type == "note.typing" {
			t.Error("ephemeral event in the log")
		}
		n++
		return nil
	})
	if n != 2 { // kernel.started, note.added
		t.Fatalf("%d events in the log", n)
	}
}

func TestExecuteErrorsAreCoded(t *testing.T) {
	k := start(t, t.TempDir(), func(k *kernel.Kernel) {
		k.EventTypes().Declare(noteTypes...)
		k.Handle("note.add", notes)
		k.Handle("note.bad", kernel.HandlerFunc(func(context.Context, kernel.Command) ([]kernel.NewEvent, error) {
			return []kernel.NewEvent{{Type: "note.undeclared"}}, nil
		}))
	})
	ctx := context.Background()
	big := kernel.Command{Name: "note.add", Stream: "n/1", Payload: json.RawMessage(`"` + strings.Repeat("x", 2<<20) + `"`)}
	cases := []struct {
		name string
		cmd  kernel.Command
		code kernel.Code
	}{
		{"unknown command", kernel.Command{Name: "nope", Stream: "n/1"}, kernel.CodeUnknownCommand},
		{"no stream", kernel.Command{Name: "note.add"}, kernel.CodeInvalidCommand},
		{"refused by handler", noteCmd("n/1", ""), kernel.CodeInvalidCommand},
		{"handler panics", noteCmd("n/1", "panic"), kernel.CodeInternal},
		{"undeclared event type", kernel.Command{Name: "note.bad", Stream: "n/1"}, kernel.CodeInternal},
		{"payload too large", big, kernel.CodePayloadTooLarge},
	}
	for _, c := range cases {
		_, err := k.Execute(ctx, c.cmd)
		var ke *kernel.Error
		if !errors.As(err, &ke) || ke.Code != c.code {
			t.Errorf("%s: got %v, want code %s", c.name, err, c.code)
		}
	}
	// Nothing was written by the refused commands, and the kernel still serves.
	if v, _ := k.Log().StreamVersion("n/1"); v != 0 {
		t.Fatalf("refused commands wrote %d events", v)
	}
	if _, err := k.Execute(ctx, noteCmd("n/1", "fine")); err != nil {
		t.Fatal(err)
	}
}

// TestCommandsOnOneStreamAreSerialised runs many concurrent commands on one
// stream; each handler sees the version left by the previous one.
func TestCommandsOnOneStreamAreSerialised(t *testing.T) {
	k := start(t, t.TempDir(), func(k *kernel.Kernel) {
		k.EventTypes().Declare(noteTypes...)
		k.Handle("note.add", notes)
	})
	ctx := context.Background()
	const g, each = 8, 25
	var wg sync.WaitGroup
	for i := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if _, err := k.Execute(ctx, noteCmd("notes/shared", fmt.Sprintf("%d-%d", i, j))); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	var afters []uint64
	k.Log().ReadStream(ctx, "notes/shared", 1, func(e eventlog.Event) error {
		var p struct{ After uint64 }
		json.Unmarshal(e.Payload, &p)
		if p.After != e.Version-1 {
			t.Errorf("version %d decided against %d", e.Version, p.After)
		}
		afters = append(afters, p.After)
		return nil
	})
	if len(afters) != g*each {
		t.Fatalf("%d events", len(afters))
	}
}

// TestWaitingForAStreamGivesUp: a command waiting for one that holds its
// stream (a slow handler) gives up when its caller does, with busy, and
// leaves the stream's lock as it was; other streams are not held up.
func TestWaitingForAStreamGivesUp(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	k := start(t, t.TempDir(), func(k *kernel.Kernel) {
		k.EventTypes().Declare(noteTypes...)
		k.Handle("note.add", kernel.HandlerFunc(func(ctx context.Context, cmd kernel.Command) ([]kernel.NewEvent, error) {
			if strings.Contains(string(cmd.Payload), "slow") {
				close(entered)
				<-release
			}
			return notes(ctx, cmd)
		}))
	})
	slow := make(chan error, 1)
	go func() {
		_, err := k.Execute(context.Background(), noteCmd("notes/a", "slow"))
		slow <- err
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := k.Execute(ctx, noteCmd("notes/a", "waits"))
	cancel()
	if kernel.AsError(err).Code != kernel.CodeBusy {
		t.Fatalf("a waiter whose caller gave up: %v", err)
	}
	if _, err := k.Execute(context.Background(), noteCmd("notes/b", "other stream")); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	evs, err := k.Execute(context.Background(), noteCmd("notes/a", "after"))
	if err != nil {
		t.Fatal(err)
	}
	if v := evs[len(evs)-1].Version; v != 2 {
		t.Fatalf("the next command on the stream made version %d, want 2 (the one that gave up appended nothing)", v)
	}
}

// TestPoisonedEventGoesToDeadLetters makes a subscriber fail one event for
// good: after its retries the event lands in deadletter/<subscriber> and
// later events are still delivered. A panicking subscriber is treated the
// same way.
func TestPoisonedEventGoesToDeadLetters(t *testing.T) {
	var got, attempts atomic.Int64
	k := start(t, t.TempDir(), func(k *kernel.Kernel) {
		k.EventTypes().Declare(noteTypes...)
		k.Handle("note.add", notes)
		k.Bus().Subscribe("picky", "note", func(_ context.Context, e eventlog.Event) error {
			if strings.Contains(string(e.Payload), "poison") {
				attempts.Add(1)
				return errors.New("cannot handle poison")
			}
			got.Add(1)
			return nil
		})
		k.Bus().Subscribe("panicky", "note", func(_ context.Context, e eventlog.Event) error {
			if strings.Contains(string(e.Payload), "poison") {
				panic("subscriber bug")
			}
			return nil
		})
	})
	ctx := context.Background()
	for _, text := range []string{"one", "poison", "two"} {
		if _, err := k.Execute(ctx, noteCmd("notes/p", text)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "delivery past the poisoned event", func() bool { return got.Load() == 2 })
	var dead []eventlog.Event
	eventually(t, "dead letter", func() bool {
		dead = dead[:0]
		k.Log().ReadStream(ctx, "deadletter/picky", 1, func(e eventlog.Event) error { dead = append(dead, e); return nil })
		return len(dead) == 1
	})
	var p struct {
		Subscriber, Reason, Type string
		Seq                      uint64
	}
	json.Unmarshal(dead[0].Payload, &p)
	if dead[0].Type != "bus.message.poisoned" || p.Subscriber != "picky" || p.Type != "note.added" || !strings.Contains(p.Reason, "cannot handle poison") || p.Seq == 0 {
		t.Fatalf("dead letter %s %+v", dead[0].Type, p)
	}
	if n := attempts.Load(); n != 4 {
		t.Fatalf("the failing event was tried %d times, want 1 + 3 retries", n)
	}
	eventually(t, "the panicking subscriber's dead letter", func() bool {
		v, _ := k.Log().StreamVersion("deadletter/panicky")
		return v == 1
	})
}

// TestDurableSubscriberResumesAfterRestart stops the kernel and starts it
// again: the subscriber continues after the last event it handled.
func TestDurableSubscriberResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	setup := func(r *recorder) func(*kernel.Kernel) {
		return func(k *kernel.Kernel) {
			k.EventTypes().Declare(noteTypes...)
			k.Handle("note.add", notes)
			k.Bus().Subscribe("resumer", "note", r.handle)
		}
	}
	first := &recorder{}
	k, _ := kernel.Open(testConfig(t, dir), nil)
	setup(first)(k)
	k.Start(ctx)
	for i := range 5 {
		k.Execute(ctx, noteCmd("notes/r", fmt.Sprint(i)))
	}
	eventually(t, "first run delivery", func() bool { return first.len() == 5 })
	if err := k.Close(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	second := &recorder{}
	k = start(t, dir, setup(second))
	evs, _ := k.Execute(ctx, noteCmd("notes/r", "after restart"))
	eventually(t, "second run delivery", func() bool { return second.len() >= 1 })
	time.Sleep(100 * time.Millisecond) // give a wrong redelivery the chance to show
	second.mu.Lock()
	defer second.mu.Unlock()
	if len(second.seqs) != 1 || second.seqs[0] != evs[0].Seq {
		t.Fatalf("after restart got %v, want only [%d]", second.seqs, evs[0].Seq)
	}
}

func TestConfigPrecedenceAndErrors(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/parley.yaml"
	os.WriteFile(file, []byte("http_addr: \":9000\"\neventlog:\n  queue_size: 100\n  max_batch: 50\n"), 0o600)
	load := func(args []string, env ...string) (kernel.Config, error) {
		return kernel.LoadConfig(flag.NewFlagSet("t", flag.ContinueOnError), args, env)
	}
	cfg, err := load([]string{"--config", file, "--eventlog-max-batch", "7"}, "PARLEY_EVENTLOG_QUEUE_SIZE=200", "PARLEY_EVENTLOG_MAX_BATCH=9")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":9000" || cfg.EventLog.QueueSize != 200 || cfg.EventLog.MaxBatch != 7 || cfg.DataDir != "./data" {
		t.Fatalf("precedence wrong: %+v", cfg)
	}
	if cfg, err := load(nil, "PARLEY_PLUGIN_START_TIMEOUT=5m"); err != nil || cfg.PluginStartTimeout != 5*time.Minute {
		t.Fatalf("plugin_start_timeout from the environment: %v, %v", cfg.PluginStartTimeout, err)
	}
	os.WriteFile(dir+"/typo.yaml", []byte("eventlog:\n  queue_sise: 1\n"), 0o600)
	bad := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--config", dir + "/typo.yaml"}, nil, `unknown key "eventlog.queue_sise"`},
		{nil, []string{"PARLEY_HTTP_ADR=:1"}, "PARLEY_HTTP_ADR is not a Parley setting"},
		{nil, []string{"PARLEY_EVENTLOG_QUEUE_SIZE=many"}, "PARLEY_EVENTLOG_QUEUE_SIZE: invalid value"},
		{[]string{"--http-addr", "nonsense"}, nil, "http_addr:"},
		{[]string{"--eventlog-max-batch", "0"}, nil, "eventlog.max_batch: 0 is outside"},
		{[]string{"--log-level", "loud"}, nil, "log_level:"},
		{[]string{"--plugin-start-timeout", "0s"}, nil, "plugin_start_timeout: must be positive"},
	}
	for _, c := range bad {
		if _, err := load(c.args, c.env...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: got %v, want %q", c.args, c.env, err, c.want)
		}
	}
}

// TestDurableTypesAreDocumented keeps docs/events.md, the list auditors
// read, in step with the declared durable types.
func TestDurableTypesAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	k, err := kernel.Open(testConfig(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close(context.Background(), "test")
	if _, err := pluginhost.New(k, pluginhost.Config{}, nil); err != nil { // declares the plugin.* types
		t.Fatal(err)
	}
	if _, err := sdkapi.New(k, testConfig(t, "")); err != nil { // declares the company.* and user.* types
		t.Fatal(err)
	}
	for _, et := range k.EventTypes().List() {
		row := "| `" + et.Name + "` |"
		if et.Durable != strings.Contains(string(doc), row+" durable") || !strings.Contains(string(doc), row) {
			t.Errorf("docs/events.md: want a row %s %v", row, map[bool]string{true: "durable", false: "ephemeral"}[et.Durable])
		}
	}
}

// A command's event on another stream than the command's, carrying
// Expect, holds to the state of that stream it was decided on: if the
// stream moved meanwhile nothing is appended and the command is decided
// again, as a conflict on its own stream does.
func TestExpectOnAnotherStreamDecidesAgain(t *testing.T) {
	var calls atomic.Int32
	var k *kernel.Kernel
	k = start(t, t.TempDir(), func(k2 *kernel.Kernel) {
		k = k2
		k2.EventTypes().Declare(noteTypes...)
		k2.Handle("note.add", kernel.HandlerFunc(func(ctx context.Context, cmd kernel.Command) ([]kernel.NewEvent, error) {
			v, err := k.Log().StreamVersion("notes/shared")
			if err != nil {
				return nil, err
			}
			if calls.Add(1) == 1 { // another writer gets there between the decision and the append
				if _, err := k.Log().Append(ctx, eventlog.Draft{Type: "note.added", Stream: "notes/shared", Company: "acme", Actor: "bob", Payload: json.RawMessage(`{"after":0}`)}); err != nil {
					return nil, err
				}
			}
			p, _ := json.Marshal(map[string]any{"after": v})
			return []kernel.NewEvent{{Type: "note.added", Stream: "notes/shared", Payload: p, Expect: &v}}, nil
		}))
	})
	if _, err := k.Execute(context.Background(), noteCmd("notes/alice", "x")); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("decided %d times, want 2 (once more after the conflict)", n)
	}
	var afters []uint64
	k.Log().ReadStream(context.Background(), "notes/shared", 1, func(e eventlog.Event) error {
		var p struct{ After uint64 }
		json.Unmarshal(e.Payload, &p)
		afters = append(afters, p.After)
		return nil
	})
	if len(afters) != 2 || afters[1] != 1 {
		t.Fatalf("notes/shared holds events decided after versions %v, want [0 1]: the stale decision appended nothing", afters)
	}
}
