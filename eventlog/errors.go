package eventlog

import (
	"errors"
	"fmt"
)

// Sentinel errors. Wrapped errors keep them reachable with errors.Is.
var (
	// ErrClosed is returned by calls on a closed Log.
	ErrClosed = errors.New("eventlog: closed")
	// ErrQueueFull is returned by Append when the writer's queue is full.
	// Nothing was written; the caller may retry later.
	ErrQueueFull = errors.New("eventlog: append queue full")
	// ErrPayloadTooLarge is returned by Append for a payload over
	// Options.MaxPayload. Nothing was written.
	ErrPayloadTooLarge = errors.New("eventlog: payload too large")
	// ErrInvalidEvent is returned by Append for a draft that breaks the
	// envelope rules (empty type or stream, a name too long, ...).
	ErrInvalidEvent = errors.New("eventlog: invalid event")
	// ErrConflict is matched by *ConflictError.
	ErrConflict = errors.New("eventlog: stream version conflict")
	// ErrLocked is returned by Open when another process holds the file.
	ErrLocked = errors.New("eventlog: data directory is in use by another process")
	// ErrNotEventLog is returned by Open for a file that is not a Parley
	// event log: not bbolt at all, or a bbolt file of something else.
	ErrNotEventLog = errors.New("eventlog: not a Parley event log")
	// ErrCorrupt is returned by readers for a record that fails to decode
	// or whose hash does not match. Verify reports the exact seq.
	ErrCorrupt = errors.New("eventlog: corrupt record")
	// ErrFailed is returned by Append after a commit failed (disk full, I/O
	// error): the log refuses further writes until it is reopened.
	ErrFailed = errors.New("eventlog: writer failed")
)

// ConflictError reports that a draft's expected stream version did not
// match. Nothing of the Append call was written.
type ConflictError struct {
	Stream   string
	Expected uint64
	Actual   uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("eventlog: stream %q is at version %d, expected %d", e.Stream, e.Actual, e.Expected)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ChainError is what Verify returns for the first record that breaks the
// log's integrity.
type ChainError struct {
	Seq    uint64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("eventlog: chain broken at seq %d: %s", e.Seq, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *ChainError) Is(target error) bool { return target == ErrCorrupt }
