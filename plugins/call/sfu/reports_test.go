package sfu

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// fakeClock is a time the test sets, read by both implementations.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// rtpIn is one packet of a test sequence and when it arrives or is sent.
type rtpIn struct {
	seq uint16
	ts  uint32
	at  time.Duration // after the test's start
	n   int           // payload bytes
}

// video is packets of 3 per frame at 30 frames/s (90 kHz), from first,
// skipping the sequence numbers in lost, with arrivals jittered by up to
// 3 ms.
func videoPackets(first uint16, frames int, lost map[uint16]bool, from time.Duration) []rtpIn {
	var out []rtpIn
	seq := first
	for f := range frames {
		for i := range 3 {
			jitter := time.Duration((int(seq)*7919)%7-3) * time.Millisecond / 2
			if !lost[seq] {
				out = append(out, rtpIn{seq: seq, ts: uint32(1000 + f*3000), at: from + time.Duration(f)*time.Second/30 + time.Duration(i)*time.Millisecond + jitter, n: 900 + i})
			}
			seq++
		}
	}
	return out
}

// The SFU's reports say what pion's report interceptors say, given the
// same packets at the same times: loss (with a sequence number wrap and a
// reordering), jitter, the echo of a sender report and its delay, and a
// sender's counts and RTP time.
func TestReportsMatchPions(t *testing.T) {
	if got, want := ntpTime(time.Unix(0, 500_000_000)), uint64(2208988800)<<32|1<<31; got != want {
		t.Fatalf("NTP time of the Unix epoch plus half a second: %x, want %x", got, want)
	}
	const ssrc, clockRate = 0x1234abcd, 90000
	start := time.Unix(1_800_000_000, 123456789)
	clk := &fakeClock{t: start}
	info := &interceptor.StreamInfo{SSRC: ssrc, ClockRate: clockRate}
	ours := newRTCPReports(nil, clk.now)

	// Pion's, to a channel: its sender reports when the test ticks it;
	// its receiver (which has no ticker option) every 1.5 s of real time,
	// and the packets of each phase go in well before its next report.
	const every = 1500 * time.Millisecond
	rf, err := report.NewReceiverInterceptor(report.ReceiverInterval(every), report.ReceiverNow(clk.now))
	must(t, err)
	senderTick := manualTicker(make(chan time.Time))
	sf, err := report.NewSenderInterceptor(report.SenderTicker(func(time.Duration) report.Ticker { return senderTick }), report.SenderNow(clk.now))
	must(t, err)
	ri, err := rf.NewInterceptor("")
	must(t, err)
	si, err := sf.NewInterceptor("")
	must(t, err)
	defer ri.Close()
	defer si.Close()
	pionReports := make(chan rtcp.Packet, 16)
	capture := interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		for _, p := range pkts {
			pionReports <- p
		}
		return 0, nil
	})

	// The streams: one received (through a reader handing out the packet
	// of the moment), one sent.
	var next []byte
	source := interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return copy(b, next), a, nil
	})
	readers := []interceptor.RTPReader{
		ri.BindRemoteStream(info, source),
		ours.BindRemoteStream(info, sfuInterceptorReader(source)),
	}
	sink := interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) { return 0, nil })
	writers := []interceptor.RTPWriter{si.BindLocalStream(info, sink), ours.BindLocalStream(info, sink)}
	var nextRTCP []byte
	rtcpSource := interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return copy(b, nextRTCP), a, nil
	})
	rtcpReaders := []interceptor.RTCPReader{ri.BindRTCPReader(rtcpSource), ours.BindRTCPReader(rtcpSource)}

	receive := func(pkts []rtpIn) {
		for _, p := range pkts {
			clk.set(start.Add(p.at))
			h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: p.seq, Timestamp: p.ts, SSRC: ssrc}
			raw, err := (&rtp.Packet{Header: h, Payload: make([]byte, p.n)}).Marshal()
			must(t, err)
			next = raw
			buf := make([]byte, 1500)
			for _, r := range readers {
				if _, _, err := r.Read(buf, nil); err != nil {
					t.Fatal(err)
				}
			}
			for _, w := range writers {
				if _, err := w.Write(&h, make([]byte, p.n), nil); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	senderReport := func(at time.Duration, ntp uint64) {
		clk.set(start.Add(at))
		raw, err := (&rtcp.SenderReport{SSRC: ssrc, NTPTime: ntp, RTPTime: 5, PacketCount: 9, OctetCount: 900}).Marshal()
		must(t, err)
		nextRTCP = raw
		for _, r := range rtcpReaders {
			if _, _, err := r.Read(make([]byte, 1500), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	compare := func(phase string, at time.Duration, lastSeq uint32) {
		t.Helper()
		clk.set(start.Add(at))
		senderTick <- time.Time{}
		var pionRR *rtcp.ReceiverReport
		var pionSR *rtcp.SenderReport
		deadline := time.After(5 * time.Second)
		for pionRR == nil || pionSR == nil {
			select {
			case p := <-pionReports:
				switch p := p.(type) {
				case *rtcp.ReceiverReport:
					pionRR = p
				case *rtcp.SenderReport:
					pionSR = p
				}
			case <-deadline:
				t.Fatalf("%s: pion sent no reports", phase)
			}
		}
		if got := pionRR.Reports[0].LastSequenceNumber; got != lastSeq {
			t.Fatalf("%s: pion's receiver report is of sequence number %d, not the phase's last, %d: its ticker fired mid-phase (the test stalled for %v), so the two do not compare",
				phase, got, lastSeq, every)
		}
		var rr *rtcp.ReceiverReport
		var sr *rtcp.SenderReport
		for _, pkts := range ours.build(clk.now()) {
			for _, p := range pkts {
				switch p := p.(type) {
				case *rtcp.ReceiverReport:
					rr = p
				case *rtcp.SenderReport:
					sr = p
				}
			}
		}
		if rr == nil || len(rr.Reports) != 1 || sr == nil {
			t.Fatalf("%s: our reports: RR %v, SR %v", phase, rr, sr)
		}
		got, want := rr.Reports[0], pionRR.Reports[0]
		if d := int64(got.Jitter) - int64(want.Jitter); d < -2 || d > 2 {
			t.Errorf("%s: jitter %d, pion's %d", phase, got.Jitter, want.Jitter)
		}
		got.Jitter = want.Jitter
		if got != want {
			t.Errorf("%s: report block\n ours %+v\npion's %+v", phase, got, want)
		}
		// Pion converts to NTP through a float64, which is off by up to
		// a few hundred nanoseconds; ours is exact.
		ntpOff := int64(sr.NTPTime - pionSR.NTPTime)
		if sr.SSRC != pionSR.SSRC || ntpOff < -ntpMicrosecond || ntpOff > ntpMicrosecond || sr.RTPTime != pionSR.RTPTime ||
			sr.PacketCount != pionSR.PacketCount || sr.OctetCount != pionSR.OctetCount {
			t.Errorf("%s: sender report\n ours %+v\npion's %+v", phase, sr, pionSR)
		}
		t.Logf("%s: lost %d (fraction %d/256), jitter %d, last seq %d, DLSR %d", phase,
			got.TotalLost, got.FractionLost, got.Jitter, got.LastSequenceNumber, got.Delay)
	}

	ri.BindRTCPWriter(capture) // pion's tickers start
	si.BindRTCPWriter(capture)
	// Phase 1: across the sequence number wrap, two packets lost, a
	// sender report from the publisher.
	receive(videoPackets(65530, 6, map[uint16]bool{65534: true, 2: true}, 0))
	senderReport(150*time.Millisecond, 0xe0000001_80000000)
	compare("first report", 300*time.Millisecond, 1<<16|11)

	// Phase 2: more loss, and two packets swapped in flight, the last
	// two, of two frames: the late one must not move the sender report's
	// RTP time back.
	p2 := videoPackets(12, 10, map[uint16]bool{20: true, 21: true, 30: true}, 400*time.Millisecond)
	p2[5], p2[6] = p2[6], p2[5]
	last := len(p2) - 1
	p2[last].ts, p2[last].at = p2[last-1].ts+3000, p2[last-1].at+time.Millisecond
	p2[last-1], p2[last] = p2[last], p2[last-1]
	receive(p2)
	compare("second report", 900*time.Millisecond, 1<<16|41)

	// Phase 3: the publisher's sequence numbers jump by 5,000 (a source
	// restarted): the report follows them.
	receive(videoPackets(5042, 4, map[uint16]bool{5045: true}, 1000*time.Millisecond))
	compare("third report", 1300*time.Millisecond, 1<<16|5053)
}

// manualTicker is a report.Ticker that ticks when the test sends on it.
type manualTicker chan time.Time

func (m manualTicker) Ch() <-chan time.Time { return m }
func (m manualTicker) Stop()                {}

// ntpMicrosecond is a microsecond in an NTP timestamp's low half.
const ntpMicrosecond = 1 << 32 / 1_000_000

// sfuInterceptorReader is what the SFU's chain gives the reports: the
// packet with its header parsed into the attributes.
func sfuInterceptorReader(r interceptor.RTPReader) interceptor.RTPReader {
	return (&sfuInterceptor{}).BindRemoteStream(nil, r)
}

// The reports go out once every reportTicks ticks of the feedback clock,
// in one compound packet: sender reports first, then the receiver report.
func TestReportsGoEverySecondOfTicks(t *testing.T) {
	clock := &feedbackClock{tickers: map[ticker]struct{}{}} // not running: the test ticks
	r := newRTCPReports(clock, time.Now)
	var sent [][]rtcp.Packet
	r.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
		sent = append(sent, pkts)
		return 0, nil
	}))
	if _, ok := clock.tickers[r]; !ok {
		t.Fatal("the reports did not join the clock")
	}
	info := &interceptor.StreamInfo{SSRC: 7, ClockRate: 48000}
	h := &rtp.Header{Version: 2, SequenceNumber: 1, Timestamp: 960, SSRC: 7}
	raw, err := (&rtp.Packet{Header: *h, Payload: []byte{1, 2, 3}}).Marshal()
	must(t, err)
	reader := r.BindRemoteStream(info, sfuInterceptorReader(interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return copy(b, raw), a, nil
	})))
	writer := r.BindLocalStream(&interceptor.StreamInfo{SSRC: 8, ClockRate: 48000}, interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) { return 0, nil }))
	for i := range 2 * reportTicks {
		if i == 0 {
			if _, _, err := reader.Read(make([]byte, 1500), nil); err != nil {
				t.Fatal(err)
			}
			writer.Write(&rtp.Header{SSRC: 8, Timestamp: 100}, []byte{1}, nil)
		}
		r.tick()
		if want := (i + 1) / reportTicks; len(sent) != want {
			t.Fatalf("after %d ticks, %d reports sent; want %d", i+1, len(sent), want)
		}
	}
	for _, pkts := range sent {
		if len(pkts) != 2 {
			t.Fatalf("sent %v, want a sender report and a receiver report", pkts)
		}
		sr, ok1 := pkts[0].(*rtcp.SenderReport)
		rr, ok2 := pkts[1].(*rtcp.ReceiverReport)
		if !ok1 || !ok2 || sr.SSRC != 8 || sr.PacketCount != 1 || len(rr.Reports) != 1 || rr.Reports[0].SSRC != 7 {
			t.Fatalf("sent %v", pkts)
		}
	}
	r.Close()
	if _, ok := clock.tickers[r]; ok {
		t.Fatal("closed, the reports are still on the clock")
	}
}

// A peer connection with many streams sends its reports in several
// compound packets, none larger than maxReportSize, so that no path
// fragments them; together they report every stream once.
func TestReportsSplitIntoPacketsAPathCarries(t *testing.T) {
	r := newRTCPReports(nil, time.Now)
	now := time.Now()
	var recv []*recvStats
	var sent []*sentStats
	for i := range 60 {
		st := &sentStats{ssrc: uint32(1000 + i), clockRate: 90000}
		st.sending(now, &rtp.Header{SequenceNumber: 1, Timestamp: 1}, 100)
		sent = append(sent, st)
	}
	for i := range 40 {
		st := &recvStats{ssrc: uint32(2000 + i), clockRate: 90000}
		st.arrived(now, &rtp.Header{SequenceNumber: 1, Timestamp: 1})
		recv = append(recv, st)
	}
	batches := r.reports(now, recv, sent)
	if len(batches) < 3 {
		t.Fatalf("%d packets for 60 sender reports and 40 report blocks (2,656 bytes)", len(batches))
	}
	srs, blocks := 0, 0
	for _, pkts := range batches {
		raw, err := rtcp.Marshal(pkts)
		must(t, err)
		if len(raw) > maxReportSize {
			t.Errorf("a compound report of %d bytes, over %d", len(raw), maxReportSize)
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.SenderReport:
				srs++
			case *rtcp.ReceiverReport:
				blocks += len(p.Reports)
			}
		}
	}
	if srs != 60 || blocks != 40 {
		t.Fatalf("%d sender reports and %d report blocks, want 60 and 40", srs, blocks)
	}
}

// Whatever RTCP a device sends, once decrypted, the readers that walk it
// (the NACK responder, the reports noting sender reports) neither panic
// nor read past it, and the reports built afterwards still marshal.
func FuzzRTCPReaders(f *testing.F) {
	sr, _ := (&rtcp.SenderReport{SSRC: 7, NTPTime: 1 << 40, RTPTime: 9, PacketCount: 1, OctetCount: 100}).Marshal()
	nack, _ := (&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 8, Nacks: []rtcp.NackPair{{PacketID: 3, LostPackets: 0xffff}}}).Marshal()
	pli, _ := (&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 8}).Marshal()
	f.Add(sr)
	f.Add(nack)
	f.Add(append(append(append([]byte{}, sr...), nack...), pli...))
	f.Add(sr[:20])                                   // cut short
	f.Add([]byte{0x80, 200, 0xff, 0xff, 0, 0, 0, 7}) // a length far past the end
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := newRTCPReports(nil, time.Now)
		r.BindRemoteStream(&interceptor.StreamInfo{SSRC: 7, ClockRate: 90000}, interceptor.RTPReaderFunc(
			func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) { return 0, a, nil }))
		m, err := newMetrics(nil)
		if err != nil {
			t.Fatal(err)
		}
		si := &sfuInterceptor{m: m, tx: &txPath{}} // no keys yet: writes go to sink
		sink := interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) { return 0, nil })
		w := si.BindLocalStream(&interceptor.StreamInfo{SSRC: 8, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}}, sink)
		w.Write(&rtp.Header{SSRC: 8, SequenceNumber: 3}, []byte{1, 2, 3}, nil)
		source := interceptor.RTCPReaderFunc(func(p []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			return copy(p, b), a, nil
		})
		buf := make([]byte, len(b))
		for _, rd := range []interceptor.RTCPReader{r.BindRTCPReader(source), si.BindRTCPReader(source)} {
			if _, _, err := rd.Read(buf, nil); err != nil {
				t.Fatal(err)
			}
		}
		for _, pkts := range r.build(time.Now()) {
			if _, err := rtcp.Marshal(pkts); err != nil {
				t.Fatalf("reports after %x: %v", b, err)
			}
		}
	})
}
