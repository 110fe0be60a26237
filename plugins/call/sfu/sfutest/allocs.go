package sfutest

import (
	"runtime"
	"strings"
)

// AllocsOnStack returns how many objects calls with any of fns in their
// stack (function names' suffixes, "sfu.(*publication).forward") have allocated
// so far, and that count by allocating function. It needs the memory
// profile to record every allocation: set runtime.MemProfileRate = 1
// first. It runs two garbage collections (the profile is as of the last
// completed cycle); they empty sync.Pools, so what a pool allocates to
// refill itself (stacks through sync.(*Pool)) is left out: it is the
// measurement's doing, once per collection, not the code's per call.
func AllocsOnStack(fns ...string) (int64, map[string]int64) {
	runtime.GC()
	runtime.GC()
	n, _ := runtime.MemProfile(nil, true)
	var recs []runtime.MemProfileRecord
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(recs, true); ok {
			recs = recs[:n]
			break
		}
	}
	var total int64
	sites := map[string]int64{}
	for _, r := range recs {
		frames := runtime.CallersFrames(r.Stack())
		site, on, pool := "", false, false
		for {
			f, more := frames.Next()
			if site == "" && !strings.HasPrefix(f.Function, "runtime.") {
				site = f.Function
			}
			for _, fn := range fns {
				on = on || strings.HasSuffix(f.Function, fn)
			}
			pool = pool || strings.HasPrefix(f.Function, "sync.(*Pool).")
			if !more {
				break
			}
		}
		if on && !pool {
			total += r.AllocObjects
			sites[site] += r.AllocObjects
		}
	}
	return total, sites
}
