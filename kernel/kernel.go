package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel/keystore"
	"github.com/parleyhq/parley/plugins"
)

// Version is the kernel's version, set at build time with
// -ldflags "-X github.com/parleyhq/parley/kernel.Version=...".
var Version = "dev"

// Command asks the kernel to change something, on behalf of an actor; the
// plugin contract's type, so handlers in and out of process see the same.
type Command = plugins.Command

// NewEvent is an event a handler decided; the kernel fills in the rest of
// the envelope (company and actor from the command, seq, time, hashes).
type NewEvent = plugins.NewEvent

// Handler decides the events a command produces, or refuses it with a
// coded *Error. It must not have side effects beyond its return value: the
// kernel may call it again if the stream moved on concurrently.
type Handler interface {
	Handle(ctx context.Context, cmd Command) ([]NewEvent, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, cmd Command) ([]NewEvent, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, cmd Command) ([]NewEvent, error) { return f(ctx, cmd) }

// Kernel routes commands to handlers, appends the events they decide and
// publishes them on the bus.
type Kernel struct {
	cfg     Config
	log     *eventlog.Log
	keys    *keystore.Store
	bus     *Bus
	types   *EventTypes
	metrics *Metrics
	logger  *slog.Logger

	mu       sync.RWMutex
	handlers map[string]Handler
	queries  map[string]QueryHandler
	clients  map[string]ClientRoute // what the session protocol offers users
	locks    streamLocks

	ready     atomic.Bool
	runDone   chan error
	stop      context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

// Open opens the event log in cfg.DataDir and prepares the bus. Call Start
// to begin serving and Close to stop.
func Open(cfg Config, logger *slog.Logger) (*Kernel, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := NewMetrics()
	opts := cfg.EventLogOptions()
	opts.Observer = m
	log, err := eventlog.Open(cfg.DataDir, opts)
	if err != nil {
		return nil, err
	}
	m.head.Set(float64(log.Head()))
	keys, err := keystore.Open(context.Background(), log, cfg.MasterKeyPath(), logger)
	if err != nil {
		log.Close()
		return nil, err
	}
	bus, err := newBus(log, logger, m)
	if err != nil {
		log.Close()
		return nil, err
	}
	k := &Kernel{
		cfg: cfg, log: log, keys: keys, bus: bus, types: newEventTypes(), metrics: m, logger: logger,
		handlers: map[string]Handler{}, queries: map[string]QueryHandler{}, clients: map[string]ClientRoute{},
		locks: streamLocks{m: map[string]*streamLock{}},
	}
	m.Registry.MustRegister(lagCollector{k})
	return k, nil
}

// Log is the kernel's event log.
func (k *Kernel) Log() *eventlog.Log { return k.log }

// Bus is the kernel's bus.
func (k *Kernel) Bus() *Bus { return k.bus }

// EventTypes is the registry of declared event types.
func (k *Kernel) EventTypes() *EventTypes { return k.types }

// Metrics are the kernel's Prometheus collectors.
func (k *Kernel) Metrics() *Metrics { return k.metrics }

// Handle registers the handler of a command name. A name has one owner,
// and names a command or a query (HandleQuery), not both.
func (k *Kernel) Handle(name string, h Handler) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.freeNameLocked("command", name); err != nil {
		return err
	}
	k.handlers[name] = h
	return nil
}

// freeNameLocked refuses an empty name or one a command or a query already
// owns; k.mu is held.
func (k *Kernel) freeNameLocked(kind, name string) error {
	_, command := k.handlers[name]
	_, query := k.queries[name]
	switch {
	case name == "":
		return fmt.Errorf("kernel: empty %s name", kind)
	case command:
		return fmt.Errorf("kernel: %s is already a command with a handler", name)
	case query:
		return fmt.Errorf("kernel: %s is already a query with a handler", name)
	}
	return nil
}

// Start runs the bus and records kernel.started. It returns once the
// kernel is ready.
func (k *Kernel) Start(ctx context.Context) error {
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	k.stop = stop
	k.runDone = make(chan error, 1)
	go func() { k.runDone <- k.bus.run(runCtx) }() // owned by Kernel: Close stops it
	select {
	case <-k.bus.running():
	case err := <-k.runDone:
		return fmt.Errorf("kernel: bus: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := k.finishErasures(ctx); err != nil {
		return err
	}
	host, _ := os.Hostname()
	if err := k.record(ctx, "kernel.started", map[string]string{"version": Version, "node": host}); err != nil {
		return err
	}
	k.ready.Store(true)
	k.logger.Info("kernel started", "data_dir", k.cfg.DataDir, "head", k.log.Head(), "version", Version)
	return nil
}

// record appends one of the kernel's own events to stream kernel.
func (k *Kernel) record(ctx context.Context, typ string, payload any) error {
	p, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	_, err = k.log.Append(ctx, eventlog.Draft{Type: typ, Stream: "kernel", Actor: "kernel", Payload: p})
	return err
}

// Ready reports whether the kernel serves commands: started, not closing,
// and its log healthy.
func (k *Kernel) Ready() error {
	if !k.ready.Load() {
		return errors.New("not started or shutting down")
	}
	return k.log.Err()
}

// Close stops the bus (handlers finish their current event, cursors are
// saved), records kernel.stopped, waits for every queued append to be
// durable and closes the log. Later calls return the first call's result.
func (k *Kernel) Close(ctx context.Context, reason string) error {
	k.closeOnce.Do(func() { k.closeErr = k.close(ctx, reason) })
	return k.closeErr
}

func (k *Kernel) close(ctx context.Context, reason string) error {
	k.ready.Store(false)
	var errs []error
	errs = append(errs, k.bus.close())
	if k.stop != nil {
		k.stop()
		if err := <-k.runDone; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
		// Not bounded by ctx: the log drains its queue on Close anyway, and
		// a clean stop should say so even when the HTTP drain used the time.
		errs = append(errs, k.record(context.WithoutCancel(ctx), "kernel.stopped", map[string]string{"reason": reason}))
	}
	errs = append(errs, k.log.Close())
	return errors.Join(errs...)
}

// Execute runs a command: the handler decides events against the stream's
// current version, the kernel appends the durable ones and answers once they
// are durable, then publishes the ephemeral ones. Errors are *Error.
func (k *Kernel) Execute(ctx context.Context, cmd Command) ([]eventlog.Event, error) {
	evs, err := k.execute(ctx, cmd)
	k.metrics.commands.WithLabelValues(outcome(k, k.handlers, cmd.Name, err)).Inc()
	if err != nil {
		return nil, AsError(err)
	}
	return evs, nil
}

// maxAttempts bounds how often a command is re-decided after a conflict.
const maxAttempts = 3

func (k *Kernel) execute(ctx context.Context, cmd Command) ([]eventlog.Event, error) {
	if !k.ready.Load() {
		return nil, Errorf(CodeUnavailable, "the kernel is not serving")
	}
	k.mu.RLock()
	h, ok := k.handlers[cmd.Name]
	k.mu.RUnlock()
	if !ok {
		return nil, Errorf(CodeUnknownCommand, "no handler for command %q", cmd.Name)
	}
	if cmd.Stream == "" {
		return nil, Errorf(CodeInvalidCommand, "command %s names no stream", cmd.Name)
	}
	if len(cmd.Payload) > k.cfg.EventLog.MaxPayloadBytes {
		return nil, Errorf(CodePayloadTooLarge, "command payload of %d bytes, the limit is %d", len(cmd.Payload), k.cfg.EventLog.MaxPayloadBytes)
	}
	if plugins.HasSealedKey(cmd.Payload) {
		return nil, Errorf(CodeInvalidCommand, "command payload has a top-level %q key: only the kernel seals payloads", plugins.SealedKey)
	}
	l, err := k.locks.lock(ctx, cmd.Stream)
	if err != nil {
		return nil, Errorf(CodeBusy, "command %s: gave up waiting for the commands before it on stream %s: %v", cmd.Name, cmd.Stream, err)
	}
	defer k.locks.unlock(cmd.Stream, l)
	for range maxAttempts {
		var evs []eventlog.Event
		evs, err = k.attempt(ctx, h, cmd)
		if !errors.Is(err, eventlog.ErrConflict) {
			return evs, err
		}
		k.logger.Debug("command conflicted, deciding again", "command", cmd.Name, "stream", cmd.Stream)
	}
	return nil, err
}

func (k *Kernel) attempt(ctx context.Context, h Handler, cmd Command) ([]eventlog.Event, error) {
	v, err := k.log.StreamVersion(cmd.Stream)
	if err != nil {
		return nil, err
	}
	cmd.Version = v
	decided, err := k.decide(ctx, h, cmd)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, Errorf(CodeUnavailable, "command %s: the caller gave up before its events were appended: %v", cmd.Name, context.Cause(ctx))
	}
	drafts := make([]eventlog.Draft, 0, len(decided))
	var ephemeral []eventlog.Event
	var plain [][]byte // by draft: the decided payload of a sealed one
	expectSet := false
	for _, ne := range decided {
		t, ok := k.types.Lookup(ne.Type)
		if !ok {
			return nil, Errorf(CodeInternal, "handler of %s emitted undeclared event type %q", cmd.Name, ne.Type)
		}
		stream := ne.Stream
		if stream == "" {
			stream = cmd.Stream
		}
		if !t.Durable {
			ne.Seal = "" // never stored, so nothing to seal
		}
		payload, err := k.SealPayload(ctx, cmd.Company, ne)
		if err != nil {
			return nil, err
		}
		if !t.Durable {
			ne.Stream = stream
			ephemeral = append(ephemeral, EphemeralEvent(ne, cmd.Company, cmd.Actor))
			continue
		}
		if ne.Seal != "" {
			if plain == nil {
				plain = make([][]byte, len(decided))
			}
			plain[len(drafts)] = ne.Payload // the kernel's, as is everything a handler returns
		}
		d := eventlog.Draft{Type: ne.Type, Stream: stream, Company: cmd.Company, Actor: cmd.Actor, Audience: ne.Audience, Payload: payload}
		switch {
		case stream == cmd.Stream && !expectSet:
			d.Expect, expectSet = eventlog.ExpectVersion(v), true
		case stream != cmd.Stream && ne.Expect != nil: // decided on that stream's state too: a conflict decides again
			d.Expect = eventlog.ExpectVersion(*ne.Expect)
		}
		drafts = append(drafts, d)
	}
	evs, err := k.log.Append(ctx, drafts...)
	if err != nil {
		return nil, err
	}
	for i, p := range plain { // the caller gets what it decided, opened
		if p != nil {
			evs[i].Payload = p
		}
	}
	for _, e := range ephemeral {
		if err := k.bus.PublishEphemeral(e); err != nil {
			k.logger.Warn("ephemeral event not published", "type", e.Type, "err", err)
		}
	}
	return evs, nil
}

// decide calls the handler, turning a panic into an internal error.
func (k *Kernel) decide(ctx context.Context, h Handler, cmd Command) (evs []NewEvent, err error) {
	defer func() {
		if p := recover(); p != nil {
			k.logger.Error("command handler panicked", "command", cmd.Name, "panic", p, "stack", string(debug.Stack()))
			evs, err = nil, Errorf(CodeInternal, "handler of %s failed", cmd.Name)
		}
	}()
	return h.Handle(ctx, cmd)
}

// streamLocks serialises commands per stream; an entry lives while someone
// holds or waits for it, and is recycled once nobody does.
type streamLocks struct {
	mu   sync.Mutex
	m    map[string]*streamLock
	free sync.Pool // of *streamLock
}

// streamLock is one stream's lock: a token in held while someone holds
// it, so that a waiter can give up (a channel, not a mutex).
type streamLock struct {
	held chan struct{}
	refs int
}

// lock takes stream's lock, or gives up when ctx is done (a caller gone,
// or one command holding the stream far longer than usual); pass what it
// returns to unlock.
func (s *streamLocks) lock(ctx context.Context, stream string) (*streamLock, error) {
	s.mu.Lock()
	l := s.m[stream]
	if l == nil {
		l, _ = s.free.Get().(*streamLock)
		if l == nil {
			l = &streamLock{held: make(chan struct{}, 1)}
		}
		s.m[stream] = l
	}
	l.refs++
	s.mu.Unlock()
	select {
	case l.held <- struct{}{}: // a free lock is taken, whatever ctx says
		return l, nil
	default:
	}
	select {
	case l.held <- struct{}{}:
		return l, nil
	case <-ctx.Done():
		s.release(stream, l)
		return nil, context.Cause(ctx)
	}
}

// unlock releases stream's lock l.
func (s *streamLocks) unlock(stream string, l *streamLock) {
	<-l.held
	s.release(stream, l)
}

// release drops a holder's or waiter's reference to l.
func (s *streamLocks) release(stream string, l *streamLock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.refs--; l.refs == 0 { // nobody holds or waits for it: reuse it
		delete(s.m, stream)
		s.free.Put(l)
	}
}
