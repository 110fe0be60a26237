package sfu

import "sync"

// bySSRC is an interceptor's table of its streams: Bind adds a stream's
// entry and Unbind removes it (pion's goroutines), the feedback clock and
// the RTCP reader look entries up (theirs).
type bySSRC[T any] struct {
	mu sync.Mutex
	m  map[uint32]T
}

func (t *bySSRC[T]) put(ssrc uint32, v T) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[uint32]T{}
	}
	t.m[ssrc] = v
}

func (t *bySSRC[T]) del(ssrc uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, ssrc)
}

// get is ssrc's entry, or the zero T.
func (t *bySSRC[T]) get(ssrc uint32) T {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[ssrc]
}

// each calls f with every entry, under the table's lock: f must not
// block, nor use the table.
func (t *bySSRC[T]) each(f func(ssrc uint32, v T)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ssrc, v := range t.m {
		f(ssrc, v)
	}
}
