package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/pluginhost"
	"github.com/parleyhq/parley/plugins/chat"
	"github.com/parleyhq/parley/sdkapi"
	"github.com/parleyhq/parley/sdkapi/session"
)

// sessionServer runs a kernel with the session API in this process: for
// the child process of BenchmarkSessionsIdle and BenchmarkChat, and
// in-process for fan-out. chat is "" (no chat plugin), "inproc" or
// "process" (the chat plugin re-executed from this binary).
func sessionServer(dir, chatTransport string) (*kernel.Kernel, *sdkapi.Service, *httptest.Server, string, string, func()) {
	cfg := kernel.DefaultConfig()
	cfg.DataDir = dir
	if d, err := time.ParseDuration(os.Getenv("BENCH_COMMIT_DELAY")); err == nil {
		cfg.EventLog.CommitDelay = d
	}
	cfg.Runtime.Apply(os.Getenv) // as kernel serve does; BENCH_SERVER_GOGC overrides
	if v, err := strconv.Atoi(os.Getenv("BENCH_SERVER_GOGC")); err == nil {
		debug.SetGCPercent(v)
	}
	if v, err := strconv.ParseInt(os.Getenv("BENCH_SERVER_MEMLIMIT_MB"), 10, 64); err == nil {
		debug.SetMemoryLimit(v << 20)
	}
	k, err := kernel.Open(cfg, nil)
	if err != nil {
		panic(err)
	}
	svc, err := sdkapi.NewWith(k, cfg, sdkapi.Options{Session: session.Config{MaxSessionsPerUser: 20, RequestsPerSecond: 1000}})
	if err != nil {
		panic(err)
	}
	var host *pluginhost.Host
	if chatTransport != "" {
		if host, err = pluginhost.New(k, pluginhost.Config{}, nil); err != nil {
			panic(err)
		}
		spec := pluginhost.Spec{ID: chat.ID, Transport: pluginhost.Transport(chatTransport)}
		if spec.Transport == pluginhost.InProcess {
			spec.New = chat.New
		} else {
			spec.Path, spec.Args, spec.Env = os.Args[0], []string{"-test.run=^$"}, append(os.Environ(), "BENCH_CHAT_PLUGIN=1")
		}
		if err := host.Add(spec); err != nil {
			panic(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	k.Start(ctx)
	if host != nil {
		if err := host.Start(ctx); err != nil {
			panic(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	c, key, err := svc.Bootstrap(ctx)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	svc.Mount(mux)
	srv := httptest.NewServer(mux)
	return k, svc, srv, c.AppID, key, func() {
		srv.Close()
		cancel()
		<-done
		if host != nil {
			host.Close()
		}
		k.Close(context.Background(), "bench")
	}
}

// serveSessionsChild is the child process of BenchmarkSessionsIdle.
func serveSessionsChild(dir, chatTransport string) {
	if os.Getenv("BENCH_ALLOCPROFILE") != "" {
		// BenchmarkChat's allocation profile: a sample every 8 KiB allocated
		// rather than 512 KiB, a few per message. (Recording every
		// allocation would slow the kernel too much to measure it.)
		runtime.MemProfileRate = 8 << 10
	}
	k, _, srv, app, key, stop := sessionServer(dir, chatTransport)
	defer stop()
	fmt.Printf("%s %s %s %d\n", srv.URL, app, key, os.Getpid())
	in := bufio.NewReader(os.Stdin)
	for { // "live" asks for the live heap and stacks after a GC; EOF ends the child
		line, err := in.ReadString('\n')
		if err != nil {
			return
		}
		if path, ok := strings.CutPrefix(strings.TrimSpace(line), "profile "); ok { // "profile <file>" starts a CPU profile, "profile stop" ends it
			if path == "stop" {
				pprof.StopCPUProfile()
			} else if f, err := os.Create(path); err == nil {
				pprof.StartCPUProfile(f)
			}
			fmt.Println("ok")
		}
		if path, ok := strings.CutPrefix(strings.TrimSpace(line), "allocs "); ok { // "allocs <file>" writes the allocation profile so far
			if f, err := os.Create(path); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			fmt.Println("ok")
		}
		if strings.TrimSpace(line) == "counts" { // objects and bytes allocated so far, collections, group commits
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			fmt.Println(m.Mallocs, m.TotalAlloc, m.NumGC, commits(k))
		}
		if strings.TrimSpace(line) == "live" {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			fmt.Println(m.HeapInuse + m.StackInuse)
		}
	}
}

func rssKiB(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

type benchClient struct {
	base, app, key string
	http           *http.Client
}

func (c benchClient) post(path, body string, out any) {
	req, _ := http.NewRequest("POST", c.base+path, strings.NewReader(body))
	req.Header.Set("apikey", c.key)
	resp, err := c.http.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
}

// users creates n users and returns an access token for each, 32 at a
// time.
func (c benchClient) users(prefix string, n int) []string {
	toks := make([]string, n)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 32 {
				id := fmt.Sprintf("%s%d", prefix, i)
				c.post("/v2/users", `{"id":"`+id+`"}`, nil)
				var out struct {
					AccessToken string `json:"access_token"`
				}
				c.post("/v2/sdk/credentials", `{"user_id":"`+id+`","expires_in":86400}`, &out)
				toks[i] = out.AccessToken
			}
		}()
	}
	wg.Wait()
	return toks
}

// dialSession connects one session and waits for connect's answer.
func dialSession(ctx context.Context, base, app, user, tok string) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v2/ws", nil)
	if err != nil {
		return nil, err
	}
	wsjson.Write(ctx, c, map[string]any{"id": 1, "method": "connect", "params": map[string]any{"appId": app, "userId": user, "accessToken": tok, "sdkVersion": "3.0.0"}})
	var ans map[string]any
	if err := wsjson.Read(ctx, c, &ans); err != nil || ans["error"] != nil {
		c.CloseNow()
		return nil, fmt.Errorf("connect %s: %v %v", user, err, ans)
	}
	return c, nil
}

// serverChild is a kernel with the session API in a child process, so
// that its memory and CPU are its own.
type serverChild struct {
	pid    int
	client benchClient
	stdin  io.WriteCloser
	out    *bufio.Reader
	cmd    *exec.Cmd
}

// startServerChild starts the child; chatTransport is as for
// sessionServer.
func startServerChild(b *testing.B, chatTransport string) *serverChild {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BENCH_SESSION_SERVER="+b.TempDir(), "BENCH_CHAT="+chatTransport)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(line)
	pid, _ := strconv.Atoi(f[3])
	c := benchClient{base: f[0], app: f[1], key: f[2], http: &http.Client{Timeout: 10 * time.Second}}
	return &serverChild{pid: pid, client: c, stdin: stdin, out: out, cmd: cmd}
}

// live asks the child for its live heap and stacks after a GC, in KiB.
func (s *serverChild) live() float64 {
	fmt.Fprintln(s.stdin, "live")
	l, _ := s.out.ReadString('\n')
	v, _ := strconv.ParseFloat(strings.TrimSpace(l), 64)
	return v / 1024
}

// childCounts are running totals of the child: what it allocated, its
// garbage collections and its event log's group commits.
type childCounts struct{ objects, bytes, gcs, commits uint64 }

func (c childCounts) minus(o childCounts) childCounts {
	return childCounts{c.objects - o.objects, c.bytes - o.bytes, c.gcs - o.gcs, c.commits - o.commits}
}

// counts asks the child for its running totals.
func (s *serverChild) counts() (c childCounts) {
	fmt.Fprintln(s.stdin, "counts")
	l, _ := s.out.ReadString('\n')
	fmt.Sscan(l, &c.objects, &c.bytes, &c.gcs, &c.commits)
	return c
}

// commits is how many group commits k's event log has made.
func commits(k *kernel.Kernel) uint64 {
	families, _ := k.Metrics().Registry.Gather()
	for _, f := range families {
		if f.GetName() == "parley_eventlog_commit_seconds" && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// allocs writes the child's allocation profile so far to path.
func (s *serverChild) allocs(path string) {
	fmt.Fprintln(s.stdin, "allocs "+path)
	s.out.ReadString('\n')
}

// profile starts (path) or stops ("stop") a CPU profile of the child.
func (s *serverChild) profile(path string) {
	fmt.Fprintln(s.stdin, "profile "+path)
	s.out.ReadString('\n')
}

func (s *serverChild) stop() { s.stdin.Close(); s.cmd.Wait() }

// BenchmarkSessionsIdle opens 5,000 idle sessions to a kernel in a child
// process and reports the kernel's memory per session (RSS growth, and the
// live heap and stacks after a GC, which leaves out the GC's headroom) and the
// connect rate (64 concurrent dialers, each connect answered: token checked,
// hub subscription, presence, a durable client.connected event).
func BenchmarkSessionsIdle(b *testing.B) {
	const sessions, perUser, dialers = 5000, 10, 64
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < 2*sessions+1000 {
		b.Skipf("needs %d open files, the limit is %d", 2*sessions+1000, lim.Cur)
	}
	child := startServerChild(b, "")
	defer child.stop()
	live, pid, c := child.live, child.pid, child.client
	toks := c.users("u", sessions/perUser)

	for range b.N {
		time.Sleep(200 * time.Millisecond) // let the child settle before the baseline reading
		before, liveBefore := rssKiB(pid), live()
		conns := make([]*websocket.Conn, sessions)
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, sessions)
		for w := range dialers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < sessions; i += dialers {
					u := i / perUser
					conn, err := dialSession(context.Background(), c.base, c.app, fmt.Sprintf("u%d", u), toks[u])
					if err != nil {
						errs <- err
						return
					}
					conns[i] = conn
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		after, liveAfter := rssKiB(pid), live()
		b.ReportMetric((after-before)/sessions, "KiB-rss/session")
		b.ReportMetric((liveAfter-liveBefore)/sessions, "KiB-live/session")
		b.ReportMetric(sessions/elapsed.Seconds(), "connects/s")
		for _, conn := range conns {
			conn.Close(websocket.StatusNormalClosure, "")
		}
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFanOut measures the time from an append to its delivery on
// 1,000 sessions (100 users, 10 devices each), p50 and p99 over every
// session and event.
func BenchmarkFanOut(b *testing.B) {
	const users, perUser = 100, 10
	k, _, srv, app, key, stop := sessionServer(b.TempDir(), "")
	defer stop()
	c := benchClient{base: srv.URL, app: app, key: key, http: srv.Client()}
	toks := c.users("f", users)
	audience := make([]string, users)
	for i := range audience {
		audience[i] = fmt.Sprintf("f%d", i)
	}
	type arrival struct {
		seq uint64
		at  time.Time
	}
	arrivals := make(chan arrival, users*perUser*4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i := range users * perUser {
		conn, err := dialSession(ctx, srv.URL, app, audience[i/perUser], toks[i/perUser])
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { // reads until ctx ends
			defer wg.Done()
			defer conn.CloseNow()
			for {
				var m struct {
					Event string
					Seq   uint64
				}
				if err := wsjson.Read(ctx, conn, &m); err != nil {
					return
				}
				if m.Event == "bench.fanout" {
					arrivals <- arrival{m.Seq, time.Now()}
				}
			}
		}()
	}
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		sent := time.Now()
		evs, err := k.Log().Append(ctx, eventlog.Draft{Type: "bench.fanout", Stream: "bench/fanout", Company: app, Audience: audience, Payload: payload})
		if err != nil {
			b.Fatal(err)
		}
		for range users * perUser {
			a := <-arrivals
			if a.seq != evs[0].Seq {
				b.Fatalf("seq %d, want %d", a.seq, evs[0].Seq)
			}
			lat = append(lat, a.at.Sub(sent))
		}
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
	b.ReportMetric(float64(users*perUser*b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
