package kernel

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTPHandler serves /metrics, /healthz (the process answers) and /readyz
// (the kernel serves commands and its log is healthy).
func (k *Kernel) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(k.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := k.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// lagCollector exports the bus's per-subscriber lag at scrape time.
type lagCollector struct{ k *Kernel }

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) { c.k.metrics.busLag.Describe(ch) }

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.k.metrics.busLag.Reset()
	for name, lag := range c.k.bus.Lags() {
		c.k.metrics.busLag.WithLabelValues(name).Set(float64(lag))
	}
	c.k.metrics.busLag.Collect(ch)
}
