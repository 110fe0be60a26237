package sdk_test

import (
	"context"
	"sync"
	"testing"

	"github.com/parleyhq/parley/plugins/call"
	"github.com/parleyhq/parley/plugins/call/sfu"
)

// loopbackMedia is the call plugin's media plane on an SFU bound to
// 127.0.0.1, so the browser tests' media stays on loopback. The plugin's
// own constructor binds every non-loopback interface; this adapter does
// what its (unexported) one does.
type loopbackMedia struct {
	s       *sfu.SFU
	mu      sync.Mutex
	ev      call.MediaEvents
	devices map[string]map[string]string // call → device → user
}

var _ call.Media = (*loopbackMedia)(nil)

func newLoopbackMedia(t *testing.T) *loopbackMedia {
	s, err := sfu.New(sfu.Config{ListenIP: "127.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m := &loopbackMedia{s: s, devices: map[string]map[string]string{}}
	s.OnCandidate = func(room, device, c string) {
		if user, ev := m.user(room, device); user != "" && ev.Candidate != nil {
			ev.Candidate(room, user, device, c)
		}
	}
	s.OnOffer = func(room, device, sdp string) {
		if user, ev := m.user(room, device); user != "" && ev.Offer != nil {
			ev.Offer(room, user, device, sdp)
		}
	}
	s.OnState = func(room, user, device, state string) {
		m.mu.Lock()
		ev := m.ev
		m.mu.Unlock()
		if ev.State != nil {
			ev.State(room, user, device, state)
		}
	}
	return m
}

func (m *loopbackMedia) user(callID, device string) (string, call.MediaEvents) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.devices[callID][device], m.ev
}

func (m *loopbackMedia) Notify(ev call.MediaEvents) {
	m.mu.Lock()
	m.ev = ev
	m.mu.Unlock()
}

func (m *loopbackMedia) Offer(ctx context.Context, callID, user, device, sdp string, video bool) (string, error) {
	m.mu.Lock()
	if m.devices[callID] == nil {
		m.devices[callID] = map[string]string{}
	}
	m.devices[callID][device] = user
	m.mu.Unlock()
	return m.s.Offer(ctx, callID, user, device, sdp, video)
}

func (m *loopbackMedia) Answer(_ context.Context, callID, _, device, sdp string) error {
	return m.s.Answer(callID, device, sdp)
}

func (m *loopbackMedia) AddCandidate(_ context.Context, callID, _, device, c string) error {
	return m.s.AddCandidate(callID, device, c)
}

func (m *loopbackMedia) Leave(_ context.Context, callID, _, device string) error {
	m.s.Leave(callID, device)
	m.mu.Lock()
	delete(m.devices[callID], device)
	m.mu.Unlock()
	return nil
}

func (m *loopbackMedia) EndCall(_ context.Context, callID string) error {
	m.mu.Lock()
	devices := m.devices[callID]
	delete(m.devices, callID)
	m.mu.Unlock()
	for d := range devices {
		m.s.Leave(callID, d)
	}
	return nil
}
