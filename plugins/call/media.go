package call

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"

	"github.com/parleyhq/parley/plugins"
)

// Media is the media plane the plugin drives: one PeerConnection per
// participant device on the kernel side, negotiated through the session
// protocol with trickle ICE. plugins/call/sfu implements it on pion; the
// plugin only routes signaling to it and listens to its callbacks.
//
// A participant is (callID, user, device). Errors a client caused (an SDP
// or candidate that does not parse, video offered where it is refused) are
// *plugins.Error with code validation_error; any other error is the
// server's (internal_server_error).
type Media interface {
	// Offer applies a device's SDP offer and returns the SDP answer. The
	// first offer of a device creates its PeerConnection; a later one
	// renegotiates it (an audio_upgradable call adding video). allowVideo
	// false refuses video tracks (audio_only calls, users without
	// can_video).
	//
	// An offer that crossed one of the plane's own to the device (glare)
	// returns a *Glare with that offer: the device rolls its own back,
	// answers the plane's, and offers again.
	Offer(ctx context.Context, callID, user, device, sdp string, allowVideo bool) (answer string, err error)
	// Answer applies a device's SDP answer to an offer the plane made
	// (MediaEvents.Offer).
	Answer(ctx context.Context, callID, user, device, sdp string) error
	// AddCandidate adds a device's trickled ICE candidate: the JSON text
	// of an RTCIceCandidateInit.
	AddCandidate(ctx context.Context, callID, user, device, candidate string) error
	// Leave closes the device's PeerConnection.
	Leave(ctx context.Context, callID, user, device string) error
	// EndCall closes every PeerConnection of the call. Ending a call with
	// none is not an error.
	EndCall(ctx context.Context, callID string) error
	// Devices lists the devices with a PeerConnection in callID (in every
	// call for ""), and its state. When a user's media moves to another
	// device, the plugin closes the others it lists; a plane kept from an
	// aborted activation tells the next one, at Start, what it has: the
	// media of calls that ended meanwhile, or of devices that no longer
	// carry their user's media, is closed; the states of the others are
	// taken as reported.
	Devices(callID string) []MediaDevice
	// Notify sets the callbacks. The plugin calls it at every Start,
	// before anything else; callbacks may come from any goroutine and
	// must not be called with a lock the plane's methods take.
	// Notify(MediaEvents{}) detaches an aborted activation: the plane
	// holds the offers and candidates it makes until the next Notify,
	// which gets them first, in order. States are not held: the next
	// activation reads them (Devices).
	Notify(MediaEvents)
}

// MediaEvents are the media plane's callbacks to the plugin.
type MediaEvents struct {
	// Candidate is a server-side ICE candidate for the device (the JSON
	// text of an RTCIceCandidateInit).
	Candidate func(callID, user, device, candidate string)
	// Offer is a server-side renegotiation offer for the device (the
	// other participant added a track); the device answers with
	// call.media.answer.
	Offer func(callID, user, device, sdp string)
	// State is the device's PeerConnection state: new, connecting,
	// connected, disconnected, failed or closed.
	State func(callID, user, device, state string)
}

// MediaDevice is a device's PeerConnection in a call, and its state.
type MediaDevice struct {
	CallID, User, Device, State string
}

// MediaConnected is the PeerConnection state of media that flows.
const MediaConnected = "connected"

// SDPPayload is the payload of call.media.sdp.
type SDPPayload struct {
	CallID string `json:"callId"`
	Type   string `json:"type"` // answer (to the device's offer) or offer (renegotiation)
	SDP    string `json:"sdp"`
}

// ICEPayload is the payload of call.media.ice.
type ICEPayload struct {
	CallID    string          `json:"callId"`
	Candidate json.RawMessage `json:"candidate"` // an RTCIceCandidateInit object
}

// MediaStatePayload is the payload of call.media.state: a participant's
// media changed state (the other participant's UI may show it).
type MediaStatePayload struct {
	CallID string `json:"callId"`
	UserID string `json:"userId"`
	State  string `json:"state"`
}

// ExpiringPayload is the payload of call.room.expiring.
type ExpiringPayload struct {
	CallID    string `json:"callId"`
	RoomID    string `json:"roomId"`
	Remaining int    `json:"remaining"` // seconds
}

// handleMedia routes a device's signaling to the media plane. The device
// must be the one carrying its user's media in a call that has not
// ended; the answer to an offer goes back to that device alone, as an
// ephemeral call.media.sdp.
func (p *Plugin) handleMedia(ctx context.Context, cmd plugins.Command) ([]plugins.NewEvent, error) {
	var in MediaRequest
	if err := decode(cmd.Payload, &in); err != nil {
		return nil, err
	}
	if err := onCallStream(cmd, in.CallID, "/media/"+cmd.Actor); err != nil {
		return nil, err
	}
	if cmd.Device == "" {
		return nil, plugins.Errorf(CodeValidation, "signaling needs a connected device")
	}
	var candidate string
	switch cmd.Name {
	case CmdMediaOffer, CmdMediaAnswer:
		if in.SDP == "" || len(in.SDP) > MaxSDP {
			return nil, plugins.Errorf(CodeValidation, "sdp must be 1..%d bytes", MaxSDP)
		}
	case CmdMediaCandidate:
		var text string
		if json.Unmarshal(in.Candidate, &text) != nil { // an object: pass its JSON on
			var obj map[string]any
			if json.Unmarshal(in.Candidate, &obj) != nil {
				return nil, plugins.Errorf(CodeValidation, "candidate must be an RTCIceCandidateInit object")
			}
			text = string(in.Candidate)
		}
		if text == "" || len(text) > MaxCandidate {
			return nil, plugins.Errorf(CodeValidation, "candidate must be 1..%d bytes", MaxCandidate)
		}
		candidate = text
	}
	if p.media == nil {
		return nil, plugins.Errorf(CodeRoomCreate, "the media server is not running")
	}
	// The call must be known and open, and this device the user's in it.
	check := func(s *state) (bool, error) {
		k := s.lookup(cmd.Company).calls[in.CallID]
		switch {
		case k == nil || !k.participant(cmd.Actor):
			return false, plugins.Errorf(CodeCallNotFound, "there is no call %s of yours", in.CallID)
		case k.ended():
			return false, plugins.Errorf(CodeInvalidCallStatus, "the call has ended")
		case k.devices[cmd.Actor] != cmd.Device:
			return false, plugins.Errorf(CodeInvalidCallStatus, "this device does not carry your media in the call")
		}
		c := s.lookup(cmd.Company)
		return k.CallType() != TypeAudioOnly && c.canVideo(cmd.Actor), nil
	}
	if _, err := plugins.Retrying(ctx, p.proj, check); err != nil {
		return nil, err
	}
	// Under the call's lock, checked again: the media of a call that ended
	// is closed under the same lock, so no PeerConnection outlives it.
	unlock := p.calls.lock(in.CallID)
	defer unlock()
	allowVideo, err := plugins.View(p.proj, check)
	if err != nil {
		return nil, err
	}
	switch cmd.Name {
	case CmdMediaOffer:
		answer, err := p.media.Offer(ctx, in.CallID, cmd.Actor, cmd.Device, in.SDP, allowVideo)
		var glare *Glare
		if errors.As(err, &glare) {
			// Not taken: the plane's own offer, which the device answers
			// first, comes back in its place (its push may have been lost).
			return []plugins.NewEvent{sdpEvent(in.CallID, cmd.Actor, cmd.Device, "offer", glare.Offer)}, nil
		}
		if err != nil {
			return nil, mediaError(err)
		}
		// A user's media moved to this device (a call link opened again):
		// the old device's peer connection would go on sending and
		// receiving beside this one. (Its tracks are gone before this
		// one's arrive: they come once ICE and DTLS are up.)
		for _, d := range p.media.Devices(in.CallID) {
			if d.User == cmd.Actor && d.Device != cmd.Device {
				if err := p.media.Leave(ctx, in.CallID, cmd.Actor, d.Device); err != nil {
					p.logger.Warn("closing the media of a device the user left", "call", in.CallID, "device", d.Device, "err", err)
				}
			}
		}
		return []plugins.NewEvent{sdpEvent(in.CallID, cmd.Actor, cmd.Device, "answer", answer)}, nil
	case CmdMediaAnswer:
		return nil, mediaError(p.media.Answer(ctx, in.CallID, cmd.Actor, cmd.Device, in.SDP))
	case CmdMediaCandidate:
		return nil, mediaError(p.media.AddCandidate(ctx, in.CallID, cmd.Actor, cmd.Device, candidate))
	default: // CmdMediaLeave
		err := p.media.Leave(ctx, in.CallID, cmd.Actor, cmd.Device)
		p.onState(in.CallID, cmd.Actor, cmd.Device, "closed") // recorded and announced: the plane's own report then changes nothing
		return nil, mediaError(err)
	}
}

// CallType is the call's type.
func (c *call) CallType() string { return c.Options.CallType }

func mediaError(err error) error {
	var coded *plugins.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &coded):
		return coded
	default:
		return plugins.Errorf(CodeInternalServer, "media: %v", err)
	}
}

// Glare is Media.Offer's answer to an offer that crossed one of the
// plane's own to the device: Offer is that offer (SDP).
type Glare struct{ Offer string }

func (g *Glare) Error() string {
	return "the media plane's offer to this device is waiting for its answer: answer it, then offer again"
}

// endMedia closes the media of a call that ended, under the call's lock.
func (p *Plugin) endMedia(ctx context.Context, callID string) {
	if p.media == nil {
		return
	}
	unlock := p.calls.lock(callID)
	defer unlock()
	if err := p.media.EndCall(ctx, callID); err != nil {
		p.logger.Warn("closing a call's media", "call", callID, "err", err)
	}
}

// publish sends an ephemeral event of the call's company; failures are
// logged (the device misses it, as a disconnected one would).
func (p *Plugin) publish(callID string, e plugins.NewEvent) {
	k := p.callInfo(callID)
	if k == nil || p.k == nil {
		return
	}
	e.Company = k.company
	if e.Audience == nil {
		e.Audience = slices.Clone(k.Participants)
	}
	if err := p.k.Publish(context.Background(), e); err != nil {
		p.logger.Warn("publishing a media event", "type", e.Type, "call", callID, "err", err)
	}
}

// callInfo returns a copy of what the projection knows of a call: its
// company, participants and status (nil for none).
func (p *Plugin) callInfo(callID string) *call {
	p.mu.RLock()
	defer p.mu.RUnlock()
	k := p.st.byID[callID]
	if k == nil {
		return nil
	}
	cp := *k
	cp.devices = map[string]string{}
	for u, d := range k.devices {
		cp.devices[u] = d
	}
	return &cp
}

func (p *Plugin) onCandidate(callID, user, device, candidate string) {
	raw := json.RawMessage(candidate)
	if !json.Valid(raw) {
		raw = marshal(map[string]string{"candidate": candidate})
	}
	p.publish(callID, plugins.NewEvent{Type: EvMediaICE, Audience: []string{user}, Device: device, Payload: marshal(ICEPayload{CallID: callID, Candidate: raw})})
}

func (p *Plugin) onOffer(callID, user, device, sdp string) {
	p.publish(callID, sdpEvent(callID, user, device, "offer", sdp))
}

// sdpEvent is call.media.sdp: an SDP of the media plane's (typ "offer" or
// "answer") for one device of user's.
func sdpEvent(callID, user, device, typ, sdp string) plugins.NewEvent {
	return plugins.NewEvent{Type: EvMediaSDP, Audience: []string{user}, Device: device, Payload: marshal(SDPPayload{CallID: callID, Type: typ, SDP: sdp})}
}

func (p *Plugin) onState(callID, user, device, state string) {
	if p.sched.mediaState(callID, user, device, state) {
		p.publish(callID, plugins.NewEvent{Type: EvMediaState, Payload: marshal(MediaStatePayload{CallID: callID, UserID: user, State: state})})
	}
}

// callLocks serialises signaling with the closing of a call's media, per
// call; an entry lives while someone holds or waits for it.
type callLocks struct {
	mu sync.Mutex
	m  map[string]*callLock
}

type callLock struct {
	sync.Mutex
	refs int
}

func (l *callLocks) lock(id string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*callLock{}
	}
	e := l.m[id]
	if e == nil {
		e = &callLock{}
		l.m[id] = e
	}
	e.refs++
	l.mu.Unlock()
	e.Lock()
	return func() {
		e.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
}
