// Package hub delivers durable events to the sessions in their audience:
// an event of company C with audience [u1, u2] reaches every session that
// user u1 or u2 of company C has open, on every device.
//
// # Guarantees
//
//   - Order: a subscription receives its events in seq order, each once.
//   - No gap at subscription: Subscribe returns the hub's position P; every
//     event after P that concerns the user arrives on the subscription, and
//     the caller replays events up to P from the log if it needs them.
//   - Back-pressure: each subscription queues at most a bounded number of
//     events. A subscriber that lets the queue fill is dropped (Take
//     returns ErrSlow) rather than slowing the hub or anyone else; it can
//     reconnect and resume.
//   - Isolation: the company of the event must be the subscription's; an
//     audience is a list of user ids, which are only unique per company.
//
// # No goroutine per subscriber
//
// An idle subscription holds no goroutine and no buffer: the hub appends
// to its queue and calls its notify function when the queue goes from
// empty to non-empty (or the subscription is dropped). The subscriber
// then drains it with Take from a goroutine of its own, typically one it
// starts on demand. This is what lets a kernel hold tens of thousands of
// idle sessions.
package hub

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/parleyhq/parley/eventlog"
)

// MetaDevice is the Meta key of an ephemeral event addressed to one
// device: the Subscription.Device it goes to.
const MetaDevice = "device"

// Buffer is the default number of events a subscription may hold.
const Buffer = 128

// ErrSlow is the error of a subscription dropped for a full queue.
var ErrSlow = errors.New("hub: the client did not keep up (slow consumer)")

// ErrUnsubscribed is Take's error after Unsubscribe.
var ErrUnsubscribed = errors.New("hub: unsubscribed")

type userKey struct{ app, user string }

// Subscription is one session's feed.
type Subscription struct {
	AppID, UserID string
	Device        string // receives ephemeral events addressed to it
	limit         int
	notify        func()

	mu     sync.Mutex
	queue  []Item
	reason error // set when dropped; Take returns it once the queue is empty
}

// Item is one delivery: the event, shared by every subscriber (read-only),
// and its encoding when the hub has an Options.Encode.
type Item struct {
	Event *eventlog.Event
	Frame []byte
}

// push queues e, or drops s when its queue is full; it reports whether s
// must be removed from the hub. h.mu is held.
func (s *Subscription) push(it Item) (dropped bool) {
	s.mu.Lock()
	if s.reason != nil {
		s.mu.Unlock()
		return false
	}
	if len(s.queue) >= s.limit {
		s.queue, s.reason = nil, ErrSlow // the client resumes from its last seq
		s.mu.Unlock()
		s.notify()
		return true
	}
	s.queue = append(s.queue, it)
	first := len(s.queue) == 1
	s.mu.Unlock()
	if first {
		s.notify()
	}
	return false
}

// Take returns the queued items, oldest first, and empties the queue.
// With nothing queued it returns nil, or the reason the subscription ended
// (ErrSlow, ErrUnsubscribed).
func (s *Subscription) Take() ([]Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		q := s.queue
		s.queue = nil // an idle subscription keeps no buffer
		return q, nil
	}
	return nil, s.reason
}

// Dropped returns ErrSlow once the hub dropped the subscription for a
// full queue, and nil before.
func (s *Subscription) Dropped() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.Is(s.reason, ErrSlow) {
		return s.reason
	}
	return nil
}

// Pending reports whether Take would return events or an end.
func (s *Subscription) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0 || s.reason != nil
}

func (s *Subscription) end(reason error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason == nil {
		s.reason = reason
	}
}

// Hub fans events out to subscriptions.
type Hub struct {
	log    *eventlog.Log
	buffer int
	open   func(*eventlog.Event) bool
	encode func(*eventlog.Event) []byte

	mu     sync.Mutex
	pos    uint64
	byUser map[userKey]map[*Subscription]struct{}
}

// Options tune a Hub.
type Options struct {
	// Buffer is the queue limit per subscription (default Buffer).
	Buffer int
	// Open, when set, is applied once to each event before it is fanned
	// out: it may change the event in place (a sealed payload opened) and
	// returns false to deliver nothing (a payload that can no longer be
	// read).
	Open func(*eventlog.Event) bool
	// Encode, when set, encodes each delivered event once (after Open),
	// for every subscriber to send as is (Item.Frame).
	Encode func(*eventlog.Event) []byte
}

// New returns a hub that will deliver events appended after the current
// head.
func New(log *eventlog.Log, opts Options) *Hub {
	if opts.Buffer <= 0 {
		opts.Buffer = Buffer
	}
	return &Hub{log: log, buffer: opts.Buffer, open: opts.Open, encode: opts.Encode, pos: log.Head(), byUser: map[userKey]map[*Subscription]struct{}{}}
}

// Run delivers events until ctx ends or the log closes. The caller owns the
// goroutine that runs it.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	tail := h.log.Tail(h.pos + 1)
	h.mu.Unlock()
	for {
		e, err := tail.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, eventlog.ErrClosed) {
				return nil
			}
			return err
		}
		if len(e.Audience) == 0 || !h.deliver(e) {
			h.mu.Lock()
			h.pos = e.Seq
			h.mu.Unlock()
		}
	}
}

// deliver opens and encodes e, queues it for every subscription of its
// audience and moves the hub's position to it; false when there was
// nothing to deliver (the position is the caller's to move). The event
// escapes to the heap here, once, shared by every subscriber.
func (h *Hub) deliver(e eventlog.Event) bool {
	if !h.Open(&e) {
		return false
	}
	it := Item{Event: &e}
	if h.encode != nil {
		it.Frame = h.encode(&e)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fanOut(it)
	h.pos = e.Seq
	return true
}

// fanOut queues it for every subscription of its audience; h.mu is held.
func (h *Hub) fanOut(it Item) {
	ev := it.Event
	for i, u := range ev.Audience {
		if slices.Contains(ev.Audience[:i], u) { // each user once, even if listed twice
			continue
		}
		for s := range h.byUser[userKey{ev.Company, u}] {
			if s.push(it) {
				h.remove(s)
			}
		}
	}
}

// Open applies Options.Open to an event read from the log, in place (a
// session replaying what it missed uses it, as Run does); false: the event
// is not to be delivered.
func (h *Hub) Open(e *eventlog.Event) bool {
	return h.open == nil || h.open(e)
}

// Ephemeral delivers an event that is not in the log (an ICE candidate,
// a pointer move) to the subscriptions of its audience, or, when its Meta
// names a device (MetaDevice), to that device's alone. It has no
// seq and no place in the log's order; a subscriber that is not connected
// misses it. The caller owns e from now on.
func (h *Hub) Ephemeral(e *eventlog.Event) {
	if len(e.Audience) == 0 || e.Company == "" {
		return
	}
	it := Item{Event: e}
	if h.encode != nil {
		it.Frame = h.encode(e)
	}
	device := e.Meta[MetaDevice]
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, u := range e.Audience {
		if slices.Contains(e.Audience[:i], u) {
			continue
		}
		for s := range h.byUser[userKey{e.Company, u}] {
			if device != "" && s.Device != device {
				continue
			}
			if s.push(it) {
				h.remove(s)
			}
		}
	}
}

// Subscribe registers a feed for a device of a user of a company and
// returns the position after which events will arrive on it. notify is
// called, from the hub's goroutine, whenever the queue becomes non-empty
// or the subscription is dropped; it must not block (start a goroutine, or
// signal one) and must not call back into the hub.
func (h *Hub) Subscribe(appID, userID, device string, notify func()) (*Subscription, uint64) {
	s := &Subscription{AppID: appID, UserID: userID, Device: device, limit: h.buffer, notify: notify}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := userKey{appID, userID}
	if h.byUser[k] == nil {
		h.byUser[k] = map[*Subscription]struct{}{}
	}
	h.byUser[k][s] = struct{}{}
	return s, h.pos
}

// Unsubscribe removes a feed; its Take returns ErrUnsubscribed once empty.
func (h *Hub) Unsubscribe(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remove(s)
	s.end(ErrUnsubscribed)
}

// remove deletes s from the index; h.mu is held.
func (h *Hub) remove(s *Subscription) {
	k := userKey{s.AppID, s.UserID}
	delete(h.byUser[k], s)
	if len(h.byUser[k]) == 0 {
		delete(h.byUser, k)
	}
}
