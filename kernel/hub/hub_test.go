package hub_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel/hub"
)

func setup(t *testing.T, buffer int) (*eventlog.Log, *hub.Hub) {
	l, err := eventlog.Open(t.TempDir(), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(l, buffer)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; l.Close() })
	return l, h
}

func appendFor(t *testing.T, l *eventlog.Log, company string, audience ...string) uint64 {
	evs, err := l.Append(context.Background(), eventlog.Draft{Type: "t.x", Stream: "s/1", Company: company, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	return evs[0].Seq
}

func TestDeliveryByAudienceAndCompany(t *testing.T) {
	l, h := setup(t, 16)
	phone, pos := h.Subscribe("acme", "alice")
	laptop, _ := h.Subscribe("acme", "alice")
	bob, _ := h.Subscribe("acme", "bob")
	foreign, _ := h.Subscribe("other", "alice")
	want := []uint64{appendFor(t, l, "acme", "alice", "alice"), appendFor(t, l, "acme", "alice", "bob")} // alice listed twice: delivered once
	appendFor(t, l, "other", "bob")
	if pos != 0 {
		t.Fatalf("position %d on an empty log", pos)
	}
	for _, s := range []*hub.Subscription{phone, laptop} {
		for _, w := range want {
			select {
			case e := <-s.C():
				if e.Seq != w {
					t.Fatalf("got %d, want %d", e.Seq, w)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("not delivered")
			}
		}
	}
	select {
	case e := <-bob.C():
		if e.Seq != want[1] {
			t.Fatalf("bob got %d", e.Seq)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bob got nothing")
	}
	select {
	case e := <-foreign.C():
		t.Fatalf("another company's alice got seq %d", e.Seq)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestSlowSubscriberIsDropped: a full buffer drops that subscriber only.
func TestSlowSubscriberIsDropped(t *testing.T) {
	l, h := setup(t, 4)
	slow, _ := h.Subscribe("acme", "alice")
	fast, _ := h.Subscribe("acme", "bob")
	got := make(chan int)
	go func() {
		n := 0
		for range fast.C() {
			if n++; n == 20 {
				got <- n
				return
			}
		}
	}()
	for range 20 {
		appendFor(t, l, "acme", "alice", "bob")
	}
	select {
	case <-slow.Gone():
		if !errors.Is(slow.Reason(), hub.ErrSlow) {
			t.Fatalf("reason %v", slow.Reason())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("slow subscriber not dropped")
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the fast subscriber was held up")
	}
}
