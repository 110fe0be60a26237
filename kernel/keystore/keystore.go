package keystore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/plugins"
)

// Sentinel errors. Wrapped errors keep them reachable with errors.Is.
var (
	// ErrInvalidName is returned for a key name or company the store
	// cannot hold: an empty name, control characters, '"' or '\' in the
	// name, or company and name together over 255 bytes.
	ErrInvalidName = errors.New("keystore: invalid key name")
	// ErrBroken is returned by Open for a payload that looks sealed but
	// does not open under its live key: malformed, tampered with (Verify
	// would say so), or copied from another company or key.
	ErrBroken = errors.New("keystore: sealed payload does not open")
	// ErrWrongMasterKey is returned when the master key file does not
	// unwrap what the state store holds, or is missing although the store
	// holds keys.
	ErrWrongMasterKey = errors.New("keystore: wrong master key")
)

// Namespace is the event log state namespace that holds the wrapped keys,
// under company + "\x00" + name, and the master key check.
const Namespace = "kernel/keys"

// checkKey names the master key check value; it has no NUL, so it cannot
// collide with a company key.
const checkKey = "master-check"

// maxCached bounds the keys held in memory (unwrapped keys and tombstones).
const maxCached = 4096

// Store keeps company keys, wrapped under the master key in the event
// log's state store. It is safe for concurrent use.
type Store struct {
	log    *eventlog.Log
	master cipher.AEAD
	path   string // the master key file, for errors

	// mu guards cache. The stripe of a key (wmu) serialises everything
	// that writes that key to the cache or the state store (loads,
	// creations, erasures), so a load never puts back a key an erasure just
	// removed; different keys do not wait for each other's fsync. Lock
	// order: a stripe, then mu.
	mu    sync.RWMutex
	cache map[string]*key
	wmu   [64]sync.Mutex

	fresh *fresh // the plaintexts of the latest seals, for their first readers
}

// stripe returns the lock serialising writes of key kid.
func (s *Store) stripe(kid string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(kid))
	return &s.wmu[h.Sum32()%uint32(len(s.wmu))]
}

// key is one generation of a company key, or its tombstone (aead nil).
type key struct {
	aead cipher.AEAD
	gen  uint32
}

// Open opens the key store of log with the master key in the file at
// path, generating the file when it is absent and the store has never
// used a master key (logger warns the operator to back it up). A master
// key that does not match the store is an ErrWrongMasterKey error naming
// the file.
func Open(ctx context.Context, log *eventlog.Log, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	check, used, err := log.GetState(Namespace, checkKey)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	mk, err := readMaster(path, logger)
	switch {
	case err == nil:
	case errors.Is(err, errNoMaster) && used:
		return nil, fmt.Errorf("%w: master key file %s is missing, yet this data directory holds company keys wrapped by a master key: restore the file from its backup", ErrWrongMasterKey, path)
	case errors.Is(err, errNoMaster):
		if mk, err = createMaster(path); err != nil {
			return nil, err
		}
		logger.Warn("generated a new master key: back it up and keep it off the data disk (set master_key_file); without it no sealed payload can be read, with it and the disk every live one can",
			"file", path)
	default:
		return nil, err
	}
	master, err := newAEAD(mk)
	if err != nil {
		return nil, err
	}
	s := &Store{log: log, master: master, path: path, cache: map[string]*key{}, fresh: newFresh()}
	if used {
		if len(check) < master.NonceSize() {
			return nil, fmt.Errorf("keystore: master key check in %s is malformed", log.Path())
		}
		ns := master.NonceSize()
		if _, err := master.Open(nil, check[:ns], check[ns:], []byte(checkAAD)); err != nil {
			return nil, fmt.Errorf("%w: master key file %s is not the key this data directory's company keys were wrapped with", ErrWrongMasterKey, path)
		}
		return s, nil
	}
	nonce := random(master.NonceSize())
	if err := log.PutState(ctx, Namespace, checkKey, master.Seal(nonce, nonce, make([]byte, 32), []byte(checkAAD))); err != nil {
		return nil, fmt.Errorf("keystore: record master key check: %w", err)
	}
	return s, nil
}

const checkAAD = "parley master key check"

func newAEAD(k []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	return cipher.NewGCM(b)
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return b
}

// id is the state key and the additional data of a key: company NUL name.
func id(company, name string) (string, error) {
	if name == "" || !utf8.ValidString(name) || strings.ContainsAny(name, "\"\\") || strings.ContainsFunc(name, isControl) {
		return "", fmt.Errorf("%w: %q must be non-empty UTF-8 without control characters, '\"' or '\\'", ErrInvalidName, name)
	}
	if strings.IndexByte(company, 0) >= 0 {
		return "", fmt.Errorf("%w: company %q contains a NUL byte", ErrInvalidName, company)
	}
	if len(company)+1+len(name) > eventlog.MaxNameLen {
		return "", fmt.Errorf("%w: company and key name together are limited to %d bytes", ErrInvalidName, eventlog.MaxNameLen-1)
	}
	return company + "\x00" + name, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Seal encrypts plaintext under the key company/name, creating the key on
// first use (or a new generation after an erasure), and returns the sealed
// payload. Concurrent first Seals of one key agree on one key. The store
// keeps the sealed payload and a copy of plaintext for a while (the first
// readers of the payload take the plaintext rather than decrypt it): do
// not modify the returned payload.
func (s *Store) Seal(ctx context.Context, company, name string, plaintext []byte) ([]byte, error) {
	kid, err := id(company, name)
	if err != nil {
		return nil, err
	}
	k := s.cached(kid)
	if k == nil || k.aead == nil {
		if k, err = s.create(ctx, kid); err != nil {
			return nil, err
		}
	}
	sealed := seal(k.aead, kid, name, plaintext)
	s.fresh.put(kid, k, sealed, plaintext)
	return sealed, nil
}

// Open returns payload as readers see it. A payload that was never sealed
// is returned as is (sealed false), without allocating. A sealed one is
// decrypted, or, when it was sealed a moment ago, its plaintext is taken
// from the latest seals, shared with the payload's other readers (treat it
// as read-only); if its key was erased, erased is true and plain is nil. A
// sealed payload that does not open is an ErrBroken error; a store failure
// is returned as is.
func (s *Store) Open(company string, payload []byte) (plain []byte, sealed, erased bool, err error) {
	if !isSealed(payload) {
		return payload, false, false, nil
	}
	name, nonce, data, ok := parse(payload)
	if !ok {
		return nil, true, false, fmt.Errorf("%w: malformed envelope", ErrBroken)
	}
	if kid, k, p := s.fresh.get(company, payload, nonce); p != nil && s.cached(kid) == k {
		return p, true, false, nil // sealed under what is still the live key
	}
	kid, err := id(company, string(name))
	if err != nil {
		return nil, true, false, fmt.Errorf("%w: %v", ErrBroken, err)
	}
	k := s.cached(kid)
	if k == nil {
		if k, err = s.load(kid); err != nil {
			return nil, true, false, err
		}
	}
	if k.aead == nil {
		return nil, true, true, nil
	}
	plain, err = open(k.aead, kid, nonce, data)
	if err != nil {
		if k.gen > 1 { // sealed under an earlier generation, erased since
			return nil, true, true, nil
		}
		return nil, true, false, fmt.Errorf("%w: key %q of company %q: %v", ErrBroken, name, company, err)
	}
	return plain, true, false, nil
}

// Erase destroys the key company/name: every payload sealed under it opens
// as erased from now on. existed reports whether there was a live key;
// erasing an absent or erased key changes nothing.
func (s *Store) Erase(ctx context.Context, company, name string) (existed bool, err error) {
	kid, err := id(company, name)
	if err != nil {
		return false, err
	}
	mu := s.stripe(kid)
	mu.Lock()
	defer mu.Unlock()
	k, err := s.loadLocked(kid)
	if err != nil || k.aead == nil {
		return false, err
	}
	tomb := &key{gen: k.gen}
	if err := s.log.PutState(ctx, Namespace, kid, encodeRecord(tomb.gen, nil)); err != nil {
		return false, fmt.Errorf("keystore: erase key %q of company %q: %w", name, company, err)
	}
	s.put(kid, tomb)
	s.fresh.forget(kid) // no longer served (the tombstone sees to that), and gone from memory
	return true, nil
}

// Live reports whether the key company/name exists and is not erased.
func (s *Store) Live(company, name string) (bool, error) {
	_, live, err := s.Generation(company, name)
	return live, err
}

// Generation returns the key company/name's generation (each creation
// after an erasure is the next; 0 for a key never created) and whether it
// is live.
func (s *Store) Generation(company, name string) (gen uint32, live bool, err error) {
	kid, err := id(company, name)
	if err != nil {
		return 0, false, err
	}
	k := s.cached(kid)
	if k == nil {
		if k, err = s.load(kid); err != nil {
			return 0, false, err
		}
	}
	return k.gen, k.aead != nil, nil
}

func (s *Store) cached(kid string) *key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cache[kid]
}

// put caches k, evicting an arbitrary entry when the cache is full. The
// caller holds kid's stripe.
func (s *Store) put(kid string, k *key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cache[kid]; !ok && len(s.cache) >= maxCached {
		for old := range s.cache {
			delete(s.cache, old)
			break
		}
	}
	s.cache[kid] = k
}

func (s *Store) load(kid string) (*key, error) {
	mu := s.stripe(kid)
	mu.Lock()
	defer mu.Unlock()
	return s.loadLocked(kid)
}

// loadLocked returns the key from the cache or the state store; a key
// never created comes back as a generation 0 tombstone (not cached). The
// caller holds kid's stripe.
func (s *Store) loadLocked(kid string) (*key, error) {
	if k := s.cached(kid); k != nil {
		return k, nil
	}
	rec, found, err := s.log.GetState(Namespace, kid)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	if !found {
		return &key{}, nil
	}
	k, err := s.decodeRecord(kid, rec)
	if err != nil {
		return nil, err
	}
	s.put(kid, k)
	return k, nil
}

// create returns the live key kid, creating its next generation if there
// is none.
func (s *Store) create(ctx context.Context, kid string) (*key, error) {
	mu := s.stripe(kid)
	mu.Lock()
	defer mu.Unlock()
	old, err := s.loadLocked(kid)
	if err != nil || old.aead != nil {
		return old, err // someone created it meanwhile
	}
	raw := random(32)
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	k := &key{aead: aead, gen: old.gen + 1}
	nonce := random(s.master.NonceSize())
	wrapped := s.master.Seal(nonce, nonce, raw, wrapAAD(kid, k.gen))
	clear(raw)
	if err := s.log.PutState(ctx, Namespace, kid, encodeRecord(k.gen, wrapped)); err != nil {
		return nil, fmt.Errorf("keystore: store new key: %w", err)
	}
	s.put(kid, k)
	return k, nil
}

// A stored record: a live key is 0x01, the generation (4 bytes, big
// endian), then the nonce and the wrapped key; a tombstone is 0x00 and the
// generation it erased.
func encodeRecord(gen uint32, wrapped []byte) []byte {
	live := byte(0)
	if wrapped != nil {
		live = 1
	}
	b := binary.BigEndian.AppendUint32([]byte{live}, gen)
	return append(b, wrapped...)
}

func (s *Store) decodeRecord(kid string, rec []byte) (*key, error) {
	company, name, _ := strings.Cut(kid, "\x00")
	if len(rec) < 5 || rec[0] > 1 {
		return nil, fmt.Errorf("keystore: stored key %q of company %q is malformed", name, company)
	}
	gen := binary.BigEndian.Uint32(rec[1:5])
	if rec[0] == 0 {
		return &key{gen: gen}, nil
	}
	ns := s.master.NonceSize()
	if len(rec) < 5+ns {
		return nil, fmt.Errorf("keystore: stored key %q of company %q is malformed", name, company)
	}
	raw, err := s.master.Open(nil, rec[5:5+ns], rec[5+ns:], wrapAAD(kid, gen))
	if err != nil {
		return nil, fmt.Errorf("%w: master key file %s does not unwrap key %q of company %q", ErrWrongMasterKey, s.path, name, company)
	}
	aead, err := newAEAD(raw)
	clear(raw)
	if err != nil {
		return nil, err
	}
	return &key{aead: aead, gen: gen}, nil
}

// wrapAAD binds a wrapped key to its identity and generation, so records
// swapped in the state store do not unwrap.
func wrapAAD(kid string, gen uint32) []byte {
	b := append([]byte("parley key\x00"), kid...)
	return binary.BigEndian.AppendUint32(b, gen)
}

// The sealed payload: prefix, the key name, mid1, the nonce, mid2, the
// ciphertext, suffix. The name needs no JSON escaping (id refuses '"',
// '\' and control characters).
const (
	prefix = `{"` + plugins.SealedKey + `":{"key":"`
	mid1   = `","nonce":"`
	mid2   = `","data":"`
	suffix = `"}}`
)

var b64 = base64.StdEncoding

func isSealed(p []byte) bool { return len(p) > len(prefix) && string(p[:len(prefix)]) == prefix }

func seal(aead cipher.AEAD, kid, name string, plaintext []byte) []byte {
	ns := aead.NonceSize()
	// nonce | ciphertext+tag | additional data, in one scratch buffer.
	scratch := make([]byte, ns, ns+len(plaintext)+aead.Overhead()+len(kid))
	rand.Read(scratch)
	nonce := scratch[:ns]
	end := ns + len(plaintext) + aead.Overhead()
	aad := append(scratch[end:end], kid...)
	ct := aead.Seal(scratch[ns:ns], nonce, plaintext, aad)
	out := make([]byte, 0, len(prefix)+len(name)+len(mid1)+b64.EncodedLen(ns)+len(mid2)+b64.EncodedLen(len(ct))+len(suffix))
	out = append(append(out, prefix...), name...)
	out = b64.AppendEncode(append(out, mid1...), nonce)
	out = b64.AppendEncode(append(out, mid2...), ct)
	return append(out, suffix...)
}

// parse splits a sealed payload; ok is false unless it is exactly the
// form seal writes.
func parse(p []byte) (name, nonce, data []byte, ok bool) {
	rest := p[len(prefix):]
	field := func(sep string) []byte {
		i := indexQuote(rest)
		if i < 0 || string(rest[i:min(len(rest), i+len(sep))]) != sep {
			ok = false
			return nil
		}
		f := rest[:i]
		rest = rest[i+len(sep):]
		return f
	}
	ok = true
	name = field(mid1)
	nonce = field(mid2)
	data = field(suffix)
	return name, nonce, data, ok && len(rest) == 0
}

func indexQuote(b []byte) int {
	for i, c := range b {
		if c == '"' {
			return i
		}
	}
	return -1
}

func open(aead cipher.AEAD, kid string, nonce64, data64 []byte) ([]byte, error) {
	ns := aead.NonceSize()
	if len(nonce64) != b64.EncodedLen(ns) {
		return nil, errors.New("bad nonce")
	}
	// nonce | additional data | ciphertext, opened in place.
	buf := make([]byte, 0, b64.DecodedLen(len(nonce64))+len(kid)+b64.DecodedLen(len(data64)))
	buf, err := b64.AppendDecode(buf, nonce64)
	if err != nil || len(buf) != ns {
		return nil, errors.New("bad nonce")
	}
	buf = append(buf, kid...)
	ct, err := b64.AppendDecode(buf[len(buf):], data64)
	if err != nil {
		return nil, errors.New("bad data")
	}
	return aead.Open(ct[:0], buf[:ns], ct, buf[ns:])
}
