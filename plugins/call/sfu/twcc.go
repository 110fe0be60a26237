package sfu

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
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
	clock *feedbackClock
	start time.Time

	mu     sync.Mutex
	w      interceptor.RTCPWriter // nil until bound
	closed bool
	rec    *twcc.Recorder
}

type twccFactory struct{ clock *feedbackClock }

func (f twccFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	var b [4]byte
	rand.Read(b[:])
	return &twccFeedback{clock: f.clock, start: time.Now(), rec: twcc.NewRecorder(binary.BigEndian.Uint32(b[:]))}, nil
}

// BindRTCPWriter joins the feedback clock.
func (t *twccFeedback) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	t.mu.Lock()
	join := t.w == nil && !t.closed
	t.w = w
	t.mu.Unlock()
	if join {
		t.clock.add(t)
	}
	return w
}

// tick sends the feedback for what arrived since the last.
func (t *twccFeedback) tick() {
	t.mu.Lock()
	pkts := t.rec.BuildFeedbackPacket()
	w := t.w
	t.mu.Unlock()
	if len(pkts) > 0 && w != nil {
		w.Write(pkts, nil)
	}
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
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := reader.Read(b, a)
		if err != nil {
			return n, attr, err
		}
		h, err := attr.GetRTPHeader(b[:n]) // parsed once by sfuInterceptor
		if err != nil {
			return 0, nil, err
		}
		if ext := h.GetExtension(id); len(ext) >= 2 {
			arrival := time.Since(t.start).Microseconds()
			t.mu.Lock()
			t.rec.Record(info.SSRC, binary.BigEndian.Uint16(ext), arrival)
			t.mu.Unlock()
		}
		return n, attr, nil
	})
}

func (t *twccFeedback) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.clock.remove(t)
	return nil
}
