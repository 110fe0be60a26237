package plugintest_test

import (
	"context"
	"testing"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/plugintest"
)

// greedy tries the kernel API beyond its manifest.
type greedy struct{ k plugins.Kernel }

func (*greedy) Manifest() plugins.Manifest {
	return plugins.Manifest{ID: "test.greedy", Protocol: 1, Permissions: []plugins.Permission{plugins.PermKV}}
}

func (g *greedy) Start(_ context.Context, k plugins.Kernel) error { g.k = k; return nil }

// TestPermissionsAsInTheKernel: the in-memory kernel refuses what the real
// one refuses, with the same code.
func TestPermissionsAsInTheKernel(t *testing.T) {
	g := &greedy{}
	k := plugintest.New(t, g)
	ctx := context.Background()
	if err := g.k.KVPut(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"append":  func() error { _, err := g.k.Append(ctx, []plugins.NewEvent{{Type: "x.y", Stream: "x/1"}}); return err }(),
		"read":    func() error { _, err := g.k.ReadLog(ctx, 1, 10); return err }(),
		"publish": g.k.Publish(ctx, plugins.NewEvent{Type: "x.y"}),
		"unowned": func() error { _, err := k.Execute(ctx, plugins.Command{Name: "x.do", Stream: "x/1"}); return err }(),
	} {
		want := plugins.CodePermissionDenied
		if name == "unowned" {
			want = "unknown_command"
		}
		if got := plugins.AsCoded(err); got == nil || got.Code != want {
			t.Errorf("%s: %v, want %s", name, err, want)
		}
	}
}

// sealer seals what it is told under the key of its stream, and records
// what it was delivered.
type sealer struct {
	k    plugins.Kernel
	seen []plugins.Event
}

func (*sealer) Manifest() plugins.Manifest {
	return plugins.Manifest{
		ID: "test.sealer", Protocol: 1, Commands: []string{"note.add", "note.forget"}, Subscribes: []string{"note"},
		Events:      []plugins.EventType{{Name: "note.added", Durable: true}},
		Permissions: []plugins.Permission{plugins.PermKeys, plugins.PermRead}, Streams: []string{"note/"},
	}
}

func (s *sealer) Start(_ context.Context, k plugins.Kernel) error { s.k = k; return nil }

func (s *sealer) HandleCommand(ctx context.Context, cmd plugins.Command) ([]plugins.NewEvent, error) {
	if cmd.Name == "note.forget" {
		return nil, s.k.EraseKey(ctx, cmd.Company, cmd.Stream)
	}
	return []plugins.NewEvent{{Type: "note.added", Payload: cmd.Payload, Seal: cmd.Stream}}, nil
}

func (s *sealer) ApplyEvents(_ context.Context, evs []plugins.Event) error {
	s.seen = append(s.seen, evs...)
	return nil
}

// TestSealedEventsAsInTheKernel: sealed events read opened until their key
// is erased, then erased; forged and unowned seals are refused.
func TestSealedEventsAsInTheKernel(t *testing.T) {
	s := &sealer{}
	k := plugintest.New(t, s)
	ctx := context.Background()
	add := func(stream, text string) error {
		_, err := k.Execute(ctx, plugins.Command{Name: "note.add", Stream: stream, Company: "acme", Payload: []byte(text)})
		return err
	}
	if err := add("note/1", `"one"`); err != nil {
		t.Fatal(err)
	}
	if err := add("note/2", `"two"`); err != nil {
		t.Fatal(err)
	}
	if len(s.seen) != 2 || string(s.seen[0].Payload) != `"one"` || s.seen[0].Erased {
		t.Fatalf("delivered %+v", s.seen)
	}
	for range 2 { // the second time there is no key left: nothing happens
		if _, err := k.Execute(ctx, plugins.Command{Name: "note.forget", Stream: "note/1", Company: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := k.ReadLog(ctx, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || !evs[0].Erased || evs[0].Payload != nil || evs[1].Erased || string(evs[1].Payload) != `"two"` || evs[2].Type != "kernel.key.erased" || evs[2].Company != "acme" {
		t.Fatalf("log after erasure: %+v", evs)
	}
	if err := add("note/1", `{"$sealed":{}}`); plugins.AsCoded(err).Code != plugins.CodeInvalidCommand {
		t.Fatalf("forged payload: %v", err)
	}
	if err := s.k.EraseKey(ctx, "acme", "other/1"); plugins.AsCoded(err).Code != plugins.CodePermissionDenied {
		t.Fatalf("erase outside its streams: %v", err)
	}
}
