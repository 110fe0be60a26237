package sfu

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the SFU's Prometheus collectors. The forwarding loops add to
// the RTP counters in batches (see flushEvery) so that two cores forwarding
// at once do not fight over one cache line per packet.
type metrics struct {
	peers                 prometheus.Gauge
	packetsIn, packetsOut prometheus.Counter
	bytesIn, bytesOut     prometheus.Counter
	nacksIn, nacksOut     prometheus.Counter
	retransmits           prometheus.Counter
	plisIn, plisOut       prometheus.Counter
	viaPion, viaDirect    prometheus.Counter // packetsIn by the path that read them
	directDropped         prometheus.Counter
	sendDropped           prometheus.Counter // the direct send path's packets to a device it may not send to
	refusedVideo          prometheus.Counter // tracks not forwarded: video where it is refused
	refusedLimit          prometheus.Counter // tracks not forwarded: beyond MaxPublished
	all                   []prometheus.Collector
}

// flushEvery is how many packets a forwarding loop counts locally before it
// adds them to the shared counters.
const flushEvery = 16

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	rtpPackets := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_sfu_rtp_packets_total", Help: "RTP packets forwarded: in = read from publishers, out = written to subscribers (retransmissions not included).",
	}, []string{"direction"})
	rtpBytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_sfu_rtp_bytes_total", Help: "RTP bytes (header and payload) read from publishers (in) and written to subscribers (out).",
	}, []string{"direction"})
	nacks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_sfu_nacks_total", Help: "RTCP NACK packets: in = received from subscribers, out = sent to publishers.",
	}, []string{"direction"})
	plis := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_sfu_keyframe_requests_total", Help: "Keyframe requests (PLI or FIR): in = received from subscribers, out = sent to publishers.",
	}, []string{"direction"})
	received := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_sfu_rtp_received_total", Help: "RTP packets read from publishers, by path: direct (the socket reader decrypts and forwards) or pion (through pion's goroutines: a track's first packets, and every packet of a peer the direct path cannot serve).",
	}, []string{"path"})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_sfu_tracks_refused_total", Help: "Tracks a device published that are not forwarded, by reason: video (video is refused in the call) or limit (beyond the tracks a device may publish at once).",
	}, []string{"reason"})
	m := &metrics{
		refusedVideo: refused.WithLabelValues("video"), refusedLimit: refused.WithLabelValues("limit"),
		directDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_sfu_srtp_rejected_total", Help: "RTP packets the direct path dropped because they did not decrypt (replayed or forged) under keys that had worked.",
		}),
		sendDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_sfu_send_dropped_total", Help: "RTP and RTCP packets not sent to a device because its connection had failed (until an ICE restart connects it again) or closed.",
		}),
		viaPion: received.WithLabelValues("pion"), viaDirect: received.WithLabelValues("direct"),
		peers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_sfu_peer_connections", Help: "Peer connections open (one per participant device in a call).",
		}),
		retransmits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_sfu_rtp_retransmissions_total", Help: "RTP packets sent again to a subscriber in answer to its NACK.",
		}),
		packetsIn: rtpPackets.WithLabelValues("in"), packetsOut: rtpPackets.WithLabelValues("out"),
		bytesIn: rtpBytes.WithLabelValues("in"), bytesOut: rtpBytes.WithLabelValues("out"),
		nacksIn: nacks.WithLabelValues("in"), nacksOut: nacks.WithLabelValues("out"),
		plisIn: plis.WithLabelValues("in"), plisOut: plis.WithLabelValues("out"),
	}
	m.all = []prometheus.Collector{m.peers, m.retransmits, rtpPackets, rtpBytes, nacks, plis, received, m.directDropped, m.sendDropped, refused}
	if reg != nil {
		for _, c := range m.all {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register sfu metrics: %w", err)
			}
		}
	}
	return m, nil
}
