package sfu

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins/call/sfu/sfutest"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A device whose network changed restarts ICE: its offer brings new ICE
// credentials and candidates at a new address. The SFU answers it, moves
// both direct paths to the new address, and the media flows both ways
// again. The candidates of earlier ICE generations do not count against
// MaxRemoteCandidates: each restart here offers 40 more (unreachable)
// candidates, and three restarts are taken.
func TestICERestartMovesTheDevice(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee := h.call(sfutest.Options{Video: true}, true)
	for _, c := range []*sfutest.Client{caller, callee} {
		waitFrames(t, c, video, 1, 10)
	}
	p, err := h.s.peer("r", caller.Device)
	must(t, err)
	for restart := 1; restart <= 3; restart++ {
		before := directAddr(p)
		var extra strings.Builder
		for i := range 40 {
			fmt.Fprintf(&extra, "a=candidate:%d%d 1 udp 100 127.0.0.1 %d typ host\r\n", restart, i, 40000+100*restart+i)
		}
		if err := caller.RestartICE(extra.String()); err != nil {
			t.Fatalf("restart %d: %v", restart, err)
		}
		var now string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if now = directAddr(p); now != before && now != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("restart %d: the direct path still knows the caller at %q (was %q)", restart, now, before)
			}
		}
		if local := clientLocalAddr(t, caller); local != now {
			t.Errorf("restart %d: the SFU sends to %s, the caller is at %s", restart, now, local)
		}
		// Media both ways after the move, most of it on the direct paths.
		direct := testutil.ToFloat64(h.s.m.viaDirect)
		moreFrames(t, 15, caller, callee)
		if d := testutil.ToFloat64(h.s.m.viaDirect) - direct; d < 50 {
			t.Errorf("restart %d: %v packets on the direct path since the move", restart, d)
		}
	}
	// Video lost in the move is asked for again (NACK) and comes; audio
	// is not, and a device's packets in flight when its address changes
	// are lost, as on a real network: a few frames a move at most.
	for _, c := range []*sfutest.Client{caller, callee} {
		checkClean(t, c, video)
		for _, ts := range c.Tracks(audio) {
			if ts.Corrupt > 0 || ts.Missing > 3*5 {
				t.Errorf("%s: audio: %d frames, %d corrupt, %d missing over three moves", c.Device, ts.Frames, ts.Corrupt, ts.Missing)
			}
		}
	}
}

// A device's connection that failed (its network was down past
// ICEFailedTimeout) comes back with an ICE restart: the SFU sends to it
// again, and forwards what it sends.
func TestICERestartAfterFailure(t *testing.T) {
	h := newHarness(t, Config{ICEDisconnectedTimeout: time.Second, ICEFailedTimeout: time.Second, ICEKeepaliveInterval: 200 * time.Millisecond})
	caller, callee := h.call(sfutest.Options{Video: true, Pausable: true}, true)
	for _, c := range []*sfutest.Client{caller, callee} {
		waitFrames(t, c, video, 1, 10)
	}
	h.waitState(caller.Device, "connected", 10*time.Second)
	caller.Pause(true)
	h.waitState(caller.Device, "failed", 10*time.Second)
	// Failed: the SFU sends the caller nothing (no consent), and drops
	// the callee's media to it.
	time.Sleep(200 * time.Millisecond) // what was on its way
	lost, dropped := caller.LostWhilePaused(), testutil.ToFloat64(h.s.m.sendDropped)
	in, out := testutil.ToFloat64(h.s.m.packetsIn), testutil.ToFloat64(h.s.m.packetsOut)
	time.Sleep(time.Second)
	if n := caller.LostWhilePaused() - lost; n > 0 {
		t.Errorf("%d datagrams sent to the caller in a second of its connection failed", n)
	}
	if n := testutil.ToFloat64(h.s.m.sendDropped) - dropped; n < 20 {
		t.Errorf("%v packets for the caller dropped in a second of its connection failed, want the callee's media", n)
	}
	// Dropped is not forwarded: of the callee's packets read meanwhile,
	// none counts as written (the counters of its two tracks are added
	// every flushEvery packets, so up to that many each from before).
	if dIn, dOut := testutil.ToFloat64(h.s.m.packetsIn)-in, testutil.ToFloat64(h.s.m.packetsOut)-out; dIn < 50 || dOut > 2*flushEvery {
		t.Errorf("in a second of the caller's connection failed: %v packets read, %v counted as written", dIn, dOut)
	}
	caller.Pause(false)
	if err := caller.RestartICE(""); err != nil {
		t.Fatal(err)
	}
	h.waitState(caller.Device, "connected", 10*time.Second)
	moreFrames(t, 15, caller, callee)
}

// moreFrames waits until each client's one audio and one video track have
// n frames more than they have now.
func moreFrames(t *testing.T, n int, cs ...*sfutest.Client) {
	t.Helper()
	for _, c := range cs {
		for _, kind := range []webrtc.RTPCodecType{audio, video} {
			ts := c.Tracks(kind)
			if len(ts) != 1 {
				t.Fatalf("%s has %d %s tracks", c.Device, len(ts), kind)
			}
			waitFrames(t, c, kind, 1, ts[0].Frames+n)
		}
	}
}

// directAddr is where p's direct send path sends ("" for nowhere).
func directAddr(p *peer) string {
	p.tx.mu.Lock()
	defer p.tx.mu.Unlock()
	if !p.tx.addr.IsValid() {
		return ""
	}
	return p.tx.addr.String()
}

// clientLocalAddr is the local address of c's selected candidate pair.
func clientLocalAddr(t *testing.T, c *sfutest.Client) string {
	t.Helper()
	pair, err := c.PC().SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("%s: no selected pair: %v", c.Device, err)
	}
	return fmt.Sprintf("%s:%d", pair.Local.Address, pair.Local.Port)
}

// ICE restarts are limited: restartBurst in a row, then one every
// restartEvery. (The restart offers here change only the credentials of
// the caller's offer, so its media stop: this is about what the SFU takes.)
func TestICERestartsAreLimited(t *testing.T) {
	h := newHarness(t, Config{})
	caller, callee := h.call(sfutest.Options{}, false)
	waitFrames(t, callee, audio, 1, 5)
	restart := func(i int) error { return h.restartOffer(caller, i) }
	start := time.Now()
	for i := 1; i <= restartBurst; i++ {
		must(t, restart(i))
	}
	if err := restart(restartBurst + 1); time.Since(start) < restartEvery && !errors.Is(err, ErrTooManyRestarts) {
		t.Fatalf("restart %d within %v: %v, want ErrTooManyRestarts", restartBurst+1, restartEvery, err)
	}
	time.Sleep(restartEvery)
	must(t, restart(restartBurst+2))
}

// An answer may not change the device's ICE credentials: pion would take
// them without restarting ICE, and keep the candidates counted under the
// old ones.
func TestAnswerChangingICECredentialsIsRefused(t *testing.T) {
	h := newHarness(t, Config{})
	_, callee, hold := h.cameraHeld()
	offer := hold.next()
	must(t, callee.PC().SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}))
	answer, err := callee.PC().CreateAnswer(nil)
	must(t, err)
	d := credentialsOf(t, answer.SDP)
	forged := strings.ReplaceAll(answer.SDP, "a=ice-ufrag:"+d.ufrag, "a=ice-ufrag:newufrag1234")
	if err := h.s.Answer("r", callee.Device, forged); !errors.Is(err, ErrInvalidAnswer) {
		t.Fatalf("an answer with a new ICE ufrag: %v, want ErrInvalidAnswer", err)
	}
	must(t, callee.PC().SetLocalDescription(answer))
	must(t, h.s.Answer("r", callee.Device, answer.SDP))
	waitFrames(t, callee, video, 1, 10)
}

// The ICE credentials are those pion takes: the session's, or else those
// of the BUNDLE group's first m-line; a decoy on another m-line is not
// taken for a restart.
func TestCredentialsAreThoseThatPionTakes(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
	m := func(mid, ufrag string) string {
		return "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:" + mid + "\r\na=ice-ufrag:" + ufrag + "\r\na=ice-pwd:pwd-" + ufrag + "\r\n"
	}
	for _, c := range []struct {
		name, sdp string
		want      iceCreds
	}{
		{"the session's", head + "a=ice-ufrag:sess\r\na=ice-pwd:sesspwd\r\n" + m("0", "media"), iceCreds{"sess", "sesspwd"}},
		{"the first m-line without BUNDLE", head + m("0", "first") + m("1", "second"), iceCreds{"first", "pwd-first"}},
		{"the BUNDLE group's first", head + "a=group:BUNDLE 1 0\r\n" + m("0", "decoy") + m("1", "real"), iceCreds{"real", "pwd-real"}},
	} {
		if got := credentialsOf(t, c.sdp); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func credentialsOf(t *testing.T, s string) iceCreds {
	t.Helper()
	var d sdp.SessionDescription
	must(t, d.Unmarshal([]byte(s)))
	return credentials(&d)
}

// An offer refused for glare costs no restart: the device meets it with
// the same offer again, once it answered the SFU's.
func TestGlareCostsNoRestart(t *testing.T) {
	h := newHarness(t, Config{})
	_, callee, hold := h.cameraHeld()
	hold.next() // the SFU's offer is out
	for i := 1; i <= restartBurst+2; i++ {
		if err := h.restartOffer(callee, 1); !errors.Is(err, ErrGlare) {
			t.Fatalf("restart offer %d while the SFU's waits: %v, want ErrGlare", i, err)
		}
	}
}

// restartOffer sends the SFU c's last offer with the credentials of ICE
// generation i: an ICE restart, to the SFU (c's own ICE stays as it is).
func (h *harness) restartOffer(c *sfutest.Client, i int) error {
	sdp := c.PC().LocalDescription().SDP
	cur := credentialsOf(h.t, sdp)
	sdp = strings.ReplaceAll(sdp, "a=ice-ufrag:"+cur.ufrag, fmt.Sprintf("a=ice-ufrag:restart%d", i))
	sdp = strings.ReplaceAll(sdp, "a=ice-pwd:"+cur.pwd, fmt.Sprintf("a=ice-pwd:restartpassword%010d", i))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := h.s.Offer(ctx, "r", c.User, c.Device, sdp, false)
	return err
}
