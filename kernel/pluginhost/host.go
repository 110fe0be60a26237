package pluginhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/plugins"
	"github.com/prometheus/client_golang/prometheus"
)

// Transport says how a plugin runs.
type Transport string

// The transports.
const (
	InProcess    Transport = "inproc"  // a Go value in the kernel's process
	OutOfProcess Transport = "process" // an executable through go-plugin (gRPC)
)

// Spec is a plugin to run.
type Spec struct {
	ID        string
	Transport Transport
	// New returns the plugin value (InProcess).
	New func() plugins.Plugin
	// Path, Args and Env start the executable (OutOfProcess).
	Path string
	Args []string
	Env  []string
	// Checksum is the SHA-256 the executable must have (external plugins,
	// pinned at install); nil for the kernel binary itself.
	Checksum []byte
	// Granted is what the operator allowed at install. nil (built-ins)
	// grants what the plugin's manifest asks for.
	Granted *plugins.Manifest
}

// Config tunes supervision. Zero values take the defaults.
type Config struct {
	StartTimeout   time.Duration // launch, handshake and Start (default 10 s)
	CallTimeout    time.Duration // one command, query or event batch (default 10 s)
	PingInterval   time.Duration // health pings (default 5 s)
	StopTimeout    time.Duration // Stop before kill (default 3 s)
	BackoffInitial time.Duration // first restart delay (default 200 ms), doubling
	BackoffMax     time.Duration // (default 30 s)
	CrashBudget    int           // crashes within CrashWindow that mark the plugin failed (default 3)
	CrashWindow    time.Duration // (default 60 min)
	BatchSize      int           // events per ApplyEvents (default 512)
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.StartTimeout, 10*time.Second)
	def(&c.CallTimeout, 10*time.Second)
	def(&c.PingInterval, 5*time.Second)
	def(&c.StopTimeout, 3*time.Second)
	def(&c.BackoffInitial, 200*time.Millisecond)
	def(&c.BackoffMax, 30*time.Second)
	def(&c.CrashWindow, time.Hour)
	if c.CrashBudget <= 0 {
		c.CrashBudget = 3
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 512
	}
	return c
}

// State is a plugin's lifecycle state.
type State string

// The states.
const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateBackoff  State = "backoff" // crashed, waiting to restart
	StateStopping State = "stopping"
	StateFailed   State = "failed" // crash budget spent or a permanent error; not restarted
	StateStopped  State = "stopped"
)

// Status is what `kernel plugin list` shows of a plugin.
type Status struct {
	ID        string    `json:"id"`
	Version   string    `json:"version"`
	Transport Transport `json:"transport"`
	State     State     `json:"state"`
	Restarts  int       `json:"restarts"`
	Cursor    uint64    `json:"cursor"`
	Lag       uint64    `json:"lag"`
	PID       int       `json:"pid,omitempty"`
	Error     string    `json:"error,omitempty"`
}

// Event types the host records, in stream plugin/<id>.
var eventTypes = []kernel.EventType{
	{Name: "plugin.started", Durable: true, Doc: "a plugin activation started (payload: id, version, transport, pid)"},
	{Name: "plugin.crashed", Durable: true, Doc: "a plugin activation ended unexpectedly (payload: id, error, restarts)"},
	{Name: "plugin.failed", Durable: true, Doc: "a plugin is marked failed and no longer restarted (payload: id, error)"},
	{Name: "plugin.stopped", Durable: true, Doc: "a plugin was stopped by the kernel (payload: id)"},
}

// Host runs plugins for a kernel: it routes their commands and queries,
// offers their client methods, delivers their events from durable cursors,
// serves their kernel API and supervises them.
type Host struct {
	k      *kernel.Kernel
	cfg    Config
	logger *slog.Logger

	mu       sync.Mutex
	plugins  map[string]*managed
	prefixes map[string]string // granted stream prefix -> the plugin that holds it
	started  bool
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc

	restarts *prometheus.CounterVec
}

// claimStreams gives plugin id its stream prefixes, refusing one that
// overlaps another plugin's: streams, and the company keys named after
// them (NewEvent.Seal, EraseKey), belong to one plugin, as event types
// do, so no plugin can write into, or erase, another's.
func (h *Host) claimStreams(id string, prefixes []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range prefixes {
		for q, owner := range h.prefixes {
			if owner != id && (strings.HasPrefix(p, q) || strings.HasPrefix(q, p)) {
				return fmt.Errorf("stream prefix %q overlaps %q, which plugin %s holds", p, q, owner)
			}
		}
	}
	for _, p := range prefixes {
		h.prefixes[p] = id
	}
	return nil
}

// New returns a host for k. Add plugins, then Start.
func New(k *kernel.Kernel, cfg Config, logger *slog.Logger) (*Host, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := k.EventTypes().Declare(eventTypes...); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Host{
		k: k, cfg: cfg.withDefaults(), logger: logger, plugins: map[string]*managed{}, prefixes: map[string]string{}, ctx: ctx, cancel: cancel,
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_plugin_restarts_total", Help: "Plugin activations restarted after a crash."}, []string{"plugin"}),
	}
	reg := k.Metrics().Registry
	for _, c := range []prometheus.Collector{h.restarts, statusCollector{h}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Add registers a plugin, before Start.
func (h *Host) Add(spec Spec) error {
	if spec.ID == "" {
		return errors.New("pluginhost: spec without id")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.plugins[spec.ID]; ok {
		return fmt.Errorf("pluginhost: plugin %s added twice", spec.ID)
	}
	if h.started {
		return fmt.Errorf("pluginhost: plugin %s added after Start", spec.ID)
	}
	m := &managed{h: h, id: spec.ID, spec: spec, state: StateStopped, logger: h.logger.With("plugin", spec.ID)}
	h.plugins[spec.ID] = m
	return nil
}

// Start runs every added plugin under supervision and waits until each is
// running, failed, or ctx ends.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	if h.started {
		h.mu.Unlock()
		return errors.New("pluginhost: started twice")
	}
	h.started = true
	ms := make([]*managed, 0, len(h.plugins))
	for _, m := range h.plugins {
		ms = append(ms, m)
	}
	h.mu.Unlock()
	for _, m := range ms {
		m.ready = make(chan struct{})
		h.wg.Add(1)
		go func() { // owned by the host: Close cancels h.ctx and waits
			defer h.wg.Done()
			m.supervise(h.ctx)
		}()
	}
	for _, m := range ms {
		select {
		case <-m.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close stops every plugin (Stop with a deadline, then kill) and waits.
func (h *Host) Close() {
	h.cancel()
	h.wg.Wait()
}

// List returns the status of every plugin, sorted by id.
func (h *Host) List() []Status {
	h.mu.Lock()
	ms := make([]*managed, 0, len(h.plugins))
	for _, m := range h.plugins {
		ms = append(ms, m)
	}
	h.mu.Unlock()
	out := make([]Status, 0, len(ms))
	head := h.k.Log().Head()
	for _, m := range ms {
		out = append(out, m.status(head))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// coded maps log errors to plugin-contract errors.
func (h *Host) coded(err error) error {
	if err == nil {
		return nil
	}
	return kernel.AsError(err)
}

// managed is one supervised plugin.
type managed struct {
	h      *Host
	id     string
	spec   Spec
	logger *slog.Logger
	ready  chan struct{} // closed at the first running or failed state
	once   sync.Once

	mu       sync.Mutex
	state    State
	conn     conn
	manifest plugins.Manifest
	granted  *plugins.Manifest
	restarts int
	crashes  []time.Time
	lastErr  string
	routed   bool     // commands, queries and event types registered with the kernel
	exposed  []string // client methods offered through the kernel until the plugin ends for good
	// aborted are the in-process activations killed since the last that
	// started, whose plugins are Aborters: they may have left something
	// open for the next activation (plugins.Aborter), and are stopped for
	// good if none takes over.
	aborted []conn
}

// kill ends activation c; an aborted one (plugins.Aborter) is noted, for
// a Stop if no next activation takes over.
func (m *managed) kill(c conn) {
	c.Kill()
	if ic, ok := c.(*inproc); ok {
		if _, ok := ic.p.(plugins.Aborter); ok {
			m.mu.Lock()
			m.aborted = append(m.aborted, c)
			m.mu.Unlock()
		}
	}
}

// takenOver forgets the aborted activations: a new one started, and took
// over what they left. finish stops them instead, when no new one will.
func (m *managed) takenOver() { m.mu.Lock(); m.aborted = nil; m.mu.Unlock() }

func (m *managed) finish() {
	m.mu.Lock()
	aborted := m.aborted
	m.aborted = nil
	m.mu.Unlock()
	for _, a := range aborted {
		m.stop(a)
	}
}

func (m *managed) actor() string { return "plugin:" + m.id }

// grant returns the manifest the plugin was granted (nil before admit).
func (m *managed) grant() *plugins.Manifest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.granted
}

func (m *managed) cursorName() string { return "plugin/" + m.id }

func (m *managed) status(head uint64) Status {
	cur, _ := m.h.k.Log().Cursor(m.cursorName())
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Status{
		ID: m.id, Version: m.manifest.Version, Transport: m.spec.Transport, State: m.state,
		Restarts: m.restarts, Cursor: cur, Lag: head - min(head, cur), Error: m.lastErr,
	}
	if m.conn != nil && m.state == StateRunning {
		s.PID = m.conn.PID()
	}
	return s
}

func (m *managed) setState(s State, err error) {
	if s == StateStopped || s == StateFailed {
		m.withdraw() // before anyone sees the state
	}
	m.mu.Lock()
	m.state = s
	if err != nil {
		m.lastErr = err.Error()
	}
	m.mu.Unlock()
	if s == StateRunning || s == StateFailed {
		m.once.Do(func() { close(m.ready) })
	}
}

// record appends one of the host's events about this plugin.
func (m *managed) record(typ string, fields map[string]any) {
	fields["id"] = m.id
	p, _ := json.Marshal(fields)
	if _, err := m.h.k.Log().Append(context.Background(), eventlog.Draft{Type: typ, Stream: "plugin/" + m.id, Actor: "kernel", Payload: p}); err != nil {
		m.logger.Error("recording plugin event", "type", typ, "err", err)
	}
}

// permanentError is a start failure that restarting cannot fix.
type permanentError struct{ error }

// supervise runs activations until the host closes or the plugin fails.
func (m *managed) supervise(ctx context.Context) {
	defer m.finish()
	backoff := m.h.cfg.BackoffInitial
	for {
		m.setState(StateStarting, nil)
		c, err := m.activate(ctx)
		if ctx.Err() != nil {
			if c != nil {
				m.setState(StateStopping, nil)
				m.stop(c)
			}
			m.setState(StateStopped, nil)
			return
		}
		if err == nil {
			m.logger.Info("plugin running", "transport", m.spec.Transport, "pid", c.PID())
			m.record("plugin.started", map[string]any{"version": m.manifest.Version, "transport": m.spec.Transport, "pid": c.PID()})
			m.setState(StateRunning, nil)
			began := time.Now()
			err = m.run(ctx, c)
			if ctx.Err() != nil || errors.Is(err, eventlog.ErrClosed) {
				m.setState(StateStopping, nil) // commands are refused from here on
				m.stop(c)
				m.setState(StateStopped, nil)
				m.record("plugin.stopped", map[string]any{})
				return
			}
			if err == nil {
				err = errors.New("activation ended without an error")
			}
			m.kill(c)
			m.mu.Lock()
			m.conn, m.state = nil, StateBackoff // before the restart count moves: no stale "running"
			m.mu.Unlock()
			if time.Since(began) > healthyRun {
				backoff = m.h.cfg.BackoffInitial // it ran well for a while: start the backoff over
			}
		}
		var perm permanentError
		if errors.As(err, &perm) {
			m.fail(err)
			return
		}
		m.logger.Error("plugin crashed", "err", err)
		if m.crashed(err) {
			return
		}
		m.setState(StateBackoff, err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			m.setState(StateStopped, nil)
			return
		}
		backoff = min(2*backoff, m.h.cfg.BackoffMax)
	}
}

// healthyRun is how long an activation must last for the restart backoff
// to start over.
const healthyRun = time.Minute

// crashed counts a crash and reports whether the budget is spent (the
// plugin is then failed).
func (m *managed) crashed(err error) bool {
	now := time.Now()
	m.mu.Lock()
	m.crashes = append(m.crashes, now)
	m.crashes = slices.DeleteFunc(m.crashes, func(t time.Time) bool { return now.Sub(t) > m.h.cfg.CrashWindow })
	n := len(m.crashes)
	m.restarts++
	restarts := m.restarts
	m.mu.Unlock()
	m.h.restarts.WithLabelValues(m.id).Inc()
	m.record("plugin.crashed", map[string]any{"error": err.Error(), "restarts": restarts})
	if n >= m.h.cfg.CrashBudget {
		m.fail(fmt.Errorf("%d crashes within %s, last: %w", n, m.h.cfg.CrashWindow, err))
		return true
	}
	return false
}

func (m *managed) fail(err error) {
	m.logger.Error("plugin failed; it will not be restarted", "err", err)
	m.record("plugin.failed", map[string]any{"error": err.Error()}) // in the log before anyone sees the state
	m.setState(StateFailed, err)
}

// activate starts one activation: launch, manifest checks, routing, Start.
func (m *managed) activate(ctx context.Context) (conn, error) {
	startCtx, cancel := withDeadline(ctx, m.h.cfg.StartTimeout)
	defer cancel()
	var c conn
	switch m.spec.Transport {
	case InProcess:
		p, err := construct(startCtx, m.spec.New)
		if err != nil {
			return nil, err
		}
		c = newInproc(p, m.logger)
	case OutOfProcess:
		p, err := launch(m.spec.Path, m.spec.Args, m.spec.Env, m.spec.Checksum, m.h.cfg.StartTimeout, m.logger)
		if err != nil {
			return nil, err
		}
		c = p
	default:
		return nil, permanentError{fmt.Errorf("unknown transport %q", m.spec.Transport)}
	}
	if err := m.admit(startCtx, c); err != nil {
		m.kill(c)
		return nil, err
	}
	if err := c.Start(startCtx, api{m: m, c: c}); err != nil {
		m.kill(c)
		return nil, fmt.Errorf("start: %w", err)
	}
	m.takenOver()
	m.mu.Lock()
	m.conn = c
	m.mu.Unlock()
	return c, nil
}

// admit checks the plugin's manifest against its spec and grants, and on
// the first activation registers its event types, commands, queries and
// client methods, all as granted.
func (m *managed) admit(ctx context.Context, c conn) error {
	man, err := c.Manifest(ctx)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := man.Validate(); err != nil {
		return permanentError{err}
	}
	if man.ID != m.id {
		return permanentError{fmt.Errorf("plugin says it is %q, expected %q", man.ID, m.id)}
	}
	if man.Protocol > plugins.ProtocolVersion || man.Protocol < 1 {
		return permanentError{fmt.Errorf("plugin speaks protocol %d, the kernel %d", man.Protocol, plugins.ProtocolVersion)}
	}
	granted := m.spec.Granted
	if granted == nil {
		granted = &man
	}
	if over := man.Exceeds(granted); len(over) > 0 {
		return permanentError{fmt.Errorf("plugin asks for more than it was granted at install: %v", over)}
	}
	m.mu.Lock()
	m.manifest, m.granted = man, granted
	routed := m.routed
	m.routed = true
	m.mu.Unlock()
	if routed {
		return nil
	}
	if err := m.h.claimStreams(m.id, granted.Streams); err != nil {
		return permanentError{err}
	}
	var types []kernel.EventType
	for _, e := range granted.Events {
		types = append(types, kernel.EventType{Name: e.Name, Durable: e.Durable, Doc: "declared by plugin " + m.id})
	}
	if err := m.h.k.EventTypes().Claim(types...); err != nil {
		return permanentError{err}
	}
	for _, name := range granted.Commands {
		if err := m.h.k.Handle(name, commandRoute{m}); err != nil {
			return permanentError{err}
		}
	}
	for _, name := range granted.Queries {
		if err := m.h.k.HandleQuery(name, queryRoute{m}); err != nil {
			return permanentError{err}
		}
	}
	for _, cm := range granted.Client {
		r := kernel.ClientRoute{ClientMethod: cm, Query: slices.Contains(granted.Queries, cm.Name)}
		// Manifest.Validate checked this already; a client method must
		// never reach another plugin's command or query of the same name.
		if !r.Query && !slices.Contains(granted.Commands, cm.Name) {
			return permanentError{fmt.Errorf("client method %s is neither a command nor a query of plugin %s", cm.Name, m.id)}
		}
		if err := m.h.k.ExposeClient(r); err != nil {
			return permanentError{err}
		}
		m.mu.Lock()
		m.exposed = append(m.exposed, cm.Name)
		m.mu.Unlock()
	}
	return nil
}

// withdraw stops offering the plugin's client methods once it will not
// serve again in this kernel (stopped or failed). Its commands and queries
// stay routed and answer unavailable, as while it restarts.
func (m *managed) withdraw() {
	m.mu.Lock()
	names := m.exposed
	m.exposed = nil
	m.mu.Unlock()
	m.h.k.WithdrawClient(names...)
}

// stop asks the activation to stop within the deadline, then kills it.
func (m *managed) stop(c conn) {
	ctx, cancel := context.WithTimeout(context.Background(), m.h.cfg.StopTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Stop(ctx) }() // bounded by ctx; Kill below unblocks it
	select {
	case err := <-done:
		if err != nil {
			m.logger.Warn("plugin stop", "err", err)
		}
	case <-ctx.Done():
		m.logger.Warn("plugin did not stop in time; killing it", "timeout", m.h.cfg.StopTimeout)
	}
	c.Kill()
}

// run delivers events and pings until the activation dies or ctx ends.
func (m *managed) run(ctx context.Context, c conn) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- m.deliver(runCtx, c) }() // both end with runCtx
	go func() { errs <- m.health(runCtx, c) }()
	var err error
	pending := 2
	select {
	case err = <-errs:
		pending--
	case <-c.Exited():
		err = errors.New("plugin process exited")
	case <-ctx.Done():
	}
	cancel()
	for ; pending > 0; pending-- {
		if e := <-errs; err == nil && e != nil && ctx.Err() == nil {
			err = e
		}
	}
	return err
}

func (m *managed) health(ctx context.Context, c conn) error {
	t := time.NewTicker(m.h.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, m.h.cfg.PingInterval)
			err := c.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("health ping: %w", err)
			}
		}
	}
}

// deliver tails the log from the plugin's cursor and hands it batches of
// the events it subscribes to. The cursor only ever names applied events,
// so a crash redelivers what came after the last save, never skips.
func (m *managed) deliver(ctx context.Context, c conn) error {
	granted := m.grant()
	if len(granted.Subscribes) == 0 {
		<-ctx.Done()
		return nil
	}
	l := m.h.k.Log()
	cur, err := l.Cursor(m.cursorName())
	if err != nil {
		return err
	}
	tail := l.Tail(cur + 1)
	batch := make([]plugins.Event, 0, m.h.cfg.BatchSize)
	applied, saved, lastSave := cur, cur, time.Now()
	save := func() error {
		if applied == saved {
			return nil
		}
		if err := l.SaveCursor(context.WithoutCancel(ctx), m.cursorName(), applied); err != nil {
			return fmt.Errorf("save cursor: %w", err)
		}
		saved, lastSave = applied, time.Now()
		return nil
	}
	defer save() // a clean stop keeps what was applied
	for {
		e, err := tail.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err // ErrClosed included: the caller tells it from a crash
		}
		batch = batch[:0]
		last := e.Seq
		caughtUp := false
		// Gather what is already durable, up to a batch of subscribed events
		// or scanScale batches of others (sparse subscriptions).
		for scanned := 1; ; scanned++ {
			if granted.Subscribed(e.Type) {
				pe, err := m.h.pluginEvent(e)
				if err != nil {
					return err
				}
				batch = append(batch, pe)
			}
			last = e.Seq
			if len(batch) == cap(batch) || scanned >= scanScale*cap(batch) {
				break
			}
			var ok bool
			if e, ok, err = tail.TryNext(); err != nil || !ok {
				caughtUp = err == nil
				break
			}
		}
		if len(batch) > 0 {
			if err := m.apply(ctx, c, batch); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		applied = last // only now may the cursor pass this batch
		// Save the cursor when caught up, or every cursorEvery events or
		// cursorPeriod while busy: a crash redelivers at most that much.
		if caughtUp || applied-saved >= cursorEvery || time.Since(lastSave) >= cursorPeriod {
			if err := save(); err != nil {
				return err
			}
		}
	}
}

// scanScale bounds how many unsubscribed events one pass looks at, in
// batches, so a sparse subscription still saves its cursor and honours ctx.
const scanScale = 8

// apply hands one batch to the plugin until it takes it. An error the
// plugin returns means "not now": the same batch comes again after a pause
// (doubling from 100 ms to 5 s). A dead activation ends delivery (a crash).
func (m *managed) apply(ctx context.Context, c conn, batch []plugins.Event) error {
	pause := 100 * time.Millisecond
	for {
		actx, cancel := withDeadline(ctx, m.h.cfg.CallTimeout)
		err := c.ApplyEvents(actx, batch)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-c.Exited():
			return fmt.Errorf("apply events %d..%d: %w", batch[0].Seq, batch[len(batch)-1].Seq, err)
		default:
		}
		if ctx.Err() != nil {
			return ctx.Err() // stopping: not applied, and not the plugin's refusal
		}
		m.logger.Warn("plugin refused a batch; delivering it again", "first_seq", batch[0].Seq, "last_seq", batch[len(batch)-1].Seq, "err", err, "pause", pause)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err() // not applied: the cursor must not move past it
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// How often a busy plugin's cursor is saved. Each save is a durable write;
// saving per batch would cost a commit per few hundred events.
const (
	cursorEvery  = 8192
	cursorPeriod = 200 * time.Millisecond
)

// serving returns the running activation and its grant, or an
// unavailable *Error while the plugin is starting, restarting, stopped or
// failed.
func (m *managed) serving() (conn, *plugins.Manifest, error) {
	m.mu.Lock()
	c, state, granted := m.conn, m.state, m.granted
	m.mu.Unlock()
	if c == nil || state != StateRunning {
		return nil, nil, kernel.Errorf(kernel.CodeUnavailable, "plugin %s is %s", m.id, state)
	}
	return c, granted, nil
}

// commandRoute is the kernel handler of a plugin-owned command.
type commandRoute struct{ m *managed }

func (r commandRoute) Handle(ctx context.Context, cmd kernel.Command) ([]kernel.NewEvent, error) {
	m := r.m
	c, granted, err := m.serving()
	if err != nil {
		return nil, err
	}
	cctx, cancel := forCaller(ctx, m.h.cfg.CallTimeout)
	defer cancel()
	evs, err := c.HandleCommand(cctx, cmd)
	if err != nil {
		return nil, err
	}
	if err := granted.CheckDecided(cmd, evs); err != nil {
		m.logger.Warn("plugin refused", "reason", plugins.AsCoded(err).Message)
		return nil, err
	}
	return evs, nil
}

// queryRoute is the kernel handler of a query a plugin answers.
type queryRoute struct{ m *managed }

func (r queryRoute) HandleQuery(ctx context.Context, q kernel.Query) (json.RawMessage, error) {
	c, _, err := r.m.serving()
	if err != nil {
		return nil, err
	}
	qctx, cancel := forCaller(ctx, r.m.h.cfg.CallTimeout)
	defer cancel()
	return c.HandleQuery(qctx, q)
}

// statusCollector exports states and lags at scrape time, built afresh
// for each scrape so concurrent scrapes do not interfere.
type statusCollector struct{ h *Host }

var (
	stateDesc = prometheus.NewDesc("parley_plugin_state", "1 for the plugin's current state.", []string{"plugin", "transport", "state"}, nil)
	lagDesc   = prometheus.NewDesc("parley_plugin_cursor_lag_events", "Events a plugin has yet to be delivered.", []string{"plugin"}, nil)
)

func (statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- stateDesc
	ch <- lagDesc
}

func (s statusCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range s.h.List() {
		ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, 1, st.ID, string(st.Transport), string(st.State))
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(st.Lag), st.ID)
	}
}
