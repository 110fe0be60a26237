package plugins

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
)

// Projection is the catch-up plumbing around a plugin's in-memory state S
// (its projection of the log): commands and queries wait for the
// projection to reach the position they need (the delivery first, then
// the log itself: CatchUp), decide or answer on S under its read lock, and
// when they refuse, catch up once and try again. The plugin keeps its own
// lock and state; the Projection reads them through its fields.
type Projection[S any] struct {
	Mu      *sync.RWMutex               // guards the state
	State   func() S                    // the state, read under Mu
	Applied func(S) uint64              // the seq of the last event applied to it
	ReadLog func(context.Context) error // applies the log from Applied to the head
	Caught  *CatchUp                    // Moved as events are applied
	Code    Code                        // the error's code when it cannot catch up in time
	Name    string                      // the plugin's, in that error
}

// WaitFor returns once ok holds of the state: it waits for the delivery,
// then reads the log itself. fromLog skips the wait, for positions the
// delivery may never bring (a minSeq that is not one of the plugin's
// events).
func (p *Projection[S]) WaitFor(ctx context.Context, ok func(S) bool, fromLog bool) error {
	var o CatchUpOptions
	if fromLog {
		o.Delivery = -1
	}
	if err := p.Caught.Await(ctx, func() bool { return p.Holds(ok) }, p.ReadLog, o); err != nil {
		return Errorf(p.Code, "%s: %v", p.Name, err)
	}
	return nil
}

// UpToDate applies the log up to its head. A decision that reads state
// other streams change (users' roles and activity, changed through the
// REST API) calls it first, so that a change already acknowledged to
// whoever made it counts.
func (p *Projection[S]) UpToDate(ctx context.Context) error {
	if err := p.ReadLog(ctx); err != nil {
		return Errorf(p.Code, "%s: %v", p.Name, err)
	}
	return nil
}

// Holds reports whether ok holds of the state now.
func (p *Projection[S]) Holds(ok func(S) bool) bool {
	p.Mu.RLock()
	defer p.Mu.RUnlock()
	return ok(p.State())
}

// Position is the seq of the last event applied.
func (p *Projection[S]) Position() uint64 {
	p.Mu.RLock()
	defer p.Mu.RUnlock()
	return p.Applied(p.State())
}

// View runs f on p's state under its read lock.
func View[S, T any](p *Projection[S], f func(S) (T, error)) (T, error) {
	p.Mu.RLock()
	defer p.Mu.RUnlock()
	return f(p.State())
}

// Retrying runs f on p's state; when it refuses with a coded error, the
// projection may merely be behind (a user created, a channel or call
// added an instant ago, on another stream), so it catches up once and
// runs f again.
func Retrying[S, T any](ctx context.Context, p *Projection[S], f func(S) (T, error)) (v T, err error) {
	err = p.Caught.Again(ctx, p.Position, p.ReadLog, func() error {
		v, err = View(p, f)
		return err
	})
	return v, err
}

// Answer answers a query: once the projection has applied minSeq (0: no
// wait), with what answer finds in the state (Retrying), as JSON.
func Answer[S any](ctx context.Context, p *Projection[S], minSeq uint64, answer func(S) (any, error)) (json.RawMessage, error) {
	if minSeq > 0 {
		if err := p.WaitFor(ctx, func(s S) bool { return p.Applied(s) >= minSeq }, true); err != nil {
			return nil, err
		}
	}
	v, err := Retrying(ctx, p, answer)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, Errorf(CodeInternal, "%s: answer %T: %v", p.Name, v, err)
	}
	return b, nil
}

// readPage is how many events one ReadLog call asks for: the kernel's cap.
const readPage = 1000

// ReadLogFrom reads k's log to its head, a page at a time, from the seq
// after next() (the projection's position, which apply moves) and hands
// each page to apply: the loop of a projection's ReadLog.
func ReadLogFrom(ctx context.Context, k Kernel, next func() uint64, apply func([]Event) error) error {
	for {
		from := next() + 1
		evs, err := k.ReadLog(ctx, from, readPage)
		if err != nil {
			return fmt.Errorf("read the log from seq %d: %w", from, err)
		}
		if len(evs) == 0 {
			return nil
		}
		if err := apply(evs); err != nil {
			return err
		}
	}
}
