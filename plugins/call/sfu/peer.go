package sfu

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"
)

// peer is one device's peer connection in a room.
//
// Lock order: peer.sig before SFU.mu; peer.reportMu before txPath.mu and
// SFU.mu. Callbacks (OnOffer, OnCandidate,
// OnState) are called with neither held.
type peer struct {
	s            *SFU
	room         *room
	user, device string
	pc           *webrtc.PeerConnection
	ice          *webrtc.ICETransport
	keys         dtlsKeys
	rx           rxPath
	tx           txPath

	reportMu sync.Mutex // one state report (OnState) at a time

	sig       sync.Mutex // one negotiation step at a time; guards the fields below
	remoteSet bool       // a remote description was applied: candidates go straight in
	early     []webrtc.ICECandidateInit
	cands     map[string]bool // the device's distinct candidates of this ICE generation, up to MaxRemoteCandidates
	creds     iceCreds        // the device's ICE credentials, of its last offer applied
	restarts  *rate.Limiter   // ICE restarts the device may make
	needOffer bool            // the device has not been offered every track we send it
	abandoned bool            // an offer wedged it (abandon): it takes no more
	answered  atomic.Bool     // our first answer is out: later candidates go through OnCandidate (not under sig: pion's gatherer calls OnICECandidate while handleOffer waits for it)
	slots     int             // slot tracks made, for their ids

	// guarded by SFU.mu
	pubs   []*publication
	downs  []*downTrack
	closed bool
	addr   netip.AddrPort // the remote address the direct path knows p by
}

// newPeer makes the peer connection; s.mu is held.
func (s *SFU) newPeer(r *room, user, device string) (*peer, error) {
	p := &peer{s: s, room: r, user: user, device: device, restarts: rate.NewLimiter(rate.Every(restartEvery), restartBurst)}
	p.tx.m = s.m
	p.rx.streams.Store(&map[uint32]*rxStream{})
	api, err := s.peerAPI(p) // p's own: the DTLS key hooks and interceptors are p's
	if err != nil {
		return nil, fmt.Errorf("peer connection: %w", err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{
		Certificates:  []webrtc.Certificate{s.cert},
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	})
	if err != nil {
		return nil, fmt.Errorf("peer connection: %w", err)
	}
	p.pc = pc
	s.m.peers.Inc()
	// Kept: asking the DTLS transport for it inside its own state callback
	// (startDirect) would wait for the lock the callback runs under.
	p.ice = pc.SCTP().Transport().ICETransport()
	p.ice.OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) { s.routeDirect(p, pair) })
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil || s.OnCandidate == nil {
			return
		}
		if !p.answered.Load() { // it rides in the answer
			return
		}
		b, err := json.Marshal(c.ToJSON())
		if err == nil {
			s.OnCandidate(r.id, device, string(b))
		}
	})
	pc.SCTP().Transport().OnStateChange(func(st webrtc.DTLSTransportState) {
		switch st {
		case webrtc.DTLSTransportStateConnected:
			p.startDirect()
		case webrtc.DTLSTransportStateFailed, webrtc.DTLSTransportStateClosed:
			p.stopDirect()
		}
	})
	pc.OnConnectionStateChange(func(webrtc.PeerConnectionState) {
		// Pion calls this on a goroutine of its own for each change, so
		// two changes may come in either order: they are handled one at a
		// time, each as of the state the connection is in then, so the
		// last is of the last state.
		p.reportMu.Lock()
		defer p.reportMu.Unlock()
		st := pc.ConnectionState()
		switch {
		case st == webrtc.PeerConnectionStateClosed:
			p.stopDirect()
		case st == webrtc.PeerConnectionStateConnected:
			p.resumeDirect()
		case st == webrtc.PeerConnectionStateFailed || p.selectedPair() == nil:
			// Failed; or, if this callback comes late, a restart after
			// the failure under way (pion has let the pair go): nothing
			// is sent until it connects again.
			p.pauseDirect()
		}
		if s.OnState == nil {
			return
		}
		// A peer connection the device replaced (it left and offered
		// again, in the same room or a new one of the same id) reports
		// nothing more, nor does any once the SFU closed.
		s.mu.Lock()
		now := s.rooms[r.id]
		stale := s.closed || (now != nil && now.peers[device] != nil && now.peers[device] != p)
		s.mu.Unlock()
		if !stale {
			s.OnState(r.id, user, device, st.String())
		}
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, rc *webrtc.RTPReceiver) { s.publish(p, t, rc) })
	return p, nil
}

// mline is what an offer says of one m-line.
type mline struct {
	kind webrtc.RTPCodecType
	dir  string // sendrecv, sendonly, recvonly, inactive
	off  bool   // port 0: rejected or removed
}

// parseOffer reads an offer's m-lines, and its ICE candidates. It refuses
// what pion would refuse only after it had taken the offer in (pion cannot
// roll a remote offer back, so its peer connection would stay waiting for
// an answer it cannot give): an m-line without a mid. It also refuses two
// m-lines of one mid, each of which pion would give a transceiver while
// the SFU's count of m-lines (by mid) saw one, and more m-lines than
// MaxMLines before looking further.
func parseOffer(s string) (map[string]mline, offerICE, error) {
	var d sdp.SessionDescription
	if err := d.Unmarshal([]byte(s)); err != nil {
		return nil, offerICE{}, fmt.Errorf("%w: %w", ErrInvalidOffer, err)
	}
	if n := len(d.MediaDescriptions); n > MaxMLines {
		return nil, offerICE{}, fmt.Errorf("%w: %d in the offer, at most %d", ErrTooManyMLines, n, MaxMLines)
	}
	out := map[string]mline{}
	for i, md := range d.MediaDescriptions {
		mid, ok := md.Attribute(sdp.AttrKeyMID)
		if !ok || mid == "" {
			return nil, offerICE{}, fmt.Errorf("%w: m-line %d has no mid", ErrInvalidOffer, i)
		}
		if _, dup := out[mid]; dup {
			return nil, offerICE{}, fmt.Errorf("%w: two m-lines of mid %q", ErrInvalidOffer, mid)
		}
		l := mline{kind: webrtc.NewRTPCodecType(md.MediaName.Media), dir: "sendrecv", off: md.MediaName.Port.Value == 0}
		for _, a := range md.Attributes {
			switch a.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				l.dir = a.Key
			}
		}
		out[mid] = l
	}
	return out, offerICE{creds: credentials(&d), cands: candidates(&d)}, nil
}

// offerICE is what an offer says of the device's ICE: its credentials
// (new ones are an ICE restart) and its candidates.
type offerICE struct {
	creds iceCreds
	cands []string
}

// iceCreds are a device's ICE username fragment and password.
type iceCreds struct{ ufrag, pwd string }

// credentials are the ICE credentials pion takes from a session
// description (its extractICEDetails): the session's, or else those of the
// m-line its candidates are taken from, the first of the BUNDLE group (the
// first m-line without one). Other m-lines' are not looked at.
func credentials(d *sdp.SessionDescription) iceCreds {
	var c iceCreds
	c.ufrag, _ = d.Attribute("ice-ufrag")
	c.pwd, _ = d.Attribute("ice-pwd")
	if c.ufrag != "" {
		return c
	}
	bundle := ""
	if g, _ := d.Attribute(sdp.AttrKeyGroup); strings.Contains(g, "BUNDLE") {
		if f := strings.Split(g, " "); len(f) > 1 {
			bundle = f[1]
		}
	}
	for _, md := range d.MediaDescriptions {
		if mid, _ := md.Attribute(sdp.AttrKeyMID); bundle != "" && mid != bundle {
			continue
		}
		if u, _ := md.Attribute("ice-ufrag"); u != "" {
			c.ufrag = u
			c.pwd, _ = md.Attribute("ice-pwd")
		}
		break
	}
	return c
}

// candidates are the ICE candidates a session description carries (the
// values of its candidate attributes).
func candidates(d *sdp.SessionDescription) []string {
	var cs []string
	for _, a := range d.Attributes {
		if a.IsICECandidate() {
			cs = append(cs, a.Value)
		}
	}
	for _, md := range d.MediaDescriptions {
		for _, a := range md.Attributes {
			if a.IsICECandidate() {
				cs = append(cs, a.Value)
			}
		}
	}
	return cs
}

// takeCandidates counts the device's candidates cs (trickled, or in its
// answers, which repeat those known) against MaxRemoteCandidates: all are
// taken, or none; p.sig is held.
func (p *peer) takeCandidates(cs ...string) error {
	next, err := withCandidates(p.cands, cs)
	if err == nil {
		p.cands = next
	}
	return err
}

// withCandidates is known with the candidates cs added (known itself if
// none is new), or ErrTooManyCandidates if that makes more than
// MaxRemoteCandidates. known is not changed.
func withCandidates(known map[string]bool, cs []string) (map[string]bool, error) {
	var fresh []string
	for _, c := range cs {
		c = strings.TrimSpace(c)
		if !known[c] && !slices.Contains(fresh, c) {
			fresh = append(fresh, c)
		}
	}
	if len(fresh) == 0 {
		return known, nil
	}
	if len(known)+len(fresh) > MaxRemoteCandidates {
		return nil, fmt.Errorf("%w: more than %d", ErrTooManyCandidates, MaxRemoteCandidates)
	}
	next := make(map[string]bool, len(known)+len(fresh))
	for c := range known {
		next[c] = true
	}
	for _, c := range fresh {
		next[c] = true
	}
	return next, nil
}

// handleOffer applies an offer of the device's and answers it. Each m-line
// the device wants to receive on gets a slot track, and publications of
// the room are bound to free slots; those left over get m-lines of their
// own, offered to the device right after this answer.
func (p *peer) handleOffer(ctx context.Context, offer string) (string, error) {
	p.sig.Lock()
	if p.abandoned { // an offer that waited for the one that wedged it
		p.sig.Unlock()
		return "", fmt.Errorf("%w: offer again", ErrPeerAbandoned)
	}
	lines, ice, err := parseOffer(offer)
	var cands map[string]bool // the device's candidates once the offer is applied
	restart := err == nil && p.creds != (iceCreds{}) && ice.creds != p.creds
	if err == nil {
		// An offer's candidates count as trickled ones do. An ICE restart
		// (new credentials) starts a new generation: pion drops the
		// candidates of the one before, and so does the count.
		known := p.cands
		if restart {
			known = nil
		}
		cands, err = withCandidates(known, ice.cands)
	}
	if err != nil {
		p.sig.Unlock()
		return "", err
	}
	// The limit is on the peer connection's m-lines, not only the offer's:
	// pion keeps a transceiver for every m-line ever negotiated, and an
	// offer may bring new mids and leave old ones out.
	if n := mlinesAfter(p.pc, lines); n > MaxMLines {
		p.sig.Unlock()
		return "", fmt.Errorf("%w: %d with the ones negotiated before, at most %d", ErrTooManyMLines, n, MaxMLines)
	}
	if p.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		// Glare. Pion cannot roll an offer of its own back, so the device
		// gives way: it rolls its offer back, answers ours, and offers
		// again.
		g := &GlareError{}
		if d := p.pc.LocalDescription(); d != nil {
			g.Offer = d.SDP
		}
		p.sig.Unlock()
		return "", g
	}
	// Counted last, so that an offer refused above (glare, which the
	// device meets with the same offer again) costs no restart.
	if restart && !p.restarts.Allow() {
		p.sig.Unlock()
		return "", fmt.Errorf("%w: more than %d in %v", ErrTooManyRestarts, restartBurst, restartBurst*restartEvery)
	}
	// From here a failure may leave pion holding the offer, waiting for an
	// answer it cannot give (it cannot roll a remote offer back); failed
	// then abandons the peer connection.
	failed := func(err error) (string, error) {
		if p.pc.SignalingState() != webrtc.SignalingStateHaveRemoteOffer {
			p.sig.Unlock()
			return "", err
		}
		return "", p.abandon(err)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return failed(fmt.Errorf("apply offer: %w", err))
	}
	p.cands, p.creds = cands, ice.creds
	if !p.remoteSet {
		p.remoteSet = true
		for _, c := range p.early {
			if err := p.pc.AddICECandidate(c); err != nil {
				p.s.log.Debug("sfu: early candidate", "device", p.device, "err", err)
			}
		}
		p.early = nil
	}

	video := p.s.videoAllowed(p.room)
	var slots []*downTrack
	refused := map[string]bool{}
	for _, tr := range p.pc.GetTransceivers() {
		l, ok := lines[tr.Mid()]
		if !ok || l.off {
			continue
		}
		if tr.Kind() == webrtc.RTPCodecTypeVideo && !video {
			refused[tr.Mid()] = true
			continue
		}
		if tr.Sender() != nil || (l.dir != "sendrecv" && l.dir != "recvonly") {
			continue
		}
		p.slots++
		dt := newDownTrack(p, tr.Kind(), "sfu", fmt.Sprintf("%s%d", tr.Kind(), p.slots))
		// AddTrack puts the track on a free offered m-line of its kind
		// (this one, or an earlier one this loop skipped for now), with
		// the peer connection's interceptors: a sender made apart from it
		// would have none (no NACK answers, no sender reports).
		sender, err := p.pc.AddTrack(dt)
		if err == nil && !offered(p.pc, sender, lines) {
			err = fmt.Errorf("no offered m-line took it")
			p.pc.RemoveTrack(sender)
		}
		if err != nil {
			return failed(fmt.Errorf("slot for %s: %w", tr.Mid(), err))
		}
		dt.sender = sender
		slots = append(slots, dt)
	}
	left := p.s.attach(p, slots)

	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return failed(fmt.Errorf("create answer: %w", err))
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return failed(fmt.Errorf("apply answer: %w", err))
	}
	// With the UDP mux the host candidates are known at once; waiting for
	// them puts them in the answer and spares the device a trickle round.
	select {
	case <-gathered:
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
	}
	sdpAnswer := p.pc.LocalDescription().SDP
	if len(refused) > 0 {
		if sdpAnswer, err = inactivate(sdpAnswer, refused); err != nil {
			return "", p.abandon(err) // the answer is set: pion is not waiting, but the device gets none
		}
	}
	p.answered.Store(true)
	for _, dt := range slots {
		p.s.goRTCP(dt)
	}
	if p.addDedicated(left) {
		p.needOffer = true
	}
	again := p.needOffer
	p.sig.Unlock()
	if again {
		p.s.spawn(p.negotiateOwned)
	}
	return sdpAnswer, nil
}

// missingMid returns a mid of offer's m-lines that answer does not have
// (and false), or true if it has them all.
func missingMid(offer *webrtc.SessionDescription, answer *sdp.SessionDescription) (string, bool) {
	if offer == nil {
		return "", true
	}
	var o sdp.SessionDescription
	if o.Unmarshal([]byte(offer.SDP)) != nil {
		return "", true
	}
	have := map[string]bool{}
	for _, md := range answer.MediaDescriptions {
		if mid, ok := md.Attribute(sdp.AttrKeyMID); ok {
			have[mid] = true
		}
	}
	for _, md := range o.MediaDescriptions {
		if mid, ok := md.Attribute(sdp.AttrKeyMID); ok && !have[mid] {
			return mid, false
		}
	}
	return "", true
}

// mlinesAfter is how many transceivers pc would have with the m-lines of
// an offer: those it has, and one for each mid it does not know.
func mlinesAfter(pc *webrtc.PeerConnection, lines map[string]mline) int {
	trs := pc.GetTransceivers()
	known := make(map[string]bool, len(trs))
	for _, tr := range trs {
		known[tr.Mid()] = true
	}
	n := len(trs)
	for mid := range lines {
		if !known[mid] {
			n++
		}
	}
	return n
}

// offered reports whether sender is on an m-line of the offer lines.
func offered(pc *webrtc.PeerConnection, sender *webrtc.RTPSender, lines map[string]mline) bool {
	for _, tr := range pc.GetTransceivers() {
		if tr.Sender() == sender {
			_, ok := lines[tr.Mid()]
			return ok
		}
	}
	return false
}

// inactivate marks the refused m-lines of an answer inactive, so the device
// sends nothing on them. Pion's own state for them stays "recvonly", which
// lets a later offer of the device turn them on once video is allowed.
func inactivate(answer string, mids map[string]bool) (string, error) {
	var d sdp.SessionDescription
	if err := d.Unmarshal([]byte(answer)); err != nil {
		return "", fmt.Errorf("parse answer: %w", err)
	}
	for _, md := range d.MediaDescriptions {
		if mid, _ := md.Attribute(sdp.AttrKeyMID); !mids[mid] {
			continue
		}
		attrs := md.Attributes[:0]
		for _, a := range md.Attributes {
			switch a.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
			default:
				attrs = append(attrs, a)
			}
		}
		md.Attributes = append(attrs, sdp.NewPropertyAttribute("inactive"))
	}
	b, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("write answer: %w", err)
	}
	return string(b), nil
}

// addDedicated gives each publication an m-line of its own on p (sendonly)
// and reports whether there was any; p.sig is held.
func (p *peer) addDedicated(pubs []*publication) bool {
	added := false
	for _, pub := range pubs {
		dt := newDownTrack(p, pub.kind, pub.p.user, pub.track.ID())
		tr, err := p.pc.AddTransceiverFromTrack(dt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			p.s.log.Warn("sfu: add track", "device", p.device, "err", err)
			continue
		}
		dt.sender = tr.Sender()
		if !p.s.bindDedicated(p, dt, pub) {
			continue
		}
		p.s.goRTCP(dt)
		added = true
	}
	return added
}

// negotiateOwned is negotiate on a goroutine of the SFU's (spawn).
func (p *peer) negotiateOwned() {
	defer p.s.wg.Done()
	p.negotiate()
}

// negotiate sends the device an offer if it has tracks not yet offered
// and no negotiation is under way; handleAnswer calls it again.
func (p *peer) negotiate() {
	p.sig.Lock()
	if p.abandoned || !p.needOffer || p.pc.SignalingState() != webrtc.SignalingStateStable || p.pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
		p.sig.Unlock()
		return
	}
	p.needOffer = false
	offer, err := p.pc.CreateOffer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(offer)
	}
	if err != nil {
		p.sig.Unlock()
		p.s.log.Warn("sfu: offer", "device", p.device, "err", err)
		return
	}
	sdp := p.pc.LocalDescription().SDP
	p.sig.Unlock()
	if p.s.OnOffer != nil {
		p.s.OnOffer(p.room.id, p.device, sdp)
	}
}

func (p *peer) handleAnswer(answer string) error {
	p.sig.Lock()
	if p.abandoned || p.pc.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		p.sig.Unlock()
		return ErrNoOffer
	}
	var d sdp.SessionDescription
	if err := d.Unmarshal([]byte(answer)); err != nil {
		p.sig.Unlock()
		return fmt.Errorf("%w: parse answer: %w", ErrInvalidAnswer, err)
	}
	// An answer to an earlier offer of ours (a device answering one offer
	// twice) lacks the m-lines the waiting one added; pion would take it
	// as the answer to this one.
	if mid, ok := missingMid(p.pc.LocalDescription(), &d); !ok {
		p.sig.Unlock()
		return fmt.Errorf("%w: no m-line of mid %q: not the answer to our latest offer", ErrInvalidAnswer, mid)
	}
	// Pion would take new credentials in an answer without restarting
	// ICE, and keep the candidates it has: an ICE restart is the device's
	// offer's to make (where the candidates are counted again).
	if credentials(&d) != p.creds {
		p.sig.Unlock()
		return fmt.Errorf("%w: its ICE credentials are not those of the device's last offer (restart ICE with an offer)", ErrInvalidAnswer)
	}
	if err := p.takeCandidates(candidates(&d)...); err != nil {
		p.sig.Unlock()
		return err
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		if p.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
			// Refused, and our offer still waits: every offer of the
			// device's would meet it (glare) and its answer fail again.
			return p.abandon(fmt.Errorf("apply answer: %w", err))
		}
		p.sig.Unlock()
		return fmt.Errorf("apply answer: %w", err)
	}
	again := p.needOffer
	p.sig.Unlock()
	if again {
		p.s.spawn(p.negotiateOwned)
	}
	return nil
}

func (p *peer) addCandidate(candidate string) error {
	var c webrtc.ICECandidateInit
	if err := json.Unmarshal([]byte(candidate), &c); err != nil {
		return fmt.Errorf("candidate: %w", err)
	}
	if strings.TrimSpace(c.Candidate) == "" {
		return nil // end of candidates
	}
	p.sig.Lock()
	defer p.sig.Unlock()
	if err := p.takeCandidates(strings.TrimPrefix(strings.TrimSpace(c.Candidate), "candidate:")); err != nil {
		return err
	}
	if !p.remoteSet {
		p.early = append(p.early, c)
		return nil
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("add candidate: %w", err)
	}
	return nil
}

// abandon takes p, whose negotiation err wedged, out of its room and
// closes it: the device's next offer starts a new peer connection. It is
// called with p.sig held and releases it; an offer waiting for p.sig
// then finds p abandoned.
func (p *peer) abandon(err error) error {
	s := p.s
	p.abandoned = true
	s.mu.Lock()
	s.unroom(p.room.id, p.device, p)
	s.mu.Unlock()
	p.sig.Unlock()
	p.close()
	return fmt.Errorf("%w: %w", ErrPeerAbandoned, err)
}

// close stops forwarding to and from p and closes its peer connection.
func (p *peer) close() {
	s := p.s
	s.mu.Lock()
	if p.closed {
		s.mu.Unlock()
		return
	}
	p.closed = true
	for _, pub := range p.pubs {
		s.unbindAll(pub)
	}
	for _, dt := range p.downs {
		s.unbind(dt)
	}
	s.unrouteDirect(p)
	s.mu.Unlock()
	if err := p.pc.Close(); err != nil {
		s.log.Debug("sfu: close peer", "device", p.device, "err", err)
	}
	s.m.peers.Dec()
}
