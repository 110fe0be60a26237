package pluginhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/parleyhq/parley/plugins"
)

// conn is one activation of a plugin, whatever the transport. When the
// activation dies (a process exit, an in-process panic) Exited closes and
// every call fails with code unavailable.
type conn interface {
	Manifest(ctx context.Context) (plugins.Manifest, error)
	Start(ctx context.Context, api plugins.Kernel) error
	Stop(ctx context.Context) error
	Ping(ctx context.Context) error
	HandleCommand(ctx context.Context, cmd plugins.Command) ([]plugins.NewEvent, error)
	HandleQuery(ctx context.Context, q plugins.Query) (json.RawMessage, error)
	ApplyEvents(ctx context.Context, evs []plugins.Event) error
	Kill()
	Exited() <-chan struct{}
	PID() int
}

// inproc runs a plugin value in the kernel's process. A panic in the
// plugin ends the activation, as a crash of a plugin process would.
type inproc struct {
	p        plugins.Plugin
	once     sync.Once
	exited   chan struct{}
	stopping atomic.Bool // Stop runs: Kill must not stop the plugin again
	logger   *slog.Logger
}

func newInproc(p plugins.Plugin, logger *slog.Logger) *inproc {
	return &inproc{p: p, exited: make(chan struct{}), logger: logger}
}

var _ conn = (*inproc)(nil)

func (c *inproc) dead() error {
	select {
	case <-c.exited:
		return plugins.Errorf(plugins.CodeUnavailable, "plugin is not running")
	default:
		return nil
	}
}

// guard turns a panic into the end of the activation and an error.
func (c *inproc) guard(what string, err *error) {
	if p := recover(); p != nil {
		c.logger.Error("plugin panicked", "in", what, "panic", p, "stack", string(debug.Stack()))
		c.Kill()
		*err = plugins.Errorf(plugins.CodeUnavailable, "plugin crashed in %s: %v", what, p)
	}
}

func (c *inproc) Manifest(ctx context.Context) (plugins.Manifest, error) {
	return call(ctx, c, "Manifest", func() (plugins.Manifest, error) { return c.p.Manifest(), nil })
}

// construct makes an in-process plugin (Spec.New) within ctx's deadline:
// a constructor that hangs or panics fails the activation, not the host.
func construct(ctx context.Context, newPlugin func() plugins.Plugin) (plugins.Plugin, error) {
	type result struct {
		p   plugins.Plugin
		err error
	}
	done := make(chan result, 1)
	go func() { // answers on done; outlives construct only if New hangs
		var r result
		defer func() {
			if p := recover(); p != nil {
				r.err = fmt.Errorf("New panicked: %v", p)
			}
			done <- r
		}()
		r.p = newPlugin()
	}()
	select {
	case r := <-done:
		return r.p, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("New did not return in time: %w", context.Cause(ctx))
	}
}

// Start is bounded by ctx (the host's StartTimeout) as a command is: a
// Start that hangs ends the activation, so that neither the kernel's boot
// nor its shutdown waits on it.
func (c *inproc) Start(ctx context.Context, api plugins.Kernel) error {
	s, ok := c.p.(plugins.Starter)
	if !ok {
		return nil
	}
	_, err := call(ctx, c, "Start", func() (struct{}, error) { return struct{}{}, s.Start(ctx, api) })
	return err
}

func (c *inproc) Stop(ctx context.Context) (err error) {
	c.stopping.Store(true)
	defer c.guard("Stop", &err)
	defer c.Kill()
	if s, ok := c.p.(plugins.Stopper); ok {
		return s.Stop(ctx)
	}
	return nil
}

func (c *inproc) Ping(context.Context) error { return c.dead() }

func (c *inproc) HandleCommand(ctx context.Context, cmd plugins.Command) ([]plugins.NewEvent, error) {
	if err := c.dead(); err != nil {
		return nil, err
	}
	h, ok := c.p.(plugins.CommandHandler)
	if !ok {
		return nil, plugins.Errorf(plugins.CodeInternal, "plugin handles no commands")
	}
	return call(ctx, c, "HandleCommand", func() ([]plugins.NewEvent, error) { return h.HandleCommand(ctx, cmd) })
}

func (c *inproc) HandleQuery(ctx context.Context, q plugins.Query) (json.RawMessage, error) {
	if err := c.dead(); err != nil {
		return nil, err
	}
	h, ok := c.p.(plugins.QueryHandler)
	if !ok {
		return nil, plugins.Errorf(plugins.CodeInternal, "plugin answers no queries")
	}
	return call(ctx, c, "HandleQuery", func() (json.RawMessage, error) { return h.HandleQuery(ctx, q) })
}

func (c *inproc) ApplyEvents(ctx context.Context, evs []plugins.Event) error {
	if err := c.dead(); err != nil {
		return err
	}
	a, ok := c.p.(plugins.EventApplier)
	if !ok {
		return nil
	}
	_, err := call(ctx, c, "ApplyEvents", func() (struct{}, error) { return struct{}{}, a.ApplyEvents(ctx, evs) })
	return err
}

// call runs fn with the same promise a process gives: an answer by the
// host's deadline (withDeadline, forCaller; without one, ctx's), or the
// activation ends. A plugin that never returns keeps its goroutine:
// in-process plugins are the kernel's own, trusted code. The result
// travels on a channel, so a late answer races with nothing.
func call[T any](ctx context.Context, c *inproc, what string, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, gaveUp(ctx, what)
	}
	done := make(chan result, 1)
	go func() { // answers on done; outlives the call only if the plugin hangs
		var r result
		defer func() { done <- r }()
		defer c.guard(what, &r.err)
		r.v, r.err = fn()
	}()
	// The host's deadline, not the caller's, decides that the plugin
	// hangs. For a command or a query (forCaller), a caller that gives up
	// first (a client gone, the kernel stopping) cancels fn's context,
	// and the call still waits for fn to return, up to the host's
	// deadline: a command's stream stays serialised until its handler is
	// done. The host's own calls (withDeadline: Start, ApplyEvents) end
	// when the host cancels them.
	late := ctx.Done()
	hd, ok := ctx.Value(hostDeadline{}).(deadline)
	if ok && hd.patient {
		hctx, cancel := context.WithDeadline(context.Background(), hd.at) // the caller's cancellation is not the host's
		defer cancel()
		late = hctx.Done()
	}
	hung := func() bool { return !ok || !time.Now().Before(hd.at) }
	select {
	case r := <-done:
		if r.err != nil && ctx.Err() != nil && (errors.Is(r.err, context.Canceled) || errors.Is(r.err, context.DeadlineExceeded)) {
			if hung() {
				return zero, c.late(what) // it gave up at the host's deadline: as late as not answering
			}
			return zero, gaveUp(ctx, what)
		}
		return r.v, r.err
	case <-late:
		if !hung() {
			return zero, gaveUp(ctx, what) // the host stopping
		}
		return zero, c.late(what)
	}
}

// late ends the activation of a plugin that did not answer what by the
// host's deadline, and returns the caller's error.
func (c *inproc) late(what string) error {
	c.logger.Error("plugin did not answer in time; ending the activation", "call", what)
	c.Kill()
	return plugins.Errorf(plugins.CodeUnavailable, "plugin did not answer %s in time", what)
}

// hostDeadline keys, in a call's context, the host's own deadline for it
// (CallTimeout, StartTimeout): a call past it is taken for hung, and the
// activation ends. A caller's earlier deadline or cancellation is not.
type hostDeadline struct{}

type deadline struct {
	at      time.Time
	patient bool // wait for the plugin past the caller's giving up (forCaller)
}

// withDeadline is ctx with the host's deadline d, for a call the host
// makes of its own (Start, ApplyEvents).
func withDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return deadlined(ctx, d, false)
}

// forCaller is ctx with the host's deadline d, for a command or a query
// made on a caller's behalf.
func forCaller(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return deadlined(ctx, d, true)
}

func deadlined(ctx context.Context, d time.Duration, patient bool) (context.Context, context.CancelFunc) {
	at := time.Now().Add(d)
	ctx, cancel := context.WithDeadline(ctx, at)
	return context.WithValue(ctx, hostDeadline{}, deadline{at, patient}), cancel
}

// gaveUp is the error of a call its caller gave up on.
func gaveUp(ctx context.Context, what string) error {
	return plugins.Errorf(plugins.CodeUnavailable, "%s: the caller gave up waiting: %v", what, context.Cause(ctx))
}

// Kill ends the activation. A process would take its goroutines with it;
// an in-process plugin killed after a panic or a hang is asked to Abort,
// or else to Stop (for at most killStop, its panics recovered), so that
// goroutines of its own (timers, schedulers) end too.
func (c *inproc) Kill() {
	c.once.Do(func() {
		close(c.exited)
		if c.stopping.Load() {
			return
		}
		var s plugins.Stopper
		if a, ok := c.p.(plugins.Aborter); ok {
			s = aborting{a}
		} else if s, ok = c.p.(plugins.Stopper); !ok {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), killStop)
		defer cancel()
		done := make(chan struct{})
		go func() { // outlives Kill only if the plugin's Stop hangs, as a hung call does
			defer close(done)
			defer func() {
				if p := recover(); p != nil {
					c.logger.Error("plugin panicked in Stop after being killed", "panic", p)
				}
			}()
			if err := s.Stop(ctx); err != nil {
				c.logger.Warn("stopping a killed plugin", "err", err)
			}
		}()
		select {
		case <-done:
		case <-ctx.Done():
			c.logger.Error("a killed plugin did not stop in time")
		}
	})
}

// aborting is an Aborter's Abort, called as a Stop.
type aborting struct{ plugins.Aborter }

func (a aborting) Stop(ctx context.Context) error { return a.Abort(ctx) }

// killStop bounds the Stop of a killed in-process plugin.
const killStop = time.Second

func (c *inproc) Exited() <-chan struct{} { return c.exited }
func (c *inproc) PID() int                { return 0 }

// process runs a plugin executable through go-plugin (gRPC, AutoMTLS).
type process struct {
	*plugins.Remote
	client   *plugin.Client
	cmd      *exec.Cmd
	logger   *slog.Logger
	exited   chan struct{} // closed once the process is gone (or given up on: Kill)
	abandon  chan struct{} // Kill gave up waiting for go-plugin to see the end
	once     sync.Once
	exitOnce sync.Once
}

var _ conn = (*process)(nil)

// launch starts an executable, completes the handshake and dispenses the
// plugin. checksum, when set, is the SHA-256 the binary must have.
func launch(path string, args []string, env []string, checksum []byte, startTimeout time.Duration, logger *slog.Logger) (*process, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	// The plugin dies with the kernel, even on kill -9 of the kernel. It
	// leads a process group of its own, with what it starts, which a kill
	// takes down whole (stopProcess).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  plugins.Handshake,
		VersionedPlugins: plugins.VersionedPlugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     startTimeout,
		// The plugin's own stderr (runtime panics, anything before Serve)
		// and, once it serves, its os.Stderr and os.Stdout forwarded by
		// go-plugin: every line lands in the kernel's log with the plugin id.
		Stderr:     &lineLogger{logger: logger, msg: "plugin stderr"},
		SyncStderr: &lineLogger{logger: logger, msg: "plugin stderr"},
		SyncStdout: &lineLogger{logger: logger, msg: "plugin stdout"},
		Logger:     hclog.New(&hclog.LoggerOptions{Level: hclog.Off, Output: io.Discard}),
	}
	if checksum != nil {
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: checksum, Hash: sha256.New()}
	}
	client := plugin.NewClient(cfg)
	rpc, err := client.Client()
	if err != nil {
		stopProcess(client, cmd, logger)
		err = fmt.Errorf("start %s: %w", path, err)
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) { // restarting will not change the file
			err = permanentError{fmt.Errorf("%w: the binary changed since it was installed; reinstall it to accept the new one", err)}
		}
		return nil, err
	}
	raw, err := rpc.Dispense("parley")
	if err != nil {
		stopProcess(client, cmd, logger)
		return nil, fmt.Errorf("dispense %s: %w", path, err)
	}
	p := &process{Remote: raw.(*plugins.Remote), client: client, cmd: cmd, logger: logger, exited: make(chan struct{}), abandon: make(chan struct{})}
	go p.watch() // owned by p: ends when the process exits or Kill gives up on it
	return p, nil
}

// watch closes exited when go-plugin has seen the process end.
func (p *process) watch() {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !p.client.Exited() {
		select {
		case <-t.C:
		case <-p.abandon:
			return
		}
	}
	p.exitOnce.Do(func() { close(p.exited) })
}

// Kill ends the process (stopProcess) and returns once it is gone, at
// most killGrace + killWait later.
func (p *process) Kill() {
	p.once.Do(func() {
		if !stopProcess(p.client, p.cmd, p.logger) {
			close(p.abandon)
			p.exitOnce.Do(func() { close(p.exited) })
		}
	})
	<-p.exited
}

// How long stopProcess waits for go-plugin's Kill (a graceful exit, then
// SIGKILL to the plugin) before it kills the plugin's process group, and
// then for the end of the plugin's output.
const (
	killGrace = 3 * time.Second
	killWait  = 3 * time.Second
)

// stopProcess ends a plugin process with go-plugin's Kill, which asks it
// to exit and kills it after 2 s, and returns once go-plugin has read the
// end of the process's output. A process that is frozen (its exit RPC
// never answers), or that started others holding its output open, would
// keep that Kill waiting for ever: after killGrace the whole process
// group gets SIGKILL, and after killWait more stopProcess gives up
// waiting (false), logging why.
func stopProcess(client *plugin.Client, cmd *exec.Cmd, logger *slog.Logger) bool {
	done := make(chan struct{})
	go func() { // outlives stopProcess only if a process outside the plugin's group holds its output open
		defer close(done)
		client.Kill()
	}()
	select {
	case <-done:
		return true
	case <-time.After(killGrace):
	}
	if cmd.Process != nil {
		logger.Warn("plugin process did not end; killing its process group", "pid", cmd.Process.Pid)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-done:
		return true
	case <-time.After(killWait):
		logger.Error("plugin process: its output is still open after SIGKILL to its process group (held by a process that left the group?); not waiting any longer")
		return false
	}
}

// HandleCommand is the plugin's, but it waits for the plugin's answer
// past its caller's giving up, up to the host's deadline, as an
// in-process call does: the command's stream stays serialised until the
// plugin is done with it. (The plugin's context is not cancelled then.)
func (p *process) HandleCommand(ctx context.Context, cmd plugins.Command) ([]plugins.NewEvent, error) {
	hd, ok := ctx.Value(hostDeadline{}).(deadline)
	if !ok || !hd.patient {
		return p.Remote.HandleCommand(ctx, cmd)
	}
	pctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), hd.at)
	defer cancel()
	evs, err := p.Remote.HandleCommand(pctx, cmd)
	if ctx.Err() != nil && time.Now().Before(hd.at) {
		return nil, gaveUp(ctx, "HandleCommand")
	}
	return evs, err
}

func (p *process) Exited() <-chan struct{} { return p.exited }

func (p *process) PID() int {
	if p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// maxLine is the longest line kept whole from a plugin's output.
const maxLine = 64 << 10

// lineLogger logs each line a plugin writes, tagged with its id.
type lineLogger struct {
	logger *slog.Logger
	msg    string
	mu     sync.Mutex
	buf    []byte
}

func (l *lineLogger) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	consumed := 0
	for {
		i := bytes.IndexByte(l.buf[consumed:], '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSpace(l.buf[consumed : consumed+i])
		if len(line) > 0 {
			l.logger.Info(l.msg, "line", string(line))
		}
		consumed += i + 1
	}
	l.buf = append(l.buf[:0], l.buf[consumed:]...)
	if len(l.buf) > maxLine { // a plugin writing without newlines must not grow the kernel
		l.logger.Info(l.msg, "line", string(l.buf), "truncated", true)
		l.buf = l.buf[:0]
	}
	return len(b), nil
}
