package sfu

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// sfuInterceptor is the SFU's own part of every peer connection's
// interceptor chain. It is registered first, so it sits next to SRTP in
// both directions:
//
//   - incoming RTP on the direct path (direct.go): the packet is in the
//     buffer already, its header parsed; it hands both up the chain.
//   - incoming RTP from pion: it parses each packet's header into one rtp.Header per
//     stream, kept in one Attributes map per stream, and hands that map up
//     the chain. The NACK generator, the reports and the TWCC recorder
//     each call Attributes.GetRTPHeader, which finds the header there
//     instead of parsing the packet again.
//   - outgoing RTP: written on the peer's direct send path (direct.go)
//     once it has keys and an address, through pion's SRTP otherwise.
//   - outgoing RTP of streams that negotiated NACK: a ring of the last
//     ringSize packets, copied into fixed slots; a NACK from the subscriber
//     is answered from it (pion's responder allocates a packet per send).
//   - outgoing RTCP: NACKs and keyframe requests are counted; the packets
//     go on the direct send path when it is ready.
type sfuInterceptor struct {
	interceptor.NoOp
	m  *metrics
	tx *txPath // the peer's direct send path

	rings bySSRC[*sentRing] // by the SSRC we send
}

type sfuInterceptorFactory struct {
	m  *metrics
	tx *txPath
}

func (f sfuInterceptorFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &sfuInterceptor{m: f.m, tx: f.tx}, nil
}

// BindRemoteStream caches the parsed header (see the type's doc).
func (i *sfuInterceptor) BindRemoteStream(_ *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	attrs := interceptor.Attributes{}
	var hdr *rtp.Header
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		if st, ok := a[directKey{}].(*rxStream); ok { // the direct path's packet, already in b, header parsed
			return st.n, st.out, nil
		}
		n, _, err := reader.Read(b, a)
		if err != nil {
			return n, nil, err
		}
		if hdr == nil {
			if hdr, err = attrs.GetRTPHeader(b[:n]); err != nil {
				return 0, nil, err
			}
		} else if _, err = hdr.Unmarshal(b[:n]); err != nil {
			return 0, nil, err
		}
		return n, attrs, nil
	})
}

// observeHeaders is reader, calling see with each packet's header after
// it is read: the header sfuInterceptor parsed, shared by every
// interceptor of the chain.
func observeHeaders(reader interceptor.RTPReader, see func(*rtp.Header)) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := reader.Read(b, a)
		if err != nil {
			return n, attr, err
		}
		h, err := attr.GetRTPHeader(b[:n])
		if err != nil {
			return 0, nil, err
		}
		see(h)
		return n, attr, nil
	})
}

// ringSize is how many sent packets a video stream keeps for NACKs: about
// 2 s at 120 packets/s, more than a round trip plus a jitter buffer.
const ringSize = 256

// resendGap is the least time between two resends of one packet: a
// subscriber repeats its NACK until the packet arrives.
const resendGap = 20 * time.Millisecond

type sentRing struct {
	mu     sync.Mutex
	writer interceptor.RTPWriter
	slots  [ringSize]sentPacket
	resend rtp.Header
}

type sentPacket struct {
	valid    bool
	marker   bool
	pt       uint8
	seq      uint16
	ts       uint32
	n        int
	resentAt int64
	buf      [maxDatagram]byte
}

// BindLocalStream sends a stream's packets on the direct send path when
// it is ready (pion's SRTP writer otherwise), and keeps those of
// NACK-enabled streams for resending.
func (i *sfuInterceptor) BindLocalStream(info *interceptor.StreamInfo, srtpWriter interceptor.RTPWriter) interceptor.RTPWriter {
	writer := interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if sent, err := i.tx.write(h, payload); sent {
			return len(payload), err
		}
		return srtpWriter.Write(h, payload, a)
	})
	nack := false
	for _, fb := range info.RTCPFeedback {
		if fb.Type == "nack" && fb.Parameter == "" {
			nack = true
		}
	}
	if !nack {
		return writer
	}
	r := &sentRing{writer: writer}
	i.rings.put(info.SSRC, r)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		r.mu.Lock()
		s := &r.slots[h.SequenceNumber%ringSize]
		s.valid = len(payload) <= len(s.buf) && h.SSRC == info.SSRC
		s.marker, s.pt, s.seq, s.ts, s.resentAt = h.Marker, h.PayloadType, h.SequenceNumber, h.Timestamp, 0
		s.n = copy(s.buf[:], payload)
		r.mu.Unlock()
		return writer.Write(h, payload, a)
	})
}

func (i *sfuInterceptor) UnbindLocalStream(info *interceptor.StreamInfo) {
	i.rings.del(info.SSRC)
}

// BindRTCPReader answers NACKs. SRTCP hands a compound packet to every
// stream it names, so one NACK can pass here more than once: resendGap
// keeps that to one resend. (The per-track RTCP loops count feedback, as
// they know which SSRC is theirs.)
func (i *sfuInterceptor) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return observeRTCP(reader, func(it rtcpIter) {
		if it.isNACK() {
			i.answerNACK(it.mediaSSRC(), it.fci())
		}
	})
}

// observeRTCP is reader, calling see with each packet of a compound RTCP
// packet after it is read.
func observeRTCP(reader interceptor.RTCPReader, see func(rtcpIter)) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := reader.Read(b, a)
		if err != nil {
			return n, attr, err
		}
		for it := (rtcpIter{b: b[:n]}); it.next(); {
			see(it)
		}
		return n, attr, nil
	})
}

func (i *sfuInterceptor) answerNACK(ssrc uint32, fci []byte) {
	r := i.rings.get(ssrc)
	if r == nil {
		return
	}
	now := time.Now().UnixNano()
	for ; len(fci) >= 4; fci = fci[4:] {
		pid, blp := binary.BigEndian.Uint16(fci), binary.BigEndian.Uint16(fci[2:])
		r.resendOne(i.m, ssrc, pid, now)
		for bit := range uint16(16) {
			if blp&(1<<bit) != 0 {
				r.resendOne(i.m, ssrc, pid+bit+1, now)
			}
		}
	}
}

// resendOne sends packet seq again if the ring still has it. The ring's
// lock is held across the write: the forwarding loop waits for a resend
// rather than overwrite the slot under it.
func (r *sentRing) resendOne(m *metrics, ssrc uint32, seq uint16, now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.slots[seq%ringSize]
	if !s.valid || s.seq != seq || now-s.resentAt < int64(resendGap) {
		return
	}
	s.resentAt = now
	r.resend = rtp.Header{Version: 2, Marker: s.marker, PayloadType: s.pt, SequenceNumber: seq, Timestamp: s.ts, SSRC: ssrc}
	if _, err := r.writer.Write(&r.resend, s.buf[:s.n], nil); err == nil {
		m.retransmits.Inc()
	}
}

// BindRTCPWriter counts the feedback this side sends, and sends it on the
// direct send path when it is ready.
func (i *sfuInterceptor) BindRTCPWriter(writer interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.TransportLayerNack:
				i.m.nacksOut.Inc()
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				i.m.plisOut.Inc()
			}
		}
		if sent, err := i.tx.writeRTCP(pkts); sent {
			return 0, err
		}
		return writer.Write(pkts, a)
	})
}

// rtcpIter walks a compound RTCP packet without parsing it into objects.
type rtcpIter struct {
	b   []byte // what is left
	cur []byte // the current packet
}

func (it *rtcpIter) next() bool {
	if len(it.b) < 4 || it.b[0]>>6 != 2 {
		return false
	}
	l := (int(binary.BigEndian.Uint16(it.b[2:])) + 1) * 4
	if l > len(it.b) {
		return false
	}
	it.cur, it.b = it.b[:l], it.b[l:]
	return true
}

func (it *rtcpIter) format() uint8 { return it.cur[0] & 0x1f }
func (it *rtcpIter) typ() uint8    { return it.cur[1] }

// isNACK: transport-layer feedback (205), generic NACK (1).
func (it *rtcpIter) isNACK() bool {
	return it.typ() == uint8(rtcp.TypeTransportSpecificFeedback) && it.format() == rtcp.FormatTLN && len(it.cur) >= 12
}

// isKeyframeRequest: payload-specific feedback (206), PLI (1) or FIR (4).
func (it *rtcpIter) isKeyframeRequest() bool {
	return it.typ() == uint8(rtcp.TypePayloadSpecificFeedback) && len(it.cur) >= 12 &&
		(it.format() == rtcp.FormatPLI || it.format() == rtcp.FormatFIR)
}

func (it *rtcpIter) mediaSSRC() uint32 { return binary.BigEndian.Uint32(it.cur[8:]) }

// keyframeSSRC is the SSRC a PLI or FIR asks a keyframe of (a FIR names
// it in its first FCI entry, not in the header).
func (it *rtcpIter) keyframeSSRC() uint32 {
	if it.format() == rtcp.FormatFIR {
		if len(it.cur) < 16 {
			return 0
		}
		return binary.BigEndian.Uint32(it.cur[12:])
	}
	return it.mediaSSRC()
}
func (it *rtcpIter) fci() []byte { return it.cur[12:] }
