package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/kerneltest"
	"github.com/parleyhq/parley/kernel/pluginhost"
	"github.com/parleyhq/parley/plugins"
)

// benchPlugin owns a command that decides nothing and applies events by
// counting them: what is measured is the kernel and the transport.
type benchPlugin struct{ applied int }

func (*benchPlugin) Manifest() plugins.Manifest {
	return plugins.Manifest{
		ID: "bench.noop", Version: "1", Protocol: plugins.ProtocolVersion,
		Commands: []string{"bench.noop"}, Subscribes: []string{"bench"},
		Events: []plugins.EventType{{Name: "bench.event", Durable: true}},
	}
}

func (*benchPlugin) HandleCommand(context.Context, plugins.Command) ([]plugins.NewEvent, error) {
	return nil, nil
}

func (p *benchPlugin) ApplyEvents(_ context.Context, evs []plugins.Event) error {
	p.applied += len(evs)
	return nil
}

func benchSpec(tr pluginhost.Transport) pluginhost.Spec {
	s := pluginhost.Spec{ID: "bench.noop", Transport: tr}
	if tr == pluginhost.InProcess {
		s.New = func() plugins.Plugin { return &benchPlugin{} }
	} else {
		s.Path, s.Args, s.Env = os.Args[0], []string{"-test.run=^$"}, append(os.Environ(), "BENCH_PLUGIN=1")
	}
	return s
}

// startHost opens a kernel in dir and runs the bench plugin on it.
func startHost(b *testing.B, dir string, tr pluginhost.Transport, cfg pluginhost.Config) (*kernel.Kernel, *pluginhost.Host) {
	var h *pluginhost.Host
	k := kerneltest.Start(b, kerneltest.Config(dir), nil, func(k *kernel.Kernel) {
		var err error
		if h, err = pluginhost.New(k, cfg, nil); err != nil {
			b.Fatal(err)
		}
		h.Add(benchSpec(tr))
	})
	if err := h.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return k, h
}

// BenchmarkPluginDelivery measures how fast a plugin catches up on b.N
// events already in the log, in process and out of process, next to the
// naive baseline of one event per call (BatchSize 1).
func BenchmarkPluginDelivery(b *testing.B) {
	for _, c := range []struct {
		name  string
		tr    pluginhost.Transport
		batch int
	}{
		{"inproc", pluginhost.InProcess, 0},
		{"process", pluginhost.OutOfProcess, 0},
		{"process-baseline-unbatched", pluginhost.OutOfProcess, 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			l, err := eventlog.Open(dir, eventlog.Options{})
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]eventlog.Draft, 0, 1000)
			for i := range b.N {
				batch = append(batch, eventlog.Draft{Type: "bench.event", Stream: fmt.Sprintf("bench/%d", i%64), Payload: payload})
				if len(batch) == cap(batch) || i == b.N-1 {
					if _, err := l.Append(context.Background(), batch...); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			l.Close()
			// The rate is taken from the first saved cursor to the catch-up,
			// so process start-up is not counted as delivery time.
			k, h := startHost(b, dir, c.tr, pluginhost.Config{BatchSize: c.batch})
			b.ResetTimer()
			var first pluginhost.Status
			var t1 time.Time
			for {
				st := h.List()[0]
				if t1.IsZero() && st.Cursor > 0 {
					first, t1 = st, time.Now()
				}
				if st.Lag == 0 {
					break
				}
				time.Sleep(200 * time.Microsecond)
			}
			elapsed := time.Since(t1)
			b.StopTimer()
			h.Close()
			k.Close(context.Background(), "bench")
			if first.Lag > 0 {
				b.ReportMetric(float64(first.Lag)/elapsed.Seconds(), "events/s")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkPluginCommand measures a command's round trip through the
// kernel to the plugin and back (the command decides no events, so no
// append is timed), in process and out of process.
func BenchmarkPluginCommand(b *testing.B) {
	for _, tr := range []pluginhost.Transport{pluginhost.InProcess, pluginhost.OutOfProcess} {
		b.Run(string(tr), func(b *testing.B) {
			k, h := startHost(b, b.TempDir(), tr, pluginhost.Config{})
			defer k.Close(context.Background(), "bench")
			defer h.Close()
			ctx := context.Background()
			cmd := kernel.Command{Name: "bench.noop", Stream: "bench/1", Actor: "bench", Payload: []byte(`{}`)}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t := time.Now()
				if _, err := k.Execute(ctx, cmd); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs")
		})
	}
}
