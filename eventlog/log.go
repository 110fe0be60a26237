package eventlog

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the bbolt file inside the data directory.
const FileName = "events.db"

// formatTag identifies a Parley event log in the meta bucket. Format 2
// stopped writing the heads bucket (stream versions come from the stream
// index); a format 1 file is read as is and upgraded when opened for
// writing: its tag becomes 2 and the heads bucket goes, so a kernel built
// for format 1, which would trust the stale heads, refuses the file
// instead of corrupting its stream index.
const (
	formatTag       = "parley-eventlog/2"
	formatTagBefore = "parley-eventlog/1"
)

var (
	bucketMeta    = []byte("meta")
	bucketEvents  = []byte("events")
	bucketStreams = []byte("streams") // stream \x00 version(8) -> seq(8)
	bucketHeads   = []byte("heads")   // format 1 only: deleted on upgrade
	bucketCursors = []byte("cursors") // name -> seq(8)
	bucketState   = []byte("state")   // namespace \x00 key -> value

	keyFormat = []byte("format")
	keyHead   = []byte("head") // seq(8) hash(32)
)

// Options configure Open. The zero value is usable.
type Options struct {
	// ReadOnly opens the file with a shared lock and no writer, as audit
	// does. Append and SaveCursor return ErrClosed.
	ReadOnly bool
	// QueueSize bounds the requests waiting for the writer (default 8192).
	// Append fails fast with ErrQueueFull beyond it.
	QueueSize int
	// MaxBatch caps the requests committed in one transaction (default 1024).
	MaxBatch int
	// MaxPayload caps one event's payload in bytes (default 1 MiB).
	MaxPayload int
	// LockTimeout is how long Open waits for the file lock (default 1 s)
	// before failing with ErrLocked.
	LockTimeout time.Duration
	// CommitDelay, when positive, lets the writer wait up to that long for
	// more appends before committing a batch smaller than
	// CommitDelayBelow (default 8) requests: fewer, larger transactions
	// (each costs two fsyncs) for a little latency. 0 commits at once.
	CommitDelay      time.Duration
	CommitDelayBelow int
	// Observer, if set, is told about every commit. It runs on the writer
	// goroutine: keep it fast.
	Observer Observer
}

func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = 8192
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.CommitDelayBelow <= 0 {
		o.CommitDelayBelow = 8
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = 1 << 20
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	return o
}

// Observer receives commit statistics, for metrics.
type Observer interface {
	Committed(CommitStats)
}

// CommitStats describes one group commit. Its slices are only valid during
// the Committed call.
type CommitStats struct {
	Events    []Event         // the events made durable, in seq order
	Waits     []time.Duration // per acknowledged request: enqueue to acknowledgement
	Duration  time.Duration   // the bbolt transaction, commit and fsyncs included
	Bytes     int             // encoded bytes written
	Conflicts int             // requests refused with a ConflictError
	Queued    int             // requests still waiting when the commit ended
}

// Log is an append-only, hash-chained event log in one bbolt file. It is
// safe for concurrent use.
type Log struct {
	db   *bolt.DB
	path string
	opts Options

	mu     sync.RWMutex // guards closed against the queue send
	closed bool
	queue  chan *request

	closeOnce sync.Once

	writerDone chan struct{}
	closing    chan struct{} // closed once Close has drained the writer

	head    atomic.Uint64
	wake    atomic.Pointer[chan struct{}]
	failure atomic.Pointer[error]

	recent recentRing

	// heads caches the durable versions of streams: the writer's, and
	// StreamVersion's, so that a command needs no read transaction for its
	// stream's version. Only the writer changes it, holding headsMu; it
	// reads it without.
	headsMu sync.RWMutex
	heads   map[string]uint64

	// Owned by the writer goroutine.
	seq      uint64
	last     Hash
	staged   map[string]uint64
	entropy  io.Reader
	testHook func() // called before each commit, tests only
}

// Open opens (creating if needed) the event log in dir. A file that is not
// a Parley event log is refused with ErrNotEventLog, a file locked by
// another process with ErrLocked.
func Open(dir string, opts Options) (l *Log, err error) {
	opts = opts.withDefaults()
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("eventlog: data directory %s is a file, not a directory: %w", dir, ErrNotEventLog)
	}
	path := filepath.Join(dir, FileName)
	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("eventlog: no event log in %s: %w", dir, err)
		}
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("eventlog: create data directory %s: %w", dir, err)
	}
	// bbolt can panic on a mangled file; turn that into an error: a file
	// that carries our format tag (load sets ours) is a damaged event log,
	// not another file.
	var ours bool
	defer func() {
		if p := recover(); p != nil {
			kind := ErrNotEventLog
			if ours {
				kind = ErrCorrupt
			}
			l, err = nil, fmt.Errorf("eventlog: open %s: %w (bbolt: %v)", path, kind, p)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        opts.LockTimeout,
		ReadOnly:       opts.ReadOnly,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// Map 1 GiB of address space up front (not memory): growing the map
		// takes bbolt's exclusive lock, stalling every reader and the
		// writer, each time the file doubles.
		InitialMmapSize: 1 << 30,
	})
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("eventlog: open %s: %w (is a kernel running on it?)", path, ErrLocked)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("eventlog: open %s: %w (%v)", path, ErrNotEventLog, err)
	case errors.Is(err, os.ErrPermission):
		return nil, fmt.Errorf("eventlog: open %s: data directory is not writable: %w", path, err)
	default:
		return nil, fmt.Errorf("eventlog: open %s: %w", path, err)
	}
	l = &Log{
		db: db, path: path, opts: opts,
		writerDone: make(chan struct{}),
		closing:    make(chan struct{}),
		heads:      make(map[string]uint64),
		staged:     make(map[string]uint64),
		entropy:    ulid.Monotonic(rand.Reader, 0),
	}
	l.recent.init(recentSize)
	wake := make(chan struct{})
	l.wake.Store(&wake)
	if err := l.load(&ours); err != nil {
		db.Close()
		return nil, err
	}
	if opts.ReadOnly {
		close(l.writerDone)
		l.closed = true
		return l, nil
	}
	l.queue = make(chan *request, opts.QueueSize)
	go l.run()
	return l, nil
}

// load creates the buckets of a new file, or checks an existing one is
// ours (and sets *ours once its format tag says so), and reads the head.
func (l *Log) load(ours *bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("eventlog: %s: %w (no meta bucket)", l.path, ErrNotEventLog)
		}
		if tag := meta.Get(keyFormat); !bytes.Equal(tag, []byte(formatTag)) && !bytes.Equal(tag, []byte(formatTagBefore)) {
			return fmt.Errorf("eventlog: %s: %w (format %q, want %q)", l.path, ErrNotEventLog, tag, formatTag)
		}
		*ours = true
		for _, b := range [][]byte{bucketEvents, bucketStreams, bucketCursors} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("eventlog: %s: %w (bucket %s missing)", l.path, ErrCorrupt, b)
			}
		}
		if h := meta.Get(keyHead); h != nil {
			if len(h) != 8+HashSize {
				return fmt.Errorf("eventlog: %s: %w (head record of %d bytes)", l.path, ErrCorrupt, len(h))
			}
			l.seq = binary.BigEndian.Uint64(h)
			copy(l.last[:], h[8:])
		}
		k, _ := tx.Bucket(bucketEvents).Cursor().Last()
		var lastKey uint64
		if k != nil {
			lastKey = binary.BigEndian.Uint64(k)
		}
		if lastKey != l.seq {
			return fmt.Errorf("eventlog: %s: %w (head says seq %d, last record is %d)", l.path, ErrCorrupt, l.seq, lastKey)
		}
		return nil
	}
	var err error
	if l.opts.ReadOnly {
		err = l.db.View(check)
	} else {
		err = l.db.Update(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketMeta) == nil {
				empty := true
				_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
				if !empty {
					return fmt.Errorf("eventlog: %s: %w (a bbolt file of something else)", l.path, ErrNotEventLog)
				}
				meta, err := tx.CreateBucket(bucketMeta)
				if err != nil {
					return err
				}
				if err := meta.Put(keyFormat, []byte(formatTag)); err != nil {
					return err
				}
				for _, b := range [][]byte{bucketEvents, bucketStreams, bucketCursors, bucketState} {
					if _, err := tx.CreateBucket(b); err != nil {
						return err
					}
				}
			}
			// Buckets added after format 1 was first written.
			if _, err := tx.CreateBucketIfNotExists(bucketState); err != nil {
				return err
			}
			if err := check(tx); err != nil {
				return err
			}
			meta := tx.Bucket(bucketMeta)
			if bytes.Equal(meta.Get(keyFormat), []byte(formatTagBefore)) { // upgrade to format 2
				if tx.Bucket(bucketHeads) != nil {
					if err := tx.DeleteBucket(bucketHeads); err != nil {
						return err
					}
				}
				return meta.Put(keyFormat, []byte(formatTag))
			}
			return nil
		})
	}
	if err != nil {
		return err
	}
	l.head.Store(l.seq)
	return nil
}

// Path is the bbolt file's path.
func (l *Log) Path() string { return l.path }

// Head returns the seq of the last durable event, 0 for an empty log.
func (l *Log) Head() uint64 { return l.head.Load() }

// Close stops accepting appends, waits for the writer to commit everything
// already queued, and closes the file. Tails blocked in Next return
// ErrClosed. Close is idempotent.
func (l *Log) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		if l.queue != nil {
			close(l.queue)
		}
		l.mu.Unlock()
		<-l.writerDone
		close(l.closing)
		l.broadcast()
		err = l.db.Close()
	})
	return err
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// broadcast wakes every tail waiting for new events.
func (l *Log) broadcast() {
	next := make(chan struct{})
	old := l.wake.Swap(&next)
	close(*old)
}

// Err returns the error that stopped the writer, if any.
func (l *Log) Err() error {
	if p := l.failure.Load(); p != nil {
		return *p
	}
	return nil
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}
