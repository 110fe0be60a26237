package call

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"testing"

	"github.com/parleyhq/parley/plugins/call/sfu"
)

// An activation the host killed (Abort) leaves the process's media plane
// open, and the next activation's New takes the same one over; Stop closes
// it, and the New after that makes another.
func TestAbortKeepsTheMediaPlane(t *testing.T) {
	l, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	old := environ
	environ = func() []string { return []string{"PARLEY_CALL_UDP_PORT=" + strconv.Itoa(port)} }
	t.Cleanup(func() { environ = old })
	ctx := context.Background()

	first := New().(*Plugin)
	plane, ok := first.media.(*sfuMedia)
	if !ok {
		t.Fatalf("no media plane: %T", first.media)
	}
	if err := first.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	next := New().(*Plugin)
	if next.media != Media(plane) {
		t.Fatal("the activation after an abort made a new media plane")
	}
	if _, err := plane.s.Offer(ctx, "c", "u", "d", "v=0", false); errors.Is(err, sfu.ErrClosed) {
		t.Fatal("the media plane was closed by the abort")
	}
	if err := next.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := plane.s.Offer(ctx, "c", "u", "d", "v=0", false); !errors.Is(err, sfu.ErrClosed) {
		t.Fatalf("after Stop, the media plane answers: %v", err)
	}
	last := New().(*Plugin)
	defer last.Stop(ctx)
	if last.media == Media(plane) {
		t.Fatal("the activation after a stop took the closed media plane")
	}
}

// TestDetachedPlaneHoldsSignalling: the offers and candidates the SFU
// makes while no activation listens (from an abort to the next Start) are
// held, and the next activation's Notify gets them first, in order; the
// hold is bounded, dropping the oldest.
func TestDetachedPlaneHoldsSignalling(t *testing.T) {
	s, err := sfu.New(sfu.Config{ListenIP: "127.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := SFUMedia(s).(*sfuMedia)
	m.devices["c"] = map[string]string{"d1": "alice", "d2": "bob"} // as their offers register them

	type signal struct{ kind, user, device, text string }
	record := func(got *[]signal) MediaEvents {
		return MediaEvents{
			Offer:     func(_, user, device, sdp string) { *got = append(*got, signal{"offer", user, device, sdp}) },
			Candidate: func(_, user, device, c string) { *got = append(*got, signal{"candidate", user, device, c}) },
			State:     func(_, _, _, _ string) {},
		}
	}
	var first, next []signal
	m.Notify(record(&first))
	s.OnOffer("c", "d1", "o1")
	m.Notify(MediaEvents{}) // the abort
	s.OnOffer("c", "d1", "o2")
	s.OnCandidate("c", "d2", "c1")
	s.OnCandidate("c", "gone", "c2") // no such device: nobody to send it to
	s.OnState("c", "alice", "d1", "connected")
	if len(first) != 1 {
		t.Fatalf("the aborted activation got %v", first)
	}
	m.Notify(record(&next)) // the next Start
	s.OnCandidate("c", "d1", "c3")
	want := []signal{{"offer", "alice", "d1", "o2"}, {"candidate", "bob", "d2", "c1"}, {"candidate", "alice", "d1", "c3"}}
	if !slices.Equal(next, want) {
		t.Fatalf("the next activation got %v, want %v", next, want)
	}

	next = nil
	m.Notify(MediaEvents{})
	for i := range maxHeld + 5 {
		s.OnCandidate("c", "d2", strconv.Itoa(i))
	}
	m.Notify(record(&next))
	if len(next) != maxHeld || next[0].text != "5" || next[maxHeld-1].text != strconv.Itoa(maxHeld+4) {
		t.Fatalf("held %d, from %v to %v; want the newest %d", len(next), next[0], next[len(next)-1], maxHeld)
	}

	// A detach (an abort) while the held signalling is being passed on is
	// not undone when the passing ends.
	m.Notify(MediaEvents{})
	s.OnCandidate("c", "d1", "h1")
	s.OnCandidate("c", "d1", "h2")
	var last []signal
	ev := record(&last)
	pass := ev.Candidate
	ev.Candidate = func(call, user, device, c string) {
		pass(call, user, device, c)
		m.Notify(MediaEvents{})
	}
	m.Notify(ev) // passes h1, and is detached: h2 is held again
	s.OnCandidate("c", "d1", "h3")
	m.mu.Lock()
	attached := m.ev.Offer != nil
	var held []string
	for _, h := range m.held {
		held = append(held, h.text)
	}
	m.mu.Unlock()
	if attached || !slices.Equal(held, []string{"h2", "h3"}) || len(last) != 1 {
		t.Fatalf("after a detach during the passing: attached %v, held %v, passed %v", attached, held, last)
	}
}
