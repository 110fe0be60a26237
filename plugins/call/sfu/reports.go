package sfu

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// reportTicks is how many feedback clock ticks apart the RTCP reports go:
// once a second, as pion's report interceptors and browsers send them.
const reportTicks = int(time.Second / feedbackInterval)

// rtcpReports sends one peer connection's RTCP reports (RFC 3550 6.4):
// a receiver report on what each incoming stream lost and how much its
// packets' arrival jittered, and a sender report for each outgoing stream
// (its packet and byte counts and the wall clock time of an RTP
// timestamp, which the device's lip sync and round-trip time need). They
// go every reportTicks ticks of the SFU's feedback clock, in as few
// compound packets of at most maxReportSize bytes as hold them. Pion's
// report interceptors do the same with two goroutines and tickers per
// peer connection.
type rtcpReports struct {
	interceptor.NoOp
	clockedSender
	now      func() time.Time
	reporter uint32 // the SSRC the receiver reports come from

	mu    sync.Mutex // ticks
	ticks int
	recv  bySSRC[*recvStats] // by the SSRC received
	sent  bySSRC[*sentStats] // by the SSRC sent
}

type reportsFactory struct{ clock *feedbackClock }

func (f reportsFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return newRTCPReports(f.clock, time.Now), nil
}

func newRTCPReports(clock *feedbackClock, now func() time.Time) *rtcpReports {
	return &rtcpReports{
		clockedSender: clockedSender{clock: clock}, now: now, reporter: randomSSRC(),
	}
}

// BindRTCPWriter joins the feedback clock.
func (r *rtcpReports) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return r.bind(r, w)
}

// BindRemoteStream counts each packet that arrives on the stream.
func (r *rtcpReports) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	st := &recvStats{ssrc: info.SSRC, clockRate: float64(info.ClockRate)}
	r.recv.put(info.SSRC, st)
	return observeHeaders(reader, func(h *rtp.Header) { st.arrived(r.now(), h) })
}

func (r *rtcpReports) UnbindRemoteStream(info *interceptor.StreamInfo) {
	r.recv.del(info.SSRC)
}

// BindLocalStream counts each packet sent on the stream.
func (r *rtcpReports) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	st := &sentStats{ssrc: info.SSRC, clockRate: float64(info.ClockRate)}
	r.sent.put(info.SSRC, st)
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		st.sending(r.now(), h, len(payload))
		return writer.Write(h, payload, a)
	})
}

func (r *rtcpReports) UnbindLocalStream(info *interceptor.StreamInfo) {
	r.sent.del(info.SSRC)
}

// BindRTCPReader notes the sender reports of the streams received: a
// receiver report echoes the last one's time and how long ago it came,
// from which the sender measures the round trip.
func (r *rtcpReports) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return observeRTCP(reader, func(it rtcpIter) {
		if it.typ() != uint8(rtcp.TypeSenderReport) || len(it.cur) < 28 {
			return
		}
		st := r.recv.get(binary.BigEndian.Uint32(it.cur[4:]))
		if st != nil {
			st.senderReport(r.now(), binary.BigEndian.Uint64(it.cur[8:]))
		}
	})
}

// tick sends the reports every reportTicks ticks.
func (r *rtcpReports) tick() {
	r.mu.Lock()
	r.ticks++
	due := r.ticks%reportTicks == 0
	r.mu.Unlock()
	if due {
		for _, pkts := range r.build(r.now()) {
			r.send(pkts)
		}
	}
}

// build makes the reports of every stream as of now, in compound packets
// of at most maxReportSize bytes.
func (r *rtcpReports) build(now time.Time) [][]rtcp.Packet {
	var recv []*recvStats
	r.recv.each(func(_ uint32, st *recvStats) { recv = append(recv, st) })
	var sent []*sentStats
	r.sent.each(func(_ uint32, st *sentStats) { sent = append(sent, st) })
	return r.reports(now, recv, sent)
}

// maxReportSize bounds a compound report packet, so that a room of many
// streams does not send datagrams a path would fragment.
const maxReportSize = 1200

// RTCP sizes: a sender report without report blocks, a receiver report's
// header, a report block.
const srSize, rrHeaderSize, reportBlockSize = 28, 8, 24

// reports are the sender reports of the streams in sent that have sent a
// packet, and receiver reports on those in recv that have received one
// (31 streams at most to a report, the field's limit), in compound
// packets of at most maxReportSize bytes.
func (r *rtcpReports) reports(now time.Time, recv []*recvStats, sent []*sentStats) [][]rtcp.Packet {
	var out [][]rtcp.Packet
	var cur []rtcp.Packet
	size := 0
	add := func(p rtcp.Packet, n int) {
		if size+n > maxReportSize && len(cur) > 0 {
			out, cur, size = append(out, cur), nil, 0
		}
		cur, size = append(cur, p), size+n
	}
	for _, st := range sent {
		if sr := st.report(now); sr != nil {
			add(sr, srSize)
		}
	}
	var blocks []rtcp.ReceptionReport
	for _, st := range recv {
		if b, ok := st.report(now); ok {
			blocks = append(blocks, b)
		}
	}
	for len(blocks) > 0 {
		n := min(len(blocks), 31)
		add(&rtcp.ReceiverReport{SSRC: r.reporter, Reports: blocks[:n]}, rrHeaderSize+n*reportBlockSize)
		blocks = blocks[n:]
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (r *rtcpReports) Close() error { return r.leave(r) }

// recvStats is what a receiver report says of one incoming stream:
// RFC 3550 appendix A.3 (loss) and A.8 (jitter).
type recvStats struct {
	ssrc      uint32
	clockRate float64

	mu       sync.Mutex
	started  bool
	base     uint32 // the first sequence number, extended
	max      uint16 // the highest sequence number seen
	cycles   uint32 // wraps of the sequence number, times 65536
	received uint32
	// at the last report
	expectedPrior, receivedPrior uint32
	// jitter: the first packet's arrival (the clock's zero), the last
	// packet's transit time (arrival minus RTP timestamp, in RTP units,
	// wrapping as the timestamps do)
	start   time.Time
	transit uint32
	jitter  float64
	// the last sender report: the middle 32 bits of its NTP time, and when it came
	lastSR   uint32
	lastSRAt time.Time
}

func (st *recvStats) arrived(now time.Time, h *rtp.Header) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.started {
		st.started, st.start = true, now
		st.base, st.max, st.transit = uint32(h.SequenceNumber), h.SequenceNumber, -h.Timestamp
		st.received = 1
		return
	}
	transit := uint32(now.Sub(st.start).Seconds()*st.clockRate) - h.Timestamp
	st.received++
	// Half the sequence space ahead counts as ahead (seqAfter), as in
	// pion's reports: RFC 3550 A.1's 3,000, without the re-sync it pairs
	// with, would take a stream that jumped (a source restarted) for one
	// sending late packets until its numbers came round again.
	if seqAfter(h.SequenceNumber, st.max) {
		if h.SequenceNumber < st.max {
			st.cycles += 1 << 16
		}
		st.max = h.SequenceNumber
	}
	d := float64(int32(transit - st.transit))
	st.transit = transit
	st.jitter += (max(d, -d) - st.jitter) / 16
}

func (st *recvStats) senderReport(now time.Time, ntp uint64) {
	st.mu.Lock()
	st.lastSR, st.lastSRAt = uint32(ntp>>16), now
	st.mu.Unlock()
}

// report is the stream's report block, and what it lost since the last;
// false before its first packet.
func (st *recvStats) report(now time.Time) (rtcp.ReceptionReport, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.started {
		return rtcp.ReceptionReport{}, false
	}
	extMax := st.cycles | uint32(st.max)
	expected := extMax - st.base + 1
	lost := int64(expected) - int64(st.received) // negative with duplicates
	lost = max(min(lost, 0x7fffff), -0x800000)
	expInterval := expected - st.expectedPrior
	recvInterval := st.received - st.receivedPrior
	st.expectedPrior, st.receivedPrior = expected, st.received
	var fraction uint8
	if lostInterval := int64(expInterval) - int64(recvInterval); expInterval != 0 && lostInterval > 0 {
		fraction = uint8(lostInterval << 8 / int64(expInterval))
	}
	var dlsr uint32
	if !st.lastSRAt.IsZero() {
		dlsr = uint32(now.Sub(st.lastSRAt).Seconds() * 65536)
	}
	return rtcp.ReceptionReport{
		SSRC:               st.ssrc,
		FractionLost:       fraction,
		TotalLost:          uint32(lost) & 0xffffff,
		LastSequenceNumber: extMax,
		Jitter:             uint32(st.jitter),
		LastSenderReport:   st.lastSR,
		Delay:              dlsr,
	}, true
}

// sentStats is what a sender report says of one outgoing stream.
type sentStats struct {
	ssrc      uint32
	clockRate float64

	mu      sync.Mutex
	packets uint32
	octets  uint32 // payload bytes
	lastSeq uint16 // the highest sequence number sent
	// the timestamp of the last frame begun, and when its first packet went
	lastTS   uint32
	lastTSAt time.Time
}

func (st *sentStats) sending(now time.Time, h *rtp.Header, payload int) {
	st.mu.Lock()
	// A frame's packets share its timestamp; the time is its first
	// packet's, so that a large frame's later packets do not skew it. A
	// packet sent out of order (a late one of an earlier frame) leaves it.
	if st.packets == 0 || seqAfter(h.SequenceNumber, st.lastSeq) {
		st.lastSeq = h.SequenceNumber
		if st.packets == 0 || h.Timestamp != st.lastTS {
			st.lastTS, st.lastTSAt = h.Timestamp, now
		}
	}
	st.packets++
	st.octets += uint32(payload)
	st.mu.Unlock()
}

// report is the stream's sender report; nil before its first packet (RFC
// 3550 6.4: a participant that has not sent sends none).
func (st *sentStats) report(now time.Time) *rtcp.SenderReport {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.packets == 0 {
		return nil
	}
	return &rtcp.SenderReport{
		SSRC:        st.ssrc,
		NTPTime:     ntpTime(now),
		RTPTime:     st.lastTS + uint32(now.Sub(st.lastTSAt).Seconds()*st.clockRate),
		PacketCount: st.packets,
		OctetCount:  st.octets,
	}
}

// ntpTime is t as a 64-bit NTP timestamp: seconds since 1900 in the high
// half, the fraction of a second in the low.
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800 // seconds from 1900 to 1970
	sec := uint64(t.Unix()) + unixToNTP
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return sec<<32 | frac
}
