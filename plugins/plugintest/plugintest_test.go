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
