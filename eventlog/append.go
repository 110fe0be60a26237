package eventlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// Draft is an event to append: the envelope fields the caller chooses. The
// log assigns Seq, Time, Version, the hashes and, when ID is zero, the ID.
type Draft struct {
	ID       ulid.ULID
	Type     string
	Stream   string
	Company  string
	Actor    string
	Audience []string
	Meta     map[string]string
	Payload  []byte
	// Expect, when set, is the version Stream must be at before this draft
	// (0: the stream must not exist yet). A mismatch fails the whole
	// Append with a *ConflictError and writes nothing.
	Expect Expect
}

// Expect is an optional expected stream version. The zero value expects
// nothing.
type Expect struct {
	version uint64
	set     bool
}

// ExpectVersion expects the stream to be at version v (0 for a new stream).
func ExpectVersion(v uint64) Expect { return Expect{version: v, set: true} }

// request is one Append, SaveCursor or state call waiting for the writer.
type request struct {
	drafts []Draft
	kv     *kvOp // SaveCursor, PutState, DeleteState

	enqueued time.Time
	first, n int // the request's events in the batch
	events   []Event
	err      error
	done     chan struct{}
}

func (l *Log) validate(d *Draft) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, a...))
	}
	switch {
	case d.Type == "" || len(d.Type) > MaxTypeLen:
		return bad("type must be 1..%d bytes, got %d", MaxTypeLen, len(d.Type))
	case d.Stream == "" || len(d.Stream) > MaxStreamLen:
		return bad("stream must be 1..%d bytes, got %d", MaxStreamLen, len(d.Stream))
	case strings.IndexByte(d.Stream, 0) >= 0:
		return bad("stream %q contains a NUL byte", d.Stream)
	case len(d.Company) > MaxNameLen || len(d.Actor) > MaxNameLen:
		return bad("company and actor are limited to %d bytes", MaxNameLen)
	case len(d.Audience) > MaxAudience:
		return bad("audience of %d exceeds %d", len(d.Audience), MaxAudience)
	case len(d.Meta) > MaxMetaEntries:
		return bad("meta of %d entries exceeds %d", len(d.Meta), MaxMetaEntries)
	case len(d.Payload) > l.opts.MaxPayload:
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrPayloadTooLarge, len(d.Payload), l.opts.MaxPayload)
	}
	for _, a := range d.Audience {
		if len(a) > MaxNameLen {
			return bad("audience entry of %d bytes exceeds %d", len(a), MaxNameLen)
		}
	}
	for k, v := range d.Meta {
		if len(k) > MaxNameLen || len(v) > MaxNameLen {
			return bad("meta %q exceeds %d bytes", k, MaxNameLen)
		}
	}
	return nil
}

// Append writes drafts atomically and returns them as stored events, once
// they are durable (committed and fsynced). Concurrent calls are committed
// together (group commit). It fails fast with ErrQueueFull when the
// writer's queue is full and never writes part of a call.
//
// If ctx ends while the call waits for the commit, Append returns the
// context's error; the events may or may not have been written. The writer
// may still read the drafts then: do not modify their slices or maps after
// calling Append, even when it returned early.
func (l *Log) Append(ctx context.Context, drafts ...Draft) ([]Event, error) {
	if len(drafts) == 0 {
		return nil, nil
	}
	for i := range drafts {
		if err := l.validate(&drafts[i]); err != nil {
			return nil, err
		}
	}
	r := &request{drafts: drafts}
	if err := l.enqueue(ctx, r); err != nil {
		return nil, err
	}
	return r.events, r.err
}

// SaveCursor durably records that the consumer name has processed every
// event up to seq. It rides the same group commit as appends.
func (l *Log) SaveCursor(ctx context.Context, name string, seq uint64) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: cursor name must be 1..%d bytes", ErrInvalidEvent, MaxNameLen)
	}
	return l.writeKV(ctx, &kvOp{bucket: bucketCursors, key: []byte(name), value: u64(seq)})
}

// kvOp is a durable key/value write riding the group commit.
type kvOp struct {
	bucket, key, value []byte
	del                bool
}

func (l *Log) writeKV(ctx context.Context, op *kvOp) error {
	r := &request{kv: op}
	if err := l.enqueue(ctx, r); err != nil {
		return err
	}
	return r.err
}

// MaxStateValue caps one value of PutState.
const MaxStateValue = 64 << 10

func stateKey(namespace, key string) ([]byte, error) {
	if namespace == "" || len(namespace) > MaxNameLen || strings.IndexByte(namespace, 0) >= 0 || key == "" || len(key) > MaxNameLen {
		return nil, fmt.Errorf("%w: state namespace and key must be 1..%d bytes, namespace without NUL", ErrInvalidEvent, MaxNameLen)
	}
	return append(append([]byte(namespace), 0), key...), nil
}

// PutState durably stores a small value under namespace and key (the
// plugins' key/value store). It rides the same group commit as appends.
func (l *Log) PutState(ctx context.Context, namespace, key string, value []byte) error {
	k, err := stateKey(namespace, key)
	if err != nil {
		return err
	}
	if len(value) > MaxStateValue {
		return fmt.Errorf("%w: state value of %d bytes, the limit is %d", ErrPayloadTooLarge, len(value), MaxStateValue)
	}
	return l.writeKV(ctx, &kvOp{bucket: bucketState, key: k, value: bytes.Clone(value)})
}

// DeleteState durably removes a value stored with PutState.
func (l *Log) DeleteState(ctx context.Context, namespace, key string) error {
	k, err := stateKey(namespace, key)
	if err != nil {
		return err
	}
	return l.writeKV(ctx, &kvOp{bucket: bucketState, key: k, del: true})
}

// GetState reads a value stored with PutState.
func (l *Log) GetState(namespace, key string) ([]byte, bool, error) {
	k, err := stateKey(namespace, key)
	if err != nil {
		return nil, false, err
	}
	var v []byte
	var found bool
	err = l.view(func(tx *bolt.Tx) error {
		if bucket := tx.Bucket(bucketState); bucket == nil {
			return nil // a read-only open of a log written before the bucket existed
		} else if b := bucket.Get(k); b != nil {
			v, found = bytes.Clone(b), true
		}
		return nil
	})
	return v, found, err
}

func (l *Log) enqueue(ctx context.Context, r *request) error {
	if err := l.Err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("eventlog: not appended: %w", err) // the caller gave up before: nothing is queued
	}
	r.enqueued = time.Now()
	r.done = make(chan struct{})
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	select {
	case l.queue <- r:
	default:
		l.mu.RUnlock()
		return fmt.Errorf("%w (%d requests waiting)", ErrQueueFull, cap(l.queue))
	}
	l.mu.RUnlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("eventlog: append outcome unknown: %w", ctx.Err())
	}
}

// run is the writer goroutine, owned by the Log: Close stops it.
func (l *Log) run() {
	defer close(l.writerDone)
	batch := make([]*request, 0, l.opts.MaxBatch)
	var waits []time.Duration
	delay := time.NewTimer(time.Hour)
	delay.Stop()
	for r := range l.queue {
		batch = append(batch[:0], r)
		batch = l.fill(batch, nil)
		if l.opts.CommitDelay > 0 && len(batch) < l.opts.CommitDelayBelow {
			delay.Reset(l.opts.CommitDelay)
			batch = l.fill(batch, delay.C)
			delay.Stop()
		}
		waits = l.commit(batch, waits[:0])
	}
}

// fill adds queued requests to batch up to MaxBatch: those already
// queued, or, with until, those arriving before it fires.
func (l *Log) fill(batch []*request, until <-chan time.Time) []*request {
	for len(batch) < l.opts.MaxBatch {
		if until == nil {
			select {
			case r, ok := <-l.queue:
				if !ok {
					return batch
				}
				batch = append(batch, r)
			default:
				return batch
			}
			continue
		}
		select {
		case r, ok := <-l.queue:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		case <-until:
			return batch
		}
	}
	return batch
}

// headCacheMax bounds the writer's cache of stream versions; past it the
// cache is dropped and refilled from the stream index.
const headCacheMax = 1 << 17

// commit writes one batch in one transaction and acknowledges its callers.
func (l *Log) commit(batch []*request, waits []time.Duration) []time.Duration {
	if err := l.Err(); err != nil {
		for _, r := range batch {
			r.err = err
			close(r.done)
		}
		return waits
	}
	if l.testHook != nil {
		l.testHook()
	}
	start := time.Now()
	now := start.UTC()
	seq, prev := l.seq, l.last
	clear(l.staged)
	var committed []Event
	// One allocation holds every record, key and index entry of the batch.
	// Events in the in-memory window point into it, so it must be sized to
	// the batch: a fixed-size arena would pin its whole size per event.
	size := 0
	for _, r := range batch {
		for i := range r.drafts {
			size += sizeHint(&r.drafts[i])
		}
	}
	arena := make([]byte, 0, size)
	conflicts := 0
	err := l.db.Update(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		events.FillPercent = 0.9
		index := tx.Bucket(bucketStreams)
		version := func(stream string) uint64 {
			if v, ok := l.staged[stream]; ok {
				return v
			}
			if v, ok := l.heads[stream]; ok {
				return v
			}
			v := lastVersion(index.Cursor(), stream) // as committed: staged has this transaction's
			l.headsMu.Lock()
			l.heads[stream] = v
			l.headsMu.Unlock()
			return v
		}
		for _, r := range batch {
			r.err = nil
			if r.kv != nil {
				b := tx.Bucket(r.kv.bucket)
				if r.kv.del {
					if err := b.Delete(r.kv.key); err != nil {
						return err
					}
				} else if err := b.Put(r.kv.key, r.kv.value); err != nil {
					return err
				}
				continue
			}
			if cerr := checkExpectations(r.drafts, version); cerr != nil {
				r.err = cerr
				conflicts++
				continue
			}
			r.first, r.n = len(committed), len(r.drafts)
			for i := range r.drafts {
				d := &r.drafts[i]
				seq++
				e := Event{
					Seq: seq, ID: d.ID, Time: now, Type: d.Type, Stream: d.Stream,
					Version: version(d.Stream) + 1, Company: d.Company, Actor: d.Actor,
					Audience: slices.Clone(d.Audience), Meta: maps.Clone(d.Meta), PrevHash: prev,
				}
				if e.ID == (ulid.ULID{}) {
					e.ID = ulid.MustNew(ulid.Timestamp(now), l.entropy)
				}
				e.Payload = d.Payload
				keyAt := len(arena)
				arena = binary.BigEndian.AppendUint64(arena, seq)
				valAt := len(arena)
				arena = sealRecord(arena, &e)
				val := arena[valAt:]
				if len(d.Payload) > 0 { // the stored copy, immune to the caller reusing its buffer
					end := len(val) - 2*HashSize
					e.Payload = val[end-len(d.Payload) : end : end]
				}
				if err := events.Put(arena[keyAt:valAt], val); err != nil {
					return err
				}
				idxAt := len(arena)
				arena = append(arena, d.Stream...)
				arena = append(arena, 0)
				arena = binary.BigEndian.AppendUint64(arena, e.Version)
				seqAt := len(arena)
				arena = binary.BigEndian.AppendUint64(arena, seq)
				if err := index.Put(arena[idxAt:seqAt], arena[seqAt:]); err != nil {
					return err
				}
				l.staged[d.Stream] = e.Version
				prev = e.Hash
				committed = append(committed, e)
			}
		}
		head := append(u64(seq), prev[:]...)
		return tx.Bucket(bucketMeta).Put(keyHead, head)
	})
	if err != nil {
		err = fmt.Errorf("%w: commit: %v", ErrFailed, err)
		l.failure.Store(&err)
		l.headsMu.Lock()
		clear(l.heads) // may hold versions of the rolled-back transaction
		l.headsMu.Unlock()
		for _, r := range batch {
			if r.err == nil {
				r.err = err
			}
			close(r.done)
		}
		return waits
	}
	l.headsMu.Lock()
	if len(l.heads)+len(l.staged) > headCacheMax {
		clear(l.heads)
	}
	maps.Copy(l.heads, l.staged) // durable now, before any appender hears so
	l.headsMu.Unlock()
	l.seq, l.last = seq, prev
	if len(committed) > 0 {
		l.recent.push(committed)
		l.head.Store(seq)
		l.broadcast()
	}
	ack := time.Now()
	for _, r := range batch {
		if r.err == nil && r.kv == nil {
			r.events = committed[r.first : r.first+r.n : r.first+r.n]
		}
		waits = append(waits, ack.Sub(r.enqueued))
		close(r.done)
	}
	if l.opts.Observer != nil {
		l.opts.Observer.Committed(CommitStats{
			Events: committed, Waits: waits, Duration: ack.Sub(start), Bytes: len(arena),
			Conflicts: conflicts, Queued: len(l.queue),
		})
	}
	return waits
}

// sizeHint bounds the bytes commit writes into the arena for d: the
// record (fields, varints, both hashes), its key and its index entry.
func sizeHint(d *Draft) int {
	n := 2*(len(d.Stream)+len(d.Type)) + len(d.Company) + len(d.Actor) + len(d.Payload) + 192
	for _, a := range d.Audience {
		n += len(a) + binary.MaxVarintLen64
	}
	for k, v := range d.Meta {
		n += len(k) + len(v) + 2*binary.MaxVarintLen64
	}
	return n
}

// checkExpectations checks a request's drafts against the current stream
// versions, counting earlier drafts of the same request.
func checkExpectations(drafts []Draft, version func(string) uint64) error {
	for i := range drafts {
		d := &drafts[i]
		if !d.Expect.set {
			continue
		}
		v := version(d.Stream)
		for j := 0; j < i; j++ {
			if drafts[j].Stream == d.Stream {
				v++
			}
		}
		if v != d.Expect.version {
			return &ConflictError{Stream: d.Stream, Expected: d.Expect.version, Actual: v}
		}
	}
	return nil
}
