// Package eventlog is Parley's append-only, hash-chained event log, stored
// in one bbolt file.
//
// # Basics
//
// Open a log in a data directory, Append drafts, read them back:
//
//	l, err := eventlog.Open("./data", eventlog.Options{})
//	evs, err := l.Append(ctx, eventlog.Draft{Type: "channel.message.sent", Stream: "channel/42", Payload: p})
//	err = l.Read(ctx, 1, 0, func(e eventlog.Event) error { ... })
//	t := l.Tail(l.Head() + 1) // follow new events
//	e, err := t.Next(ctx)
//
// Every event gets a global seq (gap-free, from 1), a ULID, the append time,
// and a version within its stream. Append returns only once the events are
// durable: one writer goroutine takes every waiting request (up to
// Options.MaxBatch), writes them in one bbolt transaction, commits (fsync),
// then acknowledges them all. This group commit is what makes many
// concurrent small appends fast; a single appender pays one commit per call.
//
// A Draft may carry an expected stream version (ExpectVersion); a mismatch
// fails that Append call alone with a *ConflictError and writes none of its
// drafts. Other calls in the same batch are unaffected.
//
// Readers: Read (by seq range), ReadStream (by stream, through an index
// written in the same transaction as the events) and Tail, which catches up
// from a position and then follows live appends, returning each event once,
// in seq order. The newest events are served from memory, older ones in
// bounded read transactions. SaveCursor and Cursor keep consumers' durable
// positions in the same file.
//
// # Integrity
//
// Each stored record is its binary encoding (FormatVersion first) followed
// by Hash = SHA-256(encoding), and the encoding includes the previous
// record's hash: changing, removing or reordering any record breaks the
// chain from there on. Verify walks the log, and the stream index with
// it, and returns a *ChainError naming the first bad seq; Export renders
// events as JSON Lines. Verify proves the file is self-consistent. An
// unkeyed chain cannot show a rewrite of the records from some point on
// with their hashes recomputed, nor the last records cut off with the head
// moved back: keep the head Verify reports somewhere else, and check it
// later with Anchor.
//
// # Caveats
//
//   - One process at a time: a second Open fails with ErrLocked, also for
//     read-only opens while a writer holds the file.
//   - Append fails fast with ErrQueueFull rather than blocking when
//     Options.QueueSize requests are waiting; callers decide to retry.
//   - If ctx ends while Append waits, the outcome is unknown: the events may
//     have been written. Use ExpectVersion to make retries safe (Draft.ID
//     is not deduplicated: two appends with one ID both land).
//   - After a failed commit (disk full, I/O error) the log refuses writes
//     with ErrFailed until it is reopened; nothing acknowledged is lost.
//   - Events handed out by readers share memory: treat them as read-only.
//   - Readers do not re-hash records; Verify does.
package eventlog
