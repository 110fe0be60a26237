package sfu

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/pion/srtp/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parleyhq/parley/plugins/call/sfu/sfutest"
)

// TestRTPHeaderLen: the direct path finds the payload after the fixed
// header, the CSRCs and the extension block, and refuses a header longer
// than the packet.
func TestRTPHeaderLen(t *testing.T) {
	for _, c := range []struct {
		name string
		pkt  []byte
		n    int
		ok   bool
	}{
		{"plain", append([]byte{0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2}, 0xaa), 12, true},
		{"two CSRCs", append([]byte{0x82, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2}, make([]byte, 8+1)...), 20, true},
		{"one-byte extensions, one word", append([]byte{0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0}, 0xaa), 20, true},
		{"extension header cut", []byte{0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0xbe}, 0, false},
		{"extension longer than the packet", []byte{0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0xbe, 0xde, 0, 9, 0, 0, 0, 0}, 0, false},
		{"CSRCs longer than the packet", []byte{0x8f, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2}, 0, false},
	} {
		n, ok := rtpHeaderLen(c.pkt)
		if ok != c.ok || (ok && n != c.n) {
			t.Errorf("%s: got %d, %v; want %d, %v", c.name, n, ok, c.n, c.ok)
		}
	}
}

// TestWrappedSince: the first packet the direct path sees of a track
// needs rollover counter 1 only if the numbers wrapped since pion's first.
func TestWrappedSince(t *testing.T) {
	for _, c := range []struct {
		first, seq uint16
		want       bool
	}{
		{100, 130, false},     // ahead, no wrap
		{100, 98, false},      // a late one, no wrap
		{65530, 65535, false}, // ahead, at the edge
		{65530, 3, true},      // wrapped
		{65000, 200, true},    // wrapped, further
		{3, 65530, false},     // a late one from before a wrap pion saw: not this case's
	} {
		if got := wrappedSince(c.first, c.seq); got != c.want {
			t.Errorf("wrappedSince(%d, %d) = %v, want %v", c.first, c.seq, got, c.want)
		}
	}
}

// TestDirectPathFallsBackToPion: a track whose packets the direct path's
// context does not decrypt goes back to pion's own SRTP session, and the
// media keep flowing whole.
func TestDirectPathFallsBackToPion(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee := h.call(sfutest.Options{Video: true}, true)
	waitFrames(t, callee, video, 1, 10)

	// Give the caller's receive path a context that cannot be right, as if
	// its tracks were taken before they were proven.
	key, salt := make([]byte, 32), make([]byte, 12)
	rand.Read(key)
	rand.Read(salt)
	bogus, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes256Gcm)
	must(t, err)
	p, err := h.s.peer("r", caller.Device)
	must(t, err)
	p.rx.mu.Lock()
	p.rx.ctx.Store(bogus)
	for _, st := range *p.rx.streamMap() {
		st.proven, st.failures = false, 0
	}
	p.rx.mu.Unlock()
	pion0 := testutil.ToFloat64(h.s.m.viaPion)

	before := callee.Tracks(video)[0].Frames
	waitFrames(t, callee, video, 1, before+60)
	checkClean(t, callee, video)
	checkClean(t, callee, audio)
	p.rx.mu.Lock()
	left := len(*p.rx.streamMap())
	p.rx.mu.Unlock()
	if left != 0 {
		t.Errorf("%d tracks still on the direct path with a context that never decrypts them", left)
	}
	time.Sleep(100 * time.Millisecond)
	if n := testutil.ToFloat64(h.s.m.viaPion) - pion0; n < 50 {
		t.Errorf("%v packets read through pion after the keys broke, want the caller's media", n)
	}
}
