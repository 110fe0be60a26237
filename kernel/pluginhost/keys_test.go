package pluginhost_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/pluginhost"
	"github.com/parleyhq/parley/plugins"
)

// sealer seals payloads under the key "seal/key" and records, as seal.seen
// events, a digest of every seal.said it is given (never the plaintext, so
// the test can look for the plaintext in the file).
type sealer struct{ k plugins.Kernel }

const sealerID = "test.sealer"

func (*sealer) Manifest() plugins.Manifest {
	return plugins.Manifest{
		ID: sealerID, Version: "1", Protocol: plugins.ProtocolVersion,
		Commands:    []string{"seal.say", "seal.append", "seal.read", "seal.erase"},
		Subscribes:  []string{"seal.said"},
		Events:      []plugins.EventType{{Name: "seal.said", Durable: true}, {Name: "seal.seen", Durable: true}},
		Permissions: []plugins.Permission{plugins.PermAppend, plugins.PermRead, plugins.PermKeys},
		Streams:     []string{"seal/"},
	}
}

func (s *sealer) Start(_ context.Context, k plugins.Kernel) error { s.k = k; return nil }

// seen is what the sealer records of one delivered event.
type seen struct {
	Via    string `json:"via"` // apply or read
	Seq    uint64 `json:"seq"`
	Sum    string `json:"sum"` // SHA-256 of the payload it got
	Erased bool   `json:"erased"`
}

func digest(p []byte) string { s := sha256.Sum256(p); return hex.EncodeToString(s[:]) }

func (s *sealer) record(via string, evs []plugins.Event) []plugins.NewEvent {
	var out []plugins.NewEvent
	for _, e := range evs {
		if e.Type == "seal.said" {
			p, _ := json.Marshal(seen{Via: via, Seq: e.Seq, Sum: digest(e.Payload), Erased: e.Erased})
			out = append(out, plugins.NewEvent{Type: "seal.seen", Stream: "seal/seen", Payload: p})
		}
	}
	return out
}

func (s *sealer) HandleCommand(ctx context.Context, cmd plugins.Command) ([]plugins.NewEvent, error) {
	switch cmd.Name {
	case "seal.say":
		return []plugins.NewEvent{{Type: "seal.said", Payload: cmd.Payload, Seal: "seal/key"}}, nil
	case "seal.append": // through the kernel API: no company
		evs, err := s.k.Append(ctx, []plugins.NewEvent{{Type: "seal.said", Stream: "seal/api", Payload: cmd.Payload, Seal: "seal/key"}})
		if err == nil && !bytes.Equal(evs[0].Payload, cmd.Payload) {
			err = errors.New("Append returned the payload sealed")
		}
		return nil, err
	case "seal.read":
		evs, err := s.k.ReadLog(ctx, 1, 1000)
		return s.record("read", evs), err
	case "seal.erase":
		return nil, errors.Join(s.k.EraseKey(ctx, cmd.Company, "seal/key"), s.k.EraseKey(ctx, "", "seal/key"))
	}
	return nil, errors.New("unreachable")
}

func (s *sealer) ApplyEvents(ctx context.Context, evs []plugins.Event) error {
	_, err := s.k.Append(ctx, s.record("apply", evs))
	return err
}

// serveSealerIfAsked turns the test binary into the sealer when the host
// launches it.
func serveSealerIfAsked() {
	if os.Getenv("SEALER_PLUGIN") == "1" {
		plugins.Serve(&sealer{})
		os.Exit(0)
	}
}

func sealerSpec(tr pluginhost.Transport) pluginhost.Spec {
	s := pluginhost.Spec{ID: sealerID, Transport: tr}
	if tr == pluginhost.InProcess {
		s.New = func() plugins.Plugin { return &sealer{} }
	} else {
		s.Path, s.Args = os.Args[0], []string{"-test.run=^$"}
		s.Env = append(os.Environ(), "SEALER_PLUGIN=1")
	}
	return s
}

// seenRecords returns the distinct seal.seen records in the log.
func seenRecords(t *testing.T, l *eventlog.Log) map[seen]bool {
	out := map[seen]bool{}
	err := l.ReadStream(context.Background(), "seal/seen", 1, func(e eventlog.Event) error {
		var s seen
		if err := json.Unmarshal(e.Payload, &s); err != nil {
			return err
		}
		out[s] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSealedEventsAndErasure: a plugin seals events (decided by a command
// and appended through the kernel API); the file never holds the
// plaintext, the plugin is given it opened, after EraseKey erased, and
// the chain still verifies. Both transports.
func TestSealedEventsAndErasure(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			dir := t.TempDir()
			hs := start(t, dir, testCfg, sealerSpec(tr))
			ctx := context.Background()
			exec := func(name, payload string) ([]eventlog.Event, error) {
				return hs.k.Execute(ctx, kernel.Command{Name: name, Stream: "seal/1", Company: "acme", Actor: "alice", Payload: json.RawMessage(payload)})
			}
			secrets := []string{`{"text":"first secret: the moon is cheese"}`, `{"text":"second secret: via the kernel API"}`}
			evs, err := exec("seal.say", secrets[0])
			if err != nil || string(evs[0].Payload) != secrets[0] {
				t.Fatalf("seal.say: %v %v", evs, err)
			}
			if _, err := exec("seal.append", secrets[1]); err != nil {
				t.Fatal(err)
			}
			var said []uint64
			hs.k.Log().Read(ctx, 1, 0, func(e eventlog.Event) error {
				if e.Type == "seal.said" {
					said = append(said, e.Seq)
				}
				return nil
			})
			if len(said) != 2 {
				t.Fatalf("seal.said at %v", said)
			}
			want := func(via string, erased bool) map[seen]bool {
				m := map[seen]bool{}
				for i, seq := range said {
					sum := digest([]byte(secrets[i]))
					if erased {
						sum = digest(nil)
					}
					m[seen{Via: via, Seq: seq, Sum: sum, Erased: erased}] = true
				}
				return m
			}
			has := func(w map[seen]bool) bool {
				got := seenRecords(t, hs.k.Log())
				for s := range w {
					if !got[s] {
						return false
					}
				}
				return true
			}
			eventually(t, "the plugin to be given the events opened", func() bool { return has(want("apply", false)) })
			if _, err := exec("seal.read", `0`); err != nil || !has(want("read", false)) {
				t.Fatalf("ReadLog before erasure: %v %v", err, seenRecords(t, hs.k.Log()))
			}

			if _, err := exec("seal.erase", `0`); err != nil {
				t.Fatal(err)
			}
			if _, err := exec("seal.read", `0`); err != nil || !has(want("read", true)) {
				t.Fatalf("ReadLog after erasure: %v %v", err, seenRecords(t, hs.k.Log()))
			}
			erasures := 0
			hs.k.Log().ReadStream(ctx, "kernel", 1, func(e eventlog.Event) error {
				if e.Type == "kernel.key.erased" && e.Actor == "plugin:"+sealerID {
					erasures++
				}
				return nil
			})
			if erasures != 2 { // acme's key and the kernel API's (no company)
				t.Fatalf("%d kernel.key.erased events", erasures)
			}

			// Delivered again from the start: now erased.
			hs.stop()
			l, err := eventlog.Open(dir, eventlog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			l.SaveCursor(ctx, "plugin/"+sealerID, 0)
			l.Close()
			hs = start(t, dir, testCfg, sealerSpec(tr))
			eventually(t, "the plugin to be given the events erased", func() bool { return has(want("apply", true)) })
			hs.stop()

			raw, err := os.ReadFile(filepath.Join(dir, eventlog.FileName))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range append(secrets, "moon is cheese", "via the kernel API") {
				if bytes.Contains(raw, []byte(s)) {
					t.Fatalf("the event log file holds the plaintext %q", s)
				}
			}
			if !bytes.Contains(raw, []byte(plugins.SealedKey)) {
				t.Fatal("no sealed payload in the file: the test proves nothing")
			}
			l, err = eventlog.Open(dir, eventlog.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if rep, err := l.Verify(ctx); err != nil {
				t.Fatalf("verify: %v %+v", err, rep)
			}
		})
	}
}
