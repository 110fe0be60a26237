package bench

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel/keystore"
)

// BenchmarkSealOpen seals a chat message under a company key and opens it
// again, per event (b.N = events): the work NewEvent.Seal adds to an append
// and to every read of the event. "keystore" opens it with a second store
// (as a reader after a restart would: it decrypts); "fresh" with the store
// that sealed it, as the event's first readers do (the plaintext is kept
// from the seal). The baseline is the naive way: a fresh AES-GCM for each
// event and encoding/json for the envelope. "plain" is what reading an
// unsealed event costs now (Open's fast path).
func BenchmarkSealOpen(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	l, err := eventlog.Open(dir, eventlog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ks, err := keystore.Open(ctx, l, filepath.Join(dir, "master.key"), nil)
	if err != nil {
		b.Fatal(err)
	}

	reader, err := keystore.Open(ctx, l, filepath.Join(dir, "master.key"), nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		opener *keystore.Store
	}{{"keystore", reader}, {"fresh", ks}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := ks.Seal(ctx, "acme", "chat/ch_5f2c", payload)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, _, err := c.opener.Open("acme", s); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}

	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ks.Open("acme", payload)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})

	b.Run("baseline", func(b *testing.B) {
		key := make([]byte, 32)
		rand.Read(key)
		type sealed struct {
			Key   string `json:"key"`
			Nonce []byte `json:"nonce"`
			Data  []byte `json:"data"`
		}
		type envelope struct {
			Sealed sealed `json:"$sealed"`
		}
		aad := []byte("acme\x00chat/ch_5f2c")
		gcm := func() cipher.AEAD {
			c, _ := aes.NewCipher(key)
			g, _ := cipher.NewGCM(c)
			return g
		}
		b.ReportAllocs()
		for b.Loop() {
			g := gcm()
			nonce := make([]byte, g.NonceSize())
			rand.Read(nonce)
			s, err := json.Marshal(envelope{sealed{Key: "chat/ch_5f2c", Nonce: nonce, Data: g.Seal(nil, nonce, payload, aad)}})
			if err != nil {
				b.Fatal(err)
			}
			var e envelope
			if err := json.Unmarshal(s, &e); err != nil {
				b.Fatal(err)
			}
			if _, err := gcm().Open(nil, e.Sealed.Nonce, e.Sealed.Data, aad); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
