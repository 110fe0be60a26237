package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// chatPairs is the number of sender/receiver pairs of BenchmarkChat.
const chatPairs = 500

// BenchmarkChat measures chat end to end through the real WebSocket path:
// a sender session sends chat.message.send as a browser would (a JSON
// text frame), the kernel in a child process has the chat plugin decide
// it, appends it durably (fsync, group commit) and pushes it to the
// receiver's session. 500 pairs send open-loop at a fixed total rate, each
// message scheduled ahead of time; latency is the receive time minus the
// scheduled send time, so a stall delays every message behind it and shows
// (no coordinated omission). Server CPU (the kernel and, out of process,
// the plugin) comes from /proc. Every message must arrive exactly once.
//
// BENCH_CHAT_SECONDS sets the load's duration (default 3),
// BENCH_CHAT_RATES the total rates in messages/s (default "2000,10000"),
// BENCH_COMMIT_DELAY the kernel's eventlog.commit_delay and
// BENCH_SERVER_GOGC and BENCH_SERVER_MEMLIMIT_MB its garbage collector;
// BENCH_CPUPROFILE=<file> writes the kernel's CPU profile over the load and
// BENCH_ALLOCPROFILE=<file> its allocation profile at the end (and
// <file>.base at the start of the load, for `go tool pprof -base`).
// Allocations per message are the kernel process's (the Go runtime's
// count), over the load.
func BenchmarkChat(b *testing.B) {
	secs := 3.0
	if v, err := strconv.ParseFloat(os.Getenv("BENCH_CHAT_SECONDS"), 64); err == nil && v > 0 {
		secs = v
	}
	rates := []int{2000, 10000}
	if v := os.Getenv("BENCH_CHAT_RATES"); v != "" {
		rates = nil
		for _, f := range strings.Split(v, ",") {
			if r, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && r > 0 {
				rates = append(rates, r)
			}
		}
	}
	for _, tr := range []string{"inproc", "process"} {
		for _, rate := range rates {
			b.Run(fmt.Sprintf("%s/%d-per-s", tr, rate), func(b *testing.B) { benchChat(b, tr, float64(rate), secs) })
		}
	}
}

type chatPair struct {
	sender, receiver string
	send, recv       *websocket.Conn
	channel          string
	lat              []time.Duration // receive − scheduled send, by the receiver's reader
	seen             []bool
	dups             int
}

func benchChat(b *testing.B, transport string, rate, secs float64) {
	// The load generator shares the machine with the kernel: keep its own
	// garbage collection out of the way.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	child := startServerChild(b, transport)
	defer child.stop()
	c := child.client
	toks := c.users("p", 2*chatPairs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	pairs := make([]*chatPair, chatPairs)
	var dialErr atomic.Value
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < chatPairs; i += 32 {
				p := &chatPair{sender: fmt.Sprintf("p%d", 2*i), receiver: fmt.Sprintf("p%d", 2*i+1)}
				var err error
				if p.send, err = dialSession(ctx, c.base, c.app, p.sender, toks[2*i]); err == nil {
					p.recv, err = dialSession(ctx, c.base, c.app, p.receiver, toks[2*i+1])
				}
				if err == nil {
					p.channel, err = addChannel(ctx, p.send, p.receiver)
				}
				if err != nil {
					dialErr.Store(err)
					return
				}
				pairs[i] = p
			}
		}()
	}
	wg.Wait()
	if err := dialErr.Load(); err != nil {
		b.Fatal(err)
	}

	perPair := max(1, int(rate*secs/chatPairs))
	interval := time.Duration(float64(chatPairs) / rate * float64(time.Second))
	var refused, delivered atomic.Int64
	var lastArrival atomic.Int64
	done := make(chan struct{}, chatPairs)
	var readers sync.WaitGroup
	for _, p := range pairs {
		p.seen = make([]bool, perPair)
		p.lat = make([]time.Duration, 0, perPair)
		readers.Add(2)
		go func() { // the sender's socket: answers and its own pushes
			defer readers.Done()
			for {
				_, m, err := p.send.Read(ctx)
				if err != nil {
					return
				}
				if strings.Contains(string(m), `"error"`) {
					refused.Add(1)
				}
			}
		}()
		go func() { // the receiver's socket
			defer readers.Done()
			// The load generator shares the machine: it reads into one buffer
			// and picks the fields out by hand, so its own allocations and
			// collections stay out of the kernel's way.
			var buf bytes.Buffer
			sender := []byte(`"sender":"` + p.sender + `"`)
			for {
				_, r, err := p.recv.Reader(ctx)
				if err != nil {
					return
				}
				buf.Reset()
				if _, err := buf.ReadFrom(r); err != nil {
					return
				}
				now := time.Now()
				m := buf.Bytes()
				if !bytes.HasPrefix(m, []byte(`{"event":"channel.message.sent"`)) || !bytes.Contains(m, sender) {
					continue
				}
				k, at, ok := scheduled(m)
				if !ok || k < 0 || k >= perPair || p.seen[k] {
					p.dups++
					continue
				}
				p.seen[k] = true
				p.lat = append(p.lat, now.Sub(time.Unix(0, at)))
				if traceOn {
					traceMu.Lock()
					b := (at - traceStart.Load()) / int64(100*time.Millisecond)
					if d := now.Sub(time.Unix(0, at)); d > traceMax[b] {
						traceMax[b] = d
					}
					traceMu.Unlock()
				}
				lastArrival.Store(now.UnixNano())
				if delivered.Add(1); len(p.lat) == perPair {
					done <- struct{}{}
				}
			}
		}()
	}

	profile := os.Getenv("BENCH_CPUPROFILE") // the kernel's CPU profile over the load, for `go tool pprof`
	if profile != "" {
		child.profile(profile)
	}
	time.Sleep(time.Second) // let the mass connect settle (presence goes out every 200 ms)
	allocProfile := os.Getenv("BENCH_ALLOCPROFILE")
	if allocProfile != "" { // the setup's allocations, for `go tool pprof -base`
		child.allocs(allocProfile + ".base")
	}
	counts0 := child.counts()
	cpu0 := cpuTicks(child.pid)
	start := time.Now().Add(100 * time.Millisecond)
	traceStart.Store(start.UnixNano())
	b.ResetTimer()
	var senders sync.WaitGroup
	for i, p := range pairs {
		senders.Add(1)
		go func() { // open loop: each message at its scheduled time, whatever happened before
			defer senders.Done()
			offset := time.Duration(i) * interval / chatPairs
			var frame []byte
			for k := range perPair {
				at := start.Add(offset + time.Duration(k)*interval)
				time.Sleep(time.Until(at))
				frame = append(frame[:0], `{"id":`...)
				frame = strconv.AppendInt(frame, int64(k+10), 10)
				frame = append(frame, `,"method":"chat.message.send","params":{"channelId":"`...)
				frame = append(frame, p.channel...)
				frame = append(frame, `","text":"`...)
				frame = strconv.AppendInt(frame, int64(k), 10)
				frame = append(frame, ' ')
				frame = strconv.AppendInt(frame, at.UnixNano(), 10)
				frame = append(frame, `"}}`...)
				if p.send.Write(ctx, websocket.MessageText, frame) != nil {
					return
				}
			}
		}()
	}
	senders.Wait()
	deadline := time.After(time.Duration(secs*float64(time.Second)) + 30*time.Second)
	for range pairs {
		select {
		case <-done:
		case <-deadline:
			b.Fatalf("lost messages: %d of %d delivered after 30 s (%d refused)", delivered.Load(), perPair*chatPairs, refused.Load())
		}
	}
	elapsed := time.Duration(lastArrival.Load() - start.UnixNano())
	b.StopTimer()
	cpu := cpuTicks(child.pid) - cpu0
	counts := child.counts().minus(counts0)
	if profile != "" {
		child.profile("stop")
	}
	if allocProfile != "" { // allocations since the child started, setup included
		child.allocs(allocProfile)
	}
	cancel()
	for _, p := range pairs {
		p.send.CloseNow()
		p.recv.CloseNow()
	}
	readers.Wait()

	var lat []time.Duration
	dups := 0
	for _, p := range pairs {
		lat = append(lat, p.lat...)
		dups += p.dups
	}
	if dups > 0 || refused.Load() > 0 {
		b.Fatalf("%d duplicate deliveries, %d refused sends", dups, refused.Load())
	}
	if traceOn {
		for i := int64(0); i < 40; i++ {
			fmt.Printf("%d00ms:%v ", i, traceMax[i].Round(time.Millisecond))
		}
		fmt.Println()
	}
	slices.Sort(lat)
	n := len(lat)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "delivered/s")
	b.ReportMetric(float64(lat[n/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[n*99/100])/1e6, "p99-ms")
	b.ReportMetric(float64(lat[n-1])/1e6, "max-ms")
	b.ReportMetric(float64(cpu)*1e4/float64(n), "server-cpu-µs/msg") // ticks are 10 ms
	// The kernel process's allocations (not an out-of-process plugin's):
	// each commit makes garbage of its own (bbolt's), so msgs/commit says
	// how much of it a message bears.
	b.ReportMetric(float64(counts.objects)/float64(n), "kernel-allocs/msg")
	b.ReportMetric(float64(counts.bytes)/float64(n), "kernel-B/msg")
	b.ReportMetric(float64(n)/float64(counts.commits), "msgs/commit")
	b.ReportMetric(float64(counts.gcs)/elapsed.Seconds(), "kernel-GCs/s")
	b.ReportMetric(0, "ns/op")
}

// addChannel opens the channel between the session's user and other and
// returns its id.
func addChannel(ctx context.Context, c *websocket.Conn, other string) (string, error) {
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"id":2,"method":"chat.channel.add","params":{"userId":"`+other+`"}}`)); err != nil {
		return "", err
	}
	for {
		_, m, err := c.Read(ctx)
		if err != nil {
			return "", err
		}
		var ans struct {
			ID     int
			Error  any
			Result struct {
				Events []struct {
					Data struct{ ChannelID string }
				}
			}
		}
		if json.Unmarshal(m, &ans) != nil || ans.ID != 2 {
			continue // a push
		}
		if ans.Error != nil || len(ans.Result.Events) == 0 {
			return "", fmt.Errorf("chat.channel.add: %s", m)
		}
		return ans.Result.Events[0].Data.ChannelID, nil
	}
}

// cpuTicks is the user and system CPU of pid and its children (the
// out-of-process plugin), in clock ticks (10 ms on Linux).
func cpuTicks(pid int) int64 {
	ticks := func(pid string) int64 {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return 0
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14 of stat
		s, _ := strconv.ParseInt(f[12], 10, 64) // stime
		return u + s
	}
	self := strconv.Itoa(pid)
	total := ticks(self)
	tasks, _ := filepath.Glob("/proc/" + self + "/task/*/children")
	for _, t := range tasks {
		kids, _ := os.ReadFile(t)
		for _, k := range strings.Fields(string(kids)) {
			total += ticks(k)
		}
	}
	return total
}

var (
	traceOn    = os.Getenv("BENCH_CHAT_TRACE") != ""
	traceMu    sync.Mutex
	traceMax   = map[int64]time.Duration{}
	traceStart atomic.Int64
)

// scheduled reads "<k> <unix nanos>" from a push frame's text.
func scheduled(m []byte) (k int, at int64, ok bool) {
	i := bytes.Index(m, []byte(`"text":"`))
	if i < 0 {
		return 0, 0, false
	}
	rest := m[i+len(`"text":"`):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return 0, 0, false
	}
	a, b, found := bytes.Cut(rest[:end], []byte{' '})
	if !found {
		return 0, 0, false
	}
	kk, err1 := strconv.Atoi(string(a)) // the conversions do not escape: no allocation
	t, err2 := strconv.ParseInt(string(b), 10, 64)
	return kk, t, err1 == nil && err2 == nil
}
