package kernel

import (
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
