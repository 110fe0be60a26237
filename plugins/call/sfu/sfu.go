package sfu

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley/plugins/call/sfu/udpbatch"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures an SFU. The zero value listens on an ephemeral port of
// every interface and advertises the interfaces' addresses.
type Config struct {
	// UDPPort is the one UDP port all peers' media use (ICE UDP mux).
	// 0 picks an ephemeral port (tests).
	UDPPort int
	// ListenIP binds the port to one address ("127.0.0.1" in tests).
	// Empty binds it on every address of every interface that is up,
	// leaving out loopback and link-local ones.
	ListenIP string
	// PublicIPs are advertised in the host candidates instead of the local
	// addresses: the public address of a machine behind a 1:1 NAT (a cloud
	// instance's elastic IP). Empty advertises the local addresses.
	PublicIPs []string

	// A peer from which nothing arrived for ICEDisconnectedTimeout
	// (default 5 s) is "disconnected"; after ICEFailedTimeout more
	// (default 25 s) it is "failed". Keepalives go every
	// ICEKeepaliveInterval (default 2 s). The SFU only reports these
	// through OnState: ending the call after a grace period is the
	// caller's decision.
	ICEDisconnectedTimeout time.Duration
	ICEFailedTimeout       time.Duration
	ICEKeepaliveInterval   time.Duration

	// ReadBatch is how many datagrams one system call may read from the
	// media socket (recvmmsg, Linux). Default udpbatch.DefaultBatch (32);
	// 1 reads one at a time.
	ReadBatch int

	// Registerer receives the SFU's Prometheus collectors; nil registers
	// none.
	Registerer prometheus.Registerer
}

// Errors returned by the SFU's methods.
var (
	ErrClosed       = errors.New("sfu: closed")
	ErrNoRoom       = errors.New("sfu: no such room")
	ErrNoPeer       = errors.New("sfu: no such peer")
	ErrNoOffer      = errors.New("sfu: no offer of ours is waiting for an answer")
	ErrUserMismatch = errors.New("sfu: device already in the room as another user")
	// ErrTooManyCandidates: a device sent more than MaxRemoteCandidates.
	ErrTooManyCandidates = errors.New("sfu: too many ICE candidates from one device")
	// ErrTooManyRestarts: a device restarted ICE more often than
	// restartBurst times in a row, one every restartEvery.
	ErrTooManyRestarts = errors.New("sfu: ICE restarted too often")
	// ErrTooManyMLines: an offer that would give the device's peer
	// connection more than MaxMLines m-lines.
	ErrTooManyMLines = errors.New("sfu: too many m-lines")
	// ErrInvalidOffer: an offer that is not SDP, or whose m-lines lack a
	// mid or repeat one.
	ErrInvalidOffer = errors.New("sfu: invalid offer")
	// ErrInvalidAnswer: an answer that is not SDP, or not the answer to
	// the SFU's latest offer (it lacks m-lines that offer has).
	ErrInvalidAnswer = errors.New("sfu: invalid answer")
	// ErrGlare: the device offered while an offer of the SFU's to it was
	// waiting for its answer (a *GlareError carries that offer). The
	// device rolls its offer back, answers the SFU's, then offers again.
	ErrGlare = errors.New("sfu: an offer of ours to this device is waiting for its answer: answer it, then offer again")
	// ErrPeerAbandoned: an offer failed after pion had taken it in, which
	// leaves a peer connection that cannot negotiate again; the SFU closed
	// it, and the device's next offer (from a new peer connection of its
	// own) starts afresh.
	ErrPeerAbandoned = errors.New("sfu: the device's peer connection failed to negotiate and was closed")
)

// GlareError is Offer's ErrGlare, with the SFU's offer that waits for the
// device's answer: the same OnOffer gave, which the device may not have
// had (signalling pushed to a device can be lost with its connection).
type GlareError struct {
	Offer string // SDP
}

func (e *GlareError) Error() string        { return ErrGlare.Error() }
func (e *GlareError) Is(target error) bool { return target == ErrGlare }

// MaxMLines is how many m-lines a device's peer connection may have, with
// those of all its offers so far and those the SFU added. Every m-line
// costs the SFU a track; the m-lines of a peer connection are never
// removed, and an offer may bring new ones and leave old ones out, so the
// limit is on the peer connection, not the offer. A device in the largest
// room (25 participants, call links) receives at most MaxPublished tracks
// from each other participant, and sends as many.
const MaxMLines = 200

// MaxPublished is how many tracks one device may publish at once (a
// browser sends a microphone, a camera and a shared screen). A track
// beyond it is not forwarded, for as long as it lasts (even once others of
// the device's end): each would cost every other participant an m-line.
const MaxPublished = 6

// MaxRemoteCandidates is how many ICE candidates one device may give its
// peer connection in one ICE generation (an ICE restart starts the next).
// A browser gives a handful (host, server-reflexive and relay candidates of
// each network interface); every candidate makes the SFU send connectivity
// checks to its address, so a device sending thousands would have the SFU
// send STUN requests wherever it pointed. Restarts are limited too: at
// most restartBurst in a row, then one every restartEvery.
const MaxRemoteCandidates = 64

// A device may restart ICE restartBurst times in a row, then once every
// restartEvery: the SDK restarts 2 s after its ICE went down, then every
// 4 s while it stays down.
const (
	restartBurst = 4
	restartEvery = 4 * time.Second
)

// SFU forwards the media of calls. See the package doc.
type SFU struct {
	// OnCandidate is called with a server ICE candidate (JSON of
	// webrtc.ICECandidateInit) found after the answer that carried the
	// others was returned. With the UDP mux every candidate is known at
	// once, so it is rarely called; it exists for trickle-ICE clients.
	OnCandidate func(room, device, candidateJSON string)
	// OnOffer is called with an offer of the SFU's to a device: a track
	// to forward needs a new m-line. The device answers through Answer.
	OnOffer func(room, device, sdp string)
	// OnState is called when a peer connection's state changes: "new",
	// "connecting", "connected", "disconnected", "failed", "closed".
	OnState func(room, user, device, state string)

	cfg      Config
	log      *slog.Logger
	settings webrtc.SettingEngine // each peer's API adds its DTLS key hooks
	media    *webrtc.MediaEngine
	clock    *feedbackClock
	conns    []net.PacketConn // the media sockets, under the mux
	cert     webrtc.Certificate
	mux      ice.UDPMux
	addrs    []net.Addr
	m        *metrics

	mu     sync.Mutex
	rooms  map[string]*room
	closed bool
	direct atomic.Pointer[map[netip.AddrPort]*peer] // the direct path's peers by remote address; replaced whole under mu
	wg     sync.WaitGroup                           // peer goroutines
}

// New opens the media port and returns an SFU ready for Offer. Set the
// callbacks before the first Offer.
func New(cfg Config, logger *slog.Logger) (*SFU, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReadBatch == 0 {
		cfg.ReadBatch = udpbatch.DefaultBatch
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &SFU{cfg: cfg, log: logger, m: m, rooms: map[string]*room{}}
	conns, err := listenUDP(cfg.ListenIP, cfg.UDPPort, udpbatch.Options{Batch: cfg.ReadBatch, Receive: s.receive})
	if err != nil {
		return nil, err
	}
	s.conns = conns
	plogs := pionLogs{log: logger}
	var muxes []ice.UDPMux
	var v4, v6, loopback bool
	var addrs []net.Addr
	for _, c := range conns {
		muxes = append(muxes, ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: c, Logger: plogs.NewLogger("udpmux")}))
		a := c.LocalAddr().(*net.UDPAddr)
		addrs = append(addrs, a)
		ip, _ := netip.AddrFromSlice(a.IP)
		ip = ip.Unmap()
		v4, v6, loopback = v4 || ip.Is4(), v6 || ip.Is6(), loopback || ip.IsLoopback()
	}
	s.addrs = addrs
	if len(muxes) == 1 {
		s.mux = muxes[0]
	} else {
		s.mux = ice.NewMultiUDPMuxDefault(muxes...)
	}
	fail := func(err error) (*SFU, error) {
		s.mux.Close()
		return nil, err
	}

	// One certificate for every peer connection: generating one per peer
	// is CPU spent on every join for nothing.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fail(err)
	}
	cert, err := webrtc.GenerateCertificate(key)
	if err != nil {
		return fail(err)
	}
	s.cert = *cert

	se := webrtc.SettingEngine{LoggerFactory: plogs}
	// The SFU answers first, as the DTLS server: dtlsKeys needs the
	// ServerHello it sends.
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		return fail(err)
	}
	se.SetICEUDPMux(s.mux)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(loopback)
	var nets []webrtc.NetworkType
	if v4 {
		nets = append(nets, webrtc.NetworkTypeUDP4)
	}
	if v6 {
		nets = append(nets, webrtc.NetworkTypeUDP6)
	}
	se.SetNetworkTypes(nets)
	se.SetICETimeouts(orDefault(cfg.ICEDisconnectedTimeout, 5*time.Second),
		orDefault(cfg.ICEFailedTimeout, 25*time.Second), orDefault(cfg.ICEKeepaliveInterval, 2*time.Second))
	if len(cfg.PublicIPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: cfg.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return fail(fmt.Errorf("public addresses: %w", err))
		}
	}

	s.settings = se
	s.media = &webrtc.MediaEngine{}
	if err := registerCodecs(s.media); err != nil {
		return fail(err)
	}
	if err := registerFeedback(s.media); err != nil {
		return fail(err)
	}
	s.clock = newFeedbackClock()
	return s, nil
}

// peerAPI is the pion API for one peer connection: the SFU's settings
// with p's DTLS key hooks, and interceptors of p's (the direct path taps
// them).
func (s *SFU) peerAPI(p *peer) (*webrtc.API, error) {
	reg := &interceptor.Registry{}
	registerInterceptors(reg, s.m, s.clock, &p.rx, &p.tx)
	return webrtc.NewAPI(webrtc.WithSettingEngine(p.keys.settings(s.settings)), webrtc.WithMediaEngine(s.media),
		webrtc.WithInterceptorRegistry(reg)), nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// The codecs the SFU forwards: Opus and VP8, which recording writes to
// files as they are. RTX is not offered: a retransmission is the packet
// itself, on its own SSRC, which keeps forwarding a copy and nothing more.
var (
	opus = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}
	vp8  = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
)

func registerCodecs(me *webrtc.MediaEngine) error {
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: opus, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	v := vp8
	v.RTCPFeedback = []webrtc.RTCPFeedback{{Type: "ccm", Parameter: "fir"}}
	return me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: v, PayloadType: 96}, webrtc.RTPCodecTypeVideo)
}

// registerFeedback declares the RTCP feedback and header extensions the
// interceptors need: NACK and PLI for video, transport-wide congestion
// control for both kinds.
func registerFeedback(me *webrtc.MediaEngine) error {
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	me.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, kind)
		if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
			return err
		}
	}
	return nil
}

// registerInterceptors builds one peer connection's chain, innermost
// (next to SRTP) first: the SFU's own (header cache, NACK ring, counters,
// the direct send path), RTCP sender and receiver reports (see
// rtcpReports), the NACK generator (asks publishers
// for lost packets; see nackGenerator), TWCC feedback to publishers
// (their congestion control; see twccFeedback), and last the direct
// path's tap on the whole incoming chain.
func registerInterceptors(reg *interceptor.Registry, m *metrics, clock *feedbackClock, rx *rxPath, tx *txPath) {
	reg.Add(sfuInterceptorFactory{m: m, tx: tx})
	reg.Add(reportsFactory{clock: clock})
	reg.Add(nackFactory{clock: clock})
	reg.Add(twccFactory{clock: clock})
	reg.Add(tapFactory{rx: rx})
}

// Addrs returns the local addresses of the media port.
func (s *SFU) Addrs() []net.Addr { return s.addrs }

// Close ends every peer connection and closes the media port.
func (s *SFU) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var peers []*peer
	for _, r := range s.rooms {
		for _, p := range r.peers {
			peers = append(peers, p)
		}
	}
	s.rooms = map[string]*room{}
	s.mu.Unlock()
	for _, p := range peers {
		p.close()
	}
	s.wg.Wait()
	s.clock.close()
	return s.mux.Close()
}

// room is one call: the devices in it and whether video is allowed.
type room struct {
	id    string
	video bool
	peers map[string]*peer // by device
}

// Offer handles a device's SDP offer in room: its first (joining the room)
// or a later one (it renegotiates: an added camera, a screen share). video
// false refuses video (audio_only, or audio_upgradable before AllowVideo):
// video m-lines are answered inactive and the device's video is not
// forwarded. Once video is allowed in a room, by an Offer with video true
// or by AllowVideo, it stays allowed. It returns the SDP answer, with the
// SFU's candidates in it.
func (s *SFU) Offer(ctx context.Context, roomID, user, device, sdp string, video bool) (string, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", ErrClosed
	}
	r := s.rooms[roomID]
	if r == nil {
		r = &room{id: roomID, peers: map[string]*peer{}}
		s.rooms[roomID] = r
	}
	r.video = r.video || video
	p := r.peers[device]
	if p != nil && p.user != user {
		s.mu.Unlock()
		return "", fmt.Errorf("%w: %s is %s", ErrUserMismatch, device, p.user)
	}
	if p == nil {
		var err error
		if p, err = s.newPeer(r, user, device); err != nil {
			if len(r.peers) == 0 {
				delete(s.rooms, roomID)
			}
			s.mu.Unlock()
			return "", err
		}
		r.peers[device] = p
	}
	s.mu.Unlock()
	return p.handleOffer(ctx, sdp)
}

// Answer applies a device's answer to the SFU's last offer (OnOffer).
func (s *SFU) Answer(roomID, device, sdp string) error {
	p, err := s.peer(roomID, device)
	if err != nil {
		return err
	}
	return p.handleAnswer(sdp)
}

// AddCandidate adds a device's trickled ICE candidate (JSON of
// webrtc.ICECandidateInit). A candidate that comes while the device's
// first Offer is being handled is kept until the offer is applied.
func (s *SFU) AddCandidate(roomID, device, candidate string) error {
	p, err := s.peer(roomID, device)
	if err != nil {
		return err
	}
	return p.addCandidate(candidate)
}

// States are the connection states of room's devices' peer connections
// (new, connecting, connected, disconnected, failed or closed), by device.
func (s *SFU) States(roomID string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	if r := s.rooms[roomID]; r != nil {
		for d, p := range r.peers {
			out[d] = p.pc.ConnectionState().String()
		}
	}
	return out
}

// AllowVideo allows video in room (an audio_upgradable call upgraded):
// the devices may now offer video, and it is forwarded.
func (s *SFU) AllowVideo(roomID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[roomID]
	if r == nil {
		return fmt.Errorf("%w: %s", ErrNoRoom, roomID)
	}
	r.video = true
	return nil
}

// Leave closes device's peer connection and stops forwarding its media.
// The room is forgotten when its last device leaves. Leaving twice, or a
// room never joined, does nothing.
func (s *SFU) Leave(roomID, device string) {
	s.mu.Lock()
	p := s.unroom(roomID, device, nil)
	s.mu.Unlock()
	if p != nil {
		p.close()
	}
}

// unroom takes device's peer out of room (only if it is only, when set)
// and forgets the room once it is empty; it returns the peer taken out.
// s.mu is held.
func (s *SFU) unroom(roomID, device string, only *peer) *peer {
	r := s.rooms[roomID]
	if r == nil {
		return nil
	}
	p := r.peers[device]
	if p == nil || (only != nil && p != only) {
		return nil
	}
	delete(r.peers, device)
	if len(r.peers) == 0 {
		delete(s.rooms, roomID)
	}
	return p
}

func (s *SFU) peer(roomID, device string) (*peer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	r := s.rooms[roomID]
	if r == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoRoom, roomID)
	}
	p := r.peers[device]
	if p == nil {
		return nil, fmt.Errorf("%w: %s in %s", ErrNoPeer, device, roomID)
	}
	return p, nil
}

// videoAllowed reports whether room r allows video now.
func (s *SFU) videoAllowed(r *room) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return r.video
}
