package eventlog

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// VerifyReport summarises a successful Verify.
type VerifyReport struct {
	Events   uint64 // records checked
	Streams  int    // distinct streams seen
	Head     uint64 // seq of the last record
	HeadHash Hash   // its hash: record it elsewhere to anchor the chain
}

// Verify walks the whole log and checks, for every record: the stored hash
// matches the record bytes, the record decodes, its seq matches its key and
// follows the previous one with no gap, its prev_hash is the previous
// record's hash, its stream version follows the stream's previous event,
// and the stream index maps that stream and version to it. Finally the
// index must hold no other entry, and the head in the meta bucket must
// name the last record. The first failure is returned as a *ChainError
// naming the seq.
//
// What no unkeyed chain can show: a rewrite of the records from any point
// on, hashes recomputed, or the last records cut off with the head moved
// back, verifies. Compare the head against one recorded elsewhere (the
// head an earlier Verify reported, say) with Anchor.
func (l *Log) Verify(ctx context.Context) (VerifyReport, error) {
	var (
		rep      VerifyReport
		prev     Hash
		expect   uint64 = 1
		versions        = map[string]uint64{}
		e        Event
	)
	for {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		var done bool
		err := l.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketEvents).Cursor()
			index := tx.Bucket(bucketStreams)
			k, v := c.Seek(u64(expect))
			for n := 0; n < 4*readChunk; n, expect = n+1, expect+1 {
				if k == nil {
					done = true
					return nil
				}
				if len(k) != 8 {
					return &ChainError{Seq: expect, Reason: fmt.Sprintf("key of %d bytes", len(k))}
				}
				key := binary.BigEndian.Uint64(k)
				if key != expect {
					return &ChainError{Seq: expect, Reason: fmt.Sprintf("missing: next record is seq %d", key)}
				}
				if !checkRecord(v) {
					return &ChainError{Seq: key, Reason: "hash does not match the record bytes (record altered)"}
				}
				if err := decodeRecord(v, &e); err != nil {
					return &ChainError{Seq: key, Reason: "record does not decode: " + err.Error()}
				}
				if e.Seq != key {
					return &ChainError{Seq: key, Reason: fmt.Sprintf("record says seq %d", e.Seq)}
				}
				if e.PrevHash != prev {
					return &ChainError{Seq: key, Reason: "prev_hash is not the hash of the previous record"}
				}
				if want := versions[e.Stream] + 1; e.Version != want {
					return &ChainError{Seq: key, Reason: fmt.Sprintf("stream %s version %d, want %d", e.Stream, e.Version, want)}
				}
				if at := index.Get(streamKey(e.Stream, e.Version)); len(at) != 8 || binary.BigEndian.Uint64(at) != key {
					return &ChainError{Seq: key, Reason: fmt.Sprintf("the stream index does not map stream %s version %d to it", e.Stream, e.Version)}
				}
				versions[e.Stream] = e.Version
				prev = e.Hash
				rep.Events++
				rep.Head, rep.HeadHash = key, e.Hash
				k, v = c.Next()
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
		if done {
			break
		}
	}
	rep.Streams = len(versions)
	var headSeq uint64
	var headHash Hash
	var entries int
	if err := l.view(func(tx *bolt.Tx) error {
		if h := tx.Bucket(bucketMeta).Get(keyHead); len(h) == 8+HashSize {
			headSeq = binary.BigEndian.Uint64(h)
			copy(headHash[:], h[8:])
		}
		entries = tx.Bucket(bucketStreams).Stats().KeyN
		return nil
	}); err != nil {
		return rep, err
	}
	if uint64(entries) != rep.Events { // every event has its entry (checked above): the rest point nowhere true
		return rep, &ChainError{Seq: rep.Head, Reason: fmt.Sprintf("the stream index has %d entries for %d events", entries, rep.Events)}
	}
	if headSeq != rep.Head || headHash != rep.HeadHash {
		return rep, &ChainError{Seq: rep.Head, Reason: fmt.Sprintf("the recorded head (seq %d) is not the last record (seq %d)", headSeq, rep.Head)}
	}
	return rep, nil
}

// Anchor checks that the verified log still reaches seq and that the
// record there has the hash recorded elsewhere (an earlier Verify's head):
// the log has not been cut back or rewritten from that point on since.
// Run it after Verify.
func (l *Log) Anchor(seq uint64, hash Hash) error {
	return l.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEvents).Get(u64(seq))
		if v == nil {
			return &ChainError{Seq: seq, Reason: "the anchor's seq is not in the log (cut back?)"}
		}
		// A record's hash is its last HashSize bytes.
		if len(v) < 1+HashSize || Hash(v[len(v)-HashSize:]) != hash {
			return &ChainError{Seq: seq, Reason: "the record's hash is not the anchor's (rewritten from here on?)"}
		}
		return nil
	})
}

// Filter selects events for Export. Zero fields match everything.
type Filter struct {
	FromSeq, ToSeq uint64    // inclusive seq range
	Since, Until   time.Time // Since <= time < Until
	Stream         string    // exact stream
	Type           string    // exact type, or a prefix ending in "*" ("channel.*")
	Actor          string
}

// Match reports whether e passes the filter.
func (f *Filter) Match(e *Event) bool {
	switch {
	case f.FromSeq != 0 && e.Seq < f.FromSeq, f.ToSeq != 0 && e.Seq > f.ToSeq:
		return false
	case !f.Since.IsZero() && e.Time.Before(f.Since), !f.Until.IsZero() && !e.Time.Before(f.Until):
		return false
	case f.Stream != "" && e.Stream != f.Stream, f.Actor != "" && e.Actor != f.Actor:
		return false
	}
	if f.Type != "" {
		if p, ok := strings.CutSuffix(f.Type, "*"); ok {
			return strings.HasPrefix(e.Type, p)
		}
		return e.Type == f.Type
	}
	return true
}

// Export writes the events passing f to w as JSON Lines (one
// Event.MarshalJSON per line) and returns how many it wrote. A stream
// filter reads through the stream index instead of the whole log.
func (l *Log) Export(ctx context.Context, w io.Writer, f Filter) (int, error) {
	bw := bufio.NewWriterSize(w, 64*1024)
	enc := json.NewEncoder(bw)
	n := 0
	write := func(e Event) error {
		if !f.Match(&e) {
			return nil
		}
		n++
		return enc.Encode(e)
	}
	var err error
	if f.Stream != "" {
		err = l.ReadStream(ctx, f.Stream, 1, write)
	} else {
		err = l.Read(ctx, f.FromSeq, f.ToSeq, write)
	}
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}
