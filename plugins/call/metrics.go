package call

import (
	"context"
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// NewCollector returns the Prometheus collector of the call metrics. At
// every scrape it asks the plugin for call.stats through stats (the
// kernel's Query, with actor "kernel"), so the figures come from the
// projection of the whole log: they survive restarts and do not depend on
// how the plugin runs (in process or not).
//
//	parley_calls_created_total           calls created (createCall and call links)
//	parley_calls_ended_total{reason}     calls ended, by end reason
//	parley_calls_active{status}          calls not ended, by status (dialing, connecting, connected)
//	parley_calls_up                      1 when the plugin answered the scrape, else 0
//
// The media plane reports its own figures (parley_sfu_*).
func NewCollector(stats func(context.Context) (json.RawMessage, error)) prometheus.Collector {
	return &collector{stats: stats}
}

type collector struct {
	stats func(context.Context) (json.RawMessage, error)
}

var (
	descCreated = prometheus.NewDesc("parley_calls_created_total", "Calls created (createCall and call links), over the whole log.", nil, nil)
	descEnded   = prometheus.NewDesc("parley_calls_ended_total", "Calls ended, by end reason, over the whole log.", []string{"reason"}, nil)
	descActive  = prometheus.NewDesc("parley_calls_active", "Calls not ended, by status.", []string{"status"}, nil)
	descUp      = prometheus.NewDesc("parley_calls_up", "1 when the call plugin answered the scrape, else 0.", nil, nil)
)

// scrapeTimeout bounds one call.stats query.
const scrapeTimeout = 2 * time.Second

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCreated
	ch <- descEnded
	ch <- descActive
	ch <- descUp
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var st Stats
	ans, err := c.stats(ctx)
	if err == nil {
		err = json.Unmarshal(ans, &st)
	}
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descCreated, prometheus.CounterValue, float64(st.Created))
	for reason, n := range st.Ended {
		ch <- prometheus.MustNewConstMetric(descEnded, prometheus.CounterValue, float64(n), reason)
	}
	for status, n := range st.Active {
		ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(n), status)
	}
}
