package plugins

import (
	"context"
	"errors"
	"sync"
	"time"
)

// CatchUp lets a plugin whose state is a projection of the log decide a
// command or answer a query as of a position: a command's stream at
// Command.Version, or the seq a client saw in a command's answer (minSeq).
// The projection normally has it already; when not, the events are
// usually in the kernel's delivery, a moment away, and otherwise (events
// the plugin does not subscribe to, a delivery stalled) the plugin reads
// the log itself.
//
// The plugin calls Moved after each change of its projection, and Await
// where it needs a position. The zero value is ready to use.
type CatchUp struct {
	mu    sync.Mutex
	moved chan struct{} // closed and replaced by Moved
}

// ErrNotCaughtUp is Await's error when the projection did not get there
// within CatchUpOptions.MaxWait.
var ErrNotCaughtUp = errors.New("the projection did not catch up with the log in time")

// CatchUpOptions tune Await; zero values take the defaults.
type CatchUpOptions struct {
	// Delivery is how long to wait for the kernel's delivery before
	// reading the log (default 100 ms); negative reads the log at once,
	// for positions delivery may never reach (a minSeq that is not one of
	// the plugin's events).
	Delivery time.Duration
	// MaxWait bounds the whole wait (default 5 s).
	MaxWait time.Duration
	// Retry is the pause between two reads of the log (default 20 ms).
	Retry time.Duration
}

func (o CatchUpOptions) withDefaults() CatchUpOptions {
	if o.Delivery == 0 {
		o.Delivery = 100 * time.Millisecond
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 5 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = 20 * time.Millisecond
	}
	return o
}

// Moved wakes the callers of Await: call it after applying events.
func (c *CatchUp) Moved() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.moved != nil {
		close(c.moved)
		c.moved = nil
	}
}

// next returns a channel Moved will close.
func (c *CatchUp) next() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.moved == nil {
		c.moved = make(chan struct{})
	}
	return c.moved
}

// Await returns once holds reports true: at once, or after the delivery
// got there (Moved), or after readLog (which applies the log from the
// projection's position to the head) did. It returns ctx's error,
// readLog's, or ErrNotCaughtUp.
func (c *CatchUp) Await(ctx context.Context, holds func() bool, readLog func(context.Context) error, o CatchUpOptions) error {
	if holds() { // the usual case: nothing to wait for
		return nil
	}
	o = o.withDefaults()
	deadline := time.Now().Add(o.Delivery)
	for {
		moved := c.next() // before holds: a Moved in between is not missed
		if holds() {
			return nil
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-moved:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
	ctx, cancel := context.WithTimeout(ctx, o.MaxWait)
	defer cancel()
	for {
		if err := readLog(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		if holds() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ErrNotCaughtUp
		case <-time.After(o.Retry):
		}
	}
}

// Again runs try; when it refuses with a coded *Error, the projection may
// merely be behind (a user or a channel created an instant ago, on
// another stream), so readLog catches it up and, if that moved the
// projection (position) since before try first ran, try runs once more.
// Taking the position before the first try matters: a delivery landing in
// between is news too.
func (c *CatchUp) Again(ctx context.Context, position func() uint64, readLog func(context.Context) error, try func() error) error {
	before := position()
	err := try()
	var coded *Error
	if err == nil || !errors.As(err, &coded) {
		return err
	}
	if readLog(ctx) != nil || position() == before {
		return err
	}
	return try()
}
