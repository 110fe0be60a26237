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

// TestArenaFitsTheBatch: every record of a batch fits the arena sized by
// sizeHint, so appends never reallocate it (and the in-memory window pins
// only the bytes it needs).
func TestArenaFitsTheBatch(t *testing.T) {
	drafts := []Draft{
		{Type: "t.x", Stream: "s/1"},
		{ID: [16]byte{1}, Type: "channel.message.sent", Stream: "channel/" + string(make([]byte, 200)), Company: "acme", Actor: "alice",
			Audience: []string{"alice", "bob", "carol"}, Meta: map[string]string{"k": "v", "watermill_uuid": "0d1b0e2c-1f4a-4c4b-9f0e-6c1b3e6f9a11"},
			Payload: make([]byte, 3000)},
	}
	for i := range drafts {
		d := &drafts[i]
		e := Event{Seq: 1 << 40, Version: 1 << 40, Type: d.Type, Stream: d.Stream, Company: d.Company, Actor: d.Actor, Audience: d.Audience, Meta: d.Meta, Payload: d.Payload}
		used := 8 + len(sealRecord(nil, &e)) + len(d.Stream) + 1 + 16
		if hint := sizeHint(d); used > hint {
			t.Errorf("draft %d needs %d bytes, hint %d", i, used, hint)
		}
	}
}
