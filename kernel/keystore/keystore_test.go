package keystore_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel/keystore"
)

// env is a data directory with a log and a key store on it.
type env struct {
	t    *testing.T
	dir  string
	key  string // master key file
	log  *eventlog.Log
	ks   *keystore.Store
	logs *bytes.Buffer
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, dir: t.TempDir()}
	e.key = filepath.Join(t.TempDir(), "master.key")
	if err := e.open(); err != nil {
		t.Fatal(err)
	}
	return e
}

// open (re)opens the log and the store.
func (e *env) open() error {
	e.t.Helper()
	l, err := eventlog.Open(e.dir, eventlog.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.logs = &bytes.Buffer{}
	ks, err := keystore.Open(context.Background(), l, e.key, slog.New(slog.NewTextHandler(e.logs, nil)))
	if err != nil {
		l.Close()
		return err
	}
	e.log, e.ks = l, ks
	e.t.Cleanup(func() { l.Close() })
	return nil
}

func (e *env) restart() error {
	e.t.Helper()
	e.log.Close()
	return e.open()
}

func (e *env) seal(company, name, plain string) []byte {
	e.t.Helper()
	s, err := e.ks.Seal(context.Background(), company, name, []byte(plain))
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// opened returns what Open makes of p, failing on an error.
func (e *env) opened(company string, p []byte) (string, bool) {
	e.t.Helper()
	plain, sealed, erased, err := e.ks.Open(company, p)
	if err != nil || !sealed {
		e.t.Fatalf("open: sealed=%v err=%v", sealed, err)
	}
	if erased != (plain == nil) {
		e.t.Fatalf("erased=%v with payload %q", erased, plain)
	}
	return string(plain), erased
}

func TestSealOpenRoundTrip(t *testing.T) {
	e := newEnv(t)
	const plain = `{"text":"the secret text"}`
	s := e.seal("acme", "chat/42", plain)
	var env struct {
		Sealed struct{ Key, Nonce, Data string } `json:"$sealed"`
	}
	if err := json.Unmarshal(s, &env); err != nil || env.Sealed.Key != "chat/42" || env.Sealed.Nonce == "" || env.Sealed.Data == "" {
		t.Fatalf("sealed payload %s: %v", s, err)
	}
	if bytes.Contains(s, []byte("secret")) {
		t.Fatalf("plaintext in %s", s)
	}
	if got, erased := e.opened("acme", s); erased || got != plain {
		t.Fatalf("opened %q erased=%v", got, erased)
	}
	if s2 := e.seal("acme", "chat/42", plain); bytes.Equal(s, s2) {
		t.Fatal("two seals of the same plaintext are equal: nonce reused")
	}
	if got, _ := e.opened("acme", e.seal("acme", "chat/42", "")); got != "" {
		t.Fatalf("empty payload opened as %q", got)
	}

	// The additional data binds the payload to its company: globex's own
	// chat/42 key does not open it.
	e.seal("globex", "chat/42", plain)
	if _, _, _, err := e.ks.Open("globex", s); !errors.Is(err, keystore.ErrBroken) {
		t.Fatalf("open under another company: %v", err)
	}

	// Never sealed: returned as is, without allocating.
	raw := []byte(`{"text":"plain"}`)
	got, sealed, erased, err := e.ks.Open("acme", raw)
	if err != nil || sealed || erased || &got[0] != &raw[0] {
		t.Fatalf("plain payload: %q %v %v %v", got, sealed, erased, err)
	}
	if n := testing.AllocsPerRun(100, func() { e.ks.Open("acme", raw) }); n != 0 {
		t.Fatalf("opening a plain payload allocates %v times", n)
	}
}

// TestOpenJustSealed: the first readers of a payload take its plaintext
// from the seal rather than decrypt it (without allocating): the seal's
// own copy, until the key is erased.
func TestOpenJustSealed(t *testing.T) {
	e := newEnv(t)
	plain := []byte(`{"text":"fresh"}`)
	s, err := e.ks.Seal(context.Background(), "acme", "chat/7", plain)
	if err != nil {
		t.Fatal(err)
	}
	plain[2] = 'X'           // the caller's buffer is the caller's again
	stored := bytes.Clone(s) // as the log returns it
	if got, erased := e.opened("acme", stored); erased || got != `{"text":"fresh"}` {
		t.Fatalf("opened %q erased=%v", got, erased)
	}
	if n := testing.AllocsPerRun(100, func() { e.ks.Open("acme", stored) }); n != 0 {
		t.Fatalf("opening a payload just sealed allocates %v times", n)
	}
	if _, err := e.ks.Erase(context.Background(), "acme", "chat/7"); err != nil {
		t.Fatal(err)
	}
	if _, erased := e.opened("acme", stored); !erased {
		t.Fatal("a payload just sealed still opens after its key was erased")
	}
}

func TestEraseMakesOpenReportErased(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	old := e.seal("acme", "chat/1", `"hello"`)
	other := e.seal("acme", "chat/2", `"kept"`)
	existed, err := e.ks.Erase(ctx, "acme", "chat/1")
	if err != nil || !existed {
		t.Fatalf("erase: %v %v", existed, err)
	}
	if _, erased := e.opened("acme", old); !erased {
		t.Fatal("payload still opens after its key was erased")
	}
	if got, erased := e.opened("acme", other); erased || got != `"kept"` {
		t.Fatalf("another key was hurt: %q %v", got, erased)
	}
	for _, name := range []string{"chat/1", "chat/never"} { // idempotent, and absent keys are no error
		if existed, err := e.ks.Erase(ctx, "acme", name); err != nil || existed {
			t.Fatalf("erase %s again: %v %v", name, existed, err)
		}
	}
	if live, err := e.ks.Live("acme", "chat/1"); err != nil || live {
		t.Fatalf("live after erase: %v %v", live, err)
	}

	// Sealing under the name again makes a new key; the old payloads stay
	// erased, also after a restart.
	fresh := e.seal("acme", "chat/1", `"again"`)
	for range 2 {
		if _, erased := e.opened("acme", old); !erased {
			t.Fatal("old payload opens under the new key")
		}
		if got, erased := e.opened("acme", fresh); erased || got != `"again"` {
			t.Fatalf("new payload: %q %v", got, erased)
		}
		if err := e.restart(); err != nil {
			t.Fatal(err)
		}
	}
	if st, _, _ := e.log.GetState(keystore.Namespace, "acme\x00chat/1"); bytes.Contains(st, []byte("chat")) || len(st) < 32 {
		t.Fatalf("stored record %x", st)
	}
}

func TestRestartWithTheSameMasterKey(t *testing.T) {
	e := newEnv(t)
	s := e.seal("acme", "user/alice", `{"name":"Alice"}`)
	if err := e.restart(); err != nil {
		t.Fatal(err)
	}
	if got, erased := e.opened("acme", s); erased || got != `{"name":"Alice"}` {
		t.Fatalf("after restart: %q %v", got, erased)
	}

	// The same key written as hex is accepted too.
	raw, _ := os.ReadFile(e.key)
	os.WriteFile(e.key, []byte(hex.EncodeToString(raw)+"\n"), 0o600)
	if err := e.restart(); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.opened("acme", s); got != `{"name":"Alice"}` {
		t.Fatalf("hex master key: %q", got)
	}
}

func TestWrongMasterKeyFailsClearly(t *testing.T) {
	e := newEnv(t)
	e.seal("acme", "user/alice", `{}`)
	e.log.Close()

	other := bytes.Repeat([]byte{7}, keystore.MasterKeySize)
	os.WriteFile(e.key, other, 0o600)
	err := e.open()
	if !errors.Is(err, keystore.ErrWrongMasterKey) || !strings.Contains(err.Error(), e.key) {
		t.Fatalf("wrong master key: %v", err)
	}

	os.Remove(e.key)
	err = e.open()
	if !errors.Is(err, keystore.ErrWrongMasterKey) || !strings.Contains(err.Error(), e.key) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing master key: %v", err)
	}
	if _, err := os.Stat(e.key); err == nil {
		t.Fatal("a new master key replaced the missing one")
	}

	os.WriteFile(e.key, []byte("short"), 0o600)
	if err := e.open(); err == nil || !strings.Contains(err.Error(), e.key) {
		t.Fatalf("malformed master key: %v", err)
	}
}

func TestMasterKeyGenerated(t *testing.T) {
	e := newEnv(t)
	st, err := os.Stat(e.key)
	if err != nil || st.Size() != keystore.MasterKeySize || st.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v %v", st, err)
	}
	if !strings.Contains(e.logs.String(), "back it up and keep it off the data disk") || !strings.Contains(e.logs.String(), e.key) {
		t.Fatalf("no warning: %s", e.logs)
	}
	if err := e.restart(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.logs.String(), "generated") {
		t.Fatal("warned again on restart")
	}
}

// TestConcurrentFirstSeal: Seals racing to create one key agree on it.
func TestConcurrentFirstSeal(t *testing.T) {
	e := newEnv(t)
	const n = 16
	sealed := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := e.ks.Seal(context.Background(), "acme", "chat/race", []byte(`"hi"`))
			if err != nil {
				t.Error(err)
			}
			sealed[i] = s
		})
	}
	wg.Wait()
	if err := e.restart(); err != nil { // what the state store holds, not the cache
		t.Fatal(err)
	}
	for i, s := range sealed {
		if got, erased := e.opened("acme", s); erased || got != `"hi"` {
			t.Fatalf("seal %d opens as %q erased=%v", i, got, erased)
		}
	}
}

// TestForgedSealedPayloads: a payload that merely looks sealed does not
// open as something else.
func TestForgedSealedPayloads(t *testing.T) {
	e := newEnv(t)
	s := e.seal("acme", "chat/1", `{"text":"x"}`)
	i := bytes.Index(s, []byte(`"data":"`)) + len(`"data":"`)
	tampered := bytes.Clone(s)
	tampered[i] ^= 'A' ^ 'B'
	if tampered[i] == s[i] {
		tampered[i] = 'C'
	}
	for name, p := range map[string][]byte{
		"tampered":      tampered,
		"truncated":     s[:len(s)-3],
		"extra field":   append(bytes.Clone(s[:len(s)-2]), `,"x":1}}`...),
		"not base64":    []byte(`{"$sealed":{"key":"chat/1","nonce":"!!!!!!!!!!!!!!!!","data":"AAAA"}}`),
		"escaped quote": []byte(`{"$sealed":{"key":"chat\"/1","nonce":"","data":""}}`),
	} {
		if _, _, _, err := e.ks.Open("acme", p); !errors.Is(err, keystore.ErrBroken) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Under a key that never existed there is nothing to open.
	forged := []byte(`{"$sealed":{"key":"chat/none","nonce":"AAAAAAAAAAAAAAAA","data":"AAAA"}}`)
	if _, erased := e.opened("acme", forged); !erased {
		t.Fatal("forged payload under an absent key")
	}
	for _, name := range []string{"", "a\"b", "a\\b", "a\nb", strings.Repeat("x", 300)} {
		if _, err := e.ks.Seal(context.Background(), "acme", name, nil); !errors.Is(err, keystore.ErrInvalidName) {
			t.Errorf("seal under %q: %v", name, err)
		}
	}
}
