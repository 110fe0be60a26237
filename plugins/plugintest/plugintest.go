// Package plugintest is an in-memory kernel for plugin unit tests: it runs
// a plugin value the way the real kernel does (manifest checks, command
// routing, stream versions, delivery of subscribed events, the kernel API
// with its permission checks) without a log file or a process.
//
//	k := plugintest.New(t, &poll.Plugin{})
//	evs, err := k.Execute(ctx, plugins.Command{Name: "poll.create", Stream: "poll/1", Payload: p})
//	k.Query(ctx, plugins.Query{Name: "poll.results", Actor: "alice", Payload: p})
//	k.Events()      // everything appended
//	k.Published()   // ephemeral events
//
// Delivery is synchronous: Execute returns after the plugin has applied
// the events it subscribes to. The real kernel delivers asynchronously and
// at least once; a plugin must not depend on either difference.
//
// Sealed events (NewEvent.Seal) behave as in the kernel, in memory: every
// reader gets them opened until EraseKey destroys their key, then Erased
// with no payload; EraseKey records kernel.key.erased.
package plugintest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins"
)

// Kernel is the in-memory kernel. It implements plugins.Kernel for the
// plugin under test.
type Kernel struct {
	t        testing.TB
	p        plugins.Plugin
	manifest plugins.Manifest

	mu        sync.Mutex
	events    []plugins.Event
	sealed    []int          // by event: the generation of the key it was sealed under (0: none)
	keys      map[string]int // company NUL name: the live generation
	erased    map[int]bool   // generations EraseKey destroyed
	gens      int
	versions  map[string]uint64
	kv        map[string][]byte
	published []plugins.NewEvent
	now       func() time.Time // stamps events; time.Now unless SetClock
}

// SetClock makes the kernel stamp the events it appends with now's time
// instead of the wall clock's, for a plugin tested with a fake clock of
// its own: both then tell the same time.
func (k *Kernel) SetClock(now func() time.Time) {
	k.mu.Lock()
	k.now = now
	k.mu.Unlock()
}

var _ plugins.Kernel = (*Kernel)(nil)

// New validates p's manifest and starts it (Starter) with this kernel.
func New(t testing.TB, p plugins.Plugin) *Kernel {
	t.Helper()
	k := &Kernel{
		t: t, p: p, manifest: p.Manifest(), versions: map[string]uint64{}, kv: map[string][]byte{},
		keys: map[string]int{}, erased: map[int]bool{},
	}
	if err := k.manifest.Validate(); err != nil {
		t.Fatalf("plugintest: manifest: %v", err)
	}
	if s, ok := p.(plugins.Starter); ok {
		if err := s.Start(context.Background(), k); err != nil {
			t.Fatalf("plugintest: Start: %v", err)
		}
	}
	if s, ok := p.(plugins.Stopper); ok {
		t.Cleanup(func() {
			if err := s.Stop(context.Background()); err != nil {
				t.Errorf("plugintest: Stop: %v", err)
			}
		})
	}
	return k
}

// Execute routes cmd to the plugin as the kernel would and appends the
// durable events it decides. Errors are *plugins.Error.
func (k *Kernel) Execute(ctx context.Context, cmd plugins.Command) ([]plugins.Event, error) {
	if !slices.Contains(k.manifest.Commands, cmd.Name) {
		return nil, plugins.Errorf("unknown_command", "plugin %s does not own %q", k.manifest.ID, cmd.Name)
	}
	h, ok := k.p.(plugins.CommandHandler)
	if !ok {
		return nil, plugins.Errorf(plugins.CodeInternal, "plugin declares commands but handles none")
	}
	if plugins.HasSealedKey(cmd.Payload) {
		return nil, plugins.Errorf(plugins.CodeInvalidCommand, "command payload has a top-level %q key: only the kernel seals payloads", plugins.SealedKey)
	}
	var err error
	for range 3 { // a conflict has the command decided again, as the kernel does
		var evs []plugins.Event
		evs, err = k.execute(ctx, h, cmd)
		if c := plugins.AsCoded(err); c == nil || c.Code != plugins.CodeConflict {
			return evs, err
		}
	}
	return nil, err
}

func (k *Kernel) execute(ctx context.Context, h plugins.CommandHandler, cmd plugins.Command) ([]plugins.Event, error) {
	k.mu.Lock()
	cmd.Version = k.versions[cmd.Stream]
	k.mu.Unlock()
	decided, err := h.HandleCommand(ctx, cmd)
	if err != nil {
		return nil, plugins.AsCoded(err)
	}
	if err := k.manifest.CheckDecided(cmd, decided); err != nil {
		return nil, err
	}
	var durable []plugins.NewEvent
	for _, e := range decided {
		if e.Stream == "" {
			e.Stream = cmd.Stream
		}
		if e.Stream == cmd.Stream {
			e.Expect = nil // the kernel expects the command's own stream at cmd.Version (not checked here)
		}
		if t, _ := k.manifest.EmitsType(e.Type); t.Durable {
			durable = append(durable, e)
		} else {
			k.mu.Lock()
			k.published = append(k.published, e)
			k.mu.Unlock()
		}
	}
	return k.append(ctx, cmd.Company, cmd.Actor, durable)
}

// Inject appends events as if another part of the system had (a chat
// message the plugin subscribes to, say) and delivers them.
func (k *Kernel) Inject(ctx context.Context, events ...plugins.NewEvent) ([]plugins.Event, error) {
	return k.append(ctx, "", "test", events)
}

// Query routes q to the plugin as the kernel would: only names in the
// manifest's Queries, an answer that is JSON. Errors are *plugins.Error.
func (k *Kernel) Query(ctx context.Context, q plugins.Query) (json.RawMessage, error) {
	if !slices.Contains(k.manifest.Queries, q.Name) {
		return nil, plugins.Errorf("unknown_query", "plugin %s does not answer %q", k.manifest.ID, q.Name)
	}
	h, ok := k.p.(plugins.QueryHandler)
	if !ok {
		return nil, plugins.Errorf(plugins.CodeInternal, "plugin declares queries but answers none")
	}
	ans, err := h.HandleQuery(ctx, q)
	switch {
	case err != nil:
		return nil, plugins.AsCoded(err)
	case len(ans) == 0:
		return json.RawMessage("null"), nil
	case !json.Valid(ans):
		return nil, plugins.Errorf(plugins.CodeInternal, "plugin answered %s with invalid JSON", q.Name)
	}
	return ans, nil
}

func (k *Kernel) append(ctx context.Context, company, actor string, evs []plugins.NewEvent) ([]plugins.Event, error) {
	k.mu.Lock()
	staged := map[string]uint64{}
	for _, e := range evs { // all or nothing, as the kernel's append
		v, ok := staged[e.Stream]
		if !ok {
			v = k.versions[e.Stream]
		}
		if e.Expect != nil && *e.Expect != v {
			k.mu.Unlock()
			return nil, plugins.Errorf(plugins.CodeConflict, "stream %s is at version %d, not %d", e.Stream, v, *e.Expect)
		}
		staged[e.Stream] = v + 1
	}
	var out []plugins.Event
	stamp := time.Now()
	if k.now != nil {
		stamp = k.now()
	}
	for _, e := range evs {
		k.versions[e.Stream]++
		co := company
		if co == "" { // appended through the kernel API (or injected): the event names its company
			co = e.Company
		}
		ev := plugins.Event{
			Seq: uint64(len(k.events) + 1), ID: fmt.Sprintf("test-%d", len(k.events)+1), Time: stamp.UTC(),
			Type: e.Type, Stream: e.Stream, Version: k.versions[e.Stream], Company: co, Actor: actor,
			Audience: e.Audience, Payload: e.Payload,
		}
		gen := 0
		if e.Seal != "" {
			id := co + "\x00" + e.Seal
			if gen = k.keys[id]; gen == 0 {
				k.gens++
				gen, k.keys[id] = k.gens, k.gens
			}
		}
		k.events = append(k.events, ev)
		k.sealed = append(k.sealed, gen)
		out = append(out, ev)
	}
	k.mu.Unlock()
	return out, k.deliver(ctx, out)
}

func (k *Kernel) deliver(ctx context.Context, evs []plugins.Event) error {
	a, ok := k.p.(plugins.EventApplier)
	if !ok {
		return nil
	}
	var batch []plugins.Event
	for _, e := range evs {
		if k.manifest.Subscribed(e.Type) {
			batch = append(batch, e)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	if err := a.ApplyEvents(ctx, batch); err != nil {
		return fmt.Errorf("plugintest: ApplyEvents: %w", err)
	}
	return nil
}

// Events returns every event appended so far, as readers see them.
func (k *Kernel) Events() []plugins.Event {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.view(0, len(k.events))
}

// view returns events [from, to) as readers see them: erased when the key
// they were sealed under is gone. The caller holds mu.
func (k *Kernel) view(from, to int) []plugins.Event {
	out := slices.Clone(k.events[from:to])
	for i := range out {
		if k.erased[k.sealed[from+i]] {
			out[i].Payload, out[i].Erased = nil, true
		}
	}
	return out
}

// Published returns the ephemeral events published so far.
func (k *Kernel) Published() []plugins.NewEvent {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.published)
}

// KV returns a copy of the plugin's key/value store.
func (k *Kernel) KV() map[string][]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.kv)
}

// Append is the kernel API's Append, with the real permission checks.
func (k *Kernel) Append(ctx context.Context, evs []plugins.NewEvent) ([]plugins.Event, error) {
	for _, e := range evs {
		if err := k.manifest.CheckAppend(e); err != nil {
			return nil, err
		}
	}
	return k.append(ctx, "", "plugin:"+k.manifest.ID, evs)
}

// ReadLog is the kernel API's ReadLog.
func (k *Kernel) ReadLog(_ context.Context, from uint64, limit int) ([]plugins.Event, error) {
	if err := k.manifest.Need(plugins.PermRead); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if from == 0 {
		from = 1
	}
	if from > uint64(len(k.events)) {
		return nil, nil
	}
	end := min(len(k.events), int(from)-1+max(limit, 1))
	return k.view(int(from)-1, end), nil
}

// Publish is the kernel API's Publish.
func (k *Kernel) Publish(_ context.Context, e plugins.NewEvent) error {
	if err := k.manifest.CheckPublish(e); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.published = append(k.published, e)
	return nil
}

// KVGet is the kernel API's KVGet.
func (k *Kernel) KVGet(_ context.Context, key string) ([]byte, bool, error) {
	if err := k.manifest.Need(plugins.PermKV); err != nil {
		return nil, false, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.kv[key]
	return slices.Clone(v), ok, nil
}

// KVPut is the kernel API's KVPut.
func (k *Kernel) KVPut(_ context.Context, key string, value []byte) error {
	if err := k.manifest.Need(plugins.PermKV); err != nil {
		return err
	}
	if len(value) > 64<<10 {
		return plugins.Errorf("payload_too_large", "value of %d bytes, the limit is 65536", len(value))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kv[key] = slices.Clone(value)
	return nil
}

// KVDelete is the kernel API's KVDelete.
func (k *Kernel) KVDelete(_ context.Context, key string) error {
	if err := k.manifest.Need(plugins.PermKV); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.kv, key)
	return nil
}

// EraseKey is the kernel API's EraseKey: events sealed under the key read
// as erased from now on, and a kernel.key.erased event is appended when
// the key existed.
func (k *Kernel) EraseKey(ctx context.Context, company, name string) error {
	if err := k.manifest.CheckKey(name); err != nil {
		return err
	}
	id := company + "\x00" + name
	k.mu.Lock()
	gen := k.keys[id]
	if gen != 0 {
		delete(k.keys, id)
		k.erased[gen] = true
	}
	k.mu.Unlock()
	if gen == 0 {
		return nil
	}
	p, _ := json.Marshal(map[string]string{"key": name})
	_, err := k.append(ctx, company, "plugin:"+k.manifest.ID, []plugins.NewEvent{{Type: "kernel.key.erased", Stream: "kernel", Payload: p}})
	return err
}
