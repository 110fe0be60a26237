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
// (their congestion controller's input) every twccInterval. It is pion's
// twcc.SenderInterceptor without its hand-off: pion's sends every packet
// over a channel to a goroutine, one goroutine wake-up a packet; this one
// records the arrival under a lock in the reading goroutine.
type twccFeedback struct {
	interceptor.NoOp
	start time.Time
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup

	mu  sync.Mutex
	rec *twcc.Recorder
}

const twccInterval = 100 * time.Millisecond

type twccFactory struct{}

func (twccFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	var b [4]byte
	rand.Read(b[:])
	return &twccFeedback{start: time.Now(), done: make(chan struct{}), rec: twcc.NewRecorder(binary.BigEndian.Uint32(b[:]))}, nil
}

// BindRTCPWriter starts the feedback loop.
func (t *twccFeedback) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	t.once.Do(func() {
		t.wg.Add(1)
		go t.loop(w)
	})
	return w
}

func (t *twccFeedback) loop(w interceptor.RTCPWriter) {
	defer t.wg.Done()
	tick := time.NewTicker(twccInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
			t.mu.Lock()
			pkts := t.rec.BuildFeedbackPacket()
			t.mu.Unlock()
			if len(pkts) > 0 {
				w.Write(pkts, nil)
			}
		}
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
	select {
	case <-t.done:
	default:
		close(t.done)
	}
	t.wg.Wait()
	return nil
}
