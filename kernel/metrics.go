package kernel

import (
	"github.com/parleyhq/parley/eventlog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the kernel's Prometheus collectors, in their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	appendSeconds prometheus.Histogram
	commitSeconds prometheus.Histogram
	batchEvents   prometheus.Histogram
	events        *prometheus.CounterVec
	head          prometheus.Gauge
	conflicts     prometheus.Counter
	queued        prometheus.Gauge
	deadLetters   *prometheus.CounterVec
	commands      *prometheus.CounterVec
	queries       *prometheus.CounterVec
}

// NewMetrics creates and registers the collectors.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &Metrics{Registry: r}
	m.appendSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "parley_eventlog_append_seconds", Help: "Time from an append entering the queue to its acknowledgement (durable).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	m.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "parley_eventlog_commit_seconds", Help: "Duration of one group commit: bbolt transaction and fsyncs.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	m.batchEvents = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "parley_eventlog_batch_events", Help: "Events written per group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_eventlog_events_total", Help: "Events appended, by type.",
	}, []string{"type"})
	m.head = prometheus.NewGauge(prometheus.GaugeOpts{Name: "parley_eventlog_head_seq", Help: "Seq of the last durable event."})
	m.conflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_eventlog_conflicts_total", Help: "Appends refused for a stream version conflict.",
	})
	m.queued = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "parley_eventlog_queue_depth", Help: "Appends waiting for the writer after the last commit.",
	})
	m.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_bus_dead_letters_total", Help: "Events a subscriber gave up on, moved to its dead-letter stream.",
	}, []string{"subscriber"})
	m.commands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_kernel_commands_total", Help: "Commands executed, by name and result code (ok on success).",
	}, []string{"command", "code"})
	m.queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_kernel_queries_total", Help: "Queries answered, by name and result code (ok on success).",
	}, []string{"query", "code"})
	for _, c := range []prometheus.Collector{
		m.appendSeconds, m.commitSeconds, m.batchEvents, m.events, m.head, m.conflicts, m.queued,
		m.deadLetters, m.commands, m.queries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		f(c)
	}
	return m
}

var _ eventlog.Observer = (*Metrics)(nil)

// Committed records one group commit (eventlog.Observer).
func (m *Metrics) Committed(s eventlog.CommitStats) {
	for _, w := range s.Waits {
		m.appendSeconds.Observe(w.Seconds())
	}
	m.commitSeconds.Observe(s.Duration.Seconds())
	m.batchEvents.Observe(float64(len(s.Events)))
	for i := range s.Events {
		m.events.WithLabelValues(s.Events[i].Type).Inc()
	}
	if n := len(s.Events); n > 0 {
		m.head.Set(float64(s.Events[n-1].Seq))
	}
	m.conflicts.Add(float64(s.Conflicts))
	m.queued.Set(float64(s.Queued))
}
