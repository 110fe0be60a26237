package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins/call/sfu"
	"github.com/parleyhq/parley/plugins/call/sfu/sfutest"
	"github.com/parleyhq/parley/plugins/call/sfu/udpbatch"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// BenchmarkSFU runs N concurrent 1:1 calls through an SFU in a child
// process, so that its CPU is its own: each participant is a pion peer in
// this process publishing Opus (50 packets/s) and VP8 (30 frames/s of
// 2,500 bytes, 3 packets each: 600 kbit/s) and receiving the other's.
// It reports:
//
//   - µs-cpu/pkt: the child's CPU (user + system, getrusage) over the
//     window divided by the RTP packets it forwarded; µs-user/pkt is the
//     part of it spent in user space (the rest is the kernel's);
//   - switches/pkt: the child's threads' context switches per forwarded
//     packet (a thread waiting for the next datagram, or preempted);
//   - allocs/pkt: allocations on the forwarding path (stacks through the
//     forwarding loop: reading the publisher's track through pion, writing
//     to each subscriber through pion down to the socket), from a memory
//     profile recording every allocation, over one more second;
//   - proc-allocs/pkt: every allocation of the child over the window, per
//     forwarded packet (pion's socket, ICE, SRTP and RTCP goroutines too);
//   - join-ms-p50, join-ms-max: from the second participant's first offer
//     to the first RTP packet it receives from the first, on loopback.
//
// "sfu" is plugins/call/sfu; "naive" is the straightforward pion SFU:
// ReadRTP (a fresh buffer and packet each time) → TrackLocalStaticRTP.
// WriteRTP, pion's default interceptors and UDP mux; "floor" relays the
// same packets as they are, with the SFU's socket layer and nothing else
// (sfu_floor_test.go): what this socket design costs on this machine for
// this traffic. The floor reports the CPU figures only.
//
// Default: 10 calls, a 2 s window. BENCH_SFU_CALLS="10,20" and
// BENCH_SFU_SECONDS=5 for the figures in README.md;
// BENCH_SFU_PROFILE=<dir> writes the child's CPU profile over the window.
func BenchmarkSFU(b *testing.B) {
	secs := 2.0
	if v, err := strconv.ParseFloat(os.Getenv("BENCH_SFU_SECONDS"), 64); err == nil && v > 0 {
		secs = v
	}
	calls := []int{10}
	if v := os.Getenv("BENCH_SFU_CALLS"); v != "" {
		calls = nil
		for _, f := range strings.Split(v, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
				calls = append(calls, n)
			}
		}
	}
	for _, n := range calls {
		for _, mode := range []string{"sfu", "naive", "floor"} {
			b.Run(fmt.Sprintf("calls=%d/%s", n, mode), func(b *testing.B) { benchSFU(b, mode, n, secs) })
		}
	}
}

func benchSFU(b *testing.B, mode string, calls int, secs float64) {
	child := startSFUChild(b, mode)
	defer child.stop()
	if mode == "floor" {
		stop := startFloorLoad(b, child, calls)
		defer stop()
		time.Sleep(time.Second) // every sender past its random start
		measureForwarding(b, child, mode, calls, secs)
		return
	}
	var joins []time.Duration
	for i := range calls {
		room := fmt.Sprintf("call%d", i)
		var pair [2]*sfutest.Client
		for j, who := range []string{"caller", "callee"} {
			user := fmt.Sprintf("%s%d", who, i)
			c, err := sfutest.NewClient(child, room, user, user+"-device", sfutest.Options{Video: true})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			child.addClient(c)
			if err := c.PublishAudio(); err != nil {
				b.Fatal(err)
			}
			if err := c.PublishVideo("camera"); err != nil {
				b.Fatal(err)
			}
			if err := c.Negotiate(); err != nil {
				b.Fatal(err)
			}
			pair[j] = c
		}
		// The callee joins a call whose caller is publishing: its join time
		// is to the first packet of the caller's.
		ts, err := pair[1].WaitFrames(webrtc.RTPCodecTypeAudio, 1, 1, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		first := ts[0].FirstPacketIn
		if vs := pair[1].Tracks(webrtc.RTPCodecTypeVideo); len(vs) > 0 && vs[0].Packets > 0 {
			first = min(first, vs[0].FirstPacketIn)
		}
		joins = append(joins, first)
		for _, c := range pair {
			if _, err := c.WaitFrames(webrtc.RTPCodecTypeVideo, 1, 1, 10*time.Second); err != nil {
				b.Fatal(err)
			}
		}
	}
	time.Sleep(time.Second) // every call in its steady state

	measureForwarding(b, child, mode, calls, secs)

	// The forwarding path's own allocations, with every allocation profiled.
	child.send(sfuMsg{Op: "memprofile"})
	time.Sleep(300 * time.Millisecond)
	a0 := child.stats()
	time.Sleep(time.Second)
	a1 := child.stats()
	b.ReportMetric(float64(a1.PathAllocs-a0.PathAllocs)/float64(a1.Forwarded-a0.Forwarded), "allocs/pkt")

	slices.Sort(joins)
	b.ReportMetric(float64(joins[len(joins)/2].Microseconds())/1000, "join-ms-p50")
	b.ReportMetric(float64(joins[len(joins)-1].Microseconds())/1000, "join-ms-max")
}

// measureForwarding reports what the child spends per packet it forwards
// over b.N windows of secs seconds.
func measureForwarding(b *testing.B, child *sfuChild, mode string, calls int, secs float64) {
	b.ResetTimer()
	var cpu, user, fwd, mallocs, steal, switches, load float64
	var windows []float64 // µs per packet in each window
	for range b.N {
		if dir := os.Getenv("BENCH_SFU_PROFILE"); dir != "" {
			child.send(sfuMsg{Op: "profile", SDP: filepath.Join(dir, fmt.Sprintf("sfu-%s-%d.pprof", mode, calls))})
		}
		st0 := readCPUTimes()
		l0 := selfCPU()
		s0 := child.stats()
		time.Sleep(time.Duration(secs * float64(time.Second)))
		s1 := child.stats()
		load += float64(selfCPU() - l0)
		steal += readCPUTimes().stealSince(st0)
		if os.Getenv("BENCH_SFU_PROFILE") != "" {
			child.send(sfuMsg{Op: "profile"})
		}
		cpu += float64(s1.CPUNs - s0.CPUNs)
		user += float64(s1.UserNs - s0.UserNs)
		switches += float64(s1.Switches - s0.Switches)
		fwd += float64(s1.Forwarded - s0.Forwarded)
		mallocs += float64(s1.Mallocs - s0.Mallocs)
		if n := s1.Forwarded - s0.Forwarded; n > 0 {
			windows = append(windows, float64(s1.CPUNs-s0.CPUNs)/float64(n)/1000)
		}
	}
	b.StopTimer()
	if fwd == 0 {
		b.Fatal("nothing forwarded")
	}
	b.ReportMetric(cpu/fwd/1000, "µs-cpu/pkt")
	// Of which in user space: the SFU's own code and Go's runtime. The
	// rest is the kernel's: system calls, and putting threads to sleep and
	// waking them, which costs most on a virtual machine.
	b.ReportMetric(user/fwd/1000, "µs-user/pkt")
	// Context switches of the child's threads (voluntary: a thread waits,
	// most in Go's poller; involuntary: another thread took its CPU) per
	// packet: each costs about as much as forwarding a packet here.
	b.ReportMetric(switches/fwd, "switches/pkt")
	b.ReportMetric(mallocs/fwd, "proc-allocs/pkt")
	// What this process (the participants) spent meanwhile, per packet:
	// the other half of the machine, whose business changes what waking
	// the child costs.
	b.ReportMetric(load/fwd/1000, "load-µs/pkt")
	b.ReportMetric(fwd/(secs*float64(b.N)), "pkts/s")
	// The machine is a VM: time its host gives to others while the
	// benchmark's threads wait to run ("steal") makes every CPU figure
	// higher. Runs with steal above a few percent do not compare.
	b.ReportMetric(steal/float64(b.N), "steal-%")
	// Steal comes in bursts: over several windows (-benchtime Nx), the
	// median and the least window say more than the mean.
	if len(windows) > 1 {
		slices.Sort(windows)
		b.ReportMetric(windows[len(windows)/2], "µs-cpu/pkt-median")
		b.ReportMetric(windows[0], "µs-cpu/pkt-min")
	}
	b.ReportMetric(0, "ns/op")
}

// sfuMsg is one line between the benchmark and its child, both ways.
type sfuMsg struct {
	Op     string `json:"op"`
	ID     int    `json:"id,omitempty"`
	Room   string `json:"room,omitempty"`
	User   string `json:"user,omitempty"`
	Device string `json:"device,omitempty"`
	SDP    string `json:"sdp,omitempty"`
	Video  bool   `json:"video,omitempty"`
	Err    string `json:"err,omitempty"`
	// stats
	CPUNs, UserNs, Mallocs, Forwarded, PathAllocs, Switches int64
	// floor
	Addrs []string `json:"addrs,omitempty"`
}

// sfuChild is the SFU in a child process, and a sfutest.Signaller to it.
type sfuChild struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	wmu  sync.Mutex
	mu   sync.Mutex
	next int
	wait map[int]chan sfuMsg
	cs   map[string]*sfutest.Client
}

func startSFUChild(b *testing.B, mode string) *sfuChild {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BENCH_SFU_SERVER="+mode)
	if n := os.Getenv("BENCH_SFU_GOMAXPROCS"); n != "" {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+n)
	}
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &sfuChild{cmd: cmd, in: in, wait: map[int]chan sfuMsg{}, cs: map[string]*sfutest.Client{}}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m sfuMsg
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			if m.Op == "offer" { // the SFU renegotiates
				c.mu.Lock()
				cl := c.cs[m.Device]
				c.mu.Unlock()
				if cl != nil {
					go cl.ServerOffer(m.SDP)
				}
				continue
			}
			c.mu.Lock()
			ch := c.wait[m.ID]
			delete(c.wait, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}()
	return c
}

func (c *sfuChild) addClient(cl *sfutest.Client) {
	c.mu.Lock()
	c.cs[cl.Device] = cl
	c.mu.Unlock()
}

func (c *sfuChild) send(m sfuMsg) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	line, _ := json.Marshal(m)
	c.in.Write(append(line, '\n'))
}

// call sends m and waits for the reply with its id.
func (c *sfuChild) call(m sfuMsg) sfuMsg {
	ch := make(chan sfuMsg, 1)
	c.mu.Lock()
	c.next++
	m.ID = c.next
	c.wait[m.ID] = ch
	c.mu.Unlock()
	c.send(m)
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		return sfuMsg{Err: "no reply from the SFU child"}
	}
}

func (c *sfuChild) Offer(_ context.Context, room, user, device, sdp string, video bool) (string, error) {
	r := c.call(sfuMsg{Op: "offer", Room: room, User: user, Device: device, SDP: sdp, Video: video})
	if r.Err != "" {
		return "", fmt.Errorf("%s", r.Err)
	}
	return r.SDP, nil
}

func (c *sfuChild) Answer(room, device, sdp string) error {
	r := c.call(sfuMsg{Op: "answer", Room: room, Device: device, SDP: sdp})
	if r.Err != "" {
		return fmt.Errorf("%s", r.Err)
	}
	return nil
}

func (c *sfuChild) stats() sfuMsg { return c.call(sfuMsg{Op: "stats"}) }

func (c *sfuChild) stop() { c.in.Close(); c.cmd.Wait() }

// sfuServer is what the child runs: the SFU or the naive baseline.
type sfuServer interface {
	sfutest.Signaller
	forwarded() int64
	close()
}

// serveSFUChild is the child process of BenchmarkSFU: it answers the
// benchmark's lines on stdin until EOF.
func serveSFUChild(mode string) {
	var wmu sync.Mutex
	write := func(m sfuMsg) {
		wmu.Lock()
		defer wmu.Unlock()
		line, _ := json.Marshal(m)
		os.Stdout.Write(append(line, '\n'))
	}
	onOffer := func(room, device, sdp string) { write(sfuMsg{Op: "offer", Room: room, Device: device, SDP: sdp}) }
	var srv sfuServer
	var pathFns []string
	switch mode {
	case "floor":
		f, err := newFloorRelay()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		srv = f
	case "sfu":
		s, err := newSFUServer(onOffer)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		srv, pathFns = s, []string{"sfu.(*SFU).receive", "sfu.(*publication).forward"}
	default:
		s, err := newNaiveSFU(onOffer)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		srv, pathFns = s, []string{"bench.(*naiveSFU).forward"}
	}
	defer srv.close()
	var profiling, memprof bool
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m sfuMsg
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		switch m.Op {
		case "offer":
			go func() {
				ans, err := srv.Offer(context.Background(), m.Room, m.User, m.Device, m.SDP, m.Video)
				r := sfuMsg{Op: "answer", ID: m.ID, SDP: ans}
				if err != nil {
					r.Err = err.Error()
				}
				write(r)
			}()
		case "answer":
			r := sfuMsg{Op: "answered", ID: m.ID}
			if err := srv.Answer(m.Room, m.Device, m.SDP); err != nil {
				r.Err = err.Error()
			}
			write(r)
		case "floor-addr":
			write(sfuMsg{Op: "floor-addr", ID: m.ID, Addrs: []string{srv.(*floorRelay).addr().String()}})
		case "floor-pair":
			r := sfuMsg{Op: "floor-paired", ID: m.ID}
			if err := srv.(*floorRelay).pair(m.Addrs); err != nil {
				r.Err = err.Error()
			}
			write(r)
		case "stats":
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			r := sfuMsg{Op: "stats", ID: m.ID, CPUNs: ru.Utime.Nano() + ru.Stime.Nano(), UserNs: ru.Utime.Nano(), Switches: ru.Nvcsw + ru.Nivcsw, Mallocs: int64(ms.Mallocs), Forwarded: srv.forwarded()}
			if memprof {
				r.PathAllocs, _ = sfutest.AllocsOnStack(pathFns...)
				r.Forwarded = srv.forwarded() // after the collections AllocsOnStack ran
			}
			write(r)
		case "memprofile":
			runtime.MemProfileRate = 1
			memprof = true
		case "profile":
			if profiling {
				pprof.StopCPUProfile()
				profiling = false
			} else if f, err := os.Create(m.SDP); err == nil {
				profiling = pprof.StartCPUProfile(f) == nil
			}
		}
	}
}

// selfCPU is this process's CPU time so far, user and system, in ns.
func selfCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// readBatch is the datagrams a recvmmsg may read, for the SFU and the
// floor alike: BENCH_SFU_READBATCH (1: no batching), else the SFU's
// default.
func readBatch() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_SFU_READBATCH")); err == nil && n > 0 {
		return n
	}
	return udpbatch.DefaultBatch
}

// sfuServer of plugins/call/sfu, counting what it forwards from its
// metrics.
type realSFU struct {
	s   *sfu.SFU
	reg *prometheus.Registry
}

func newSFUServer(onOffer func(room, device, sdp string)) (*realSFU, error) {
	reg := prometheus.NewRegistry()
	s, err := sfu.New(sfu.Config{ListenIP: "127.0.0.1", Registerer: reg, ReadBatch: readBatch()}, nil)
	if err != nil {
		return nil, err
	}
	s.OnOffer = onOffer
	return &realSFU{s: s, reg: reg}, nil
}

func (r *realSFU) Offer(ctx context.Context, room, user, device, sdp string, video bool) (string, error) {
	return r.s.Offer(ctx, room, user, device, sdp, video)
}
func (r *realSFU) Answer(room, device, sdp string) error { return r.s.Answer(room, device, sdp) }
func (r *realSFU) close()                                { r.s.Close() }

func (r *realSFU) forwarded() int64 {
	mfs, _ := r.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "parley_sfu_rtp_packets_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "direction", "out") {
				return int64(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// naiveSFU is the baseline: what a first pion SFU looks like. Pion's
// default codecs and interceptors, its UDP mux on a plain socket, one
// TrackLocalStaticRTP per kind on each device's offered m-lines, and per
// packet ReadRTP (a new buffer and packet), a lookup of the other
// participant under a lock, and WriteRTP.
type naiveSFU struct {
	api     *webrtc.API
	mu      sync.Mutex
	rooms   map[string][]*naivePeer
	count   atomic.Int64
	onOffer func(room, device, sdp string)
}

type naivePeer struct {
	room  string
	pc    *webrtc.PeerConnection
	slots map[webrtc.RTPCodecType]*webrtc.TrackLocalStaticRTP
	video atomic.Uint32 // SSRC of the video it publishes
}

func newNaiveSFU(onOffer func(room, device, sdp string)) (*naiveSFU, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetICEUDPMux(ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn}))
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	return &naiveSFU{api: api, rooms: map[string][]*naivePeer{}, onOffer: onOffer}, nil
}

func (n *naiveSFU) Offer(ctx context.Context, room, user, device, offer string, video bool) (string, error) {
	pc, err := n.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", err
	}
	p := &naivePeer{room: room, pc: pc, slots: map[webrtc.RTPCodecType]*webrtc.TrackLocalStaticRTP{}}
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if t.Kind() == webrtc.RTPCodecTypeVideo {
			p.video.Store(uint32(t.SSRC()))
		}
		go n.forward(p, t)
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	for _, c := range []webrtc.RTPCodecCapability{{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, {MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}} {
		t, err := webrtc.NewTrackLocalStaticRTP(c, strings.ToLower(c.MimeType), "sfu")
		if err != nil {
			return "", err
		}
		sender, err := pc.AddTrack(t)
		if err != nil {
			return "", err
		}
		p.slots[t.Kind()] = t
		go n.readRTCP(p, sender)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", err
	}
	<-gathered
	n.mu.Lock()
	n.rooms[room] = append(n.rooms[room], p)
	n.mu.Unlock()
	return pc.LocalDescription().SDP, nil
}

func (n *naiveSFU) Answer(room, device, sdp string) error { return nil }

func (n *naiveSFU) other(p *naivePeer) *naivePeer {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, q := range n.rooms[p.room] {
		if q != p {
			return q
		}
	}
	return nil
}

func (n *naiveSFU) forward(p *naivePeer, t *webrtc.TrackRemote) {
	for {
		pkt, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		if q := n.other(p); q != nil {
			if q.slots[t.Kind()].WriteRTP(pkt) == nil {
				n.count.Add(1)
			}
		}
	}
}

// readRTCP passes keyframe requests on to the publisher.
func (n *naiveSFU) readRTCP(p *naivePeer, s *webrtc.RTPSender) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			if _, ok := pkt.(*rtcp.PictureLossIndication); ok {
				if q := n.other(p); q != nil {
					q.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: q.video.Load()}})
				}
			}
		}
	}
}

func (n *naiveSFU) forwarded() int64 { return n.count.Load() }

func (n *naiveSFU) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ps := range n.rooms {
		for _, p := range ps {
			p.pc.Close()
		}
	}
}

// cpuTimes are the machine's CPU times from /proc/stat (Linux), in clock
// ticks: all of them, and those stolen by the hypervisor.
type cpuTimes struct{ total, steal uint64 }

func readCPUTimes() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var t cpuTimes
	if len(f) < 9 || f[0] != "cpu" {
		return t
	}
	for i, v := range f[1:9] {
		n, _ := strconv.ParseUint(v, 10, 64)
		t.total += n
		if i == 7 {
			t.steal = n
		}
	}
	return t
}

// stealSince is the percentage of the machine's CPU time stolen between
// then and t; 0 where /proc/stat is not there.
func (t cpuTimes) stealSince(then cpuTimes) float64 {
	if t.total <= then.total {
		return 0
	}
	return 100 * float64(t.steal-then.steal) / float64(t.total-then.total)
}
