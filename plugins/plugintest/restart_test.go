package plugintest_test

import (
	"context"
	"testing"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/plugintest"
)

// counter counts the log's user events per company: at Start from the log,
// then from delivery.
type counter struct {
	k    plugins.Kernel
	seen map[string]int
	last uint64
}

func (*counter) Manifest() plugins.Manifest {
	return plugins.Manifest{ID: "test.counter", Protocol: 1, Subscribes: []string{"user"}, Permissions: []plugins.Permission{plugins.PermRead}}
}

func (c *counter) Start(ctx context.Context, k plugins.Kernel) error {
	c.k, c.seen = k, map[string]int{}
	evs, err := k.ReadLog(ctx, 1, 1000)
	if err != nil {
		return err
	}
	return c.ApplyEvents(ctx, evs)
}

func (c *counter) ApplyEvents(_ context.Context, evs []plugins.Event) error {
	for _, e := range evs {
		if e.Seq > c.last {
			c.seen[e.Company]++
			c.last = e.Seq
		}
	}
	return nil
}

// TestInjectAsAndRestart: injected events carry their company, and a fresh
// instance started by Restart sees the same log.
func TestInjectAsAndRestart(t *testing.T) {
	ctx := context.Background()
	first := &counter{}
	k := plugintest.New(t, first)
	for _, co := range []string{"acme", "acme", "globex"} {
		if _, err := k.InjectAs(ctx, co, "kernel", plugins.NewEvent{Type: "user.created", Stream: "user/" + co + "/u"}); err != nil {
			t.Fatal(err)
		}
	}
	if first.seen["acme"] != 2 || first.seen["globex"] != 1 {
		t.Fatalf("delivered: %v", first.seen)
	}
	second := &counter{}
	if err := k.Restart(ctx, second); err != nil {
		t.Fatal(err)
	}
	if _, err := k.InjectAs(ctx, "globex", "kernel", plugins.NewEvent{Type: "user.created", Stream: "user/globex/v"}); err != nil {
		t.Fatal(err)
	}
	if second.seen["acme"] != 2 || second.seen["globex"] != 2 || first.seen["globex"] != 1 {
		t.Fatalf("after the restart: %v (the old instance %v)", second.seen, first.seen)
	}
}
