package call_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/call"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestConfigFromEnv(t *testing.T) {
	c, err := call.ConfigFromEnv([]string{"PATH=/bin", "PARLEY_CALL_DIAL_TIMEOUT=2s", "PARLEY_CALL_CONNECT_TIMEOUT=7", "PARLEY_CALL_UDP_PORT=40000", "PARLEY_CALL_PUBLIC_IP=203.0.113.7"})
	if err != nil || c.DialTimeout != 2*time.Second || c.ConnectTimeout != 7*time.Second || c.MediaGrace != 10*time.Second || c.UDPPort != 40000 || c.PublicIP != "203.0.113.7" {
		t.Fatalf("%+v %v", c, err)
	}
	d, err := call.ConfigFromEnv(nil)
	if err != nil || d.DialTimeout != 45*time.Second || d.ConnectTimeout != 30*time.Second || d.UDPPort != 3478 {
		t.Fatalf("defaults %+v %v", d, err)
	}
	for _, bad := range []string{"PARLEY_CALL_DIAL_TIMEOUT=soon", "PARLEY_CALL_MEDIA_GRACE=-1s", "PARLEY_CALL_UDP_PORT=70000", "PARLEY_CALL_PUBLIC_IP=here", "PARLEY_CALL_COLOR=red"} {
		c, err := call.ConfigFromEnv([]string{bad})
		if err == nil || !strings.Contains(err.Error(), strings.SplitN(bad, "=", 2)[0]) {
			t.Errorf("%s: %v", bad, err)
		}
		if c.DialTimeout != 45*time.Second || c.UDPPort != 3478 {
			t.Errorf("%s: not the defaults: %+v", bad, c)
		}
	}
}

// TestCollector: the call metrics come from call.stats at every scrape;
// a plugin that does not answer shows as parley_calls_up 0.
func TestCollector(t *testing.T) {
	e := newEnv(t, call.Config{DialTimeout: time.Hour})
	stats := func(ctx context.Context) (json.RawMessage, error) {
		return e.k.Query(ctx, plugins.Query{Name: call.QueryStats, Actor: plugins.ActorKernel})
	}
	id := e.create("alice", "a1", "bob", obj{})
	e.ok("bob", "b1", call.CmdAnswer, obj{"callId": id})
	declined := e.create("erin", "e1", "carol", obj{})
	e.ok("carol", "c1", call.CmdEnd, obj{"callId": declined})
	want := `
# HELP parley_calls_active Calls not ended, by status.
# TYPE parley_calls_active gauge
parley_calls_active{status="connected"} 0
parley_calls_active{status="connecting"} 1
parley_calls_active{status="dialing"} 0
# HELP parley_calls_created_total Calls created (createCall and call links), over the whole log.
# TYPE parley_calls_created_total counter
parley_calls_created_total 2
# HELP parley_calls_ended_total Calls ended, by end reason, over the whole log.
# TYPE parley_calls_ended_total counter
parley_calls_ended_total{reason="declined"} 1
# HELP parley_calls_up 1 when the call plugin answered the scrape, else 0.
# TYPE parley_calls_up gauge
parley_calls_up 1
`
	if err := testutil.CollectAndCompare(call.NewCollector(stats), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	down := call.NewCollector(func(context.Context) (json.RawMessage, error) { return nil, errors.New("not running") })
	if err := testutil.CollectAndCompare(down, strings.NewReader("# HELP parley_calls_up 1 when the call plugin answered the scrape, else 0.\n# TYPE parley_calls_up gauge\nparley_calls_up 0\n")); err != nil {
		t.Fatal(err)
	}
}
