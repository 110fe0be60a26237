package sfu

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// TestKeysMatchDTLS: for every cipher suite and SRTP profile pion's DTLS
// offers, the contexts dtlsKeys derives from the key log and the
// ServerHello are the ones the DTLS connection itself exports (RFC 5764),
// checked by a packet each way: the device's sealed with the exported
// client key opens with ours, ours opens with the exported server key.
func TestKeysMatchDTLS(t *testing.T) {
	suites := []dtls.CipherSuiteID{
		dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		dtls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	profiles := []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80}
	cert, err := selfsign.GenerateSelfSigned()
	must(t, err)
	for _, suite := range suites {
		for _, profile := range profiles {
			t.Run(fmt.Sprintf("%v/%#04x", suite, uint16(profile)), func(t *testing.T) {
				var k dtlsKeys
				server, client := dtlsHandshake(t, cert, suite, profile, &k)
				rx, tx := k.take()
				if rx == nil || tx == nil {
					t.Fatal("no contexts derived")
				}
				state, ok := server.ConnectionState()
				if !ok {
					t.Fatal("no connection state")
				}
				cfg := srtp.Config{Profile: srtpProfile(profile)}
				must(t, cfg.ExtractSessionKeysFromDTLS(&state, false))
				device, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, cfg.Profile)
				must(t, err)
				deviceRx, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, cfg.Profile)
				must(t, err)
				roundTrip(t, device, rx)
				roundTrip(t, tx, deviceRx)
				client.Close()
				server.Close()
			})
		}
	}
}

// roundTrip seals an RTP packet with from and opens it with to.
func roundTrip(t *testing.T, from, to *srtp.Context) {
	t.Helper()
	h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7, Timestamp: 9, SSRC: 0x1234}
	plain, err := (&rtp.Packet{Header: h, Payload: []byte("frame")}).Marshal()
	must(t, err)
	sealed, err := from.EncryptRTP(nil, plain, nil)
	must(t, err)
	opened, err := to.DecryptRTP(nil, sealed, nil)
	if err != nil {
		t.Fatalf("the other side cannot open it: %v", err)
	}
	if string(opened[12:]) != "frame" {
		t.Fatalf("opened %q", opened[12:])
	}
}

// dtlsHandshake runs a DTLS handshake on loopback: a server with k's hooks, as
// the SFU's, and a client offering one cipher suite and SRTP profile.
func dtlsHandshake(t *testing.T, cert tls.Certificate, suite dtls.CipherSuiteID, profile dtls.SRTPProtectionProfile, k *dtlsKeys) (server, client *dtls.Conn) {
	t.Helper()
	sconn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(t, err)
	cconn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(t, err)
	base := dtls.Config{Certificates: []tls.Certificate{cert}, CipherSuites: []dtls.CipherSuiteID{suite},
		SRTPProtectionProfiles: []dtls.SRTPProtectionProfile{profile}, InsecureSkipVerify: true}
	scfg, ccfg := base, base
	scfg.KeyLogWriter, scfg.ServerHelloMessageHook = k, k.serverHello
	server, err = dtls.Server(sconn, cconn.LocalAddr(), &scfg)
	must(t, err)
	client, err = dtls.Client(cconn, sconn.LocalAddr(), &ccfg)
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- server.HandshakeContext(ctx) }()
	must(t, client.HandshakeContext(ctx))
	must(t, <-done)
	return server, client
}
