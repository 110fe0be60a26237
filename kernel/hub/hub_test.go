package hub_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel/hub"
)

func setup(t *testing.T, opts hub.Options) (*eventlog.Log, *hub.Hub) {
	l, err := eventlog.Open(t.TempDir(), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(l, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; l.Close() })
	return l, h
}

func appendFor(t *testing.T, l *eventlog.Log, company string, audience ...string) uint64 {
	evs, err := l.Append(context.Background(), eventlog.Draft{Type: "t.x", Stream: "s/1", Company: company, Audience: audience, Payload: []byte(`{"n":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	return evs[0].Seq
}

// feed is a subscriber: notify signals; next takes what is queued.
type feed struct {
	sub  *hub.Subscription
	wake chan struct{}
	got  []hub.Item
}

func subscribe(h *hub.Hub, app, user string) (*feed, uint64) {
	f := &feed{wake: make(chan struct{}, 1)}
	var pos uint64
	f.sub, pos = h.Subscribe(app, user, "", func() {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	})
	return f, pos
}

// next returns the next event, or the subscription's end, within 5 s.
func (f *feed) next(t *testing.T) (*eventlog.Event, error) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for len(f.got) == 0 {
		evs, err := f.sub.Take()
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			f.got = evs
			break
		}
		select {
		case <-f.wake:
		case <-deadline:
			t.Fatal("nothing delivered")
		}
	}
	e := f.got[0].Event
	f.got = f.got[1:]
	return e, nil
}

func TestDeliveryByAudienceAndCompany(t *testing.T) {
	l, h := setup(t, hub.Options{Buffer: 16})
	phone, pos := subscribe(h, "acme", "alice")
	laptop, _ := subscribe(h, "acme", "alice")
	bob, _ := subscribe(h, "acme", "bob")
	foreign, _ := subscribe(h, "other", "alice")
	want := []uint64{appendFor(t, l, "acme", "alice", "alice"), appendFor(t, l, "acme", "alice", "bob")} // alice listed twice: delivered once
	appendFor(t, l, "other", "bob")
	if pos != 0 {
		t.Fatalf("position %d on an empty log", pos)
	}
	for _, f := range []*feed{phone, laptop} {
		for _, w := range want {
			e, err := f.next(t)
			if err != nil || e.Seq != w {
				t.Fatalf("got %v %v, want seq %d", e, err, w)
			}
		}
	}
	if e, err := bob.next(t); err != nil || e.Seq != want[1] {
		t.Fatalf("bob got %v %v", e, err)
	}
	// A later event for bob only proves the hub moved past every event above.
	last := appendFor(t, l, "acme", "bob")
	if e, err := bob.next(t); err != nil || e.Seq != last {
		t.Fatalf("bob got %v %v", e, err)
	}
	if evs, err := foreign.sub.Take(); len(evs) != 0 || err != nil {
		t.Fatalf("another company's alice got %d events (%v)", len(evs), err)
	}
	if evs, _ := phone.sub.Take(); len(evs) != 0 {
		t.Fatalf("alice got an event that was not hers: seq %d", evs[0].Event.Seq)
	}
}

// TestSlowSubscriberIsDropped: a full queue drops that subscriber only.
func TestSlowSubscriberIsDropped(t *testing.T) {
	l, h := setup(t, hub.Options{Buffer: 4})
	slow, _ := subscribe(h, "acme", "alice")
	fast, _ := subscribe(h, "acme", "bob")
	got := make(chan int)
	go func() {
		n := 0
		for {
			if _, err := fast.next(t); err != nil {
				return
			}
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
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the fast subscriber was held up")
	}
	if _, err := slow.sub.Take(); !errors.Is(err, hub.ErrSlow) {
		t.Fatalf("slow subscriber: %v, want ErrSlow", err)
	}
	h.Unsubscribe(fast.sub)
	if _, err := fast.sub.Take(); !errors.Is(err, hub.ErrUnsubscribed) {
		t.Fatalf("after Unsubscribe: %v", err)
	}
}

// TestOpenFiltersAndTransforms: Open runs once per event; false skips it.
func TestOpenFiltersAndTransforms(t *testing.T) {
	var calls int
	l, h := setup(t, hub.Options{Open: func(e *eventlog.Event) bool {
		calls++
		if e.Type == "t.hidden" {
			return false
		}
		e.Payload = []byte(`{"opened":true}`)
		return true
	}})
	a, _ := subscribe(h, "acme", "alice")
	b, _ := subscribe(h, "acme", "bob")
	if _, err := l.Append(context.Background(), eventlog.Draft{Type: "t.hidden", Stream: "s/1", Company: "acme", Audience: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	seq := appendFor(t, l, "acme", "alice", "bob")
	for _, f := range []*feed{a, b} {
		e, err := f.next(t)
		if err != nil || e.Seq != seq || string(e.Payload) != `{"opened":true}` {
			t.Fatalf("got %+v %v", e, err)
		}
	}
	if calls != 2 {
		t.Fatalf("Open ran %d times for 2 events", calls)
	}
}

// TestEphemeralByAudienceAndDevice: an ephemeral event reaches its
// audience's subscriptions in its company, or only the device it names.
func TestEphemeralByAudienceAndDevice(t *testing.T) {
	_, h := setup(t, hub.Options{Encode: func(e *eventlog.Event) []byte { return []byte(e.Type) }})
	sub := func(app, user, device string) *hub.Subscription {
		s, _ := h.Subscribe(app, user, device, func() {})
		return s
	}
	phone, laptop, bob, foreign := sub("acme", "alice", "d1"), sub("acme", "alice", "d2"), sub("acme", "bob", "d3"), sub("other", "alice", "d4")
	h.Ephemeral(&eventlog.Event{Type: "call.ice", Company: "acme", Audience: []string{"alice"}, Meta: map[string]string{hub.MetaDevice: "d2"}})
	h.Ephemeral(&eventlog.Event{Type: "pointer.moved", Company: "acme", Audience: []string{"alice", "bob"}})
	h.Ephemeral(&eventlog.Event{Type: "no.company", Audience: []string{"alice"}})
	types := func(s *hub.Subscription) (out []string) {
		items, _ := s.Take()
		for _, it := range items {
			if it.Event.Seq != 0 || string(it.Frame) != it.Event.Type {
				t.Fatalf("item %+v", it)
			}
			out = append(out, it.Event.Type)
		}
		return out
	}
	for _, c := range []struct {
		s    *hub.Subscription
		want []string
	}{
		{phone, []string{"pointer.moved"}},
		{laptop, []string{"call.ice", "pointer.moved"}},
		{bob, []string{"pointer.moved"}},
		{foreign, nil},
	} {
		if got := types(c.s); !slices.Equal(got, c.want) {
			t.Errorf("%s/%s: got %v, want %v", c.s.UserID, c.s.Device, got, c.want)
		}
	}
}
