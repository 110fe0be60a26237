package sfu

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// dtlsKeys learns the SRTP keys of one peer connection's DTLS handshake,
// through two public hooks of pion's: the SFU is the DTLS server (it
// answers first, passive), so it sees the ServerHello it sends (server
// random, cipher suite, SRTP profile), and the key log gives the client
// random and the master secret. From those it exports the keying material
// of RFC 5764 exactly as pion's DTLS transport does, and makes the SRTP
// contexts that decrypt what the device sends and encrypt what the SFU
// sends it (see direct.go).
//
// Nothing depends on the keys being right: a packet that does not
// authenticate under them goes to pion's own SRTP session instead.
type dtlsKeys struct {
	mu           sync.Mutex
	serverRandom []byte
	suite        dtls.CipherSuiteID
	profile      srtp.ProtectionProfile
	done         bool
	rx, tx       *srtp.Context // derived, until taken
}

// settings returns se set up to tell k the handshake's secrets.
func (k *dtlsKeys) settings(se webrtc.SettingEngine) webrtc.SettingEngine {
	se.SetDTLSKeyLogWriter(k)
	se.SetDTLSServerHelloMessageHook(k.serverHello)
	return se
}

// serverHello notes what the ServerHello decides and sends it unchanged.
func (k *dtlsKeys) serverHello(m handshake.MessageServerHello) handshake.Message {
	r := m.Random.MarshalFixed()
	k.mu.Lock()
	k.serverRandom = r[:]
	if m.CipherSuiteID != nil {
		k.suite = dtls.CipherSuiteID(*m.CipherSuiteID)
	}
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 {
			k.profile = srtpProfile(u.ProtectionProfiles[0])
		}
	}
	k.mu.Unlock()
	return &m
}

// Write takes a key log line ("CLIENT_RANDOM <hex> <hex>"), which pion's
// DTLS writes once the master secret is known, before the handshake ends.
func (k *dtlsKeys) Write(line []byte) (int, error) {
	f := bytes.Fields(line)
	if len(f) != 3 || string(f[0]) != "CLIENT_RANDOM" {
		return len(line), nil
	}
	clientRandom, err1 := hex.DecodeString(string(f[1]))
	master, err2 := hex.DecodeString(string(f[2]))
	if err1 != nil || err2 != nil {
		return len(line), nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	defer clear(master)
	if k.done || k.serverRandom == nil || k.profile == 0 {
		return len(line), nil
	}
	rx, tx, err := k.contexts(clientRandom, master)
	if err != nil {
		return len(line), nil // the direct path stays off; pion's carries everything
	}
	k.done, k.rx, k.tx = true, rx, tx
	return len(line), nil
}

// take hands over the contexts derived, once. The key log is written
// before the handshake is verified (the client's Finished, its
// certificate's fingerprint): only take them once pion's DTLS transport
// says it is connected.
func (k *dtlsKeys) take() (rx, tx *srtp.Context) {
	k.mu.Lock()
	defer k.mu.Unlock()
	rx, tx, k.rx, k.tx = k.rx, k.tx, nil, nil
	return rx, tx
}

// contexts exports the SRTP keys and makes the contexts for the client's
// (the device's) packets and the server's (the SFU's); k.mu is held.
func (k *dtlsKeys) contexts(clientRandom, master []byte) (rx, tx *srtp.Context, err error) {
	h := prfHash(k.suite)
	if h == nil {
		return nil, nil, fmt.Errorf("cipher suite %v: unknown PRF", k.suite)
	}
	cfg := srtp.Config{Profile: k.profile}
	exp := exporter{master: master, seed: append(append([]byte{}, clientRandom...), k.serverRandom...), hash: h}
	if err := cfg.ExtractSessionKeysFromDTLS(exp, false); err != nil {
		return nil, nil, err
	}
	// Cryptex (RFC 9335: header extensions encrypted too) is decrypted
	// when the device uses it, as pion's own session does when negotiated.
	if rx, err = srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, k.profile,
		srtp.SRTPReplayProtection(srtpReplayWindow), srtp.Cryptex(srtp.CryptexModeEnabled)); err != nil {
		return nil, nil, err
	}
	if tx, err = srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, k.profile); err != nil {
		return nil, nil, err
	}
	return rx, tx, nil
}

// srtpReplayWindow is how far behind the newest packet a packet is still
// accepted: as far back as the NACK generator asks for a lost one
// (logSize), so a late resend is not refused as a replay. (Pion's
// default is 64.)
const srtpReplayWindow = logSize

// exporter is TLS 1.2's keying material exporter (RFC 5705) without a
// context, which is what DTLS-SRTP uses.
type exporter struct {
	master, seed []byte // seed: client random, then server random
	hash         prf.HashFunc
}

func (e exporter) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if len(context) != 0 {
		return nil, errors.New("sfu: keying material context unsupported")
	}
	return prf.PHash(e.master, append([]byte(label), e.seed...), length, e.hash)
}

// prfHash is the PRF hash of the cipher suites pion's DTLS offers: SHA-384
// for the two AES-256-GCM suites, SHA-256 for the others.
func prfHash(id dtls.CipherSuiteID) prf.HashFunc {
	switch id {
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:
		return sha512.New384
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		dtls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, dtls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, dtls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA:
		return func() hash.Hash { return sha256.New() }
	}
	return nil
}

// srtpProfile maps a DTLS use_srtp profile to pion's SRTP one, as pion's
// DTLS transport does; 0 for one the direct path does not handle.
func srtpProfile(p extension.SRTPProtectionProfile) srtp.ProtectionProfile {
	switch p {
	case extension.SRTP_AEAD_AES_128_GCM:
		return srtp.ProtectionProfileAeadAes128Gcm
	case extension.SRTP_AEAD_AES_256_GCM:
		return srtp.ProtectionProfileAeadAes256Gcm
	case extension.SRTP_AES128_CM_HMAC_SHA1_80:
		return srtp.ProtectionProfileAes128CmHmacSha1_80
	}
	return 0
}
