package eventlog_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventlog"
	bolt "go.etcd.io/bbolt"
)

func open(t *testing.T, dir string, opts eventlog.Options) *eventlog.Log {
	t.Helper()
	l, err := eventlog.Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func draft(stream string, i int) eventlog.Draft {
	return eventlog.Draft{
		Type: "test.appended", Stream: stream, Company: "acme", Actor: "alice",
		Audience: []string{"alice", "bob"}, Payload: fmt.Appendf(nil, `{"i":%d}`, i),
	}
}

func TestAppendReadRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, dir, eventlog.Options{})
	meta := map[string]string{"watermill_uuid": "x-1"}
	in := draft("channel/1", 1)
	in.Meta = meta
	evs, err := l.Append(ctx, in, draft("channel/2", 2), draft("channel/1", 3))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[0].Seq != 1 || evs[2].Seq != 3 {
		t.Fatalf("seqs: %+v", evs)
	}
	if evs[0].Version != 1 || evs[1].Version != 1 || evs[2].Version != 2 {
		t.Fatalf("versions %d %d %d", evs[0].Version, evs[1].Version, evs[2].Version)
	}
	if evs[1].PrevHash != evs[0].Hash || evs[2].PrevHash != evs[1].Hash {
		t.Fatal("chain not linked")
	}
	if !(evs[0].ID.Compare(evs[1].ID) < 0 && evs[1].ID.Compare(evs[2].ID) < 0) {
		t.Fatal("ids not monotonic")
	}
	l.Close()

	l = open(t, dir, eventlog.Options{})
	if l.Head() != 3 {
		t.Fatalf("head after reopen %d", l.Head())
	}
	var got []eventlog.Event
	if err := l.Read(ctx, 1, 0, func(e eventlog.Event) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		a, _ := json.Marshal(evs[i])
		b, _ := json.Marshal(got[i])
		if !bytes.Equal(a, b) {
			t.Fatalf("event %d differs after reopen:\n%s\n%s", i, a, b)
		}
	}
	if got[0].Meta["watermill_uuid"] != "x-1" {
		t.Fatalf("meta lost: %v", got[0].Meta)
	}
	var stream []uint64
	if err := l.ReadStream(ctx, "channel/1", 1, func(e eventlog.Event) error { stream = append(stream, e.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(stream) != "[1 3]" {
		t.Fatalf("stream channel/1 = %v", stream)
	}
	if v, _ := l.StreamVersion("channel/1"); v != 2 {
		t.Fatalf("stream version %d", v)
	}
	// The JSON rendering carries every envelope field.
	line, _ := json.Marshal(got[0])
	for _, want := range []string{`"seq":1`, `"type":"test.appended"`, `"stream":"channel/1"`, `"version":1`, `"company":"acme"`, `"actor":"alice"`, `"audience":["alice","bob"]`, `"payload":{"i":1}`, `"prev_hash":"0000`, `"hash":"`} {
		if !strings.Contains(string(line), want) {
			t.Errorf("export line lacks %s: %s", want, line)
		}
	}
}

// TestAppendAfterTheCallerGaveUp: an append whose context is already
// done is refused before it is queued: the caller knows it wrote nothing
// (not an "outcome unknown").
func TestAppendAfterTheCallerGaveUp(t *testing.T) {
	l := open(t, t.TempDir(), eventlog.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 { // a queued append would race the cancelled context, and sometimes win
		if _, err := l.Append(ctx, draft("call/1", 0)); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "not appended") {
			t.Fatalf("append with a cancelled context: %v", err)
		}
	}
	if _, err := l.Append(context.Background(), draft("call/1", 0)); err != nil {
		t.Fatal(err)
	}
	if h := l.Head(); h != 1 {
		t.Fatalf("head %d: a refused append was written", h)
	}
}

func TestExpectedVersionConflict(t *testing.T) {
	ctx := context.Background()
	l := open(t, t.TempDir(), eventlog.Options{})
	d := draft("call/9", 0)
	d.Expect = eventlog.ExpectVersion(0)
	if _, err := l.Append(ctx, d); err != nil {
		t.Fatal(err)
	}
	// Expecting 0 again conflicts; the whole call writes nothing.
	d2 := draft("call/9", 1)
	d2.Expect = eventlog.ExpectVersion(0)
	_, err := l.Append(ctx, draft("other/1", 1), d2)
	var ce *eventlog.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, eventlog.ErrConflict) || ce.Actual != 1 || ce.Expected != 0 {
		t.Fatalf("want conflict at version 1, got %v", err)
	}
	if l.Head() != 1 {
		t.Fatalf("conflicting call wrote something: head %d", l.Head())
	}
	// Expectations count earlier drafts of the same call.
	a, b := draft("call/9", 2), draft("call/9", 3)
	a.Expect, b.Expect = eventlog.ExpectVersion(1), eventlog.ExpectVersion(2)
	if evs, err := l.Append(ctx, a, b); err != nil || evs[1].Version != 3 {
		t.Fatalf("chained expectations: %v %v", evs, err)
	}
}

func TestTailConcurrentAppendersExactlyOnceInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l := open(t, t.TempDir(), eventlog.Options{})
	const appenders, each = 8, 400
	tail := l.Tail(1)
	got := make(chan error, 1)
	seen := map[string]bool{}
	go func() {
		for want := uint64(1); want <= appenders*each; want++ {
			e, err := tail.Next(ctx)
			if err != nil {
				got <- err
				return
			}
			if e.Seq != want {
				got <- fmt.Errorf("tail returned seq %d, want %d", e.Seq, want)
				return
			}
			key := string(e.Payload)
			if seen[key] {
				got <- fmt.Errorf("duplicate payload %s", key)
				return
			}
			seen[key] = true
		}
		got <- nil
	}()
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				d := draft(fmt.Sprintf("s/%d", a), i)
				d.Payload = fmt.Appendf(nil, `{"a":%d,"i":%d}`, a, i)
				if _, err := l.Append(ctx, d); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if len(seen) != appenders*each {
		t.Fatalf("saw %d distinct events", len(seen))
	}
	// Nothing more arrives: the tail blocks until its context ends.
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	if e, err := tail.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("extra event %d / %v", e.Seq, err)
	}
}

func TestTailCatchesUpFromDiskBeyondMemory(t *testing.T) {
	ctx := context.Background()
	l := open(t, t.TempDir(), eventlog.Options{})
	const n = 40000 // more than the in-memory window
	batch := make([]eventlog.Draft, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, draft("bulk/1", i))
		if len(batch) == cap(batch) {
			if _, err := l.Append(ctx, batch...); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	tail := l.Tail(5)
	for want := uint64(5); want <= n; want++ {
		e, err := tail.Next(ctx)
		if err != nil || e.Seq != want {
			t.Fatalf("seq %d: got %d %v", want, e.Seq, err)
		}
	}
}

func TestCursorsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, dir, eventlog.Options{})
	if err := l.SaveCursor(ctx, "plugin/chat", 42); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = open(t, dir, eventlog.Options{})
	if v, err := l.Cursor("plugin/chat"); err != nil || v != 42 {
		t.Fatalf("cursor %d %v", v, err)
	}
	all, _ := l.Cursors()
	if all["plugin/chat"] != 42 || len(all) != 1 {
		t.Fatalf("cursors %v", all)
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	t.Run("payload over the limit", func(t *testing.T) {
		l := open(t, t.TempDir(), eventlog.Options{MaxPayload: 16})
		d := draft("s/1", 0)
		d.Payload = bytes.Repeat([]byte("x"), 17)
		if _, err := l.Append(ctx, d); !errors.Is(err, eventlog.ErrPayloadTooLarge) {
			t.Fatalf("got %v", err)
		}
		if l.Head() != 0 {
			t.Fatal("oversized payload written")
		}
	})
	t.Run("invalid envelope", func(t *testing.T) {
		l := open(t, t.TempDir(), eventlog.Options{})
		for _, d := range []eventlog.Draft{
			{Stream: "s/1"},
			{Type: "t"},
			{Type: "t", Stream: "a\x00b"},
			{Type: strings.Repeat("t", 200), Stream: "s"},
			{Type: "t", Stream: "s", Audience: []string{strings.Repeat("u", 300)}},
		} {
			if _, err := l.Append(ctx, d); !errors.Is(err, eventlog.ErrInvalidEvent) {
				t.Errorf("%.40q: got %v", d.Type+"|"+d.Stream, err)
			}
		}
	})
	t.Run("corrupt file", func(t *testing.T) {
		dir := t.TempDir()
		junk := bytes.Repeat([]byte("not a database "), 1000)
		os.WriteFile(filepath.Join(dir, eventlog.FileName), junk, 0o600)
		_, err := eventlog.Open(dir, eventlog.Options{})
		if !errors.Is(err, eventlog.ErrNotEventLog) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("foreign bbolt file", func(t *testing.T) {
		dir := t.TempDir()
		db, err := bolt.Open(filepath.Join(dir, eventlog.FileName), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("users")); return err })
		db.Close()
		_, err = eventlog.Open(dir, eventlog.Options{})
		if !errors.Is(err, eventlog.ErrNotEventLog) || !strings.Contains(err.Error(), "something else") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("file as data directory", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "notadir")
		os.WriteFile(f, []byte("hello"), 0o600)
		_, err := eventlog.Open(f, eventlog.Options{})
		if !errors.Is(err, eventlog.ErrNotEventLog) || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("locked by another open", func(t *testing.T) {
		dir := t.TempDir()
		open(t, dir, eventlog.Options{})
		_, err := eventlog.Open(dir, eventlog.Options{ReadOnly: true, LockTimeout: 100 * time.Millisecond})
		if !errors.Is(err, eventlog.ErrLocked) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("append after close", func(t *testing.T) {
		l, _ := eventlog.Open(t.TempDir(), eventlog.Options{})
		l.Close()
		if _, err := l.Append(ctx, draft("s/1", 0)); !errors.Is(err, eventlog.ErrClosed) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestVerifyAndExport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, dir, eventlog.Options{})
	for i := 0; i < 50; i++ {
		d := draft(fmt.Sprintf("chan/%d", i%3), i)
		if i%10 == 0 {
			d.Actor = "auditor"
		}
		if _, err := l.Append(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := l.Verify(ctx)
	if err != nil || rep.Events != 50 || rep.Streams != 3 || rep.Head != 50 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	cases := []struct {
		name string
		f    eventlog.Filter
		want int
	}{
		{"all", eventlog.Filter{}, 50},
		{"seq range", eventlog.Filter{FromSeq: 10, ToSeq: 19}, 10},
		{"stream", eventlog.Filter{Stream: "chan/1"}, 17},
		{"actor", eventlog.Filter{Actor: "auditor"}, 5},
		{"type prefix", eventlog.Filter{Type: "test.*"}, 50},
		{"other type", eventlog.Filter{Type: "call.started"}, 0},
		{"until past", eventlog.Filter{Until: time.Unix(0, 0)}, 0},
		{"since past", eventlog.Filter{Since: time.Now().Add(-time.Hour)}, 50},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		n, err := l.Export(ctx, &buf, c.f)
		lines := strings.Count(buf.String(), "\n")
		if err != nil || n != c.want || lines != c.want {
			t.Errorf("%s: n=%d lines=%d err=%v, want %d", c.name, n, lines, err, c.want)
		}
	}
}

// TestVerifyNamesAlteredSeq flips one byte of one stored record and expects
// Verify to name exactly that seq.
func TestVerifyNamesAlteredSeq(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, dir, eventlog.Options{})
	for i := 1; i <= 30; i++ {
		d := draft("s/1", i)
		d.Payload = fmt.Appendf(nil, `{"marker":"m-%03d"}`, i)
		if _, err := l.Append(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	FlipByteAfter(t, filepath.Join(dir, eventlog.FileName), []byte("m-017"))
	l = open(t, dir, eventlog.Options{ReadOnly: true})
	_, err := l.Verify(ctx)
	var ce *eventlog.ChainError
	if !errors.As(err, &ce) || ce.Seq != 17 {
		t.Fatalf("want chain error at seq 17, got %v", err)
	}
}

// FlipByteAfter changes the last byte of marker wherever it occurs in the
// file: bbolt's copy-on-write may leave stale copies of a page, and the
// live one must be among those altered.
func FlipByteAfter(t *testing.T, path string, marker []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(b, marker) == 0 {
		t.Fatalf("marker %q not in the file", marker)
	}
	altered := bytes.Clone(marker)
	altered[len(altered)-1] ^= 0x01
	b = bytes.ReplaceAll(b, marker, altered)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestStateIsDurableAndNamespaced(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, dir, eventlog.Options{})
	if err := l.PutState(ctx, "plugin/a", "tally", []byte("3")); err != nil {
		t.Fatal(err)
	}
	l.PutState(ctx, "plugin/b", "tally", []byte("9"))
	l.PutState(ctx, "plugin/a", "gone", []byte("x"))
	l.DeleteState(ctx, "plugin/a", "gone")
	l.Close()
	l = open(t, dir, eventlog.Options{})
	if v, ok, err := l.GetState("plugin/a", "tally"); err != nil || !ok || string(v) != "3" {
		t.Fatalf("plugin/a tally = %q %v %v", v, ok, err)
	}
	if v, _, _ := l.GetState("plugin/b", "tally"); string(v) != "9" {
		t.Fatalf("plugin/b tally = %q", v)
	}
	if _, ok, _ := l.GetState("plugin/a", "gone"); ok {
		t.Fatal("deleted key still there")
	}
	if err := l.PutState(ctx, "plugin/a", "big", make([]byte, eventlog.MaxStateValue+1)); !errors.Is(err, eventlog.ErrPayloadTooLarge) {
		t.Fatalf("oversized value: %v", err)
	}
	if err := l.PutState(ctx, "", "k", nil); !errors.Is(err, eventlog.ErrInvalidEvent) {
		t.Fatalf("empty namespace: %v", err)
	}
}

// TestReadAfterReopenSeesOlderEvents guards the in-memory window: after a
// reopen it holds only new events, and reads of older ones go to disk.
func TestReadAfterReopenSeesOlderEvents(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, dir, eventlog.Options{})
	for i := range 5 {
		l.Append(ctx, draft("s/1", i))
	}
	l.Close()
	l = open(t, dir, eventlog.Options{})
	l.Append(ctx, draft("s/1", 5))
	var seqs []uint64
	if err := l.Read(ctx, 1, 0, func(e eventlog.Event) error { seqs = append(seqs, e.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	tail := l.Tail(2)
	e, err := tail.Next(ctx)
	if fmt.Sprint(seqs) != "[1 2 3 4 5 6]" || err != nil || e.Seq != 2 {
		t.Fatalf("read %v, tail from 2 gave %d %v", seqs, e.Seq, err)
	}
}

type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) Committed(s eventlog.CommitStats) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, len(s.Events))
}

// TestCommitDelayGathersSmallBatches: with a commit delay, appends that
// arrive within it share one transaction; without, each has its own.
func TestCommitDelayGathersSmallBatches(t *testing.T) {
	for _, c := range []struct {
		delay time.Duration
		want  []int
	}{{0, []int{1, 1}}, {300 * time.Millisecond, []int{2}}} {
		obs := &batchSizes{}
		l, err := eventlog.Open(t.TempDir(), eventlog.Options{CommitDelay: c.delay, Observer: obs})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 2)
		for i := range 2 {
			go func() {
				time.Sleep(time.Duration(i) * 50 * time.Millisecond) // the second well after the first
				_, err := l.Append(context.Background(), eventlog.Draft{Type: "t.x", Stream: "s/1"})
				done <- err
			}()
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		obs.mu.Lock()
		if !slices.Equal(obs.sizes, c.want) {
			t.Errorf("delay %v: batches %v, want %v", c.delay, obs.sizes, c.want)
		}
		obs.mu.Unlock()
	}
}

// TestStreamVersionFromTheIndex: a stream's version comes from the stream
// index after a reopen, whatever streams sort next to it, and agrees with
// the versions kept in memory for the streams just appended to.
func TestStreamVersionFromTheIndex(t *testing.T) {
	dir := t.TempDir()
	l, err := eventlog.Open(dir, eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := map[string]uint64{"a": 3, "a/b": 2, "ab": 1, "b": 0, "": 0, "zz": 4}
	for s, n := range want {
		for range n {
			if _, err := l.Append(ctx, eventlog.Draft{Type: "t.x", Stream: s}); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(l *eventlog.Log, when string) {
		for s, n := range want {
			if s == "" {
				continue
			}
			if v, err := l.StreamVersion(s); err != nil || v != n {
				t.Errorf("%s: StreamVersion(%q) = %d, %v; want %d", when, s, v, err, n)
			}
		}
	}
	check(l, "open")
	l.Close()
	l, err = eventlog.Open(dir, eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	check(l, "reopened")
	// The writer knows the versions too: an expectation on the old head holds.
	if _, err := l.Append(ctx, eventlog.Draft{Type: "t.x", Stream: "a", Expect: eventlog.ExpectVersion(3)}); err != nil {
		t.Fatalf("expect 3 after reopen: %v", err)
	}
	var ce *eventlog.ConflictError
	if _, err := l.Append(ctx, eventlog.Draft{Type: "t.x", Stream: "a/b", Expect: eventlog.ExpectVersion(1)}); !errors.As(err, &ce) {
		t.Fatalf("stale expectation: %v", err)
	}
}

// TestFormat1IsUpgraded: a file of format 1 (which kept a heads bucket)
// opens read-only as is, and opened for writing becomes format 2 without
// the heads bucket, so a kernel built for format 1 refuses it rather than
// trusting stale heads; stream versions come from the index either way.
func TestFormat1IsUpgraded(t *testing.T) {
	dir := t.TempDir()
	l, err := eventlog.Open(dir, eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := l.Append(context.Background(), eventlog.Draft{Type: "t.x", Stream: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// Make it a format 1 file, with a heads bucket that says version 1.
	path := filepath.Join(dir, "events.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("meta")).Put([]byte("format"), []byte("parley-eventlog/1")); err != nil {
			return err
		}
		h, err := tx.CreateBucket([]byte("heads"))
		if err != nil {
			return err
		}
		return h.Put([]byte("s"), []byte{0, 0, 0, 0, 0, 0, 0, 1})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	version := func(l *eventlog.Log) uint64 {
		v, err := l.StreamVersion("s")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ro, err := eventlog.Open(dir, eventlog.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of format 1: %v", err)
	}
	if v := version(ro); v != 3 {
		t.Fatalf("read-only: version %d, want 3", v)
	}
	ro.Close()
	l, err = eventlog.Open(dir, eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v := version(l); v != 3 {
		t.Fatalf("version %d, want 3", v)
	}
	l.Close()
	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if tag := tx.Bucket([]byte("meta")).Get([]byte("format")); string(tag) != "parley-eventlog/2" {
			t.Errorf("format %q after a writable open", tag)
		}
		if tx.Bucket([]byte("heads")) != nil {
			t.Error("the heads bucket survived the upgrade")
		}
		return nil
	})
}

// The stream index is part of what Verify checks: an entry redirected to
// another stream's record, one deleted, or one added are each named, and
// ReadStream refuses a redirected entry instead of handing out another
// stream's event.
func TestVerifyChecksTheStreamIndex(t *testing.T) {
	ctx := context.Background()
	key := func(stream string, version uint64) []byte {
		return binary.BigEndian.AppendUint64(append([]byte(stream), 0), version)
	}
	seq := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	for _, c := range []struct {
		name   string
		edit   func(b *bolt.Bucket) error
		stream bool // ReadStream("a") must fail too
	}{
		{"redirected", func(b *bolt.Bucket) error { return b.Put(key("a", 1), seq(2)) }, true}, // a/1 -> b's record
		{"deleted", func(b *bolt.Bucket) error { return b.Delete(key("a", 3)) }, false},
		{"added", func(b *bolt.Bucket) error { return b.Put(key("c", 1), seq(1)) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, eventlog.Options{})
			for i := 1; i <= 6; i++ { // a, b, a, b, a, b: seqs 1 – 6
				if _, err := l.Append(ctx, draft([]string{"a", "b"}[(i-1)%2], i)); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()
			db, err := bolt.Open(filepath.Join(dir, eventlog.FileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error { return c.edit(tx.Bucket([]byte("streams"))) }); err != nil {
				t.Fatal(err)
			}
			db.Close()
			l = open(t, dir, eventlog.Options{ReadOnly: true})
			_, err = l.Verify(ctx)
			var ce *eventlog.ChainError
			if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "stream index") {
				t.Fatalf("Verify after the index was %s: %v, want a chain error about the stream index", c.name, err)
			}
			if c.stream {
				err := l.ReadStream(ctx, "a", 1, func(eventlog.Event) error { return nil })
				if !errors.Is(err, eventlog.ErrCorrupt) {
					t.Fatalf("ReadStream through the redirected entry: %v, want ErrCorrupt", err)
				}
			}
		})
	}
}
