package eventlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// readChunk is how many records one read transaction visits at most: long
// read transactions would keep bbolt from reusing pages and growing the mmap.
const readChunk = 1024

// recentSize is how many of the newest events are kept decoded in memory
// for tails that follow the head.
const recentSize = 1 << 14

// recentRing holds the newest committed events.
type recentRing struct {
	mu     sync.RWMutex
	events []Event
	mask   uint64
	oldest uint64 // seq of the first event pushed since Open (0: none)
	newest uint64 // seq of the newest event held
}

func (r *recentRing) init(size int) {
	r.events = make([]Event, size)
	r.mask = uint64(size - 1)
}

func (r *recentRing) push(evs []Event) {
	r.mu.Lock()
	for i := range evs {
		r.events[evs[i].Seq&r.mask] = evs[i]
	}
	if r.oldest == 0 {
		r.oldest = evs[0].Seq
	}
	r.newest = evs[len(evs)-1].Seq
	r.mu.Unlock()
}

// get appends to dst the events from seq on, up to max, if the ring still
// holds seq; ok is false when it does not.
func (r *recentRing) get(dst []Event, seq uint64, max int) ([]Event, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	size := r.mask + 1
	// Only events pushed since Open are held, and only the newest size.
	if r.oldest == 0 || seq < r.oldest || seq > r.newest || seq+size <= r.newest {
		return dst, false
	}
	for ; seq <= r.newest && max > 0; seq, max = seq+1, max-1 {
		dst = append(dst, r.events[seq&r.mask])
	}
	return dst, true
}

// view runs fn in a read transaction, turning a bbolt panic on a mangled
// page into ErrCorrupt.
func (l *Log) view(fn func(*bolt.Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: bbolt: %v", ErrCorrupt, p)
		}
	}()
	if isClosed(l.closing) {
		return ErrClosed
	}
	err = l.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) { // Close ran between the check and View
		return ErrClosed
	}
	return err
}

// chunk appends to dst up to max events from seq on (not past head).
func (l *Log) chunk(dst []Event, seq uint64, max int) ([]Event, error) {
	if out, ok := l.recent.get(dst, seq, max); ok {
		return out, nil
	}
	head := l.Head()
	err := l.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(u64(seq)); k != nil && max > 0; k, v = c.Next() {
			s := binary.BigEndian.Uint64(k)
			if s > head {
				break
			}
			var e Event
			if err := decodeRecord(v, &e); err != nil {
				return fmt.Errorf("%w: seq %d: %v", ErrCorrupt, s, err)
			}
			dst = append(dst, e)
			max--
		}
		return nil
	})
	return dst, err
}

// Read calls fn for each event with from <= seq <= to, in seq order; to == 0
// means up to the head when Read was called. It pages through the file in
// bounded read transactions, so fn may take its time. An error from fn
// stops the read and is returned.
func (l *Log) Read(ctx context.Context, from, to uint64, fn func(Event) error) error {
	if from == 0 {
		from = 1
	}
	if head := l.Head(); to == 0 || to > head {
		to = head
	}
	buf := make([]Event, 0, readChunk)
	for from <= to {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		buf, err = l.chunk(buf[:0], from, int(min(uint64(readChunk), to-from+1)))
		if err != nil {
			return err
		}
		if len(buf) == 0 {
			return fmt.Errorf("%w: seq %d missing", ErrCorrupt, from)
		}
		for i := range buf {
			if err := fn(buf[i]); err != nil {
				return err
			}
		}
		from = buf[len(buf)-1].Seq + 1
	}
	return nil
}

func streamKey(stream string, version uint64) []byte {
	k := make([]byte, 0, len(stream)+9)
	k = append(k, stream...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, version)
}

// ReadStream calls fn for each event of stream with version >= from, in
// version order, using the stream index.
func (l *Log) ReadStream(ctx context.Context, stream string, from uint64, fn func(Event) error) error {
	prefix := append([]byte(stream), 0)
	if from == 0 {
		from = 1
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var batch []Event
		err := l.view(func(tx *bolt.Tx) error {
			events := tx.Bucket(bucketEvents)
			c := tx.Bucket(bucketStreams).Cursor()
			for k, v := c.Seek(streamKey(stream, from)); k != nil && bytes.HasPrefix(k, prefix) && len(batch) < readChunk; k, v = c.Next() {
				if len(k) != len(prefix)+8 { // a longer stream name sharing the prefix cannot: NUL is not allowed in names
					continue
				}
				rec := events.Get(v)
				var e Event
				if rec == nil {
					return fmt.Errorf("%w: stream %s index points at missing seq %d", ErrCorrupt, stream, binary.BigEndian.Uint64(v))
				}
				if err := decodeRecord(rec, &e); err != nil {
					return fmt.Errorf("%w: seq %d: %v", ErrCorrupt, binary.BigEndian.Uint64(v), err)
				}
				if version := binary.BigEndian.Uint64(k[len(prefix):]); e.Stream != stream || e.Version != version {
					return fmt.Errorf("%w: stream %s version %d index points at seq %d, which is stream %s version %d", ErrCorrupt, stream, version, e.Seq, e.Stream, e.Version)
				}
				batch = append(batch, e)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i := range batch {
			if err := fn(batch[i]); err != nil {
				return err
			}
		}
		if len(batch) < readChunk {
			return nil
		}
		from = batch[len(batch)-1].Version + 1
	}
}

// StreamVersion returns the durable version of stream (0 if it has no
// events): from memory for a stream appended to or looked up by the
// writer lately, else from the stream index.
func (l *Log) StreamVersion(stream string) (uint64, error) {
	if isClosed(l.closing) {
		return 0, ErrClosed
	}
	l.headsMu.RLock()
	v, ok := l.heads[stream]
	l.headsMu.RUnlock()
	if ok {
		return v, nil
	}
	err := l.view(func(tx *bolt.Tx) error {
		v = lastVersion(tx.Bucket(bucketStreams).Cursor(), stream)
		return nil
	})
	return v, err
}

// lastVersion is the version of stream's last event in the stream index
// (0 if none): the key just before stream \x00 MaxUint64.
func lastVersion(c *bolt.Cursor, stream string) uint64 {
	end := streamKey(stream, math.MaxUint64)
	k, _ := c.Seek(end)
	switch {
	case k == nil:
		k, _ = c.Last()
	case !bytes.Equal(k, end):
		k, _ = c.Prev()
	}
	if len(k) != len(end) || !bytes.Equal(k[:len(stream)+1], end[:len(stream)+1]) {
		return 0
	}
	return binary.BigEndian.Uint64(k[len(stream)+1:])
}

// Cursor returns the seq saved for the named consumer (0 if none).
func (l *Log) Cursor(name string) (uint64, error) {
	return l.getUint64(bucketCursors, name)
}

// getUint64 reads an 8-byte value, 0 when the key is absent.
func (l *Log) getUint64(bucket []byte, key string) (uint64, error) {
	var v uint64
	err := l.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucket).Get([]byte(key)); len(b) == 8 {
			v = binary.BigEndian.Uint64(b)
		}
		return nil
	})
	return v, err
}

// Cursors returns every saved cursor.
func (l *Log) Cursors() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := l.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCursors).ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				out[string(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	return out, err
}

// Tail reads the log from a position and then follows new appends. Each
// event is returned exactly once, in seq order, with no gap. A Tail is not
// safe for concurrent use; open one per consumer.
type Tail struct {
	l    *Log
	next uint64
	buf  []Event
	i    int
}

// Tail returns a reader whose first event is the one at seq from (1 for the
// whole log, Head()+1 for only new events).
func (l *Log) Tail(from uint64) *Tail {
	if from == 0 {
		from = 1
	}
	return &Tail{l: l, next: from, buf: make([]Event, 0, 256)}
}

// Position is the seq of the next event Next will return.
func (t *Tail) Position() uint64 { return t.next }

// Next returns the next event, waiting for it to be appended if needed. It
// returns ctx's error when ctx ends and ErrClosed when the log closes.
func (t *Tail) Next(ctx context.Context) (Event, error) {
	for t.i >= len(t.buf) {
		wake := *t.l.wake.Load() // taken before the head check: no lost wake-up
		ok, err := t.fill()
		if err != nil {
			return Event{}, err
		}
		if ok {
			break
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-t.l.closing:
			return Event{}, ErrClosed
		}
	}
	return t.take(), nil
}

// TryNext returns the next event if one is already durable, without
// waiting; ok is false when the tail has caught up with the head.
func (t *Tail) TryNext() (e Event, ok bool, err error) {
	if t.i >= len(t.buf) {
		if ok, err := t.fill(); !ok || err != nil {
			return Event{}, false, err
		}
	}
	return t.take(), true, nil
}

// fill loads the next chunk; false when the tail has caught up.
func (t *Tail) fill() (bool, error) {
	if t.next > t.l.Head() {
		return false, nil
	}
	var err error
	t.buf, err = t.l.chunk(t.buf[:0], t.next, cap(t.buf))
	t.i = 0
	if err != nil {
		return false, err
	}
	if len(t.buf) == 0 {
		return false, fmt.Errorf("%w: seq %d missing", ErrCorrupt, t.next)
	}
	return true, nil
}

func (t *Tail) take() Event {
	e := t.buf[t.i]
	t.i++
	t.next = e.Seq + 1
	return e
}
