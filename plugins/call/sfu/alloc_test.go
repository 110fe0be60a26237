package sfu

import (
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins/call/sfu/sfutest"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// forwardingPath are the functions a forwarded packet's stack goes
// through: the socket reader's direct path, or pion's track reader.
var forwardingPath = []string{"sfu.(*SFU).receive", "sfu.(*publication).forward"}

// The forwarding path (read from the socket, decrypted and through pion's
// interceptors on the direct path, or from the publisher's track; written
// to each subscriber's track, through pion's interceptors, SRTP, ICE and
// the socket) allocates nothing per packet.
func TestForwardingPathAllocatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a call for two seconds")
	}
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()
	h := newHarness(t, Config{})
	_, callee := h.call(sfutest.Options{Video: true}, true)
	waitFrames(t, callee, video, 1, 15)

	before, beforeSites := sfutest.AllocsOnStack(forwardingPath...)
	in0 := testutil.ToFloat64(h.s.m.packetsIn)
	time.Sleep(2 * time.Second)
	after, afterSites := sfutest.AllocsOnStack(forwardingPath...)
	pkts := testutil.ToFloat64(h.s.m.packetsIn) - in0
	if pkts < 500 {
		t.Fatalf("only %v packets forwarded", pkts)
	}
	per := float64(after-before) / pkts
	t.Logf("%d allocations over %v forwarded packets: %.4f per packet", after-before, pkts, per)
	if after > before {
		type site struct {
			fn string
			n  int64
		}
		var ss []site
		for fn, n := range afterSites {
			if d := n - beforeSites[fn]; d > 0 {
				ss = append(ss, site{fn, d})
			}
		}
		sort.Slice(ss, func(i, j int) bool { return ss[i].n > ss[j].n })
		for _, s := range ss {
			t.Logf("  %6d %s", s.n, s.fn)
		}
	}
	if per > 0.01 {
		t.Errorf("%.3f allocations per forwarded packet, want 0", per)
	}
}
