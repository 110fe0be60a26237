// Package kerneltest helps tests run a real kernel: on a temporary data
// directory, started, and closed when the test ends. It is for Parley's
// own tests and integrators' tests of code that drives the kernel.
package kerneltest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/parleyhq/parley/kernel"
)

// Config is the default configuration with the data directory dir.
func Config(dir string) kernel.Config {
	cfg := kernel.DefaultConfig()
	cfg.DataDir = dir
	return cfg
}

// Start opens a kernel with cfg, calls setup (register handlers, declare
// types, build what must exist before Start), starts it and closes it when
// the test ends. Cleanups registered after Start run before the kernel
// closes.
func Start(t testing.TB, cfg kernel.Config, logger *slog.Logger, setup func(*kernel.Kernel)) *kernel.Kernel {
	t.Helper()
	k, err := kernel.Open(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close(context.Background(), "test") })
	if setup != nil {
		setup(k)
	}
	if err := k.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return k
}

// Eventually polls cond until it holds, failing the test after 30 s: tests
// wait for a condition with a deadline instead of sleeping.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
