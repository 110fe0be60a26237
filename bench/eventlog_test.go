package bench

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventlog"
	bolt "go.etcd.io/bbolt"
)

// payload is a chat-message-sized event body (~180 bytes).
var payload = []byte(`{"message_id":"01JDZ7Q4V2M0S9G8K3X1Y5T6R7","channel_id":"ch_5f2c","text":"Good morning, the clinic opens at nine; please bring your card.","sent_at":1732521600000}`)

func benchDraft(g, i int) eventlog.Draft {
	return eventlog.Draft{
		Type: "channel.message.sent", Stream: fmt.Sprintf("channel/%d", (g*7919+i)%1),
		Company: "acme", Actor: "user_1", Audience: []string{"user_1", "user_2"}, Payload: payload,
	}
}

// runConcurrent splits n operations over g goroutines and returns the
// per-operation latencies and the elapsed time.
func runConcurrent(b *testing.B, g, n int, op func(g, i int) error) ([]time.Duration, time.Duration) {
	lat := make([][]time.Duration, g)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range g {
		share := n / g
		if w < n%g {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, share)
			for i := range share {
				t := time.Now()
				if err := op(w, i); err != nil {
					b.Error(err)
					return
				}
				l = append(l, time.Since(t))
			}
			lat[w] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	return slices.Concat(lat...), elapsed
}

func report(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "events/s")
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op") // ns/op over goroutines is misleading; events/s is the figure
}

// BenchmarkAppend measures durable appends through the group-commit writer
// with 1, 16 and 256 concurrent appenders, next to the naive baseline: one
// bbolt Update (one commit, two fsyncs) per event, same data.
func BenchmarkAppend(b *testing.B) {
	for _, g := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("groupcommit/appenders=%d", g), func(b *testing.B) {
			l, err := eventlog.Open(b.TempDir(), eventlog.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			lat, el := runConcurrent(b, g, b.N, func(g, i int) error {
				_, err := l.Append(ctx, benchDraft(g, i))
				return err
			})
			report(b, lat, el)
		})
		b.Run(fmt.Sprintf("baseline-update-per-event/appenders=%d", g), func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "naive.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("events")); return err })
			var seq uint64
			var mu sync.Mutex
			lat, el := runConcurrent(b, g, b.N, func(g, i int) error {
				d := benchDraft(g, i)
				return db.Update(func(tx *bolt.Tx) error {
					mu.Lock()
					seq++
					k := binary.BigEndian.AppendUint64(nil, seq)
					mu.Unlock()
					v := append([]byte(d.Stream), d.Payload...)
					return tx.Bucket([]byte("events")).Put(k, v)
				})
			})
			report(b, lat, el)
		})
	}
}

// replayFixture is a log of replayEvents events shared by the replay
// benchmarks.
const replayEvents = 200_000

var replayOnce sync.Once
var replayDir string

func replayLog(b *testing.B) *eventlog.Log {
	replayOnce.Do(func() {
		replayDir = filepath.Join(scratch, "replay")
		l, err := eventlog.Open(replayDir, eventlog.Options{})
		if err != nil {
			b.Fatal(err)
		}
		batch := make([]eventlog.Draft, 0, 2000)
		for i := range replayEvents {
			batch = append(batch, benchDraft(i%64, i))
			if len(batch) == cap(batch) {
				if _, err := l.Append(context.Background(), batch...); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		l.Close()
	})
	l, err := eventlog.Open(replayDir, eventlog.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkReplay measures reading the log back: Verify (every record
// re-hashed, chain and stream versions checked) and Read (decode only),
// next to a naive replay of one read transaction and hash per event.
func BenchmarkReplay(b *testing.B) {
	b.Run("verify", func(b *testing.B) {
		l := replayLog(b)
		defer l.Close()
		b.ResetTimer()
		for range b.N {
			if rep, err := l.Verify(context.Background()); err != nil || rep.Events != replayEvents {
				b.Fatal(rep, err)
			}
		}
		b.ReportMetric(float64(replayEvents*b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("read", func(b *testing.B) {
		l := replayLog(b)
		defer l.Close()
		b.ResetTimer()
		for range b.N {
			n := 0
			l.Read(context.Background(), 1, 0, func(eventlog.Event) error { n++; return nil })
			if n != replayEvents {
				b.Fatal(n)
			}
		}
		b.ReportMetric(float64(replayEvents*b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("baseline-view-per-event", func(b *testing.B) {
		l := replayLog(b)
		l.Close()
		db, err := bolt.Open(filepath.Join(replayDir, eventlog.FileName), 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		b.ResetTimer()
		for range b.N {
			for s := uint64(1); s <= replayEvents; s++ {
				db.View(func(tx *bolt.Tx) error {
					v := tx.Bucket([]byte("events")).Get(binary.BigEndian.AppendUint64(nil, s))
					sha256.Sum256(v)
					return nil
				})
			}
		}
		b.ReportMetric(float64(replayEvents*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
