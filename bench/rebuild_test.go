package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/kernel"
)

// BenchmarkChatRebuild measures how long the kernel takes to come back
// with the chat plugin serving after a restart, against the size of the
// chat history: the plugin rebuilds its state from the whole log at Start
// (plugins/chat, "State"), within the host's StartTimeout (10 s), so the
// history it can rebuild in that time bounds what a kernel can carry.
// The history is BENCH_REBUILD_MESSAGES messages (default 100,000) of
// about 60 bytes in 100 channels, sent through the chat plugin (sealed
// per channel, as always); the kernel and the plugin run in this process.
// It reports the time from opening the kernel to the chat answering over
// REST, and the messages rebuilt per second.
func BenchmarkChatRebuild(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("BENCH_REBUILD_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	k, _, srv, app, key, stop := sessionServer(dir, "inproc")
	c := benchClient{base: srv.URL, app: app, key: key, http: &http.Client{Timeout: 10 * time.Second}}
	const channels = 100
	c.users("u", 2*channels)
	var streams, senders []string
	var chIDs []string
	for i := range channels {
		var ch struct {
			ChannelID string `json:"channel_id"`
		}
		c.post("/v2/channels", fmt.Sprintf(`{"participants":["u%d","u%d"]}`, 2*i, 2*i+1), &ch)
		if ch.ChannelID == "" {
			b.Fatal("no channel")
		}
		chIDs = append(chIDs, ch.ChannelID)
		streams = append(streams, "chat/"+app+"/ch/"+ch.ChannelID)
		senders = append(senders, fmt.Sprintf("u%d", 2*i))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ch := i % channels
				p, _ := json.Marshal(map[string]string{"channelId": chIDs[ch], "text": fmt.Sprintf("message %d of the history, about sixty bytes.", i)})
				if _, err := k.Execute(context.Background(), kernel.Command{Name: "chat.message.send", Stream: streams[ch], Company: app, Actor: senders[ch], Device: "d", Payload: p}); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	stop()

	b.ResetTimer()
	var total time.Duration
	for range b.N {
		t0 := time.Now()
		_, _, srv, _, _, stop := sessionServer(dir, "inproc")
		req, _ := http.NewRequest("GET", srv.URL+"/v2/users/u0/channels", nil)
		req.Header.Set("apikey", key)
		for {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			if time.Since(t0) > 5*time.Minute {
				b.Fatalf("chat not serving after 5 min: %d", resp.StatusCode)
			}
			time.Sleep(10 * time.Millisecond)
		}
		total += time.Since(t0)
		stop()
	}
	b.StopTimer()
	per := total.Seconds() / float64(b.N)
	b.ReportMetric(per, "s-to-serve")
	b.ReportMetric(float64(n)/per, "messages/s")
	b.ReportMetric(0, "ns/op")
}
