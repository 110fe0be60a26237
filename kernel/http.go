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

// lagCollector exports the bus's per-subscriber lag, built afresh for each
// scrape so concurrent scrapes do not interfere.
type lagCollector struct{ k *Kernel }

var lagDesc = prometheus.NewDesc("parley_bus_lag_events",
	"Events a durable subscriber has yet to handle (head seq minus its position).", []string{"subscriber"}, nil)

func (lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	for name, lag := range c.k.bus.Lags() {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(lag), name)
	}
}
