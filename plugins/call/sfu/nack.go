package sfu

import (
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// nackGenerator asks publishers for the packets that did not arrive: every
// feedbackInterval, on the SFU's feedback clock, one NACK per stream with
// a gap. It does the work of pion's nack.GeneratorInterceptor without a
// ticker per peer connection.
type nackGenerator struct {
	interceptor.NoOp
	clockedSender
	sender uint32 // the SSRC the NACKs come from

	streams bySSRC[*recvLog]
	missing []uint16 // tick's scratch
}

type nackFactory struct{ clock *feedbackClock }

func (f nackFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &nackGenerator{clockedSender: clockedSender{clock: f.clock}, sender: randomSSRC()}, nil
}

// BindRTCPWriter joins the feedback clock.
func (g *nackGenerator) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return g.bind(g, w)
}

// BindRemoteStream logs the arrivals of a stream that negotiated NACK.
func (g *nackGenerator) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	nack := false
	for _, fb := range info.RTCPFeedback {
		nack = nack || (fb.Type == "nack" && fb.Parameter == "")
	}
	if !nack {
		return reader
	}
	log := &recvLog{}
	g.streams.put(info.SSRC, log)
	return observeHeaders(reader, func(h *rtp.Header) { log.add(h.SequenceNumber) })
}

func (g *nackGenerator) UnbindRemoteStream(info *interceptor.StreamInfo) {
	g.streams.del(info.SSRC)
}

// tick sends a NACK for each stream with packets missing.
func (g *nackGenerator) tick() {
	var pkts []rtcp.Packet
	g.streams.each(func(ssrc uint32, log *recvLog) {
		g.missing = log.missingSince(g.missing[:0])
		if len(g.missing) > 0 {
			pkts = append(pkts, &rtcp.TransportLayerNack{SenderSSRC: g.sender, MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(g.missing)})
		}
	})
	g.send(pkts)
}

func (g *nackGenerator) Close() error { return g.leave(g) }

// recvLog remembers which of a stream's last logSize sequence numbers
// arrived, and how often each missing one was asked for.
type recvLog struct {
	mu      sync.Mutex
	started bool
	top     uint16 // the highest sequence number seen
	from    uint16 // the first that may still be missing (all before it arrived or were given up); never past top
	seen    [logSize / 64]uint64
	asked   [logSize]uint8
}

const (
	// logSize is how far back a stream's gaps are asked for: about 3 s
	// of video at 150 packets/s.
	logSize = 512
	// maxAsks is how many NACKs a missing packet gets, one a
	// feedbackInterval: after a second, the receiver's jitter buffer has
	// moved on.
	maxAsks = 10
)

func (l *recvLog) add(seq uint16) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ahead := seq - l.top
	switch {
	case l.started && ahead == 0:
	case l.started && ahead < 0x8000 && ahead <= logSize/2: // newer: the numbers skipped are missing (their slots reused)
		for s := l.top + 1; s != seq; s++ {
			l.seen[s%logSize/64] &^= 1 << (s % 64)
			l.asked[s%logSize] = 0
		}
		l.mark(seq)
		l.top = seq
		if l.top-l.from >= logSize {
			l.from = l.top - logSize + 1
		}
	case l.started && ahead >= 0x8000 && l.top-seq < logSize: // older, still in the window: a late or resent packet
		l.mark(seq)
	default:
		// The first packet, or a jump too far to be loss, ahead or back
		// (the stream restarted): nothing before it is asked for.
		l.started, l.top, l.from = true, seq, seq
		l.seen = [logSize / 64]uint64{}
		l.mark(seq)
	}
}

func (l *recvLog) mark(seq uint16) {
	l.seen[seq%logSize/64] |= 1 << (seq % 64)
	l.asked[seq%logSize] = 0
}

func (l *recvLog) arrived(seq uint16) bool {
	return l.seen[seq%logSize/64]&(1<<(seq%64)) != 0
}

// missingSince appends to dst the sequence numbers to ask for now, and
// counts the asking.
func (l *recvLog) missingSince(dst []uint16) []uint16 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started {
		return dst
	}
	for s := l.from; s != l.top; s++ {
		if l.arrived(s) || l.asked[s%logSize] >= maxAsks {
			if s == l.from {
				l.from++
			}
			continue
		}
		l.asked[s%logSize]++
		dst = append(dst, s)
	}
	return dst
}
