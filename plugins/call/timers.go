package call

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/parleyhq/parley/plugins"
)

// scheduler makes the transitions nobody commands: a dial timeout, media
// that never came up or dropped, the call becoming connected, a room's
// duration running out. One goroutine (the loop) looks at a call whenever
// something about it changed (an event applied, a media state, a timer)
// and is the only one that appends on the plugin's behalf, through the
// Kernel API, so the plugin never races itself. Everything it decides is
// computed from the projection plus the media states it has heard, so a
// restart recomputes it: calls still dialing past their deadline time out
// at once.
//
// Its appends carry the call stream's version the decision was made on: an
// answer or an end appended meanwhile makes the append fail, and the call
// is looked at again. It also leaves a call alone for Config.Settle after
// a command decided events on it, as a backstop; the first call.ended
// wins in the projection and for the SDK.
type scheduler struct {
	p *Plugin

	mu          sync.Mutex
	dirty       map[string]bool
	timers      map[string]*time.Timer
	lastDecided map[string]time.Time         // call -> when a command last decided events on it
	media       map[string]map[string]*watch // call -> user -> the media of their device
	watched     map[string]time.Time         // call -> since when its media is watched
	warned      map[string]bool              // call -> call.room.expiring sent
	wake        chan struct{}
	cancel      context.CancelFunc
	done        chan struct{}
	ctx         context.Context
}

// watch is what the scheduler knows of a participant device's media.
type watch struct {
	device string
	up     bool      // connected
	everUp bool      // connected at least once (in this activation)
	since  time.Time // of the last change of up
	heard  bool      // a state reported in this activation, not seeded
}

func newScheduler(p *Plugin) *scheduler {
	return &scheduler{
		p: p, dirty: map[string]bool{}, timers: map[string]*time.Timer{}, lastDecided: map[string]time.Time{},
		media: map[string]map[string]*watch{}, watched: map[string]time.Time{}, warned: map[string]bool{},
		wake: make(chan struct{}, 1),
	}
}

func (s *scheduler) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.done = make(chan struct{})
	go s.loop(s.ctx, s.done) // owned by the scheduler: stop ends it
}

func (s *scheduler) stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	for id, t := range s.timers {
		t.Stop()
		delete(s.timers, id)
	}
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// kick has the loop look at the calls again. It never blocks.
func (s *scheduler) kick(ids ...string) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	for _, id := range ids {
		s.dirty[id] = true
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// decided records that a command decided events on a call.
func (s *scheduler) decided(id string) {
	s.mu.Lock()
	s.lastDecided[id] = s.p.now()
	s.mu.Unlock()
	s.kick(id)
}

// mediaState records a device's media state; it reports whether that
// changed whether its media is up (and so whether anyone should hear of
// it). A state of a device no longer in the call is ignored.
func (s *scheduler) mediaState(id, user, device, state string) bool {
	return s.record(id, user, device, state, false)
}

// seed records a device's media state as a media plane taken over from an
// aborted activation holds it, unless a report of this activation's came
// first (it is newer).
func (s *scheduler) seed(id, user, device, state string) {
	s.record(id, user, device, state, true)
}

func (s *scheduler) record(id, user, device, state string, seeded bool) bool {
	k := s.p.callInfo(id)
	if k == nil || k.ended() || k.devices[user] != device {
		return false
	}
	up := state == MediaConnected
	s.mu.Lock()
	if s.media[id] == nil {
		s.media[id] = map[string]*watch{}
	}
	w := s.media[id][user]
	if w == nil || w.device != device {
		w = &watch{device: device, since: s.p.now()}
		s.media[id][user] = w
	}
	if seeded && w.heard {
		s.mu.Unlock()
		return false
	}
	w.heard = w.heard || !seeded
	changed := w.up != up
	if changed {
		w.up, w.since = up, s.p.now()
		w.everUp = w.everUp || up
	}
	s.mu.Unlock()
	if changed {
		s.kick(id)
	}
	return changed
}

func (s *scheduler) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.mu.Lock()
		ids := make([]string, 0, len(s.dirty))
		for id := range s.dirty {
			ids = append(ids, id)
		}
		clear(s.dirty)
		s.mu.Unlock()
		slices.Sort(ids)
		for _, id := range ids {
			if ctx.Err() != nil {
				return
			}
			s.reconcile(ctx, id)
		}
	}
}

// at has the loop look at the call again at t (replacing an earlier
// plan); zero t cancels.
func (s *scheduler) at(id string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.timers[id]; old != nil {
		old.Stop()
		delete(s.timers, id)
	}
	if t.IsZero() || s.ctx == nil || s.ctx.Err() != nil {
		return
	}
	s.timers[id] = time.AfterFunc(max(t.Sub(s.p.now()), 0), func() { s.kick(id) })
}

// forget drops what the scheduler keeps of a call.
func (s *scheduler) forget(id string) {
	s.at(id, time.Time{})
	s.mu.Lock()
	delete(s.lastDecided, id)
	delete(s.media, id)
	delete(s.watched, id)
	delete(s.warned, id)
	s.mu.Unlock()
}

// snapshot is what reconcile reads of a call.
type snapshot struct {
	k        *call
	removed  string        // a participant no longer an active user of the company (deactivated or deleted)
	version  uint64        // the call stream's version the snapshot was taken at
	duration time.Duration // the room's duration, 0 for none
	used     time.Duration // the room's time already used by its earlier calls
}

// reconcile looks at one call and makes the transition that is due, if
// any, then plans when to look again.
func (s *scheduler) reconcile(ctx context.Context, id string) {
	p := s.p
	if err := p.catchUp(ctx); err != nil {
		s.failed(ctx, id, "catching up with the log", err)
		return
	}
	snap, ok := s.snapshot(id)
	if !ok {
		return
	}
	k := snap.k
	if k.ended() {
		p.endMedia(ctx, id)
		s.forget(id)
		return
	}
	now := p.now()
	var next time.Time
	plan := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	s.mu.Lock()
	settled := s.lastDecided[id].Add(p.cfg.Settle)
	s.mu.Unlock()
	// act appends a transition. An end waits until a command decided on
	// the call a moment ago has settled (it could be an answer landing
	// after the end); call.connected need not: after an end it is void.
	act := func(typ string, payload any) {
		if typ == EvEnded && now.Before(settled) {
			plan(settled)
			s.at(id, next)
			return
		}
		// Only if the call is still where the snapshot saw it: an answer or
		// an end decided meanwhile wins, and the call is looked at again.
		expect := snap.version
		_, err := p.k.Append(ctx, []plugins.NewEvent{{
			Type: typ, Stream: CallStream(k.company, id), Company: k.company,
			Audience: slices.Clone(k.Participants), Payload: marshal(payload), Expect: &expect,
		}})
		if e := plugins.AsCoded(err); e != nil && e.Code == plugins.CodeConflict {
			s.kick(id)
			return
		}
		if err != nil {
			s.failed(ctx, id, "appending "+typ, err)
			return
		}
		s.kick(id) // look again with the transition applied
	}
	end := func(reason, user string) {
		act(EvEnded, CallEnded{CallID: id, RoomID: k.RoomID, Status: StatusEnded, EndReason: reason, UserID: user})
	}

	if snap.removed != "" {
		// Deleted or deactivated: their account no longer reaches the
		// company's calls, media included.
		end(ReasonUserRemoved, snap.removed)
		return
	}
	if k.status == StatusDialing && !k.deadline.IsZero() {
		if !now.Before(k.deadline) {
			end(ReasonTimeout, "")
			return
		}
		plan(k.deadline)
	}

	// Media is watched once the call needs it: from the answer on, and
	// from the start in a call link's room waiting for the other
	// participant (nothing else would end it).
	if k.status != StatusDialing || k.deadline.IsZero() {
		s.mu.Lock()
		from, ok := s.watched[id]
		if !ok {
			from = now
			s.watched[id] = from
		}
		ups, all := 0, 0
		var lost string
		var lostAt time.Time
		for _, u := range k.Participants {
			d := k.devices[u]
			if d == "" {
				continue
			}
			all++
			if s.media[id] == nil {
				s.media[id] = map[string]*watch{}
			}
			w := s.media[id][u]
			if w == nil || w.device != d {
				w = &watch{device: d, since: now}
				s.media[id][u] = w
			}
			if w.up {
				ups++
				continue
			}
			limit := p.cfg.ConnectTimeout
			if w.everUp {
				limit = p.cfg.MediaGrace
			}
			t := w.since
			if t.Before(from) {
				t = from
			}
			t = t.Add(limit)
			if lost == "" || t.Before(lostAt) {
				lost, lostAt = u, t
			}
		}
		s.mu.Unlock()
		if lost != "" {
			if !now.Before(lostAt) {
				end(ReasonConnectionLost, lost)
				return
			}
			plan(lostAt)
		}
		if k.status == StatusConnecting && all == 2 && ups == 2 {
			act(EvConnected, CallConnected{CallID: id, RoomID: k.RoomID, Status: StatusConnected})
			return
		}
	}

	if k.status == StatusConnected && snap.duration > 0 {
		remaining := snap.duration - snap.used - now.Sub(k.connected)
		if remaining <= 0 {
			end(ReasonDurationExpired, "")
			return
		}
		warnAt := remaining - expiringLead
		s.mu.Lock()
		warned := s.warned[id]
		if warnAt <= 0 && !warned {
			s.warned[id] = true
		}
		s.mu.Unlock()
		switch {
		case warnAt <= 0 && !warned:
			p.publish(id, plugins.NewEvent{Type: EvRoomExpiring, Payload: marshal(ExpiringPayload{CallID: id, RoomID: k.RoomID, Remaining: int((remaining + time.Second - 1) / time.Second)})})
			plan(now.Add(remaining))
		case warnAt <= 0:
			plan(now.Add(remaining))
		default:
			plan(now.Add(warnAt))
		}
	}
	s.at(id, next)
}

// failed handles a Kernel API error: the call is looked at again in a
// second, unless this activation is over (the kernel answers unavailable
// to an activation that ended, after a crash): then the scheduler stops,
// and the next activation's takes over.
func (s *scheduler) failed(ctx context.Context, id, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	if plugins.AsCoded(err).Code == plugins.CodeUnavailable {
		s.p.logger.Warn("call scheduler: the kernel is gone; stopping", "err", err)
		s.mu.Lock()
		s.cancel()
		s.mu.Unlock()
		return
	}
	s.p.logger.Warn("call scheduler: "+what, "call", id, "err", err)
	s.at(id, s.p.now().Add(time.Second))
}

// expiringLead is how long before a room's duration runs out its
// participants are warned (call.room.expiring).
const expiringLead = 30 * time.Second

func (s *scheduler) snapshot(id string) (snapshot, bool) {
	p := s.p
	p.mu.RLock()
	defer p.mu.RUnlock()
	k := p.st.byID[id]
	if k == nil {
		return snapshot{}, false
	}
	cp := *k
	cp.devices = map[string]string{}
	for u, d := range k.devices {
		cp.devices[u] = d
	}
	snap := snapshot{k: &cp, version: p.st.versions[CallStream(k.company, id)]}
	c := p.st.lookup(k.company)
	for _, u := range k.Participants {
		if !c.activeUser(u) {
			snap.removed = u
			break
		}
	}
	if rm := c.rooms[k.RoomID]; rm != nil && k.Link {
		snap.duration, snap.used = time.Duration(rm.Duration)*time.Second, rm.used
	}
	return snap, true
}
