package kernel

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// EventType declares an event type: whether it is durable (appended to the
// log, seen by audit) or ephemeral (bus only: ICE candidates, pointer
// moves, typing). The kernel refuses to emit an undeclared type.
type EventType struct {
	Name    string
	Durable bool
	Doc     string
}

// The kernel's own event types; docs/events.md lists every durable type.
var builtinEventTypes = []EventType{
	{Name: "kernel.started", Durable: true, Doc: "the kernel opened the log and started serving (payload: version, node)"},
	{Name: "kernel.stopped", Durable: true, Doc: "the kernel shut down cleanly (payload: reason)"},
	{Name: "kernel.key.erased", Durable: true, Doc: "a company key was erased: payloads sealed under it can no longer be read; stream kernel, the company in the envelope (payload: key, generation)"},
	{Name: "bus.message.poisoned", Durable: true, Doc: "a subscriber failed an event after its retries; stream deadletter/<subscriber> (payload: subscriber, topic, reason, seq, type, stream)"},
}

// EventTypes is the registry of declared event types. It is safe for
// concurrent use.
type EventTypes struct {
	mu    sync.RWMutex
	types map[string]EventType
}

func newEventTypes() *EventTypes {
	r := &EventTypes{types: map[string]EventType{}}
	if err := r.Declare(builtinEventTypes...); err != nil {
		panic(err)
	}
	return r
}

// checkName refuses a name that is not dotted, family first.
func (t EventType) checkName() error {
	if t.Name == "" || strings.Count(t.Name, ".") < 1 {
		return fmt.Errorf("kernel: event type %q must be dotted, family first", t.Name)
	}
	return nil
}

// Declare adds event types. Declaring a name again with a different
// durability is an error: audit depends on the list being stable.
func (r *EventTypes) Declare(ts ...EventType) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range ts {
		if err := t.checkName(); err != nil {
			return err
		}
		if old, ok := r.types[t.Name]; ok && old.Durable != t.Durable {
			return fmt.Errorf("kernel: event type %s already declared with durable=%v", t.Name, old.Durable)
		}
		r.types[t.Name] = t
	}
	return nil
}

// Claim declares types that must be new: if any name is already declared
// (by the kernel or by another plugin), it declares none of them and says
// which. Checking and declaring under one lock keeps two plugins admitted
// at the same moment from both owning a type.
func (r *EventTypes) Claim(ts ...EventType) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range ts {
		if err := t.checkName(); err != nil {
			return err
		}
		if _, taken := r.types[t.Name]; taken {
			return fmt.Errorf("kernel: event type %s is already declared by the kernel or another plugin", t.Name)
		}
	}
	for _, t := range ts {
		r.types[t.Name] = t
	}
	return nil
}

// Lookup returns a declared type.
func (r *EventTypes) Lookup(name string) (EventType, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.types[name]
	return t, ok
}

// List returns every declared type, sorted by name.
func (r *EventTypes) List() []EventType {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]EventType, 0, len(r.types))
	for _, t := range r.types {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b EventType) int { return strings.Compare(a.Name, b.Name) })
	return out
}
