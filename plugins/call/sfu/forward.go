package sfu

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// publication is one track a device sends, and the tracks it is forwarded
// to.
type publication struct {
	p     *peer
	track *webrtc.TrackRemote
	rc    *webrtc.RTPReceiver
	kind  webrtc.RTPCodecType

	// subs is replaced whole (under SFU.mu) when a subscriber comes or
	// goes, so the forwarding loop reads it with one atomic load a packet.
	subs    atomic.Pointer[[]*downTrack]
	ended   bool         // SFU.mu
	lastPLI atomic.Int64 // unix ns of the last keyframe request sent
}

// downTrack is a track the SFU sends to one device: a webrtc.TrackLocal
// whose packets come from one publication at a time. Switching the source
// (the publisher left and came back on another device) keeps the device's
// sequence numbers and timestamps continuous.
type downTrack struct {
	p          *peer // the subscriber
	kind       webrtc.RTPCodecType
	codec      webrtc.RTPCodecCapability
	id, stream string
	sender     *webrtc.RTPSender
	src        *publication // SFU.mu: the routing's view

	bound atomic.Pointer[binding]

	mu      sync.Mutex // the sending state below; one writer at a time
	cur     *publication
	hdr     rtp.Header
	resync  bool   // the next packet starts a new source: recompute the offsets
	rebase  bool   // the next packet sent is the source's first: base
	base    uint16 // the source's first sequence number sent; nothing older is
	waitKey bool   // video: drop until a keyframe, since the decoder cannot use the rest
	started bool
	lastSeq uint16
	lastTS  uint32
	seqOff  uint16
	tsOff   uint32
}

type binding struct {
	ssrc uint32
	pt   uint8
	w    webrtc.TrackLocalWriter
}

func newDownTrack(p *peer, kind webrtc.RTPCodecType, stream, id string) *downTrack {
	c := opus
	if kind == webrtc.RTPCodecTypeVideo {
		c = vp8
	}
	return &downTrack{p: p, kind: kind, codec: c, id: id, stream: stream}
}

var _ webrtc.TrackLocal = (*downTrack)(nil)

func (d *downTrack) ID() string                       { return d.id }
func (d *downTrack) RID() string                      { return "" }
func (d *downTrack) StreamID() string                 { return d.stream }
func (d *downTrack) Kind() webrtc.RTPCodecType        { return d.kind }
func (d *downTrack) Codec() webrtc.RTPCodecCapability { return d.codec }

// Bind is called by pion once the m-line is negotiated.
func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, d.codec.MimeType) {
			d.bound.Store(&binding{ssrc: uint32(ctx.SSRC()), pt: uint8(c.PayloadType), w: ctx.WriteStream()})
			return c, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

func (d *downTrack) Unbind(webrtc.TrackLocalContext) error {
	d.bound.Store(nil)
	return nil
}

// setSource makes pub (nil: none) the source of the packets to come.
func (d *downTrack) setSource(pub *publication) {
	d.mu.Lock()
	d.cur, d.resync, d.waitKey = pub, true, pub != nil && d.kind == webrtc.RTPCodecTypeVideo
	d.mu.Unlock()
}

func (d *downTrack) source() *publication {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur
}

// write sends one packet of pub's; h is the publisher's header with its
// extensions stripped. Nothing here allocates: the header is copied into
// d.hdr, which pion's writer reads before it returns.
func (d *downTrack) write(pub *publication, h *rtp.Header, payload []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.bound.Load()
	if pub != d.cur || b == nil {
		return false
	}
	if d.waitKey {
		if !vp8Keyframe(payload) {
			// The keyframe asked for at bind time may have come before
			// this track's m-line was negotiated (a dedicated m-line is
			// bound only once the device answers the SFU's offer), or
			// been lost; a device asks for none on a track it receives
			// nothing on, and a screen's encoder sends one only when
			// asked. So ask again, at most once a keyframeGap.
			if pub.claimKeyframe() {
				go pub.sendKeyframeRequest()
			}
			return false
		}
		d.waitKey = false
	}
	if d.resync {
		d.resync, d.rebase = false, true
		if d.started {
			step := uint32(960) // 20 ms of Opus
			if d.kind == webrtc.RTPCodecTypeVideo {
				step = 3000 // a frame at 30 fps
			}
			d.seqOff = d.lastSeq + 1 - h.SequenceNumber
			d.tsOff = d.lastTS + step - h.Timestamp
		}
	}
	d.hdr = *h
	d.hdr.CSRC, d.hdr.Extensions = nil, nil
	d.hdr.SSRC, d.hdr.PayloadType = b.ssrc, b.pt
	d.hdr.SequenceNumber += d.seqOff
	d.hdr.Timestamp += d.tsOff
	if d.rebase {
		d.rebase, d.base = false, d.hdr.SequenceNumber
	} else if seqAfter(d.base, d.hdr.SequenceNumber) {
		// Older than the source's first packet sent (a late one): its
		// sequence number may be one already sent from the previous
		// source, and two packets encrypted under one number would reuse
		// an SRTP nonce.
		return false
	}
	if !d.started || seqAfter(d.hdr.SequenceNumber, d.lastSeq) {
		d.lastSeq, d.lastTS = d.hdr.SequenceNumber, d.hdr.Timestamp
	}
	d.started = true
	_, err := b.w.WriteRTP(&d.hdr, payload)
	return err == nil
}

// vp8Keyframe reports whether payload (a VP8 RTP payload) starts a
// keyframe: the first packet of a frame (S=1, partition 0) whose frame
// header has the inverse key-frame bit clear (RFC 7741).
func vp8Keyframe(payload []byte) bool {
	if len(payload) < 1 {
		return false
	}
	b := payload[0]
	if b&0x10 == 0 || b&0x07 != 0 {
		return false
	}
	i := 1
	if b&0x80 != 0 { // X: extension byte
		if len(payload) < 2 {
			return false
		}
		x := payload[1]
		i++
		if x&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(payload) <= i {
				return false
			}
			if payload[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K
			i++
		}
	}
	return len(payload) > i && payload[i]&0x01 == 0
}

// forward reads pub's packets from pion and forwards each (route) until
// the direct path takes the track, after its first packet; from then on
// it only forwards what pion still delivers (packets that arrived before
// the switch, or that the direct path could not decrypt) and ends with
// the track.
func (pub *publication) forward() {
	s := pub.p.s
	defer s.wg.Done()
	defer s.unpublish(pub)
	buf := make([]byte, maxDatagram)
	var h rtp.Header
	var c counters
	defer c.flush(s.m)
	taken := false
	for {
		n, _, err := pub.track.Read(buf)
		if err != nil {
			return
		}
		hl, err := h.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		pub.route(&h, buf[:n], hl, &c)
		if !taken {
			taken = true
			pub.p.rx.take(pub, h.SequenceNumber)
		}
	}
}

// counters are one forwarding loop's packet counts, added to the shared
// metrics every flushEvery packets.
type counters struct {
	direct                     bool // the direct path's (else pion's)
	in, inBytes, out, outBytes int
}

func (c *counters) flush(m *metrics) {
	m.packetsIn.Add(float64(c.in))
	if c.direct {
		m.viaDirect.Add(float64(c.in))
	} else {
		m.viaPion.Add(float64(c.in))
	}
	m.bytesIn.Add(float64(c.inBytes))
	m.packetsOut.Add(float64(c.out))
	m.bytesOut.Add(float64(c.outBytes))
	c.in, c.inBytes, c.out, c.outBytes = 0, 0, 0, 0
}

// route writes one packet of pub's to every subscriber: pkt is the whole
// packet, h its parsed header and hl the header's length. Padding and
// header extensions are left out (the extension ids are the publisher's
// negotiation). It allocates nothing: the subscriber list is read with one
// atomic load.
func (pub *publication) route(h *rtp.Header, pkt []byte, hl int, c *counters) {
	end := len(pkt)
	if h.Padding {
		pad := int(pkt[end-1])
		if pad == 0 || hl+pad > end {
			return
		}
		end -= pad
		h.Padding, h.PaddingSize = false, 0
	}
	h.Extension = false
	payload := pkt[hl:end]
	c.in++
	c.inBytes += len(pkt)
	for _, d := range *pub.subs.Load() {
		if d.write(pub, h, payload) {
			c.out++
			c.outBytes += 12 + len(payload)
		}
	}
	if c.in >= flushEvery {
		c.flush(pub.p.s.m)
	}
}

// drainRTCP reads the publisher's RTCP (sender reports) so the interceptors
// see it; nothing else needs it.
func (pub *publication) drainRTCP() {
	defer pub.p.s.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		if _, _, err := pub.rc.Read(buf); err != nil {
			return
		}
	}
}

// keyframeGap is the least time between two keyframe requests sent to one
// publisher: a keyframe is large, and the subscribers ask again if it is
// lost.
const keyframeGap = 250 * time.Millisecond

func (pub *publication) requestKeyframe() {
	if pub.kind != webrtc.RTPCodecTypeVideo || !pub.claimKeyframe() {
		return
	}
	pub.sendKeyframeRequest()
}

// claimKeyframe reports whether a keyframe request may go to pub now (the
// last went keyframeGap ago or more), and if so counts it as sent. It
// allocates nothing.
func (pub *publication) claimKeyframe() bool {
	now := time.Now().UnixNano()
	last := pub.lastPLI.Load()
	return now-last >= int64(keyframeGap) && pub.lastPLI.CompareAndSwap(last, now)
}

// sendKeyframeRequest sends pub's publisher a PLI; claimKeyframe said so.
func (pub *publication) sendKeyframeRequest() {
	err := pub.p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(pub.track.SSRC())}})
	if err != nil {
		pub.p.s.log.Debug("sfu: keyframe request", "device", pub.p.device, "err", err)
	}
}

// readRTCP reads a subscriber's RTCP for one track: it counts NACKs (the
// interceptor answers them) and passes keyframe requests to the source.
func (d *downTrack) readRTCP() {
	s := d.p.s
	defer s.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := d.sender.Read(buf)
		if err != nil {
			return
		}
		b := d.bound.Load()
		if b == nil {
			continue
		}
		for it := (rtcpIter{b: buf[:n]}); it.next(); {
			switch {
			case it.isNACK() && it.mediaSSRC() == b.ssrc:
				s.m.nacksIn.Inc()
			case it.isKeyframeRequest() && it.keyframeSSRC() == b.ssrc:
				s.m.plisIn.Inc()
				if src := d.source(); src != nil {
					src.requestKeyframe()
				}
			}
		}
	}
}

// publish starts forwarding a track a device sends (pion's OnTrack).
func (s *SFU) publish(p *peer, t *webrtc.TrackRemote, rc *webrtc.RTPReceiver) {
	if t.Kind() == webrtc.RTPCodecTypeVideo && !s.videoAllowed(p.room) {
		s.log.Debug("sfu: video refused", "room", p.room.id, "device", p.device)
		s.m.refusedVideo.Inc()
		s.mu.Lock()
		defer s.mu.Unlock()
		if !p.closed && !s.closed {
			s.wg.Add(1)
			go s.holdRefused(p, t, rc)
		}
		return
	}
	pub := &publication{p: p, track: t, rc: rc, kind: t.Kind()}
	pub.subs.Store(&[]*downTrack{})
	s.mu.Lock()
	if p.closed || s.closed {
		s.mu.Unlock()
		return
	}
	if len(p.pubs) >= MaxPublished {
		s.mu.Unlock()
		s.m.refusedLimit.Inc()
		s.log.Warn("sfu: a device publishes too many tracks; this one is not forwarded", "room", p.room.id, "device", p.device, "max", MaxPublished)
		return
	}
	p.pubs = append(p.pubs, pub)
	var others []*peer
	for _, q := range p.room.peers {
		if q.user != p.user && !q.closed {
			others = append(others, q)
		}
	}
	s.wg.Add(3) // the two goroutines, and this one's subscribing (Close waits for the offers it makes)
	s.mu.Unlock()
	go pub.forward()
	go pub.drainRTCP()
	defer s.wg.Done()
	for _, q := range others {
		q.subscribe()
	}
}

// holdRefused keeps a video track that came while video was not allowed
// in its room (a device sending on an m-line answered inactive, or that
// the SFU's next offer showed it recvonly), unread, and publishes it once
// video is allowed (AllowVideo): pion tells of a track once, so a refusal
// must not be for good. Pion drops what no one reads; the subscribers
// start at the next keyframe.
func (s *SFU) holdRefused(p *peer, t *webrtc.TrackRemote, rc *webrtc.RTPReceiver) {
	defer s.wg.Done()
	tick := time.NewTicker(refusedCheck)
	defer tick.Stop()
	for range tick.C {
		s.mu.Lock()
		gone := p.closed || s.closed
		s.mu.Unlock()
		if gone {
			return
		}
		if s.videoAllowed(p.room) {
			s.publish(p, t, rc)
			return
		}
	}
}

// refusedCheck is how often a refused video track looks whether video is
// allowed now.
const refusedCheck = 250 * time.Millisecond

// unpublish forgets a publication whose track ended.
func (s *SFU) unpublish(pub *publication) {
	pub.p.rx.drop(pub)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unbindAll(pub)
	p := pub.p
	for i, x := range p.pubs {
		if x == pub {
			p.pubs = append(p.pubs[:i:i], p.pubs[i+1:]...)
			break
		}
	}
}

// subscribe routes to q the room's publications it does not receive yet.
func (q *peer) subscribe() {
	q.sig.Lock()
	if !q.answered.Load() { // handleOffer is on its way and will route
		q.sig.Unlock()
		return
	}
	if q.addDedicated(q.s.attach(q, nil)) {
		q.needOffer = true
	}
	again := q.needOffer
	q.sig.Unlock()
	if again {
		q.negotiate()
	}
}

// attach adds slots to q's tracks, binds the room's publications that q
// does not receive yet to q's free tracks of their kind, and returns those
// left without one. q.sig is held.
func (s *SFU) attach(q *peer, slots []*downTrack) []*publication {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.closed {
		return nil
	}
	q.downs = append(q.downs, slots...)
	var left []*publication
	for _, p := range q.room.peers {
		if p.user == q.user || p.closed {
			continue
		}
	pubs:
		for _, pub := range p.pubs {
			if pub.ended {
				continue
			}
			for _, d := range q.downs {
				if d.src == pub {
					continue pubs
				}
			}
			free := false
			for _, d := range q.downs {
				if d.src == nil && d.kind == pub.kind {
					s.bind(d, pub)
					free = true
					break
				}
			}
			if !free {
				left = append(left, pub)
			}
		}
	}
	return left
}

// bindDedicated binds a track made for pub; q.sig is held.
func (s *SFU) bindDedicated(q *peer, d *downTrack, pub *publication) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.closed {
		return false
	}
	q.downs = append(q.downs, d)
	if !pub.ended {
		s.bind(d, pub)
	}
	return true
}

// bind makes pub the source of d; s.mu is held.
func (s *SFU) bind(d *downTrack, pub *publication) {
	s.unbind(d)
	d.src = pub
	subs := append(append([]*downTrack{}, *pub.subs.Load()...), d)
	pub.subs.Store(&subs)
	d.setSource(pub)
	// A new subscriber needs a keyframe to start decoding. A track whose
	// m-line is not negotiated yet could not forward it: write asks once
	// the track is bound and the publisher's packets reach it.
	if d.bound.Load() != nil {
		go pub.requestKeyframe()
	}
}

// unbind leaves d without a source; s.mu is held.
func (s *SFU) unbind(d *downTrack) {
	pub := d.src
	if pub == nil {
		return
	}
	d.src = nil
	d.setSource(nil)
	old := *pub.subs.Load()
	subs := make([]*downTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			subs = append(subs, x)
		}
	}
	pub.subs.Store(&subs)
}

// unbindAll ends pub: its subscribers' tracks are free again; s.mu is held.
func (s *SFU) unbindAll(pub *publication) {
	pub.ended = true
	for _, d := range *pub.subs.Load() {
		d.src = nil
		d.setSource(nil)
	}
	pub.subs.Store(&[]*downTrack{})
}

// goRTCP starts d's RTCP reader, unless the SFU is closed.
func (s *SFU) goRTCP(d *downTrack) { s.spawn(d.readRTCP) }

// spawn runs f on a goroutine that Close waits for, unless the SFU is
// closed; f must call s.wg.Done.
func (s *SFU) spawn(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go f()
}
