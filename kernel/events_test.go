package kernel

import (
	"runtime/debug"
	"sync"
	"testing"
)

// TestClaimIsAtomic: many claimants of one type at once, exactly one wins;
// a claim with one taken name declares none of its names.
func TestClaimIsAtomic(t *testing.T) {
	r := newEventTypes()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 16 {
		wg.Go(func() {
			if r.Claim(EventType{Name: "conf.added", Durable: true}) == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d claimants won conf.added, want 1", wins)
	}
	if err := r.Claim(EventType{Name: "other.new"}, EventType{Name: "conf.added"}); err == nil {
		t.Fatal("claiming a taken type succeeded")
	}
	if _, ok := r.Lookup("other.new"); ok {
		t.Fatal("a refused claim declared some of its types")
	}
	if err := r.Claim(EventType{Name: "kernel.started", Durable: true}); err == nil {
		t.Fatal("a plugin could claim a kernel type")
	}
}

// TestRuntimeApply: the configured GC target is set unless GOGC says
// otherwise.
func TestRuntimeApply(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	RuntimeConfig{GCPercent: 250}.Apply(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != 250 {
		t.Errorf("GC percent %d after Apply, want 250", got)
	}
	RuntimeConfig{GCPercent: 250}.Apply(func(k string) string {
		if k == "GOGC" {
			return "100"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent %d with GOGC=100 in the environment, want Go's 100", got)
	}
}
