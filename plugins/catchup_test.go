package plugins_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins"
)

func TestCatchUp(t *testing.T) {
	ctx := context.Background()
	t.Run("delivery gets there", func(t *testing.T) {
		var c plugins.CatchUp
		var pos, reads atomic.Int64
		go func() {
			time.Sleep(10 * time.Millisecond)
			pos.Store(5)
			c.Moved()
		}()
		err := c.Await(ctx, func() bool { return pos.Load() >= 5 }, func(context.Context) error { reads.Add(1); return nil },
			plugins.CatchUpOptions{Delivery: 5 * time.Second})
		if err != nil || reads.Load() != 0 {
			t.Fatalf("err %v, %d reads of the log", err, reads.Load())
		}
	})
	t.Run("reads the log when delivery does not come", func(t *testing.T) {
		var c plugins.CatchUp
		var pos atomic.Int64
		start := time.Now()
		err := c.Await(ctx, func() bool { return pos.Load() >= 5 }, func(context.Context) error { pos.Store(5); return nil },
			plugins.CatchUpOptions{Delivery: -1})
		if err != nil || time.Since(start) > time.Second {
			t.Fatalf("err %v after %v", err, time.Since(start))
		}
	})
	t.Run("gives up", func(t *testing.T) {
		var c plugins.CatchUp
		err := c.Await(ctx, func() bool { return false }, func(context.Context) error { return nil },
			plugins.CatchUpOptions{Delivery: -1, MaxWait: 50 * time.Millisecond})
		if !errors.Is(err, plugins.ErrNotCaughtUp) {
			t.Fatalf("err %v", err)
		}
		boom := errors.New("log unreadable")
		if err := c.Await(ctx, func() bool { return false }, func(context.Context) error { return boom }, plugins.CatchUpOptions{Delivery: -1}); !errors.Is(err, boom) {
			t.Fatalf("err %v", err)
		}
	})
}

// TestAgain: a coded refusal is tried again when the projection moved
// since before the first try, even if the move came during that try.
func TestAgain(t *testing.T) {
	ctx := context.Background()
	var c plugins.CatchUp
	var pos atomic.Uint64
	tries := 0
	err := c.Again(ctx, pos.Load, func(context.Context) error { return nil }, func() error {
		tries++
		if tries == 1 {
			pos.Store(1) // a delivery lands while the first try looks
			return plugins.Errorf("channel_not_exists", "not yet")
		}
		return nil
	})
	if err != nil || tries != 2 {
		t.Fatalf("err %v after %d tries", err, tries)
	}
	tries = 0
	err = c.Again(ctx, pos.Load, func(context.Context) error { return nil }, func() error {
		tries++
		return plugins.Errorf("channel_not_exists", "really")
	})
	if err == nil || tries != 1 {
		t.Fatalf("nothing moved: err %v after %d tries", err, tries)
	}
}
