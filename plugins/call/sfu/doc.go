// Package sfu is the media plane of calls: a selective forwarding unit on
// pion/webrtc v4 and pion/interceptor. Each participant device has one
// peer connection with the SFU; the SFU forwards each participant's audio
// and video to the other participants of the room (a call) as they are,
// without decoding. It knows nothing of call state: the call plugin drives
// it and decides when a call ends.
//
// # Basics
//
//	s, err := sfu.New(sfu.Config{UDPPort: 50000, PublicIPs: []string{"203.0.113.7"}}, logger)
//	s.OnOffer = func(room, device, sdp string) { /* send to the device; its answer goes to s.Answer */ }
//	s.OnCandidate = func(room, device, cand string) { /* send to the device */ }
//	s.OnState = func(room, user, device, state string) { /* "disconnected", "failed": start a grace timer */ }
//
//	answer, err := s.Offer(ctx, callID, userID, deviceID, offerSDP, video)
//	err = s.AddCandidate(callID, deviceID, candidateJSON)  // the device's trickled candidates
//	err = s.AllowVideo(callID)                             // audio_upgradable, upgraded
//	s.Leave(callID, deviceID)
//	s.Close()
//
// All media use one UDP port (pion's ICE UDP mux), advertised as
// PublicIPs when set (1:1 NAT). The SFU's candidates ride in its answers:
// with the mux they are all known at once, so OnCandidate is rarely called.
//
// Signalling. A device's first Offer joins the room; later Offers
// renegotiate (a camera added, a screen shared). Each m-line the device
// offers to receive on gets a track of the SFU's at once, in the answer,
// so in a 1:1 call the other side's media flow as soon as ICE and DTLS are
// up, with no second round. A track that finds no free m-line of its kind
// on a device (a screen share, video after an upgrade) gets an m-line of
// its own: the SFU offers it through OnOffer and the device answers
// through Answer. On glare (the device offers while an offer of the SFU's
// is out) Offer returns ErrGlare and changes nothing: pion cannot roll an
// offer of its own back, so the device is the polite side. It rolls its
// offer back, answers the SFU's, and offers again. Signalling for one
// device must be delivered in order: the answer Offer returns before any
// later OnOffer for that device.
//
// Limits. A device may give at most MaxRemoteCandidates ICE candidates (each has
// the SFU send connectivity checks to the address it names), have at most
// MaxMLines m-lines (each costs a track) and publish at most MaxPublished
// tracks at once: beyond them AddCandidate returns ErrTooManyCandidates,
// Offer (and Answer, for candidates) ErrTooManyMLines or
// ErrTooManyCandidates, and a track is not forwarded. Candidates count
// once, whether trickled or in the device's offers and answers, and per ICE
// generation: an ICE restart starts the count again.
//
// ICE restarts. A device whose network changed or dropped offers again
// with new ICE credentials; the SFU answers with its own and both direct
// paths follow the pair selected then, at the device's new address. A
// device may restart 4 times in a row, then once every 4 s
// (ErrTooManyRestarts); an answer may not change its credentials
// (ErrInvalidAnswer). A connection that failed (nothing heard for
// ICEDisconnectedTimeout and ICEFailedTimeout) is sent nothing until a
// restart connects it again (parley_sfu_send_dropped_total counts what it
// was not sent).
//
// Bad offers. An offer that is not SDP, or whose m-lines lack a mid or
// repeat one, is refused before anything is applied (ErrInvalidOffer).
// Pion cannot roll back an offer it has taken in: one that fails later
// (no ICE credentials, say) would leave the device's peer connection
// waiting for an answer it cannot give. The SFU closes that peer
// connection instead and returns ErrPeerAbandoned; the device's next
// offer, from a new peer connection of its own, starts afresh.
//
// Tracks. A track on an m-line the device itself offered has stream id
// "sfu" and id "audio1", "video2", …; a track on an m-line the SFU added
// has the publisher's user as stream id and the publisher's track id.
//
// Video. Offer's video flag false refuses video (audio_only, or
// audio_upgradable before the upgrade): the device's video m-lines are
// answered inactive, and video it sends anyway is not forwarded until
// video is allowed (then it is). Video allowed once in a room (an Offer
// with video true, or AllowVideo) stays allowed; the device then offers
// again with video.
//
// # Media
//
// Codecs are Opus and VP8 (what recording writes without transcoding),
// without RTX: a retransmission is the packet again on its own SSRC. The
// interceptors are NACK both ways (the SFU's generator asks publishers for
// what is lost; its responder answers subscribers from a ring of the last
// 256 packets of each video track), RTCP sender and receiver
// reports once a second (the SFU's own, checked against pion's), and
// transport-wide congestion control feedback to publishers
// (their congestion controller's input). A keyframe request (PLI or FIR)
// from a subscriber goes to the track's publisher, at most one every
// 250 ms; a new subscriber gets one asked for it, and its video starts at
// the next keyframe. When a track's source changes (the publisher left and
// joined again from another device), sequence numbers and timestamps stay
// continuous for the subscriber. Header extensions of the publisher are
// not forwarded (their ids are the publisher's negotiation, not the
// subscriber's).
//
// The direct path. Once a track is published, its packets do not go
// through pion's receive goroutines: the socket's reader (the one goroutine
// under pion's ICE UDP mux) recognises an SRTP packet of a known track from
// a peer's address, decrypts it, runs it through the interceptor chain of
// that track (reports, NACK and TWCC bookkeeping) and writes it to
// every subscriber before it reads the next datagram. Writes to a device,
// RTP and RTCP, are encrypted with the SFU's own SRTP context and sent on
// the socket, below pion's interceptors (which see every packet) and
// instead of pion's SRTP session, mux and ICE layers. The keys come from
// the DTLS handshake through two public hooks of pion's (the SFU answers
// as the DTLS server; see keys.go): its key log and the ServerHello it
// sends. They are used only once pion's DTLS transport reports the
// handshake verified, and before pion starts SRTP; from then on every
// packet to the device goes on the direct send path (or is dropped),
// never half through pion's SRTP context, whose counters are its own. STUN,
// DTLS, incoming RTCP and a track's first packets go to pion as before,
// and so does a track the direct path could not decrypt before it
// decrypted one. The key log's secrets stay in memory.
//
// Forwarding allocates nothing per packet, from socket to socket: the
// packet decrypted into one buffer per peer, its header parsed once and
// shared with pion's interceptors (which would otherwise each make a map
// and a header per packet), subscribers read with one atomic load,
// counters flushed every 16 packets. The SFU has its own NACK responder
// (pion's allocates a packet per send), TWCC feedback (pion's hands every
// packet to another goroutine over a channel), NACK generator and RTCP
// reports, the last three driven by one clock for all peers instead of a
// ticker each (pion's reports take two goroutines and tickers per peer
// connection). Reads
// (recvmmsg) and writes (sendto) are non-blocking system calls made raw,
// outside the Go scheduler's bookkeeping, which otherwise wakes its
// monitor thread for nearly every packet of a lightly loaded process
// (package udpbatch).
//
// Metrics (Config.Registerer): parley_sfu_peer_connections,
// parley_sfu_rtp_packets_total and parley_sfu_rtp_bytes_total{direction},
// parley_sfu_nacks_total{direction}, parley_sfu_rtp_retransmissions_total,
// parley_sfu_keyframe_requests_total{direction},
// parley_sfu_rtp_received_total{path} (direct or pion: how many packets
// the direct path carries), parley_sfu_srtp_rejected_total,
// parley_sfu_tracks_refused_total{reason} (video where it is refused;
// limit: beyond MaxPublished).
//
// # Caveats
//
//   - What a packet still costs is mostly the operating system's: a
//     wake-up of the socket's reader for nearly every packet at a few
//     thousand packets a second (batches form only when packets queue),
//     and one sendto(2) per packet per subscriber, which on loopback also
//     delivers it (bench/README, "SFU"). BenchmarkSFU's floor, a relay
//     that makes the same per-packet system calls and does nothing else,
//     shows what the machine's kernel takes of that. Letting datagrams gather for 1 ms
//     before a read, a reader blocked in poll(2), and one blocked in
//     recvmmsg(2) on a socket outside Go's poller all measured worse; a
//     reader that sleeps 1 – 2 ms whenever the socket is empty, on a
//     socket outside Go's poller, with sendmmsg(2) for what a batch
//     forwards, measured no better and would delay every packet; so did
//     sending what a batch forwards to one address as one segmented
//     message (UDP_SEGMENT).
//   - All of a socket's forwarding runs on its one reader goroutine, so
//     one core per listening address (tens of thousands of packets a
//     second) bounds an SFU process.
//   - The direct path needs the SFU to be the DTLS server and a cipher
//     suite and SRTP profile pion offers; a peer known only by a name
//     (an mDNS candidate selected) stays on pion's path.
//   - One peer connection per device and no simulcast: every subscriber
//     gets the publisher's one encoding; congestion toward a subscriber is
//     not acted on.
//   - The SFU never removes an m-line: a track whose source left stays as
//     a free slot, reused by the next publication of its kind.
//   - Pion's TWCC feedback builder allocates per packet reported (in its
//     100 ms ticker, not on the forwarding path): about two allocations a
//     forwarded packet, process-wide, with browser-like clients.
package sfu
