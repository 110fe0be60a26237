package call

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"sync"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/call/sfu"
	"github.com/prometheus/client_golang/prometheus"
)

// sfuMedia is the Media of plugins/call/sfu: one SFU room per call (the
// room id is the call id). It keeps which devices of which users joined
// each call, to name the user of the SFU's callbacks and to end a call.
type sfuMedia struct {
	s *sfu.SFU

	mu      sync.Mutex
	ev      MediaEvents
	devices map[string]map[string]string // call -> device -> user
	// held is the signalling (offers, candidates) the SFU made while no
	// plugin listened (ev.Offer nil: before the first Notify, and from an
	// aborted activation's detach to the next Notify), oldest first.
	held []heldSignal
	// notified counts Notify calls: one passing the held signalling
	// stops if another came meanwhile (a detach must not be undone).
	notified uint64
}

// heldSignal is an offer or a candidate for a device, kept for the next
// activation.
type heldSignal struct {
	offer                    bool
	call, user, device, text string
}

// maxHeld bounds what a plane keeps while detached; beyond it, the oldest
// is dropped (a device that misses an offer renegotiates when it next
// offers).
const maxHeld = 1024

var _ Media = (*sfuMedia)(nil)

// shared is the process's media plane: made by the first New, kept across
// activations (an in-process plugin the host killed is aborted, and the
// next activation finds its calls' media still flowing and the UDP port
// still bound), closed by Stop.
var shared struct {
	sync.Mutex
	m *sfuMedia
}

// newMedia returns the process's media plane, starting it if needed; the
// closer stops it (Stop).
func newMedia(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (Media, io.Closer, error) {
	shared.Lock()
	defer shared.Unlock()
	if shared.m == nil {
		sc := sfu.Config{UDPPort: cfg.UDPPort}
		if cfg.PublicIP != "" {
			sc.PublicIPs = []string{cfg.PublicIP}
		}
		if reg != nil {
			sc.Registerer = replacing{reg}
		}
		s, err := sfu.New(sc, logger.With("component", "sfu"))
		if err != nil {
			return nil, nil, err
		}
		shared.m = SFUMedia(s).(*sfuMedia)
	}
	return shared.m, closeShared{}, nil
}

type closeShared struct{}

func (closeShared) Close() error {
	shared.Lock()
	defer shared.Unlock()
	if shared.m == nil {
		return nil
	}
	err := shared.m.s.Close()
	shared.m = nil
	return err
}

// replacing registers collectors in place of those of an SFU made before
// on the same registry (a plugin stopped and started again in the same
// process).
type replacing struct{ prometheus.Registerer }

func (r replacing) Register(c prometheus.Collector) error {
	err := r.Registerer.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		r.Registerer.Unregister(are.ExistingCollector)
		return r.Registerer.Register(c)
	}
	return err
}

// SFUMedia is the Media of an SFU the caller made (and closes), for
// NewWith: one SFU room per call. It sets the SFU's callbacks, before any
// Offer.
func SFUMedia(s *sfu.SFU) Media {
	m := &sfuMedia{s: s, devices: map[string]map[string]string{}}
	s.OnCandidate = func(room, device, candidate string) { m.signal(false, room, device, candidate) }
	s.OnOffer = func(room, device, sdp string) { m.signal(true, room, device, sdp) }
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

// signal passes an offer or a candidate of the SFU's to the plugin, or
// holds it while none listens.
func (m *sfuMedia) signal(offer bool, call, device, text string) {
	m.mu.Lock()
	user, ev := m.devices[call][device], m.ev
	if user == "" {
		m.mu.Unlock()
		return
	}
	if ev.Offer == nil {
		if len(m.held) >= maxHeld {
			m.held = m.held[len(m.held)-maxHeld+1:]
		}
		m.held = append(m.held, heldSignal{offer: offer, call: call, user: user, device: device, text: text})
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	ev.send(heldSignal{offer: offer, call: call, user: user, device: device, text: text})
}

// send calls the callback for s.
func (ev MediaEvents) send(s heldSignal) {
	if s.offer {
		ev.Offer(s.call, s.user, s.device, s.text)
	} else if ev.Candidate != nil {
		ev.Candidate(s.call, s.user, s.device, s.text)
	}
}

// Notify sets the callbacks, first passing them what was held while none
// were set, in order; MediaEvents{} detaches (Abort).
func (m *sfuMedia) Notify(ev MediaEvents) {
	m.mu.Lock()
	m.notified++
	turn := m.notified
	m.mu.Unlock()
	for {
		m.mu.Lock()
		if m.notified != turn { // a later Notify (a detach) decides
			m.mu.Unlock()
			return
		}
		if ev.Offer == nil || len(m.held) == 0 {
			m.ev = ev
			m.mu.Unlock()
			return
		}
		// Signals made while these are sent are held, and sent by the
		// next turn: none overtakes an older one.
		held := m.held
		m.held = nil
		m.mu.Unlock()
		for i, s := range held {
			m.mu.Lock()
			if m.notified != turn { // detached meanwhile: the rest waits for the next Notify
				m.held = append(held[i:], m.held...)
				m.mu.Unlock()
				return
			}
			m.mu.Unlock()
			ev.send(s)
		}
	}
}

func (m *sfuMedia) Offer(ctx context.Context, callID, user, device, sdp string, allowVideo bool) (string, error) {
	m.mu.Lock()
	if m.devices[callID] == nil {
		m.devices[callID] = map[string]string{}
	}
	m.devices[callID][device] = user
	m.mu.Unlock()
	answer, err := m.s.Offer(ctx, callID, user, device, sdp, allowVideo)
	return answer, sfuError(err)
}

func (m *sfuMedia) Answer(_ context.Context, callID, _, device, sdp string) error {
	return sfuError(m.s.Answer(callID, device, sdp))
}

func (m *sfuMedia) AddCandidate(_ context.Context, callID, _, device, candidate string) error {
	return sfuError(m.s.AddCandidate(callID, device, candidate))
}

func (m *sfuMedia) Leave(_ context.Context, callID, _, device string) error {
	m.s.Leave(callID, device)
	m.mu.Lock()
	delete(m.devices[callID], device)
	m.mu.Unlock()
	return nil
}

func (m *sfuMedia) EndCall(_ context.Context, callID string) error {
	m.mu.Lock()
	devices := m.devices[callID]
	delete(m.devices, callID)
	m.mu.Unlock()
	for d := range devices {
		m.s.Leave(callID, d)
	}
	return nil
}

// Devices lists the devices that offered in callID (every call for ""),
// with the state of their peer connections ("closed" for one the SFU no
// longer has).
func (m *sfuMedia) Devices(callID string) []MediaDevice {
	m.mu.Lock()
	calls := map[string]map[string]string{}
	for id, ds := range m.devices {
		if callID == "" || id == callID {
			calls[id] = maps.Clone(ds)
		}
	}
	m.mu.Unlock()
	var out []MediaDevice
	for id, ds := range calls {
		states := m.s.States(id)
		for d, u := range ds {
			st, ok := states[d]
			if !ok {
				st = "closed"
			}
			out = append(out, MediaDevice{CallID: id, User: u, Device: d, State: st})
		}
	}
	return out
}

// sfuError tells the client's mistakes (validation_error) from the
// server's: only a closed SFU is the server's; an SDP or a candidate the
// SFU cannot apply, or signaling out of order, is the client's.
func sfuError(err error) error {
	var glare *sfu.GlareError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sfu.ErrClosed):
		return err
	case errors.Is(err, sfu.ErrPeerAbandoned):
		return plugins.Errorf(CodeMediaReset, "%v", err)
	case errors.As(err, &glare):
		return &Glare{Offer: glare.Offer}
	default:
		return plugins.Errorf(CodeValidation, "%v", err)
	}
}
