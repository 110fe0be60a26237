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
//   - Back-pressure: each subscription has a bounded buffer. A subscriber
//     that lets it fill is dropped (Gone closes, Reason says why) rather
//     than slowing the hub or anyone else; it can reconnect and resume.
//   - Isolation: the company of the event must be the subscription's; an
//     audience is a list of user ids, which are only unique per company.
package hub

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/parleyhq/parley/eventlog"
)

// Buffer is the default number of events a subscription may hold.
const Buffer = 128

// ErrSlow is the Reason of a subscription dropped for a full buffer.
var ErrSlow = errors.New("hub: the client did not keep up (slow consumer)")

type userKey struct{ app, user string }

// Subscription is one session's feed.
type Subscription struct {
	AppID, UserID string
	ch            chan *eventlog.Event
	gone          chan struct{}
	reason        error
}

// C delivers the events. They are shared by every subscriber: read-only.
func (s *Subscription) C() <-chan *eventlog.Event { return s.ch }

// Gone closes when the hub dropped the subscription; Reason says why.
func (s *Subscription) Gone() <-chan struct{} { return s.gone }

// Reason is why the subscription was dropped.
func (s *Subscription) Reason() error { return s.reason }

// Hub fans events out to subscriptions.
type Hub struct {
	log    *eventlog.Log
	buffer int

	mu     sync.Mutex
	pos    uint64
	byUser map[userKey]map[*Subscription]struct{}
}

// New returns a hub that will deliver events appended after the current
// head. buffer <= 0 takes Buffer.
func New(log *eventlog.Log, buffer int) *Hub {
	if buffer <= 0 {
		buffer = Buffer
	}
	return &Hub{log: log, buffer: buffer, pos: log.Head(), byUser: map[userKey]map[*Subscription]struct{}{}}
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
		ev := &e // one copy shared by every subscriber
		h.mu.Lock()
		for i, u := range e.Audience {
			if slices.Contains(e.Audience[:i], u) { // each user once, even if listed twice
				continue
			}
			for s := range h.byUser[userKey{e.Company, u}] {
				select {
				case s.ch <- ev:
				default:
					h.drop(s, ErrSlow)
				}
			}
		}
		h.pos = e.Seq
		h.mu.Unlock()
	}
}

// Subscribe registers a feed for a user of a company and returns the
// position after which events will arrive on it.
func (h *Hub) Subscribe(appID, userID string) (*Subscription, uint64) {
	s := &Subscription{AppID: appID, UserID: userID, ch: make(chan *eventlog.Event, h.buffer), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := userKey{appID, userID}
	if h.byUser[k] == nil {
		h.byUser[k] = map[*Subscription]struct{}{}
	}
	h.byUser[k][s] = struct{}{}
	return s, h.pos
}

// Unsubscribe removes a feed.
func (h *Hub) Unsubscribe(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drop(s, nil)
}

// drop removes s; h.mu is held.
func (h *Hub) drop(s *Subscription, reason error) {
	k := userKey{s.AppID, s.UserID}
	if _, ok := h.byUser[k][s]; !ok {
		return
	}
	delete(h.byUser[k], s)
	if len(h.byUser[k]) == 0 {
		delete(h.byUser, k)
	}
	s.reason = reason
	close(s.gone)
}
