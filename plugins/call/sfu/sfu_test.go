package sfu

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins/call/sfu/sfutest"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	audio = webrtc.RTPCodecTypeAudio
	video = webrtc.RTPCodecTypeVideo
)

// Caller and callee each publish Opus and VP8; each receives the other's
// frames whole and in order.
func TestCallForwardsAudioAndVideo(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t, Config{Registerer: reg})
	caller, callee := h.call(sfutest.Options{Video: true}, true)
	for _, c := range []*sfutest.Client{caller, callee} {
		waitFrames(t, c, audio, 1, 25)
		waitFrames(t, c, video, 1, 15)
		checkClean(t, c, audio)
		checkClean(t, c, video)
	}
	if n := testutil.ToFloat64(h.s.m.peers); n != 2 {
		t.Errorf("peer connections gauge = %v, want 2", n)
	}
	// The loops add their counts every flushEvery packets of a track.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if testutil.ToFloat64(h.s.m.packetsIn) >= 100 && testutil.ToFloat64(h.s.m.packetsOut) >= 100 {
			break
		}
	}
	if in, out := testutil.ToFloat64(h.s.m.packetsIn), testutil.ToFloat64(h.s.m.packetsOut); in < 100 || out < 100 {
		t.Errorf("rtp packets in %v out %v", in, out)
	}
	// Both directions of both peers are on the direct path (direct.go):
	// past each track's first packets, the socket reader decrypts and
	// forwards them itself, and encrypts and sends to the subscriber.
	for _, c := range []*sfutest.Client{caller, callee} {
		p, err := h.s.peer("r", c.Device)
		must(t, err)
		p.tx.mu.Lock()
		ready := p.tx.on && !p.tx.stopped
		p.tx.mu.Unlock()
		if !ready {
			t.Errorf("%s: the direct send path is not ready", c.Device)
		}
	}
	if direct, pion := testutil.ToFloat64(h.s.m.viaDirect), testutil.ToFloat64(h.s.m.viaPion); direct < 9*pion {
		t.Errorf("rtp packets read: %v on the direct path, %v through pion; want nearly all direct", direct, pion)
	} else {
		t.Logf("rtp packets read: %v on the direct path, %v through pion", direct, pion)
	}
	if n := testutil.ToFloat64(h.s.m.plisOut); n < 2 {
		t.Errorf("keyframe requests sent = %v, want one per video subscription at least", n)
	}
	h.s.Leave("r", caller.Device)
	h.waitState(caller.Device, "closed", 5*time.Second)
	if n := testutil.ToFloat64(h.s.m.peers); n != 1 {
		t.Errorf("peer connections gauge after a leave = %v, want 1", n)
	}
}

// audio_only: video m-lines are answered inactive and no video flows,
// while audio does.
func TestAudioOnlyRefusesVideo(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee := h.call(sfutest.Options{Video: false}, true)
	for _, c := range []*sfutest.Client{caller, callee} {
		waitFrames(t, c, audio, 1, 25)
		if d := c.PC().CurrentRemoteDescription(); d == nil || !videoInactive(d.SDP) {
			t.Errorf("%s: video m-line not inactive in the answer", c.Device)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for _, c := range []*sfutest.Client{caller, callee} {
		if ts := c.Tracks(video); len(ts) > 0 {
			t.Errorf("%s received video %+v in an audio-only call", c.Device, ts)
		}
	}
}

func videoInactive(sdp string) bool {
	for _, sec := range strings.Split(sdp, "m=")[1:] {
		if strings.HasPrefix(sec, "video") && !strings.Contains(sec, "a=inactive") {
			return false
		}
	}
	return strings.Contains(sdp, "m=video")
}

// audio_upgradable: both start with audio; after AllowVideo the caller
// adds a camera (its offer is answered, the SFU offers the callee a new
// m-line), then the callee does (it goes out on the m-line its own offer
// opened).
func TestUpgradeToVideo(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee := h.call(sfutest.Options{Video: false}, false)
	waitFrames(t, caller, audio, 1, 10)
	waitFrames(t, callee, audio, 1, 10)

	if err := h.s.AllowVideo("r"); err != nil {
		t.Fatal(err)
	}
	must(t, caller.PublishVideo("camera"))
	if err := caller.Negotiate(); err != nil {
		t.Fatal(err)
	}
	ts := waitFrames(t, callee, video, 1, 15)
	if ts[0].Stream != "alice" || ts[0].ID != "camera" {
		t.Errorf("callee's video track is %s/%s, want alice/camera", ts[0].Stream, ts[0].ID)
	}
	must(t, callee.PublishVideo("camera"))
	if err := callee.Negotiate(); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, caller, video, 1, 15)
	checkClean(t, caller, video)
	checkClean(t, callee, video)
	if err := h.s.AllowVideo("nope"); err == nil {
		t.Error("AllowVideo of an unknown room succeeded")
	}
}

// A second video track (screen share) reaches the other side on an
// m-line the SFU offers.
func TestScreenShare(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee := h.call(sfutest.Options{Video: true}, true)
	waitFrames(t, callee, video, 1, 10)
	must(t, caller.PublishVideo("screen"))
	if err := caller.Negotiate(); err != nil {
		t.Fatal(err)
	}
	checkScreen(t, callee, waitFrames(t, callee, video, 2, 15))
}

// checkScreen fails the test unless one of the video tracks ts that c
// receives is the screen, and every one is whole.
func checkScreen(t *testing.T, c *sfutest.Client, ts []sfutest.Track) {
	t.Helper()
	ids := map[string]bool{}
	for _, tr := range ts {
		ids[tr.ID] = true
	}
	if !ids["screen"] {
		t.Errorf("%s's video tracks %+v: none is the screen", c.Device, ts)
	}
	checkClean(t, c, video)
}

// A screen whose encoder sends keyframes only when asked (a browser's
// screen capture) reaches a subscriber that takes its time to answer the
// SFU's offer of the screen's m-line: the keyframe asked for when the
// screen was bound to the subscriber's track came before the subscriber's
// answer (and was dropped), so the SFU asks again once it can forward one.
// The delays are shorter and longer than the keyframe requests' gap.
func TestScreenShareKeyframesOnRequest(t *testing.T) {
	for _, delay := range []time.Duration{100 * time.Millisecond, 400 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			h := newHarness(t, Config{})
			caller, callee := h.call(sfutest.Options{Video: true, KeyframesOnRequest: true}, true)
			waitFrames(t, callee, video, 1, 10)
			h.answerDelay = delay
			must(t, caller.PublishVideo("screen"))
			must(t, caller.Negotiate())
			ts, err := callee.WaitFrames(video, 2, 5, 5*time.Second)
			if err != nil {
				t.Fatalf("%v (keyframe requests the caller got: %d)", err, caller.KeyframeRequests())
			}
			checkScreen(t, callee, ts)
		})
	}
}

// Every 10th VP8 packet from the caller is lost on its way to the SFU: the
// SFU's NACKs get it resent and the callee still gets every frame whole.
func TestNACKRepairsLoss(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee := h.call(sfutest.Options{Video: true, DropEvery: 10}, true)
	waitFrames(t, callee, video, 1, 60)
	ts := callee.Tracks(video)[0]
	if caller.Dropped() == 0 || caller.Resent() == 0 {
		t.Fatalf("dropped %d, resent %d", caller.Dropped(), caller.Resent())
	}
	if ts.Missing > 0 || ts.Corrupt > 0 {
		t.Errorf("callee: %d frames, %d missing, %d corrupt; caller dropped %d packets and resent %d",
			ts.Frames, ts.Missing, ts.Corrupt, caller.Dropped(), caller.Resent())
	}
	if n := testutil.ToFloat64(h.s.m.nacksOut); n == 0 {
		t.Error("no NACK counted as sent")
	}
	t.Logf("%d frames, caller dropped %d packets, resent %d", ts.Frames, caller.Dropped(), caller.Resent())
}

// Every 10th VP8 packet the SFU sends the caller is lost on its way in:
// the SFU answers the caller's NACKs from its ring of sent packets, and
// the caller still gets every frame whole.
func TestNACKRepairsLossToSubscriber(t *testing.T) {
	h := newHarness(t, Config{})
	caller, _ := h.call(sfutest.Options{Video: true, DropEveryIn: 10}, true)
	waitFrames(t, caller, video, 1, 60)
	ts := caller.Tracks(video)[0]
	if caller.DroppedIn() == 0 {
		t.Fatal("nothing dropped on the way in")
	}
	if ts.Missing > 0 || ts.Corrupt > 0 {
		t.Errorf("caller: %d frames, %d missing, %d corrupt; %d packets lost on the way in, %v resent by the SFU",
			ts.Frames, ts.Missing, ts.Corrupt, caller.DroppedIn(), testutil.ToFloat64(h.s.m.retransmits))
	}
	if n := testutil.ToFloat64(h.s.m.retransmits); n == 0 {
		t.Error("the SFU resent nothing")
	}
}

// A PLI from the callee reaches the caller, whose video it names.
func TestKeyframeRequestForwarded(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee := h.call(sfutest.Options{Video: true}, true)
	waitFrames(t, callee, video, 1, 10)
	time.Sleep(keyframeGap)
	before := caller.KeyframeRequests()
	var ssrc uint32
	for _, tr := range callee.PC().GetTransceivers() {
		if r := tr.Receiver(); r != nil && tr.Kind() == video && r.Track() != nil {
			ssrc = uint32(r.Track().SSRC())
		}
	}
	if err := callee.PC().WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for caller.KeyframeRequests() == before {
		if time.Now().After(deadline) {
			t.Fatal("the callee's PLI did not reach the caller")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A device whose network goes silent is reported disconnected, then
// failed; leaving closes it.
func TestICEDisconnectReported(t *testing.T) {
	h := newHarness(t, Config{ICEDisconnectedTimeout: time.Second, ICEFailedTimeout: time.Second, ICEKeepaliveInterval: 200 * time.Millisecond})
	caller, callee := h.call(sfutest.Options{Video: true, Pausable: true}, false)
	h.waitState(caller.Device, "connected", 10*time.Second)
	waitFrames(t, callee, audio, 1, 10)
	caller.Pause(true)
	h.waitState(caller.Device, "disconnected", 5*time.Second)
	h.waitState(caller.Device, "failed", 5*time.Second)
	if st := h.s.States("r"); st[caller.Device] != "failed" || st[callee.Device] != "connected" {
		t.Errorf("States: %v", st)
	}
	h.s.Leave("r", caller.Device)
	h.waitState(caller.Device, "closed", 5*time.Second)
	if st := h.s.States("r"); len(st) != 1 {
		t.Errorf("States after a leave: %v", st)
	}
}

// Signalling errors: unknown room and device, an answer nobody asked for,
// a device that changes user.
func TestSignallingErrors(t *testing.T) {
	h := newHarness(t, Config{})
	if err := h.s.AddCandidate("r", "x", `{"candidate":""}`); err == nil {
		t.Error("AddCandidate in an unknown room succeeded")
	}
	caller, _ := h.call(sfutest.Options{Video: true}, false)
	if err := h.s.Answer("r", caller.Device, "v=0"); err != ErrNoOffer {
		t.Errorf("Answer with no offer out: %v, want ErrNoOffer", err)
	}
	if _, err := h.s.Offer(t.Context(), "r", "mallory", caller.Device, "v=0", true); err == nil {
		t.Error("a device joined as another user")
	}
	cand := `{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}`
	if err := h.s.AddCandidate("r", caller.Device, cand); err != nil {
		t.Errorf("AddCandidate: %v", err)
	}
	// A device gets MaxRemoteCandidates in all, no more: each would have
	// the SFU send connectivity checks to the address it names. Those its
	// offer carried count too.
	offered := strings.Count(caller.PC().LocalDescription().SDP, "a=candidate:")
	for i := offered + 2; i <= MaxRemoteCandidates; i++ {
		c := fmt.Sprintf(`{"candidate":"candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host","sdpMid":"0","sdpMLineIndex":0}`, i, 9+i)
		if err := h.s.AddCandidate("r", caller.Device, c); err != nil {
			t.Fatalf("candidate %d of %d: %v", i, MaxRemoteCandidates, err)
		}
	}
	if err := h.s.AddCandidate("r", caller.Device, cand); err != nil {
		t.Errorf("a candidate given again: %v", err) // known: it costs nothing more
	}
	more := `{"candidate":"candidate:999 1 udp 2130706431 127.0.0.1 7 typ host","sdpMid":"0","sdpMLineIndex":0}`
	if err := h.s.AddCandidate("r", caller.Device, more); !errors.Is(err, ErrTooManyCandidates) {
		t.Errorf("candidate %d: %v, want ErrTooManyCandidates", MaxRemoteCandidates+1, err)
	}
	if err := h.s.AddCandidate("r", caller.Device, `{"candidate":""}`); err != nil {
		t.Errorf("the end of candidates after the limit: %v", err)
	}
	h.s.Leave("r", "nobody") // no-op

	// An offer of more than MaxMLines m-lines is refused whole: each
	// would cost the SFU a track.
	for _, n := range []int{MaxMLines, MaxMLines + 1} {
		offer := recvonlyOffer(t, n)
		_, err := h.s.Offer(t.Context(), "many", "eve", fmt.Sprintf("eve-%d", n), offer, false)
		if tooMany := errors.Is(err, ErrTooManyMLines); tooMany != (n > MaxMLines) {
			t.Errorf("an offer of %d m-lines: %v", n, err)
		}
	}
}

// The m-line limit holds over a peer connection's life: offers that each
// bring MaxMLines/2+1 new mids, leaving the old ones out (pion keeps
// their transceivers), are refused from the second on.
func TestMLinesLimitHoldsAcrossOffers(t *testing.T) {
	h := newHarness(t, Config{})
	n := MaxMLines/2 + 1
	first := recvonlyOffer(t, n)
	if _, err := h.s.Offer(t.Context(), "r", "eve", "eve-1", first, false); err != nil {
		t.Fatalf("first offer: %v", err)
	}
	again := renameMids(first, "x")
	_, err := h.s.Offer(t.Context(), "r", "eve", "eve-1", again, false)
	if !errors.Is(err, ErrTooManyMLines) {
		t.Fatalf("an offer of %d new m-lines after %d: %v, want ErrTooManyMLines", n, n, err)
	}
	p, _ := h.s.peer("r", "eve-1")
	if got := len(p.pc.GetTransceivers()); got > MaxMLines {
		t.Errorf("%d transceivers, at most %d", got, MaxMLines)
	}
	// The same m-lines again (an ordinary renegotiation) are still fine.
	if _, err := h.s.Offer(t.Context(), "r", "eve", "eve-1", renameMids(first, ""), false); err != nil {
		t.Errorf("the first offer's m-lines again: %v", err)
	}
}

// The candidates in a device's offers count against MaxRemoteCandidates
// as trickled ones do: each has the SFU send connectivity checks too.
func TestOfferedCandidatesCount(t *testing.T) {
	h := newHarness(t, Config{})
	withCandidates := func(n int) string {
		var cs []string
		for i := range n {
			cs = append(cs, fmt.Sprintf("a=candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host", i+1, 10000+i))
		}
		sdp := recvonlyOffer(t, 1)
		i := strings.Index(sdp, "a=mid:")
		i += strings.Index(sdp[i:], "\r\n") + 2
		return sdp[:i] + strings.Join(cs, "\r\n") + "\r\n" + sdp[i:]
	}
	if _, err := h.s.Offer(t.Context(), "r", "eve", "eve-1", withCandidates(MaxRemoteCandidates+1), false); !errors.Is(err, ErrTooManyCandidates) {
		t.Errorf("an offer of %d candidates: %v, want ErrTooManyCandidates", MaxRemoteCandidates+1, err)
	}
	offer := withCandidates(MaxRemoteCandidates - 1)
	if _, err := h.s.Offer(t.Context(), "r", "eve", "eve-2", offer, false); err != nil {
		t.Fatalf("an offer of %d candidates: %v", MaxRemoteCandidates-1, err)
	}
	// A renegotiation repeats the candidates known: they count once.
	if _, err := h.s.Offer(t.Context(), "r", "eve", "eve-2", offer, false); err != nil {
		t.Fatalf("the same offer again: %v", err)
	}
	trickled := func(port int) string {
		return fmt.Sprintf(`{"candidate":"candidate:99 1 udp 2130706431 127.0.0.1 %d typ host","sdpMid":"0","sdpMLineIndex":0}`, port)
	}
	if err := h.s.AddCandidate("r", "eve-2", trickled(9)); err != nil {
		t.Errorf("the last candidate allowed: %v", err)
	}
	if err := h.s.AddCandidate("r", "eve-2", trickled(10)); !errors.Is(err, ErrTooManyCandidates) {
		t.Errorf("one candidate more: %v, want ErrTooManyCandidates", err)
	}
}

// recvonlyOffer is a pion offer of n audio m-lines to receive on.
func recvonlyOffer(t *testing.T, n int) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for range n {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// renameMids puts prefix before every mid of sdp (and its BUNDLE group).
func renameMids(sdp, prefix string) string {
	var out []string
	for _, l := range strings.Split(sdp, "\r\n") {
		switch {
		case strings.HasPrefix(l, "a=mid:"):
			l = "a=mid:" + prefix + strings.TrimPrefix(l, "a=mid:")
		case strings.HasPrefix(l, "a=group:BUNDLE "):
			mids := strings.Fields(strings.TrimPrefix(l, "a=group:BUNDLE "))
			for i := range mids {
				mids[i] = prefix + mids[i]
			}
			l = "a=group:BUNDLE " + strings.Join(mids, " ")
		}
		out = append(out, l)
	}
	return strings.Join(out, "\r\n")
}

// A device publishing more than MaxPublished tracks has MaxPublished of
// them forwarded, and no more (which ones depends on the order pion
// reports them in).
func TestPublishedTracksLimit(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee := h.call(sfutest.Options{Video: true}, true) // audio and a camera
	waitFrames(t, callee, video, 1, 5)
	for i := 2; i <= MaxPublished; i++ { // MaxPublished+1 tracks in all
		must(t, caller.PublishVideo(fmt.Sprintf("video%d", i)))
	}
	if err := caller.Negotiate(); err != nil {
		t.Fatal(err)
	}
	waitFrames(t, callee, video, MaxPublished-1, 10)
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(h.s.m.refusedLimit) < 1 { // the track beyond the limit came, and was refused
		if time.Now().After(deadline) {
			t.Fatalf("no track refused; %d reach the callee", len(callee.Tracks(video)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFrames(t, callee, video, MaxPublished-1, 20) // the others still flow
	flowing := 0
	for _, tr := range callee.Tracks(video) {
		if tr.Packets > 0 {
			flowing++
		}
	}
	if flowing != MaxPublished-1 {
		t.Errorf("%d of the caller's video tracks reach the callee, want %d (and its audio)", flowing, MaxPublished-1)
	}
	checkClean(t, callee, video)
}

// Closing the SFU ends every goroutine it started.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newHarness(t, Config{})
	caller, callee := h.call(sfutest.Options{Video: true}, true)
	waitFrames(t, callee, video, 1, 5)
	caller.Close()
	callee.Close()
	h.s.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The direct paths bypass pion's SRTP sessions and track readers, not the
// interceptors: the receiver reports, the TWCC feedback and the sender
// reports must follow every packet, not stop at the first ones pion
// delivered.
func TestDirectPathsRunTheInterceptors(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee := h.call(sfutest.Options{Video: true}, true)
	for _, c := range []*sfutest.Client{caller, callee} {
		waitFrames(t, c, video, 1, 5)
	}
	time.Sleep(2500 * time.Millisecond) // two reports at least, a second apart
	for _, c := range []*sfutest.Client{caller, callee} {
		seen := c.RTCPSeen()
		// Over at least a second: 50 audio packets, 90 video packets.
		if len(seen.ReceivedSpan) != 2 {
			t.Errorf("%s: receiver reports on %d published tracks, want 2", c.Device, len(seen.ReceivedSpan))
		}
		for ssrc, n := range seen.ReceivedSpan {
			if n < 40 {
				t.Errorf("%s: the receiver reports on %d advanced %d packets, want the packets of a second", c.Device, ssrc, n)
			}
		}
		if len(seen.SentSpan) != 2 {
			t.Errorf("%s: sender reports on %d received tracks, want 2", c.Device, len(seen.SentSpan))
		}
		for ssrc, n := range seen.SentSpan {
			if n < 40 {
				t.Errorf("%s: the sender reports on %d counted %d more packets, want the packets of a second", c.Device, ssrc, n)
			}
		}
		if seen.TWCCReported < 200 {
			t.Errorf("%s: transport-wide feedback reported on %d packets, want those of two seconds", c.Device, seen.TWCCReported)
		}
		t.Logf("%s: %+v", c.Device, seen)
	}
}

// withMids rewrites offer's mids with mid (and its BUNDLE group to match);
// "" drops them.
func withMids(offer, mid string) string {
	var out []string
	for _, l := range strings.Split(offer, "\r\n") {
		switch {
		case strings.HasPrefix(l, "a=mid:"):
			if mid == "" {
				continue
			}
			l = "a=mid:" + mid
		case strings.HasPrefix(l, "a=group:BUNDLE ") && mid != "":
			l = "a=group:BUNDLE " + mid
		case strings.HasPrefix(l, "a=group:BUNDLE "):
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\r\n")
}

// Offers pion would take in and then fail on, or count apart from the SFU,
// are refused before anything is applied: m-lines repeating a mid (pion
// gives each a transceiver; the SFU's MaxMLines count saw one), an m-line
// without one (pion would be left waiting to answer an offer it refused,
// unable to take the next). The device's next good offer is answered.
func TestOffersWithBadMidsAreRefused(t *testing.T) {
	h := newHarness(t, Config{})
	good := recvonlyOffer(t, 3)
	for name, bad := range map[string]string{
		"many of one mid":   withMids(recvonlyOffer(t, 3*MaxMLines), "0"), // refused by their count first
		"a mid repeated":    withMids(good, "0"),
		"no mid":            withMids(good, ""),
		"more than allowed": recvonlyOffer(t, MaxMLines+1),
	} {
		_, err := h.s.Offer(t.Context(), "r", "eve", "eve-1", bad, false)
		if !errors.Is(err, ErrInvalidOffer) && !errors.Is(err, ErrTooManyMLines) {
			t.Errorf("%s: %v, want ErrInvalidOffer or ErrTooManyMLines", name, err)
		}
		p, err := h.s.peer("r", "eve-1")
		must(t, err)
		if n := len(p.pc.GetTransceivers()); n != 0 {
			t.Errorf("%s: the refused offer left %d transceivers", name, n)
		}
		if st := p.pc.SignalingState(); st != webrtc.SignalingStateStable {
			t.Errorf("%s: the refused offer left the peer connection %v", name, st)
		}
	}
	if _, err := h.s.Offer(t.Context(), "r", "eve", "eve-1", good, false); err != nil {
		t.Fatalf("a good offer after the refused ones: %v", err)
	}
}

// An offer pion takes in and then fails on (here: no ICE credentials)
// would leave the peer connection waiting for an answer it cannot give,
// every later offer refused. The SFU abandons that peer connection, and
// the device's next offer is answered by a new one.
func TestOfferFailingHalfwayAbandonsThePeer(t *testing.T) {
	h := newHarness(t, Config{})
	good := recvonlyOffer(t, 2)
	if _, err := h.s.Offer(t.Context(), "r", "eve", "eve-1", good, false); err != nil {
		t.Fatal(err)
	}
	first, err := h.s.peer("r", "eve-1")
	must(t, err)
	var lines []string
	for _, l := range strings.Split(good, "\r\n") {
		if !strings.HasPrefix(l, "a=ice-ufrag:") && !strings.HasPrefix(l, "a=ice-pwd:") {
			lines = append(lines, l)
		}
	}
	_, err = h.s.Offer(t.Context(), "r", "eve", "eve-1", strings.Join(lines, "\r\n"), false)
	if !errors.Is(err, ErrPeerAbandoned) {
		t.Fatalf("an offer without ICE credentials: %v, want ErrPeerAbandoned", err)
	}
	if st := first.pc.ConnectionState(); st != webrtc.PeerConnectionStateClosed {
		t.Errorf("the abandoned peer connection is %v, want closed", st)
	}
	if _, err := h.s.Offer(t.Context(), "r", "eve", "eve-1", good, false); err != nil {
		t.Fatalf("the device's next offer: %v", err)
	}
	if p, err := h.s.peer("r", "eve-1"); err != nil || p == first {
		t.Fatalf("the next offer was taken by %p (%v), want a new peer connection", p, err)
	}
}

// Glare: the device offers while an offer of the SFU's to it waits for
// its answer. Pion cannot roll the SFU's offer back, so the SFU refuses
// the device's (ErrGlare) and changes nothing; the device gives way (here
// it never applied its offer, as one rolled back), answers the SFU's
// offer, and offers again. Both cameras then reach the other side.
func TestGlareTheDeviceGivesWay(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee, hold := h.cameraHeld()
	pending := hold.next() // the caller's camera, on an m-line the SFU adds for the callee
	// The device's crossing offer: its last one again (a new one made here
	// would have pion give the camera's transceiver a mid, which a browser
	// rolling back undoes).
	crossing := callee.PC().CurrentLocalDescription()
	if crossing == nil || crossing.Type != webrtc.SDPTypeOffer {
		t.Fatalf("the callee's last local description is %v, want its offer", crossing)
	}
	_, err := h.s.Offer(t.Context(), "r", callee.User, callee.Device, crossing.SDP, true)
	var glare *GlareError
	if !errors.Is(err, ErrGlare) || !errors.As(err, &glare) {
		t.Fatalf("an offer crossing the SFU's: %v, want ErrGlare", err)
	}
	if glare.Offer != pending {
		t.Fatalf("the glare error carries %q, want the offer OnOffer gave", glare.Offer)
	}
	p, err := h.s.peer("r", callee.Device)
	must(t, err)
	if st := p.pc.SignalingState(); st != webrtc.SignalingStateHaveLocalOffer {
		t.Fatalf("after the refused offer the SFU's side is %v, want its offer still out", st)
	}
	hold.release()
	must(t, callee.ServerOffer(pending))
	must(t, callee.PublishVideo("camera"))
	must(t, callee.Negotiate())
	waitFrames(t, callee, video, 1, 10) // the caller's camera
	waitFrames(t, caller, video, 1, 10) // the callee's
}

// Video a device sends before video is allowed (audio_upgradable) is not
// forwarded, and not refused for good: pion tells of a track once, so the
// SFU keeps it and forwards it once the call is upgraded.
func TestVideoRefusedBeforeTheUpgradeFlowsAfter(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee := h.call(sfutest.Options{Video: false}, true) // cameras on, video not allowed
	waitFrames(t, callee, audio, 1, 10)
	for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(h.s.m.refusedVideo) < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("pion's clients sent no video on the m-lines answered inactive: the test's premise (a refused track) did not happen")
		}
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(callee.Tracks(video)); n != 0 {
		for _, tr := range callee.Tracks(video) {
			if tr.Packets > 0 {
				t.Fatalf("video reached the callee before the upgrade: %+v", tr)
			}
		}
	}
	// The held tracks are published: each side gets the other's on an
	// m-line the SFU offers it (no offer of the devices' is needed, and
	// one now could cross those: glare, which the pion clients here do
	// not handle).
	must(t, h.s.AllowVideo("r"))
	waitFrames(t, callee, video, 1, 10)
	waitFrames(t, caller, video, 1, 10)
}

// A device answering an offer of the SFU's twice (its answer to an earlier
// offer arriving while a newer one waits) is refused: pion would take it
// as the answer to the newer offer, whose new m-lines it lacks, and then
// refuse the real one. The newer offer still gets its answer.
func TestAnswerToAnEarlierOfferIsRefused(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee, hold := h.cameraHeld()
	must(t, callee.ServerOffer(hold.next())) // offer X, answered
	stale := callee.PC().CurrentLocalDescription()
	if stale == nil || stale.Type != webrtc.SDPTypeAnswer {
		t.Fatalf("the callee's answer to X: %v", stale)
	}
	must(t, caller.PublishVideo("screen"))
	must(t, caller.Negotiate())
	y := hold.next() // offer Y: an m-line more for the screen
	if err := h.s.Answer("r", callee.Device, stale.SDP); !errors.Is(err, ErrInvalidAnswer) {
		t.Fatalf("the answer to X again, while Y waits: %v, want ErrInvalidAnswer", err)
	}
	hold.release()
	must(t, callee.ServerOffer(y))
	waitFrames(t, callee, video, 2, 10) // the caller's camera and screen
}
