// Package sfutest holds what tests and benchmarks of the SFU, and of the
// call plugin above it, need: a real pion peer that joins a call the way a
// participant's device does, and a way to count allocations on a code path.
//
//	c, err := sfutest.NewClient(s, "room", "alice", "alice-phone", sfutest.Options{Video: true, Verify: true})
//	c.PublishAudio()
//	c.PublishVideo("camera")
//	err = c.Negotiate()                          // offer → s.Offer → answer
//	s.OnOffer = func(room, device, sdp string) { go c.ServerOffer(sdp) }
//	tracks, err := c.WaitFrames(webrtc.RTPCodecTypeVideo, 1, 15, 10*time.Second)
//
// A Client publishes Opus (50 packets/s) and VP8 (30 frames/s, 3 packets
// each) with synthetic payloads whose every byte is checkable: with
// Options.Verify each received track is reassembled by pion's sample
// builder and every frame is checked whole and in order.
package sfutest

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
)

// Signaller is the part of the SFU a Client talks to: *sfu.SFU, or a
// proxy to one in another process (the benchmark's).
type Signaller interface {
	Offer(ctx context.Context, room, user, device, sdp string, video bool) (string, error)
	Answer(room, device, sdp string) error
}

// Options shape a Client.
type Options struct {
	Video       bool // the video flag its Offers carry
	DropEvery   int  // lose every Nth first transmission of its VP8 packets (NACK tests)
	DropEveryIn int  // lose every Nth VP8 packet it receives the first time, before its NACK generator sees it
	Pausable    bool // its socket can be silenced with Pause (ICE disconnect tests)
	Verify      bool // reassemble received tracks and check every frame; off, packets are only counted
	// KeyframesOnRequest: its VP8 has a keyframe first and then only when
	// asked (PLI or FIR), as a browser's screen capture does; otherwise
	// every 60th frame is one too.
	KeyframesOnRequest bool
}

// Client is one participant device: a pion peer connection on loopback.
type Client struct {
	Room, User, Device string

	sig  Signaller
	opts Options
	pc   *webrtc.PeerConnection
	sock *clientConn

	neg    sync.Mutex // one negotiation at a time
	done   chan struct{}
	closed sync.Once
	wg     sync.WaitGroup

	plis      atomic.Int64
	rtcpSeen  rtcpSeen
	resent    atomic.Int64
	dropped   atomic.Int64
	droppedIn atomic.Int64

	mu     sync.Mutex
	remote []*remoteTrack
	start  time.Time // when Negotiate was first called
}

// NewClient makes a client. It joins when Negotiate is called.
func NewClient(sig Signaller, room, user, device string, o Options) (*Client, error) {
	c := &Client{Room: room, User: user, Device: device, sig: sig, opts: o, done: make(chan struct{})}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if o.DropEvery > 0 {
		reg.Add(&dropperFactory{c: c, every: o.DropEvery}) // inside the NACK responder: its resends pass here
	}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		return nil, err
	}
	// Browsers put a transport-wide sequence number on every packet.
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, reg); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if o.Pausable || o.DropEveryIn > 0 {
		uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		c.sock = &clientConn{UDPConn: uc, c: c, dropEvery: o.DropEveryIn, got: map[uint64]bool{}}
		quiet := logging.NewDefaultLoggerFactory()
		quiet.DefaultLogLevel = logging.LogLevelDisabled // it reports its socket closing as an error
		se.SetICEUDPMux(ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: c.sock, Logger: quiet.NewLogger("udpmux")}))
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	c.pc = pc
	pc.OnTrack(c.onTrack)
	return c, nil
}

// PC is the client's peer connection.
func (c *Client) PC() *webrtc.PeerConnection { return c.pc }

// Close closes the peer connection and waits for the client's goroutines.
func (c *Client) Close() {
	c.closed.Do(func() {
		close(c.done)
		c.pc.Close()
		c.wg.Wait()
		if c.sock != nil {
			c.sock.Close()
		}
	})
}

// Pause silences the client's socket both ways, as when a device's network
// drops (Options.Pausable).
func (c *Client) Pause(on bool) {
	if c.sock != nil {
		c.sock.paused.Store(on)
	}
}

// LostWhilePaused counts the datagrams that arrived at the client's socket
// while it was paused (Options.Pausable).
func (c *Client) LostWhilePaused() int64 {
	if c.sock == nil {
		return 0
	}
	return c.sock.lost.Load()
}

// KeyframeRequests is how many PLIs and FIRs the client received for the
// tracks it sends.
func (c *Client) KeyframeRequests() int64 { return c.plis.Load() }

// Dropped and Resent count the VP8 packets lost on purpose
// (Options.DropEvery) and those the client sent again after a NACK.
func (c *Client) Dropped() int64 { return c.dropped.Load() }
func (c *Client) Resent() int64  { return c.resent.Load() }

// DroppedIn counts the VP8 packets lost on purpose on the way in
// (Options.DropEveryIn).
func (c *Client) DroppedIn() int64 { return c.droppedIn.Load() }

// Negotiate sends the client's offer (all its candidates in it) to the SFU
// and applies the answer.
func (c *Client) Negotiate() error { return c.negotiate(nil, "") }

// RestartICE negotiates again with new ICE credentials, as a browser does
// when its network changed: pion gathers its candidates again, on new
// sockets (a client without Options.Pausable), so the SFU finds the device
// at a new address. The offer the SFU gets carries extra too (candidate
// lines, "a=candidate:..." each ending in CRLF) after its own.
func (c *Client) RestartICE(extra string) error {
	return c.negotiate(&webrtc.OfferOptions{ICERestart: true}, extra)
}

func (c *Client) negotiate(opts *webrtc.OfferOptions, extra string) error {
	c.neg.Lock()
	defer c.neg.Unlock()
	c.mu.Lock()
	if c.start.IsZero() {
		c.start = time.Now()
	}
	c.mu.Unlock()
	offer, err := c.pc.CreateOffer(opts)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(offer); err != nil {
		return err
	}
	<-gathered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, err := c.sig.Offer(ctx, c.Room, c.User, c.Device, c.pc.LocalDescription().SDP+extra, c.opts.Video)
	if err != nil {
		return fmt.Errorf("%s: offer: %w", c.Device, err)
	}
	return c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
}

// ServerOffer answers an offer of the SFU's (its OnOffer callback).
func (c *Client) ServerOffer(sdp string) error {
	c.neg.Lock()
	defer c.neg.Unlock()
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return fmt.Errorf("%s: apply server offer: %w", c.Device, err)
	}
	answer, err := c.pc.CreateAnswer(nil)
	if err == nil {
		err = c.pc.SetLocalDescription(answer)
	}
	if err == nil {
		err = c.sig.Answer(c.Room, c.Device, answer.SDP)
	}
	if err != nil {
		return fmt.Errorf("%s: answer server offer: %w", c.Device, err)
	}
	return nil
}

// PublishAudio adds an Opus track: 50 packets/s of AudioPayloadSize
// bytes, each numbered. It is offered at the next Negotiate.
func (c *Client) PublishAudio() error {
	tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", c.User)
	if err != nil {
		return err
	}
	if err := c.addTrack(tr, nil); err != nil {
		return err
	}
	c.run(20*time.Millisecond, func(n int) error {
		return tr.WriteSample(media.Sample{Data: AudioPayload(n), Duration: 20 * time.Millisecond})
	})
	return nil
}

// PublishVideo adds a VP8 track: 30 frames/s of VideoFrameSize bytes (3
// packets each at pion's MTU, 600 kbit/s), a keyframe every 2 s and
// whenever one is asked for.
func (c *Client) PublishVideo(id string) error {
	tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, id, c.User)
	if err != nil {
		return err
	}
	keyReq := new(atomic.Bool) // this track's: a PLI names one track
	if err := c.addTrack(tr, keyReq); err != nil {
		return err
	}
	c.run(time.Second/30, func(n int) error {
		key := n == 0 || (!c.opts.KeyframesOnRequest && n%60 == 0) || keyReq.Swap(false)
		return tr.WriteSample(media.Sample{Data: VideoFrame(n, key), Duration: time.Second / 30})
	})
	return nil
}

func (c *Client) addTrack(tr webrtc.TrackLocal, keyReq *atomic.Bool) error {
	sender, err := c.pc.AddTrack(tr)
	if err != nil {
		return err
	}
	// The NACK responder needs the RTCP read; keyframe requests are counted.
	c.readRTCP(sender.ReadRTCP, func(pkts []rtcp.Packet) {
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				c.plis.Add(1)
				if keyReq != nil {
					keyReq.Store(true)
				}
			}
		}
	})
	return nil
}

// readRTCP reads a sender's or receiver's RTCP on a goroutine of the
// client's until it ends, noting what the SFU sent (RTCPSeen) and handing
// each compound packet to see, if set.
func (c *Client) readRTCP(read func() ([]rtcp.Packet, interceptor.Attributes, error), see func([]rtcp.Packet)) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			pkts, _, err := read()
			if err != nil {
				return
			}
			c.rtcpSeen.note(pkts)
			if see != nil {
				see(pkts)
			}
		}
	}()
}

func (c *Client) run(every time.Duration, send func(n int) error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for n := 0; ; n++ {
			select {
			case <-c.done:
				return
			case <-t.C:
				send(n)
			}
		}
	}()
}

// Track is what a client received on one track.
type Track struct {
	Kind          webrtc.RTPCodecType
	Stream, ID    string // the msid the SFU gave it
	Packets       int
	Frames        int           // reassembled and checked (Options.Verify)
	Corrupt       int           // frames whose bytes are not what was sent
	Missing       int           // frames missing between two received ones
	FirstPacketIn time.Duration // from the first Negotiate to the track's first packet
}

type remoteTrack struct {
	mu sync.Mutex
	Track
	first, last int
}

func (c *Client) onTrack(tr *webrtc.TrackRemote, rc *webrtc.RTPReceiver) {
	rt := &remoteTrack{Track: Track{Kind: tr.Kind(), ID: tr.ID(), Stream: tr.StreamID()}, first: -1}
	c.mu.Lock()
	c.remote = append(c.remote, rt)
	start := c.start
	c.mu.Unlock()
	c.readRTCP(rc.ReadRTCP, nil) // the SFU's sender reports on the track
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if !c.opts.Verify {
			buf := make([]byte, 1500)
			for {
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
				rt.packet(start)
			}
		}
		var sb *samplebuilder.SampleBuilder
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			sb = samplebuilder.New(512, &codecs.VP8Packet{}, 90000)
		} else {
			sb = samplebuilder.New(64, &codecs.OpusPacket{}, 48000)
		}
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			rt.packet(start)
			sb.Push(pkt)
			for s := sb.Pop(); s != nil; s = sb.Pop() {
				rt.frame(s.Data)
			}
		}
	}()
}

func (rt *remoteTrack) packet(start time.Time) {
	rt.mu.Lock()
	if rt.Packets == 0 {
		rt.FirstPacketIn = time.Since(start)
	}
	rt.Packets++
	rt.mu.Unlock()
}

func (rt *remoteTrack) frame(b []byte) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var n int
	var ok bool
	if rt.Kind == webrtc.RTPCodecTypeVideo {
		n, ok = CheckVideoFrame(b)
	} else {
		n, ok = CheckAudioPayload(b)
	}
	if !ok {
		rt.Corrupt++
		return
	}
	if rt.first < 0 {
		rt.first = n
	} else if n > rt.last+1 {
		rt.Missing += n - rt.last - 1
	}
	rt.last = n
	rt.Frames++
}

// RTCPSeen is what a Client learnt from the SFU's RTCP: the receiver
// reports on the tracks it publishes, the sender reports on those it
// receives, the transport-wide congestion control feedback on what it
// sent. Each span is from the first report on an SSRC to the last.
type RTCPSeen struct {
	ReceivedSpan map[uint32]uint32 // by published SSRC: how far the receiver reports' highest sequence number advanced
	SentSpan     map[uint32]uint32 // by received SSRC: how far the sender reports' packet count advanced
	TWCCReported int               // packets the transport-wide feedback reported on
}

type rtcpSeen struct {
	mu              sync.Mutex
	rrFirst, rrLast map[uint32]uint32
	srFirst, srLast map[uint32]uint32
	twcc            int
}

func (r *rtcpSeen) note(pkts []rtcp.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rrFirst == nil {
		r.rrFirst, r.rrLast = map[uint32]uint32{}, map[uint32]uint32{}
		r.srFirst, r.srLast = map[uint32]uint32{}, map[uint32]uint32{}
	}
	span := func(first, last map[uint32]uint32, ssrc, v uint32) {
		if _, ok := first[ssrc]; !ok {
			first[ssrc] = v
		}
		last[ssrc] = v
	}
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.ReceiverReport:
			for _, rr := range p.Reports {
				span(r.rrFirst, r.rrLast, rr.SSRC, rr.LastSequenceNumber)
			}
		case *rtcp.SenderReport:
			span(r.srFirst, r.srLast, p.SSRC, p.PacketCount)
		case *rtcp.TransportLayerCC:
			r.twcc += int(p.PacketStatusCount)
		}
	}
}

// RTCPSeen returns what the client learnt from the SFU's RTCP so far.
func (c *Client) RTCPSeen() RTCPSeen {
	r := &c.rtcpSeen
	r.mu.Lock()
	defer r.mu.Unlock()
	out := RTCPSeen{ReceivedSpan: map[uint32]uint32{}, SentSpan: map[uint32]uint32{}, TWCCReported: r.twcc}
	for ssrc, v := range r.rrLast {
		out.ReceivedSpan[ssrc] = v - r.rrFirst[ssrc]
	}
	for ssrc, v := range r.srLast {
		out.SentSpan[ssrc] = v - r.srFirst[ssrc]
	}
	return out
}

// Tracks returns what the client received on its tracks of kind.
func (c *Client) Tracks(kind webrtc.RTPCodecType) []Track {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Track
	for _, rt := range c.remote {
		if rt.Kind == kind {
			rt.mu.Lock()
			out = append(out, rt.Track)
			rt.mu.Unlock()
		}
	}
	return out
}

// WaitFrames waits until the client has n tracks of kind with at least
// frames frames each (packets, without Options.Verify).
func (c *Client) WaitFrames(kind webrtc.RTPCodecType, n, frames int, d time.Duration) ([]Track, error) {
	deadline := time.Now().Add(d)
	for {
		ts := c.Tracks(kind)
		enough := len(ts) >= n
		for _, t := range ts {
			got := t.Frames
			if !c.opts.Verify {
				got = t.Packets
			}
			enough = enough && got >= frames
		}
		if enough {
			return ts, nil
		}
		if time.Now().After(deadline) {
			return ts, fmt.Errorf("%s: %s tracks %+v, want %d with %d frames each", c.Device, kind, ts, n, frames)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Payloads. A video frame starts like a VP8 frame (the frame tag, and a
// keyframe's start code and size) so an SFU can tell keyframes; then its
// number; then bytes that depend on both.

// VideoFrameSize is the size of a video frame: 600 kbit/s at 30 frames/s.
const VideoFrameSize = 2500

// AudioPayloadSize is the size of an Opus packet: 32 kbit/s at 50/s.
const AudioPayloadSize = 80

// VideoFrame is frame n.
func VideoFrame(n int, key bool) []byte {
	b := make([]byte, VideoFrameSize)
	b[0] = 0x11 // inter frame, shown
	if key {
		b[0] = 0x10
		copy(b[3:], []byte{0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01}) // start code, 640x480
	}
	binary.BigEndian.PutUint32(b[10:], uint32(n))
	for i := 14; i < len(b); i++ {
		b[i] = byte(i*7 + n)
	}
	return b
}

// CheckVideoFrame returns the frame's number and whether it is intact.
func CheckVideoFrame(b []byte) (int, bool) {
	if len(b) != VideoFrameSize {
		return 0, false
	}
	n := int(binary.BigEndian.Uint32(b[10:]))
	for i := 14; i < len(b); i++ {
		if b[i] != byte(i*7+n) {
			return n, false
		}
	}
	return n, true
}

// AudioPayload is Opus packet n.
func AudioPayload(n int) []byte {
	b := make([]byte, AudioPayloadSize)
	binary.BigEndian.PutUint32(b, uint32(n))
	for i := 4; i < len(b); i++ {
		b[i] = byte(i + n)
	}
	return b
}

// CheckAudioPayload returns the packet's number and whether it is intact.
func CheckAudioPayload(b []byte) (int, bool) {
	if len(b) != AudioPayloadSize {
		return 0, false
	}
	n := int(binary.BigEndian.Uint32(b))
	for i := 4; i < len(b); i++ {
		if b[i] != byte(i+n) {
			return n, false
		}
	}
	return n, true
}

// dropperFactory loses every Nth VP8 packet the client sends the first
// time and lets its retransmissions (the same sequence number again)
// through, counting both.
type dropperFactory struct {
	c     *Client
	every int
}

func (f *dropperFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &dropper{f: f, sent: map[uint32]map[uint16]bool{}}, nil
}

type dropper struct {
	interceptor.NoOp
	f    *dropperFactory
	mu   sync.Mutex
	n    int
	sent map[uint32]map[uint16]bool
}

func (d *dropper) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if info.MimeType != webrtc.MimeTypeVP8 {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		d.mu.Lock()
		if d.sent[h.SSRC] == nil {
			d.sent[h.SSRC] = map[uint16]bool{}
		}
		seen := d.sent[h.SSRC][h.SequenceNumber]
		d.sent[h.SSRC][h.SequenceNumber] = true
		if !seen {
			d.n++
		}
		drop := !seen && d.n%d.f.every == 0
		d.mu.Unlock()
		switch {
		case seen:
			d.f.c.resent.Add(1)
		case drop:
			d.f.c.dropped.Add(1)
			return len(payload), nil
		}
		return w.Write(h, payload, a)
	})
}

// clientConn is a client socket that can go silent both ways
// (Options.Pausable) and lose VP8 packets on the way in
// (Options.DropEveryIn).
type clientConn struct {
	*net.UDPConn
	c      *Client
	paused atomic.Bool
	lost   atomic.Int64 // datagrams that arrived while paused

	dropEvery int
	mu        sync.Mutex
	n         int
	got       map[uint64]bool // ssrc<<16 | seq of the VP8 packets seen
}

func (p *clientConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := p.UDPConn.ReadFrom(b)
		if err == nil && p.paused.Load() {
			p.lost.Add(1)
			continue
		}
		if err != nil || !p.drop(b[:n]) {
			return n, a, err
		}
	}
}

// vp8PayloadType is VP8's payload type in pion's default codecs, which
// the client offers and the SFU answers with.
const vp8PayloadType = 96

// drop reports whether to lose the datagram b: every dropEvery-th VP8 RTP
// packet the first time its sequence number comes (SRTP leaves the header
// in the clear); the same packet again, resent after a NACK, passes.
func (p *clientConn) drop(b []byte) bool {
	if p.dropEvery == 0 || len(b) < 12 || b[0]>>6 != 2 || b[1]&0x7f != vp8PayloadType {
		return false
	}
	key := uint64(binary.BigEndian.Uint32(b[8:]))<<16 | uint64(binary.BigEndian.Uint16(b[2:]))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.got[key] {
		return false
	}
	p.got[key] = true
	if p.n++; p.n%p.dropEvery != 0 {
		return false
	}
	p.c.droppedIn.Add(1)
	return true
}

func (p *clientConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if p.paused.Load() {
		return len(b), nil
	}
	return p.UDPConn.WriteTo(b, a)
}
