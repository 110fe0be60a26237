package sfu

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// The direct receive path. In pion, a packet a device sends crosses five
// goroutines before the SFU can forward it: the socket reader, the ICE
// candidate's reader, the DTLS/SRTP demultiplexer, the SRTP session's
// reader and the track's reader, each a hand-off through a buffer and a
// wake-up. On the direct path the socket's reader does it all at once:
// it recognises an SRTP packet from a device whose keys it knows, of a
// track already published, decrypts it (the keys from dtlsKeys), runs it
// through pion's interceptors for that track (NACK generation, receiver
// reports, TWCC), and forwards it (publication.route) down to the
// subscribers' sockets.
//
// Everything else goes to pion as before: STUN, DTLS, RTCP, the first
// packets of a new track (pion's OnTrack publishes it; the direct path
// takes the track from then on), and the packets of a track the direct
// path could not decrypt before it decrypted one.

// directKey marks, in the attributes the direct path hands down pion's
// interceptor chain, that the packet is already in the buffer: the
// innermost interceptor returns it instead of reading from SRTP.
type directKey struct{}

// rxStream is one publication's state on the direct path; used under its
// peer's rxPath.mu.
type rxStream struct {
	pub   *publication
	chain interceptor.RTPReader  // pion's interceptors bound to the track
	in    interceptor.Attributes // {directKey: this stream}
	out   interceptor.Attributes // the parsed header, where the interceptors look for it
	hdr   *rtp.Header            // out's header
	n     int                    // the decrypted packet's length
	c     counters

	firstSeq uint16 // the first packet pion delivered, before the direct path took the track
	started  bool   // the direct path has seen a packet: its rollover counter is set
	proven   bool   // a packet decrypted: the context's rollover counter is right
	failures int    // decryptions failed before one succeeded
}

// rxPath is a peer's direct receive path.
type rxPath struct {
	streams atomic.Pointer[map[uint32]*rxStream] // by SSRC; replaced whole
	ctx     atomic.Pointer[srtp.Context]         // set once DTLS is connected; used under mu

	mu     sync.Mutex // the fields below, and ctx's use; the socket reader holds it per packet
	chains map[uint32]interceptor.RTPReader
	buf    [maxDatagram]byte // the decrypted packet
}

// failuresBeforeGivingUp: a stream whose first packets on the direct path
// all fail to decrypt is handed back to pion's path for good.
const failuresBeforeGivingUp = 16

// startDirect turns p's direct paths on, with the SRTP contexts of its
// DTLS handshake, once pion's DTLS transport reports it connected: the
// handshake verified, SRTP not yet started (pion calls this under the
// transport's lock, before it starts SRTP), so nothing has been sent with
// pion's own SRTP context yet. The send path is on only if the selected
// pair's socket is known; otherwise pion sends everything to p, for good.
func (p *peer) startDirect() {
	rx, tx := p.keys.take()
	if rx == nil {
		return
	}
	if pair, err := p.ice.GetSelectedCandidatePair(); err == nil {
		p.s.routeDirect(p, pair) // pion's pair-change callback runs on a goroutine of its own: it may not have yet
	}
	p.rx.ctx.Store(rx)
	p.tx.start(tx)
}

// stopDirect turns p's direct paths off for good when its DTLS transport
// failed or closed, or its connection closed: nothing more is sent to it
// (pion would not either) and nothing taken from its address.
func (p *peer) stopDirect() {
	p.rx.ctx.Store(nil)
	p.tx.stop()
	p.s.mu.Lock()
	p.s.unrouteDirect(p)
	p.s.mu.Unlock()
}

// pauseDirect stops sending to p while its connection is failed (ICE
// found no path to it: its consent to receive is gone) and forgets its
// address. An ICE restart that connects it again resumes them
// (resumeDirect), at the address it has then.
func (p *peer) pauseDirect() {
	p.tx.pause(true)
	p.s.mu.Lock()
	p.s.unrouteDirect(p)
	p.s.mu.Unlock()
}

// resumeDirect undoes pauseDirect once p's connection is connected again;
// it does nothing to direct paths stopped, or not started.
func (p *peer) resumeDirect() {
	if pair := p.selectedPair(); pair != nil {
		p.s.routeDirect(p, pair) // the new address first: nothing goes to the old one
	}
	p.tx.pause(false)
}

// selectedPair is p's selected ICE candidate pair, nil if it has none
// (not connected yet, failed, or restarting).
func (p *peer) selectedPair() *webrtc.ICECandidatePair {
	pair, err := p.ice.GetSelectedCandidatePair()
	if err != nil {
		return nil
	}
	return pair
}

// txPath is a peer's direct send path: the SFU's RTP and RTCP packets to
// the device, encrypted with the SFU's own SRTP context and written to the
// socket, instead of through pion's SRTP session, DTLS/SRTP mux, ICE
// connection, candidate pair and UDP mux. Pion's interceptors above it
// (sender reports, the NACK ring) see every packet as before.
//
// Once on, it sends everything: it never hands a packet back to pion,
// whose SRTP context uses the same keys with counters of its own (an
// SRTCP index, or an RTP index after a rollover, used by both for two
// different packets would reuse an AES-GCM nonce). A packet it cannot
// send is dropped.
type txPath struct {
	mu      sync.Mutex
	on      bool // started with a socket; pion sends nothing to the device any more
	stopped bool // DTLS or the connection closed, or DTLS failed: drop everything
	paused  bool // the connection is failed: drop everything until it connects again
	m       *metrics
	ctx     *srtp.Context  // the SFU's
	conn    addrPortWriter // the socket of the selected candidate pair
	addr    netip.AddrPort // the device's address on that pair
	hdr     rtp.Header     // EncryptRTP's scratch
	buf     [maxDatagram + srtpOverhead]byte

	rtcpHdr rtcp.Header // EncryptRTCP's scratch
	rtcpBuf [maxDatagram + srtcpOverhead]byte
}

// srtpOverhead is the most SRTP adds to a packet: a 16-byte tag (AEAD
// GCM; HMAC-SHA1-80 adds 10).
const srtpOverhead = 16

// srtcpOverhead is the most SRTCP adds: the tag and the 4-byte index.
const srtcpOverhead = srtpOverhead + 4

// start turns the send path on if it has a socket.
func (tx *txPath) start(ctx *srtp.Context) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.conn != nil && !tx.stopped {
		tx.ctx, tx.on = ctx, true
	}
}

func (tx *txPath) stop() {
	tx.mu.Lock()
	tx.stopped = true
	tx.mu.Unlock()
}

func (tx *txPath) pause(on bool) {
	tx.mu.Lock()
	tx.paused = on
	tx.mu.Unlock()
}

// route points the send path at the selected pair: addr, on conn. A pair
// whose socket is not known (nil) keeps the socket it had.
func (tx *txPath) route(conn addrPortWriter, addr netip.AddrPort) {
	tx.mu.Lock()
	if conn != nil {
		tx.conn = conn
	}
	tx.addr = addr
	tx.mu.Unlock()
}

// write sends one RTP packet, and reports whether the send path took it
// (sent or dropped); if not, the caller writes it through pion.
func (tx *txPath) write(h *rtp.Header, payload []byte) (bool, error) {
	return tx.seal(func() ([]byte, error) {
		if h.MarshalSize()+len(payload)+srtpOverhead > len(tx.buf) {
			return nil, errTooLarge
		}
		hl, err := h.MarshalTo(tx.buf[:])
		if err != nil {
			return nil, err
		}
		n := hl + copy(tx.buf[hl:], payload)
		return tx.ctx.EncryptRTP(tx.buf[:n], tx.buf[:n], &tx.hdr) // in place: the buffer has room for the tag
	})
}

// writeRTCP sends a compound RTCP packet, as write does.
func (tx *txPath) writeRTCP(pkts []rtcp.Packet) (bool, error) {
	return tx.seal(func() ([]byte, error) {
		plain, err := rtcp.Marshal(pkts)
		if err != nil {
			return nil, err
		}
		return tx.ctx.EncryptRTCP(tx.rtcpBuf[:0], plain, &tx.rtcpHdr)
	})
}

// seal sends what encrypt makes, under tx.mu, if the send path is on.
func (tx *txPath) seal(encrypt func() ([]byte, error)) (bool, error) {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	switch {
	case !tx.on:
		return false, nil
	case tx.stopped, tx.paused:
		tx.m.sendDropped.Inc()
		return true, errNotSent
	}
	pkt, err := encrypt()
	if err != nil {
		return true, err
	}
	return true, tx.send(pkt)
}

// send writes pkt to the device without waiting: the socket reader calls
// this for every subscriber, and must not stall behind a full buffer.
func (tx *txPath) send(pkt []byte) error {
	if w, ok := tx.conn.(nonBlockingWriter); ok {
		_, err := w.TryWriteToAddrPort(pkt, tx.addr)
		return err
	}
	_, err := tx.conn.WriteToAddrPort(pkt, tx.addr)
	return err
}

var errTooLarge = errors.New("sfu: packet too large for the direct send path")

// errNotSent: the device's connection is failed or closed; the packet is
// dropped (and not counted as forwarded).
var errNotSent = errors.New("sfu: the device's connection is failed or closed: not sent")

// tapChain keeps the interceptor chain pion bound to an incoming stream
// (tapInterceptor, registered last, sees it whole).
func (rx *rxPath) tapChain(ssrc uint32, chain interceptor.RTPReader) {
	rx.mu.Lock()
	if rx.chains == nil {
		rx.chains = map[uint32]interceptor.RTPReader{}
	}
	rx.chains[ssrc] = chain
	rx.mu.Unlock()
}

func (rx *rxPath) untapChain(ssrc uint32) {
	rx.mu.Lock()
	delete(rx.chains, ssrc)
	rx.mu.Unlock()
}

// take puts pub on the direct path; forward calls it once it has
// forwarded the track's first packet, firstSeq.
func (rx *rxPath) take(pub *publication, firstSeq uint16) {
	ssrc := uint32(pub.track.SSRC())
	rx.mu.Lock()
	defer rx.mu.Unlock()
	chain := rx.chains[ssrc]
	if chain == nil {
		return
	}
	st := &rxStream{pub: pub, chain: chain, in: interceptor.Attributes{}, out: interceptor.Attributes{}, c: counters{direct: true}, firstSeq: firstSeq}
	st.in[directKey{}] = st
	// GetRTPHeader keeps the header it parses in out: the direct path
	// decrypts into that same header, parsing each packet once for all.
	st.hdr, _ = st.out.GetRTPHeader([]byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	rx.replace(func(m map[uint32]*rxStream) { m[ssrc] = st })
}

// drop takes pub off the direct path.
func (rx *rxPath) drop(pub *publication) {
	ssrc := uint32(pub.track.SSRC())
	rx.mu.Lock()
	defer rx.mu.Unlock()
	if st := (*rx.streamMap())[ssrc]; st != nil && st.pub == pub {
		st.c.flush(pub.p.s.m)
		rx.replace(func(m map[uint32]*rxStream) { delete(m, ssrc) })
	}
}

// streamMap is the current stream map (newPeer stores the first, empty).
func (rx *rxPath) streamMap() *map[uint32]*rxStream { return rx.streams.Load() }

// replace copies the stream map, changes it and publishes it; rx.mu is
// held.
func (rx *rxPath) replace(change func(map[uint32]*rxStream)) {
	old := *rx.streamMap()
	m := make(map[uint32]*rxStream, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	change(m)
	rx.streams.Store(&m)
}

// receive is the socket reader's hook (udpbatch.Options.Receive): it reports whether it
// took the datagram b from from. It allocates nothing.
func (s *SFU) receive(b []byte, from netip.AddrPort) bool {
	// RTP (RFC 7983: first byte 128–191), not RTCP (payload types 192–223).
	if len(b) < 12 || b[0]>>6 != 2 || (b[1] >= 192 && b[1] <= 223) {
		return false
	}
	peers := s.direct.Load()
	if peers == nil {
		return false
	}
	p := (*peers)[netip.AddrPortFrom(from.Addr().Unmap(), from.Port())]
	if p == nil {
		return false
	}
	rx := &p.rx
	st := (*rx.streamMap())[binary.BigEndian.Uint32(b[8:])]
	if st == nil {
		return false
	}
	rx.mu.Lock()
	defer rx.mu.Unlock()
	ctx := rx.ctx.Load()
	if ctx == nil {
		return false
	}
	ssrc := binary.BigEndian.Uint32(b[8:])
	if !st.started {
		// The context starts this SSRC at rollover 0. If the sequence
		// numbers wrapped since the first packet pion delivered, the
		// rollover counter is 1.
		st.started = true
		if wrappedSince(st.firstSeq, binary.BigEndian.Uint16(b[2:])) {
			ctx.SetROC(ssrc, 1)
		}
	}
	pkt, err := ctx.DecryptRTP(rx.buf[:0], b, st.hdr)
	if err != nil {
		if st.proven {
			s.m.directDropped.Inc()
			return true // a replay, or a forgery: pion would refuse it too
		}
		if st.failures++; st.failures >= failuresBeforeGivingUp {
			s.log.Warn("sfu: the direct path cannot decrypt a track; pion's path carries it", "device", p.device, "ssrc", ssrc, "err", err)
			rx.replace(func(m map[uint32]*rxStream) { delete(m, ssrc) })
			st.c.flush(s.m)
		}
		return false
	}
	st.proven = true
	st.n = len(pkt)
	if _, _, err := st.chain.Read(pkt, st.in); err != nil {
		return true
	}
	hl, ok := rtpHeaderLen(pkt)
	if !ok {
		return true
	}
	st.pub.route(st.hdr, pkt, hl, &st.c)
	return true
}

// seqAfter reports whether RTP sequence number seq comes after than: at
// most half the sequence space ahead of it, across the wrap from 65535 to
// 0 (further, it is a late packet, not a new one).
func seqAfter(seq, than uint16) bool { return int16(seq-than) > 0 }

// wrappedSince reports whether sequence number seq comes after first
// across the wrap from 65535 to 0 (a stream's packets are far fewer than
// 32,768 apart here): its rollover counter is one more than first's.
func wrappedSince(first, seq uint16) bool {
	return seq < first && first-seq > 0x8000
}

// rtpHeaderLen is the length of pkt's RTP header, extensions included.
func rtpHeaderLen(pkt []byte) (int, bool) {
	n := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 { // X
		if len(pkt) < n+4 {
			return 0, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(pkt[n+2:]))
	}
	return n, n <= len(pkt)
}

// routeDirect makes packets from pair's remote address go to p's direct
// path, and p's direct send path send to it (pion's
// OnSelectedCandidatePairChange).
func (s *SFU) routeDirect(p *peer, pair *webrtc.ICECandidatePair) {
	if pair == nil || pair.Remote == nil {
		return
	}
	ip, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil { // a name (mDNS; the SFU turns mDNS off, so not expected): no direct path to it
		s.log.Warn("sfu: a remote candidate the direct path cannot address", "device", p.device, "remote", pair.Remote.Address)
		p.tx.route(nil, netip.AddrPort{}) // sends fail (dropped) rather than go through pion's SRTP context
		s.mu.Lock()
		s.unrouteDirect(p)
		s.mu.Unlock()
		return
	}
	addr := netip.AddrPortFrom(ip.Unmap(), pair.Remote.Port)
	p.tx.route(s.connFor(pair.Local), addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.closed || s.closed {
		return
	}
	if m := s.direct.Load(); m != nil && p.addr == addr && (*m)[addr] == p {
		return // routed already (every connected state comes here)
	}
	s.replaceDirect(func(m map[netip.AddrPort]*peer) {
		if p.addr.IsValid() && m[p.addr] == p {
			delete(m, p.addr)
		}
		m[addr] = p
	})
	p.addr = addr
}

// connFor is the socket the SFU's local candidate c is on, if it is one
// the direct send path can write to (a udpbatch.Conn, Linux); nil otherwise,
// and pion sends. With one socket it is that one, whatever address the
// candidate advertises (PublicIPs).
func (s *SFU) connFor(c *webrtc.ICECandidate) addrPortWriter {
	if len(s.conns) == 1 {
		w, _ := s.conns[0].(addrPortWriter)
		return w
	}
	if c == nil {
		return nil
	}
	ip, err := netip.ParseAddr(c.Address)
	if err != nil {
		return nil
	}
	for _, conn := range s.conns {
		if w, ok := conn.(addrPortWriter); ok && conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap() == ip.Unmap() {
			return w
		}
	}
	return nil
}

// addrPortWriter is a media socket the direct send path writes to.
type addrPortWriter interface {
	WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// nonBlockingWriter is a socket that can refuse a write rather than wait
// for room (udpbatch.Conn).
type nonBlockingWriter interface {
	TryWriteToAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// unrouteDirect forgets p's address; s.mu is held.
func (s *SFU) unrouteDirect(p *peer) {
	if !p.addr.IsValid() {
		return
	}
	s.replaceDirect(func(m map[netip.AddrPort]*peer) {
		if m[p.addr] == p {
			delete(m, p.addr)
		}
	})
}

// replaceDirect copies the address map, changes it and publishes it;
// s.mu is held.
func (s *SFU) replaceDirect(change func(map[netip.AddrPort]*peer)) {
	m := map[netip.AddrPort]*peer{}
	if old := s.direct.Load(); old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	change(m)
	s.direct.Store(&m)
}

// tapInterceptor is registered last, so the reader it is given for an
// incoming stream is pion's whole chain: the direct path runs its packets
// through it.
type tapInterceptor struct {
	interceptor.NoOp
	rx *rxPath
}

type tapFactory struct{ rx *rxPath }

func (f tapFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &tapInterceptor{rx: f.rx}, nil
}

func (t *tapInterceptor) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	t.rx.tapChain(info.SSRC, reader)
	return reader
}

func (t *tapInterceptor) UnbindRemoteStream(info *interceptor.StreamInfo) {
	t.rx.untapChain(info.SSRC)
}
