package sfu

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// twccFeedback sends publishers transport-wide congestion control feedback
// (their congestion controller's input) every feedbackInterval, on the
// SFU's feedback clock. It is pion's twcc.SenderInterceptor without its
// hand-off and its ticker: pion's sends every packet over a channel to a
// goroutine of its own, one wake-up a packet, and ticks per peer
// connection; this one records the arrival under a lock in the reading
// goroutine.
type twccFeedback struct {
	interceptor.NoOp
	clockedSender
	start time.Time

	mu  sync.Mutex
	rec *twcc.Recorder
}

type twccFactory struct{ clock *feedbackClock }

func (f twccFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &twccFeedback{clockedSender: clockedSender{clock: f.clock}, start: time.Now(), rec: twcc.NewRecorder(randomSSRC())}, nil
}

// BindRTCPWriter joins the feedback clock.
func (t *twccFeedback) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return t.bind(t, w)
}

// tick sends the feedback for what arrived since the last.
func (t *twccFeedback) tick() {
	t.mu.Lock()
	pkts := t.rec.BuildFeedbackPacket()
	t.mu.Unlock()
	t.send(pkts)
}

// BindRemoteStream records the arrival of each packet that carries a
// transport-wide sequence number.
func (t *twccFeedback) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	var id uint8
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI {
			id = uint8(e.ID)
		}
	}
	if id == 0 {
		return reader
	}
	return observeHeaders(reader, func(h *rtp.Header) {
		if ext := h.GetExtension(id); len(ext) >= 2 {
			arrival := time.Since(t.start).Microseconds()
			t.mu.Lock()
			t.rec.Record(info.SSRC, binary.BigEndian.Uint16(ext), arrival)
			t.mu.Unlock()
		}
	})
}

func (t *twccFeedback) Close() error { return t.leave(t) }
