package eventlog

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestFullQueueFailsFast stalls the writer, fills its queue and expects the
// next Append to fail at once with ErrQueueFull, while every queued append
// still commits once the writer resumes.
func TestFullQueueFailsFast(t *testing.T) {
	ctx := context.Background()
	l, err := Open(t.TempDir(), Options{QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stalled, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	l.testHook = func() { // the first commit waits for the test, later ones run freely
		once.Do(func() {
			stalled <- struct{}{}
			<-release
		})
	}
	results := make(chan error, 5)
	appendOne := func() {
		_, err := l.Append(ctx, Draft{Type: "t.x", Stream: "s/1"})
		results <- err
	}
	go appendOne()
	<-stalled // the writer holds the first request
	for range 4 {
		go appendOne()
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(l.queue) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("queue never filled: %d", len(l.queue))
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := l.Append(ctx, Draft{Type: "t.x", Stream: "s/1"}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("want ErrQueueFull, got %v", err)
	}
	close(release)
	for range 5 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if l.Head() != 5 {
		t.Fatalf("head %d, want 5", l.Head())
	}
}
