package pluginhost_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/kerneltest"
	"github.com/parleyhq/parley/kernel/pluginhost"
	"github.com/parleyhq/parley/plugins"
)

func TestMain(m *testing.M) {
	servePluginIfAsked()
	serveSealerIfAsked()
	if dir := os.Getenv("CONFORMANCE_KERNEL_DIR"); dir != "" {
		kernelChild(dir)
		return
	}
	os.Exit(m.Run())
}

var testCfg = pluginhost.Config{
	StartTimeout: 5 * time.Second, PingInterval: 200 * time.Millisecond, BackoffInitial: 20 * time.Millisecond,
	CallTimeout: 5 * time.Second, StopTimeout: 2 * time.Second,
}

func spec(tr pluginhost.Transport, mode string) pluginhost.Spec {
	s := pluginhost.Spec{ID: confID, Transport: tr}
	if tr == pluginhost.InProcess {
		s.New = func() plugins.Plugin { return &confPlugin{mode: mode} }
	} else {
		s.Path, s.Args = os.Args[0], []string{"-test.run=^$"}
		s.Env = append(os.Environ(), "CONFORMANCE_PLUGIN_MODE="+mode)
	}
	return s
}

type harness struct {
	t    *testing.T
	dir  string
	k    *kernel.Kernel
	h    *pluginhost.Host
	logs *logBuffer
}

// logBuffer keeps the kernel's log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func start(t *testing.T, dir string, cfg pluginhost.Config, specs ...pluginhost.Spec) *harness {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	var h *pluginhost.Host
	k := kerneltest.Start(t, kerneltest.Config(dir), logger, func(k *kernel.Kernel) {
		var err error
		if h, err = pluginhost.New(k, cfg, logger); err != nil {
			t.Fatal(err)
		}
		for _, s := range specs {
			if err := h.Add(s); err != nil {
				t.Fatal(err)
			}
		}
	})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := &harness{t: t, dir: dir, k: k, h: h, logs: logs}
	t.Cleanup(hs.stop) // before the kernel closes
	return hs
}

func (hs *harness) stop() {
	hs.h.Close()
	hs.k.Close(context.Background(), "test")
}

func (hs *harness) status() pluginhost.Status {
	for _, s := range hs.h.List() {
		if s.ID == confID {
			return s
		}
	}
	hs.t.Fatal("no status")
	return pluginhost.Status{}
}

var eventually = kerneltest.Eventually

func (hs *harness) exec(name, payload string) ([]eventlog.Event, error) {
	return hs.k.Execute(context.Background(), kernel.Command{Name: name, Stream: "conf/s", Actor: "alice", Payload: json.RawMessage(payload)})
}

func (hs *harness) query(name, payload string) (json.RawMessage, error) {
	return hs.k.Query(context.Background(), kernel.Query{Name: name, Company: "acme", Actor: "alice", Payload: json.RawMessage(payload)})
}

// confRoutes are the client routes the conformance manifest asks for.
func confRoutes() []kernel.ClientRoute {
	var want []kernel.ClientRoute
	for _, c := range confManifest.Client {
		want = append(want, kernel.ClientRoute{ClientMethod: c, Query: slices.Contains(confManifest.Queries, c.Name)})
	}
	slices.SortFunc(want, func(a, b kernel.ClientRoute) int { return strings.Compare(a.Name, b.Name) })
	return want
}

func code(err error) kernel.Code {
	var e *kernel.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// caughtUp waits until the plugin's cursor reaches the head.
func (hs *harness) caughtUp() {
	eventually(hs.t, "plugin to catch up", func() bool { return hs.status().Lag == 0 })
}

// applied returns the batches the plugin recorded and every conf.added seq
// in the log.
func (hs *harness) applied() (batches [][]uint64, added []uint64) {
	ctx := context.Background()
	hs.k.Log().ReadStream(ctx, "conf/applied", 1, func(e eventlog.Event) error {
		var p struct{ Seqs []uint64 }
		json.Unmarshal(e.Payload, &p)
		batches = append(batches, p.Seqs)
		return nil
	})
	err := hs.k.Log().Read(ctx, 1, 0, func(e eventlog.Event) error {
		if e.Type == "conf.added" {
			added = append(added, e.Seq)
		}
		return nil
	})
	if err != nil {
		hs.t.Fatal(err)
	}
	return batches, added
}

// checkDelivery asserts every conf.added event was applied, each batch in
// seq order.
func (hs *harness) checkDelivery() {
	hs.t.Helper()
	hs.caughtUp()
	batches, added := hs.applied()
	seen := map[uint64]bool{}
	for _, b := range batches {
		if !slices.IsSorted(b) {
			hs.t.Fatalf("batch out of order: %v", b)
		}
		for _, s := range b {
			seen[s] = true
		}
	}
	for _, s := range added {
		if !seen[s] {
			hs.t.Fatalf("event seq %d never applied (%d events, %d batches)", s, len(added), len(batches))
		}
	}
	if len(seen) != len(added) {
		hs.t.Fatalf("applied %d distinct seqs, %d events exist", len(seen), len(added))
	}
}

var transports = []pluginhost.Transport{pluginhost.InProcess, pluginhost.OutOfProcess}

// TestConformance runs the same checks against both transports.
func TestConformance(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			dir := t.TempDir()
			hs := start(t, dir, testCfg, spec(tr, ""))

			t.Run("command routing", func(t *testing.T) {
				evs, err := hs.exec("conf.add", `{"n":1}`)
				if err != nil || len(evs) != 1 || evs[0].Type != "conf.added" || evs[0].Actor != "alice" || string(evs[0].Payload) != `{"n":1}` {
					t.Fatalf("%v %v", evs, err)
				}
			})
			t.Run("coded errors", func(t *testing.T) {
				_, err := hs.exec("conf.fail", `"x"`)
				if code(err) != "conf_refused" || !strings.Contains(err.Error(), `refused "x"`) {
					t.Fatalf("got %v", err)
				}
			})
			t.Run("queries", func(t *testing.T) {
				ans, err := hs.query("conf.get", `{"n":1}`)
				if err != nil || string(ans) != `{"actor":"alice","asked":{"n":1},"company":"acme"}` {
					t.Fatalf("answer %s, %v", ans, err)
				}
				if _, err := hs.query("conf.nope", `0`); code(err) != kernel.CodeUnknownQuery {
					t.Fatalf("unknown query: %v", err)
				}
				_, err = hs.query("conf.refuse", `"x"`)
				if code(err) != "conf_refused" || err.Error() != `conf_refused: refused "x"` {
					t.Fatalf("coded error: %v", err)
				}
			})
			t.Run("client routes", func(t *testing.T) {
				if got, want := hs.k.ClientRoutes(), confRoutes(); !slices.Equal(got, want) {
					t.Fatalf("routes %+v, want %+v", got, want)
				}
				if r, ok := hs.k.ClientRoute("conf.get"); !ok || !r.Query {
					t.Fatalf("conf.get: %+v %v", r, ok)
				}
				if _, ok := hs.k.ClientRoute("conf.fail"); ok {
					t.Fatal("a command the manifest does not expose is offered to users")
				}
			})
			t.Run("kernel API", func(t *testing.T) {
				evs, err := hs.exec("conf.kv", `{"stored":true}`)
				if err != nil || string(evs[0].Payload) != `{"stored":true}` {
					t.Fatalf("kv: %v %v", evs, err)
				}
				// The plugin appends to conf/applied as deliveries reach it,
				// so the log's length is not fixed here: wait for five.
				eventually(t, "five events in the log", func() bool { return hs.k.Log().Head() >= 5 })
				evs, err = hs.exec("conf.read", `0`)
				if err != nil || string(evs[0].Payload) != "5" {
					t.Fatalf("read: %v %v", evs, err)
				}
			})
			t.Run("permission refusals", func(t *testing.T) {
				for _, name := range []string{"conf.sneak", "conf.shout"} {
					if _, err := hs.exec(name, `0`); code(err) != kernel.CodePermissionDenied {
						t.Errorf("%s: got %v", name, err)
					}
				}
				if !strings.Contains(hs.logs.String(), "does not own stream") {
					t.Error("refusal not in the kernel log")
				}
				if tr == pluginhost.OutOfProcess && !strings.Contains(hs.logs.String(), `msg="plugin stderr" plugin=test.conformance line="conformance plugin started"`) {
					t.Errorf("plugin stderr not in the kernel log, tagged:\n%s", hs.logs)
				}
			})
			t.Run("event delivery in order", func(t *testing.T) {
				for i := range 30 {
					if _, err := hs.exec("conf.add", strconv.Itoa(i)); err != nil {
						t.Fatal(err)
					}
				}
				hs.checkDelivery()
			})
			t.Run("redelivery after a crash", func(t *testing.T) {
				if _, err := hs.exec("conf.panic", `0`); code(err) != kernel.CodeUnavailable {
					t.Fatalf("panic: got %v", err)
				}
				eventually(t, "restart", func() bool { s := hs.status(); return s.Restarts == 1 && s.State == pluginhost.StateRunning })
				for i := range 10 {
					if _, err := hs.exec("conf.add", strconv.Itoa(i)); err != nil {
						t.Fatal(err)
					}
				}
				hs.checkDelivery()
			})
			t.Run("query crashes the plugin", func(t *testing.T) {
				if _, err := hs.query("conf.boom", `0`); code(err) != kernel.CodeUnavailable {
					t.Fatalf("panic: got %v", err)
				}
				eventually(t, "restart", func() bool { s := hs.status(); return s.Restarts == 2 && s.State == pluginhost.StateRunning })
				if _, err := hs.query("conf.get", `0`); err != nil {
					t.Fatal(err)
				}
				if got := hs.k.ClientRoutes(); !slices.Equal(got, confRoutes()) {
					t.Fatalf("routes after a restart %+v", got)
				}
			})
			t.Run("stopped plugin", func(t *testing.T) {
				hs.h.Close() // the kernel keeps serving
				if _, err := hs.query("conf.get", `0`); code(err) != kernel.CodeUnavailable {
					t.Fatalf("query: %v", err)
				}
				if _, err := hs.exec("conf.add", `0`); code(err) != kernel.CodeUnavailable {
					t.Fatalf("command: %v", err)
				}
				if got := hs.k.ClientRoutes(); len(got) != 0 {
					t.Fatalf("a stopped plugin's client methods are offered: %+v", got)
				}
			})
			t.Run("catch-up after restart", func(t *testing.T) {
				hs.stop()
				// Events appended while the plugin is down.
				l, err := eventlog.Open(dir, eventlog.Options{})
				if err != nil {
					t.Fatal(err)
				}
				for i := range 20 {
					l.Append(context.Background(), eventlog.Draft{Type: "conf.added", Stream: "conf/offline", Payload: []byte(strconv.Itoa(i))})
				}
				l.Close()
				hs = start(t, dir, testCfg, spec(tr, ""))
				hs.checkDelivery()
			})
		})
	}
}

// TestKillAborts: an in-process plugin killed after a panic is asked to
// Abort (plugins.Aborter), not to Stop, so that it may keep what its next
// activation takes over; the host's close is a Stop.
func TestKillAborts(t *testing.T) {
	var stops, aborts atomic.Int32
	s := pluginhost.Spec{ID: confID, Transport: pluginhost.InProcess, New: func() plugins.Plugin {
		return &abortingConf{confPlugin: &confPlugin{}, stops: &stops, aborts: &aborts}
	}}
	hs := start(t, t.TempDir(), testCfg, s)
	if _, err := hs.exec("conf.panic", `0`); code(err) != kernel.CodeUnavailable {
		t.Fatalf("panic: got %v", err)
	}
	eventually(t, "restart", func() bool { s := hs.status(); return s.Restarts == 1 && s.State == pluginhost.StateRunning })
	if a, s := aborts.Load(), stops.Load(); a != 1 || s != 0 {
		t.Fatalf("after a kill: %d aborts, %d stops; want 1, 0", a, s)
	}
	hs.h.Close()
	if a, s := aborts.Load(), stops.Load(); a != 1 || s != 1 {
		t.Fatalf("after closing the host: %d aborts, %d stops; want 1, 1", a, s)
	}
}

// TestFailedPluginIsStopped: an in-process Aborter the host gives up on
// (its crash budget spent) is stopped for good: what its aborted
// activation left open for a next one is closed, as no next one comes.
func TestFailedPluginIsStopped(t *testing.T) {
	var stops, aborts atomic.Int32
	s := pluginhost.Spec{ID: confID, Transport: pluginhost.InProcess, New: func() plugins.Plugin {
		return &abortingConf{confPlugin: &confPlugin{}, stops: &stops, aborts: &aborts}
	}}
	hs := start(t, t.TempDir(), testCfg, s)
	for i := range 3 {
		eventually(t, "running", func() bool { s := hs.status(); return s.State == pluginhost.StateRunning && s.Restarts == i })
		if _, err := hs.exec("conf.panic", `0`); code(err) != kernel.CodeUnavailable {
			t.Fatalf("panic %d: %v", i, err)
		}
	}
	eventually(t, "failed", func() bool { return hs.status().State == pluginhost.StateFailed })
	eventually(t, "the last activation stopped", func() bool { return stops.Load() == 1 })
	if a := aborts.Load(); a != 3 {
		t.Fatalf("%d aborts, want 3", a)
	}
}

// TestInProcessStartHangs: an in-process plugin whose constructor,
// Manifest or Start never returns (ignoring its context) holds up neither
// the host's Start (the kernel's boot) nor its Close: each activation ends
// at StartTimeout, and the plugin ends failed, with an error that says
// why.
func TestInProcessStartHangs(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Start", "did not answer Start in time"},
		{"Manifest", "did not answer Manifest in time"},
		{"New", "New did not return in time"},
	} {
		t.Run(c.in, func(t *testing.T) {
			cfg := testCfg
			cfg.StartTimeout = 300 * time.Millisecond
			release := make(chan struct{})
			defer close(release) // the hung calls end with the test
			var stops, aborts atomic.Int32
			s := pluginhost.Spec{ID: confID, Transport: pluginhost.InProcess, New: func() plugins.Plugin {
				if c.in == "New" {
					<-release
				}
				return &hanging{abortingConf{confPlugin: &confPlugin{}, stops: &stops, aborts: &aborts}, c.in, release}
			}}
			hs := start(t, t.TempDir(), cfg, s) // returns: the host's Start did not wait on the hung call
			eventually(t, "failed", func() bool { return hs.status().State == pluginhost.StateFailed })
			if st := hs.status(); !strings.Contains(st.Error, c.want) {
				t.Fatalf("error %q, want %q", st.Error, c.want)
			}
			if a := aborts.Load(); c.in != "New" && a != 3 {
				t.Fatalf("%d aborts, want one per activation (3)", a)
			}
			if err := hs.k.Ready(); err != nil {
				t.Fatalf("kernel not ready: %v", err)
			}
			closesWithin(t, hs.h, 10*time.Second, "the host's Close waits on a hung call")
		})
	}
}

// closesWithin closes h, failing with msg if that takes longer than d.
func closesWithin(t *testing.T, h *pluginhost.Host, d time.Duration, msg string) {
	t.Helper()
	closed := make(chan struct{})
	go func() { h.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(d):
		t.Fatal(msg)
	}
}

// TestCloseDuringAHungStart: the host's Close does not wait out the
// start timeout of an in-process Start that ignores its context.
func TestCloseDuringAHungStart(t *testing.T) {
	cfg := testCfg
	cfg.StartTimeout = time.Minute
	release := make(chan struct{})
	defer close(release)
	var stops, aborts atomic.Int32
	var h *pluginhost.Host
	kerneltest.Start(t, kerneltest.Config(t.TempDir()), nil, func(k *kernel.Kernel) {
		var err error
		if h, err = pluginhost.New(k, cfg, nil); err != nil {
			t.Fatal(err)
		}
		h.Add(pluginhost.Spec{ID: confID, Transport: pluginhost.InProcess, New: func() plugins.Plugin {
			return &hanging{abortingConf{confPlugin: &confPlugin{}, stops: &stops, aborts: &aborts}, "Start", release}
		}})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.Start(ctx); err == nil {
		t.Fatal("the host started a plugin whose Start hangs")
	}
	closesWithin(t, h, 10*time.Second, "the host's Close waits out a hung Start's start timeout")
}

// TestFrozenPluginProcess: a plugin process that stops answering (here
// SIGSTOP: its exit RPC never answers either) is killed, with its process
// group, and restarted; neither that nor the host's Close waits on it.
func TestFrozenPluginProcess(t *testing.T) {
	hs := start(t, t.TempDir(), testCfg, spec(pluginhost.OutOfProcess, ""))
	pid := hs.status().PID
	if pid == 0 {
		t.Fatal("no pid")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() { // not otherwise: the pid, once gone, may be another process's
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	eventually(t, "restarted", func() bool {
		s := hs.status()
		return s.Restarts == 1 && s.State == pluginhost.StateRunning && s.PID != pid
	})
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("the frozen process %d is still there: %v", pid, err)
	}
	closesWithin(t, hs.h, 15*time.Second, "the host's Close is stuck")
}

// TestPluginChildHoldsOutput: a plugin executable that leaves a process
// of its own holding its output open does not keep Inspect (kernel plugin
// install) waiting: the plugin's process group is killed.
func TestPluginChildHoldsOutput(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "plugin.sh")
	// A child that keeps stderr open (its pid in a file), then a handshake
	// to nowhere.
	pidFile := filepath.Join(dir, "child.pid")
	body := "#!/bin/sh\n(sleep 60) &\necho $! > " + pidFile + "\necho '1|1|unix|" + filepath.Join(dir, "nothing") + "|grpc|'\nsleep 60\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := pluginhost.Inspect(context.Background(), script, nil, 2*time.Second)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Inspect of a plugin that does not serve succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Inspect is stuck on the plugin's output")
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// Killed with the plugin's process group (reaped by init, once gone).
	eventually(t, "the plugin's child gone", func() bool {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		return err != nil || strings.Contains(string(st), ") Z ")
	})
}

// TestCallerGivingUpIsNotACrash: a caller that stops waiting for an
// in-process plugin (a REST client gone, a scrape's deadline) gets an
// error, and the plugin is not ended for it: three such calls used to
// count as three crashes and mark a healthy plugin failed.
func TestCallerGivingUpIsNotACrash(t *testing.T) {
	s := pluginhost.Spec{ID: confID, Transport: pluginhost.InProcess, New: func() plugins.Plugin { return &slowConf{confPlugin: &confPlugin{}} }}
	hs := start(t, t.TempDir(), testCfg, s)
	eventually(t, "running", func() bool { return hs.status().State == pluginhost.StateRunning })
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := hs.k.Query(ctx, kernel.Query{Name: "conf.get", Company: "acme", Actor: "alice", Payload: json.RawMessage(`0`)})
		cancel()
		if code(err) != kernel.CodeUnavailable || !strings.Contains(err.Error(), "gave up") {
			t.Fatalf("query %d: %v", i, err)
		}
		ctx, cancel = context.WithCancel(context.Background())
		cancel()
		if _, err := hs.k.Query(ctx, kernel.Query{Name: "conf.get", Company: "acme", Actor: "alice", Payload: json.RawMessage(`0`)}); err == nil {
			t.Fatalf("query %d with a cancelled context answered", i)
		}
	}
	if st := hs.status(); st.State != pluginhost.StateRunning || st.Restarts != 0 {
		t.Fatalf("after callers gave up: %s, %d restarts (%s)", st.State, st.Restarts, st.Error)
	}
	if _, err := hs.query("conf.get", `1`); err != nil {
		t.Fatalf("a patient caller: %v", err)
	}
}

// TestHungCallEndsTheActivation: an in-process call past the host's
// CallTimeout is taken for hung: the caller gets unavailable, and the
// activation ends and restarts.
func TestHungCallEndsTheActivation(t *testing.T) {
	cfg := testCfg
	cfg.CallTimeout = 200 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	s := pluginhost.Spec{ID: confID, Transport: pluginhost.InProcess, New: func() plugins.Plugin {
		return &slowConf{confPlugin: &confPlugin{}, hang: release}
	}}
	hs := start(t, t.TempDir(), cfg, s)
	if _, err := hs.query("conf.get", `0`); code(err) != kernel.CodeUnavailable || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("hung query: %v", err)
	}
	eventually(t, "restarted", func() bool { s := hs.status(); return s.Restarts == 1 && s.State == pluginhost.StateRunning })
}

// TestCallerGivingUpOnAHungCall: a caller whose own deadline comes
// before the host's does not hide a hung plugin: the call ends at the
// host's deadline, and so does the activation.
func TestCallerGivingUpOnAHungCall(t *testing.T) {
	cfg := testCfg
	cfg.CallTimeout = 300 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	p := &slowConf{confPlugin: &confPlugin{}, hang: release}
	s := pluginhost.Spec{ID: confID, Transport: pluginhost.InProcess, New: func() plugins.Plugin { return p }}
	hs := start(t, t.TempDir(), cfg, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan error, 1)
	go func() {
		_, err := hs.k.Query(ctx, kernel.Query{Name: "conf.get", Company: "acme", Actor: "alice", Payload: json.RawMessage(`0`)})
		got <- err
	}()
	eventually(t, "the query in its handler", func() bool { return p.entered.Load() == 1 })
	cancel() // the caller gives up before the host's deadline
	if err := <-got; code(err) != kernel.CodeUnavailable || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("hung query: %v", err)
	}
	eventually(t, "restarted", func() bool { s := hs.status(); return s.Restarts == 1 && s.State == pluginhost.StateRunning })
}

// TestCallerGivingUpKeepsTheStreamSerialised: a command whose caller gave
// up holds its stream until its handler returns: the next command on the
// stream does not run beside it.
func TestCallerGivingUpKeepsTheStreamSerialised(t *testing.T) {
	p := &slowConf{confPlugin: &confPlugin{}}
	s := pluginhost.Spec{ID: confID, Transport: pluginhost.InProcess, New: func() plugins.Plugin { return p }}
	hs := start(t, t.TempDir(), testCfg, s)
	first := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, err := hs.k.Execute(ctx, kernel.Command{Name: "conf.add", Stream: "conf/s", Actor: "alice", Payload: json.RawMessage(`"slow"`)})
		first <- err
	}()
	eventually(t, "the first command in its handler", func() bool { return p.in.Load() == 1 })
	cancel() // its caller gives up
	if _, err := hs.exec("conf.add", `"slow"`); err != nil {
		t.Fatal(err)
	}
	if err := <-first; code(err) != kernel.CodeUnavailable {
		t.Fatalf("the command whose caller gave up: %v", err)
	}
	if n := p.peak.Load(); n != 1 {
		t.Fatalf("%d commands of one stream in the plugin at once", n)
	}
	if v, _ := hs.k.Log().StreamVersion("conf/s"); v != 1 {
		t.Fatalf("the stream holds %d events; want 1 (the command whose caller gave up appends nothing)", v)
	}
	if st := hs.status(); st.Restarts != 0 {
		t.Fatalf("%d restarts", st.Restarts)
	}
}

// TestCallerGivingUpKeepsTheStreamSerialisedOutOfProcess: the same for a
// plugin in its own process: the kernel waits for the plugin's answer to
// a command whose caller gave up before the next command of the stream
// goes to it.
func TestCallerGivingUpKeepsTheStreamSerialisedOutOfProcess(t *testing.T) {
	hs := start(t, t.TempDir(), testCfg, spec(pluginhost.OutOfProcess, ""))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := hs.k.Execute(ctx, kernel.Command{Name: "conf.add", Stream: "conf/s", Actor: "alice", Payload: json.RawMessage(`"slow"`)})
		first <- err
	}()
	eventually(t, "the first command in the plugin", func() bool { return strings.Contains(hs.logs.String(), "conf.add slow begins") })
	cancel() // its caller gives up
	if _, err := hs.exec("conf.add", `"mark"`); err != nil {
		t.Fatal(err)
	}
	if err := <-first; code(err) != kernel.CodeUnavailable {
		t.Fatalf("the command whose caller gave up: %v", err)
	}
	logs := hs.logs.String()
	if ends, mark := strings.Index(logs, "conf.add slow ends"), strings.Index(logs, "conf.add mark"); ends < 0 || mark < ends {
		t.Fatalf("the next command of the stream reached the plugin before the first was done:\n%s", logs)
	}
	if v, _ := hs.k.Log().StreamVersion("conf/s"); v != 1 {
		t.Fatalf("the stream holds %d events; want 1", v)
	}
}

// slowConf answers queries after 200 ms, or gives up when its caller
// does; with hang set it ignores its context and waits for hang. Its
// command conf.add "slow" takes 300 ms whatever its context says, and
// counts how many run at once.
type slowConf struct {
	*confPlugin
	hang     chan struct{}
	in, peak atomic.Int32 // conf.add "slow" running, at most at once
	entered  atomic.Int32 // queries begun
}

func (p *slowConf) HandleCommand(ctx context.Context, cmd plugins.Command) ([]plugins.NewEvent, error) {
	if string(cmd.Payload) == `"slow"` {
		n := p.in.Add(1)
		for {
			m := p.peak.Load()
			if n <= m || p.peak.CompareAndSwap(m, n) {
				break
			}
		}
		defer p.in.Add(-1)
	}
	return p.confPlugin.HandleCommand(ctx, cmd) // 300 ms for "slow"
}

func (p *slowConf) HandleQuery(ctx context.Context, q plugins.Query) (json.RawMessage, error) {
	p.entered.Add(1)
	if p.hang != nil {
		<-p.hang
	}
	select {
	case <-time.After(200 * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return p.confPlugin.HandleQuery(ctx, q)
}

// hanging is a plugin whose Manifest or Start (in) blocks until
// release closes.
type hanging struct {
	abortingConf
	in      string
	release chan struct{}
}

func (p *hanging) Manifest() plugins.Manifest {
	if p.in == "Manifest" {
		<-p.release
	}
	return p.abortingConf.Manifest()
}

func (p *hanging) Start(ctx context.Context, k plugins.Kernel) error {
	if p.in == "Start" {
		<-p.release
	}
	return p.abortingConf.Start(ctx, k)
}

// abortingConf is the conformance plugin with a Stop and an Abort that
// count their calls.
type abortingConf struct {
	*confPlugin
	stops, aborts *atomic.Int32
}

func (p *abortingConf) Stop(context.Context) error  { p.stops.Add(1); return nil }
func (p *abortingConf) Abort(context.Context) error { p.aborts.Add(1); return nil }

// TestCrashBudget: a plugin that keeps crashing is marked failed, an event
// says so, and the kernel keeps serving.
func TestCrashBudget(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			hs := start(t, t.TempDir(), testCfg, spec(tr, ""))
			for i := range 3 {
				eventually(t, "running", func() bool { s := hs.status(); return s.State == pluginhost.StateRunning && s.Restarts == i })
				if _, err := hs.exec("conf.panic", `0`); code(err) != kernel.CodeUnavailable {
					t.Fatalf("panic %d: %v", i, err)
				}
			}
			eventually(t, "failed", func() bool { return hs.status().State == pluginhost.StateFailed })
			if _, err := hs.exec("conf.add", `1`); code(err) != kernel.CodeUnavailable {
				t.Fatalf("command to a failed plugin: %v", err)
			}
			if _, err := hs.query("conf.get", `1`); code(err) != kernel.CodeUnavailable {
				t.Fatalf("query to a failed plugin: %v", err)
			}
			if _, ok := hs.k.ClientRoute("conf.add"); ok {
				t.Fatal("a failed plugin's client methods are offered")
			}
			var failed []string
			hs.k.Log().ReadStream(context.Background(), "plugin/"+confID, 1, func(e eventlog.Event) error {
				failed = append(failed, e.Type)
				return nil
			})
			if failed[len(failed)-1] != "plugin.failed" || strings.Count(strings.Join(failed, ","), "plugin.crashed") != 3 {
				t.Fatalf("plugin events %v", failed)
			}
			if err := hs.k.Ready(); err != nil {
				t.Fatalf("kernel not ready: %v", err)
			}
		})
	}
}

// TestMisbehavingPlugins: each gets a clear error and a failed state; the
// kernel stays up.
func TestMisbehavingPlugins(t *testing.T) {
	cfg := testCfg
	cfg.StartTimeout = 500 * time.Millisecond
	granted := confManifest
	cases := []struct {
		mode, want string
		granted    *plugins.Manifest
	}{
		{"stdout", "Unrecognized remote plugin message", nil},
		{"hang", "timeout", nil},
		{"greedy", "more than it was granted at install: [permission publish]", &granted},
		{"nosy", "more than it was granted at install: [query conf.secret client method conf.secret]", &granted},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			s := spec(pluginhost.OutOfProcess, c.mode)
			s.Granted = c.granted
			hs := start(t, t.TempDir(), cfg, s)
			eventually(t, "failed state", func() bool { return hs.status().State == pluginhost.StateFailed })
			if st := hs.status(); !strings.Contains(st.Error, c.want) {
				t.Fatalf("error %q, want %q", st.Error, c.want)
			}
			if !strings.Contains(hs.logs.String(), "plugin failed") || !strings.Contains(hs.logs.String(), "plugin="+confID) {
				t.Fatalf("no tagged failure in the kernel log:\n%s", hs.logs)
			}
			if err := hs.k.Ready(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestKill9PluginUnderLoad kills the plugin process while events pour in:
// the kernel keeps serving, restarts it, and every event ends up applied.
func TestKill9PluginUnderLoad(t *testing.T) {
	hs := start(t, t.TempDir(), testCfg, spec(pluginhost.OutOfProcess, ""))
	ctx := context.Background()
	const total = 3000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total / 10 {
			drafts := make([]eventlog.Draft, 10)
			for j := range drafts {
				drafts[j] = eventlog.Draft{Type: "conf.added", Stream: fmt.Sprintf("conf/%d", j), Payload: []byte(strconv.Itoa(i))}
			}
			if _, err := hs.k.Log().Append(ctx, drafts...); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	eventually(t, "some progress", func() bool { return hs.status().Cursor > 300 })
	pid := hs.status().PID
	if pid == 0 {
		t.Fatal("no pid")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, "restart", func() bool { s := hs.status(); return s.Restarts >= 1 && s.State == pluginhost.StateRunning })
	if hs.status().PID == pid {
		t.Fatal("same pid after restart")
	}
	wg.Wait()
	hs.checkDelivery()
	_, added := hs.applied()
	if len(added) != total {
		t.Fatalf("%d events appended", len(added))
	}
}

// kernelChild runs a kernel with an out-of-process plugin and prints the
// plugin's pid, for TestNoOrphansWhenKernelDies.
func kernelChild(dir string) {
	kc := kernel.DefaultConfig()
	kc.DataDir = dir
	k, err := kernel.Open(kc, nil)
	if err != nil {
		panic(err)
	}
	h, _ := pluginhost.New(k, testCfg, nil)
	h.Add(spec(pluginhost.OutOfProcess, ""))
	k.Start(context.Background())
	h.Start(context.Background())
	fmt.Println(h.List()[0].PID)
	time.Sleep(time.Hour)
}

func TestNoOrphansWhenKernelDies(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CONFORMANCE_KERNEL_DIR="+t.TempDir())
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid == 0 {
		t.Fatalf("child printed %q", line)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("plugin %d not running: %v", pid, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	eventually(t, "plugin process to die with the kernel", func() bool {
		return syscall.Kill(pid, 0) != nil || isZombie(pid)
	})
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err != nil || strings.Contains(string(b), ") Z ")
}

// TestSlowPluginHoldsUpNobody: a plugin that applies slowly lags behind
// while another catches up and appends go on.
func TestSlowPluginHoldsUpNobody(t *testing.T) {
	slow := pluginhost.Spec{ID: "test.slow", Transport: pluginhost.InProcess, New: func() plugins.Plugin { return slowPlugin{} }}
	hs := start(t, t.TempDir(), testCfg, spec(pluginhost.InProcess, ""), slow)
	ctx := context.Background()
	for i := range 40 {
		drafts := make([]eventlog.Draft, 100)
		for j := range drafts {
			drafts[j] = eventlog.Draft{Type: "conf.added", Stream: "conf/load", Payload: []byte(strconv.Itoa(i))}
		}
		if _, err := hs.k.Log().Append(ctx, drafts...); err != nil {
			t.Fatal(err)
		}
	}
	hs.caughtUp()
	var slowLag uint64
	for _, s := range hs.h.List() {
		if s.ID == "test.slow" {
			slowLag = s.Lag
		}
	}
	if slowLag == 0 {
		t.Fatal("the slow plugin kept up: the test proves nothing")
	}
	eventually(t, "the slow plugin to catch up too", func() bool {
		for _, s := range hs.h.List() {
			if s.ID == "test.slow" {
				return s.Lag == 0
			}
		}
		return false
	})
}

// TestRefusedBatchIsRedeliveredNotACrash: a plugin returning an error from
// ApplyEvents gets the same batch again and is not restarted.
func TestRefusedBatchIsRedeliveredNotACrash(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			hs := start(t, t.TempDir(), testCfg, spec(tr, "flaky"))
			for i := range 5 {
				if _, err := hs.exec("conf.add", strconv.Itoa(i)); err != nil {
					t.Fatal(err)
				}
			}
			hs.checkDelivery()
			if s := hs.status(); s.Restarts != 0 || s.State != pluginhost.StateRunning {
				t.Fatalf("status %+v", s)
			}
			if !strings.Contains(hs.logs.String(), "plugin refused a batch") {
				t.Fatal("refusals not logged")
			}
		})
	}
}

// copycat declares an event type the conformance plugin already declared.
type copycat struct{}

func (copycat) Manifest() plugins.Manifest {
	return plugins.Manifest{
		ID: "test.copycat", Version: "1", Protocol: plugins.ProtocolVersion,
		Events: []plugins.EventType{{Name: "conf.added", Durable: true}}, Streams: []string{"copy/"},
	}
}

// TestEventTypesAreOwned: a plugin cannot declare another plugin's types.
func TestEventTypesAreOwned(t *testing.T) {
	cc := pluginhost.Spec{ID: "test.copycat", Transport: pluginhost.InProcess, New: func() plugins.Plugin { return copycat{} }}
	hs := start(t, t.TempDir(), testCfg, spec(pluginhost.InProcess, ""), cc)
	// The two are admitted in parallel: exactly one owns conf.added,
	// whichever claims it first; the other fails for good.
	var failed []pluginhost.Status
	eventually(t, "one of the two fails", func() bool {
		failed = failed[:0]
		for _, s := range hs.h.List() {
			if s.State == pluginhost.StateFailed {
				failed = append(failed, s)
			}
		}
		return len(failed) > 0
	})
	if len(failed) != 1 || !strings.Contains(failed[0].Error, "already declared") {
		t.Fatalf("status %+v", hs.h.List())
	}
}

// streamsPlugin only declares stream prefixes.
type streamsPlugin struct{ id, prefix string }

func (p streamsPlugin) Manifest() plugins.Manifest {
	return plugins.Manifest{ID: p.id, Version: "1", Protocol: plugins.ProtocolVersion, Streams: []string{p.prefix},
		Permissions: []plugins.Permission{plugins.PermAppend, plugins.PermKeys}}
}

// TestStreamPrefixesAreExclusive: a plugin asking for a stream prefix
// that overlaps another plugin's (and so could write its streams or erase
// its keys) fails to start; disjoint prefixes run side by side.
func TestStreamPrefixesAreExclusive(t *testing.T) {
	mk := func(id, prefix string) pluginhost.Spec {
		return pluginhost.Spec{ID: id, Transport: pluginhost.InProcess, New: func() plugins.Plugin { return streamsPlugin{id, prefix} }}
	}
	hs := start(t, t.TempDir(), testCfg, mk("test.owner", "chat/"), mk("test.squatter", "chat/acme/"), mk("test.neighbour", "chatter/"))
	state := func(id string) pluginhost.Status {
		for _, s := range hs.h.List() {
			if s.ID == id {
				return s
			}
		}
		return pluginhost.Status{}
	}
	eventually(t, "the plugins settle", func() bool {
		return state("test.neighbour").State == pluginhost.StateRunning &&
			(state("test.owner").State == pluginhost.StateFailed || state("test.squatter").State == pluginhost.StateFailed)
	})
	owner, squatter := state("test.owner"), state("test.squatter")
	if (owner.State == pluginhost.StateRunning) == (squatter.State == pluginhost.StateRunning) {
		t.Fatalf("owner %s, squatter %s: exactly one may hold the overlapping prefixes", owner.State, squatter.State)
	}
	failed := owner
	if owner.State == pluginhost.StateRunning {
		failed = squatter
	}
	if !strings.Contains(failed.Error, "overlaps") {
		t.Fatalf("error %q", failed.Error)
	}
}

// expectPlugin keeps the kernel API it is started with.
type expectPlugin struct{ k chan plugins.Kernel }

func (expectPlugin) Manifest() plugins.Manifest {
	return plugins.Manifest{ID: "test.expect", Version: "1", Protocol: plugins.ProtocolVersion, Streams: []string{"ex/"},
		Events: []plugins.EventType{{Name: "ex.done", Durable: true}}, Permissions: []plugins.Permission{plugins.PermAppend}}
}

func (p expectPlugin) Start(_ context.Context, k plugins.Kernel) error { p.k <- k; return nil }

// TestAppendWithExpectedVersion: a plugin's own append can require its
// stream's version, and is refused with conflict, appending nothing, when
// another event got there first.
func TestAppendWithExpectedVersion(t *testing.T) {
	p := expectPlugin{k: make(chan plugins.Kernel, 1)}
	hs := start(t, t.TempDir(), testCfg, pluginhost.Spec{ID: "test.expect", Transport: pluginhost.InProcess, New: func() plugins.Plugin { return p }})
	k := <-p.k
	ctx := context.Background()
	appendAt := func(v uint64) error {
		_, err := k.Append(ctx, []plugins.NewEvent{{Type: "ex.done", Stream: "ex/1", Company: "acme", Expect: &v}})
		return err
	}
	if err := appendAt(0); err != nil {
		t.Fatal(err)
	}
	if err := appendAt(0); plugins.AsCoded(err).Code != plugins.CodeConflict {
		t.Fatalf("a stale expectation: %v", err)
	}
	if err := appendAt(1); err != nil {
		t.Fatal(err)
	}
	if v, _ := hs.k.Log().StreamVersion("ex/1"); v != 2 {
		t.Fatalf("version %d, want 2: the refused append must add nothing", v)
	}
}
