package keystore

import (
	"bytes"
	"hash/maphash"
	"sync"
)

// freshSlots is how many of the latest seals fresh remembers. A new event
// is opened by each of its first readers (the session hub, every plugin
// subscribed to it) within milliseconds of its seal; this covers about a
// tenth of a second at 10,000 sealed events a second.
const freshSlots = 1024

// fresh remembers the plaintexts of the latest seals, so that the first
// readers of a payload take the plaintext rather than decrypt what was
// just encrypted. It is a direct-mapped cache indexed by the payload's
// nonce: a seal overwrites whatever sat in its slot.
//
// A hit needs the very payload sealed (its bytes: tampering misses), in
// the same company, and the key it was sealed under must still be the
// company key's live generation: what opening it would have said. Erase
// forgets the plaintexts of the key it erases.
type fresh struct {
	seed  maphash.Seed
	mu    sync.Mutex
	slots [freshSlots]freshSeal
}

// freshSeal is one remembered seal.
type freshSeal struct {
	kid    string // company NUL name
	k      *key   // the generation it was sealed under
	sealed []byte // the sealed payload
	plain  []byte // its plaintext, shared by the readers it is handed to
}

func newFresh() *fresh { return &fresh{seed: maphash.MakeSeed()} }

// slot returns the index of a sealed payload's slot, from its nonce (in
// base64, as it appears in the payload).
func (f *fresh) slot(nonce64 []byte) int {
	return int(maphash.Bytes(f.seed, nonce64) % freshSlots)
}

// put remembers that sealed holds plain (copied) under kid's key k.
func (f *fresh) put(kid string, k *key, sealed, plain []byte) {
	_, nonce64, _, ok := parse(sealed)
	if !ok {
		return
	}
	s := freshSeal{kid: kid, k: k, sealed: sealed, plain: bytes.Clone(plain)}
	if s.plain == nil {
		s.plain = []byte{}
	}
	i := f.slot(nonce64)
	f.mu.Lock()
	f.slots[i] = s
	f.mu.Unlock()
}

// get returns the remembered plaintext of sealed, a payload of company
// whose nonce is nonce64, and the key it was sealed under; nil when it is
// not remembered. The caller checks the key is still live.
func (f *fresh) get(company string, sealed, nonce64 []byte) (string, *key, []byte) {
	i := f.slot(nonce64)
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &f.slots[i]
	if s.plain == nil || !bytes.Equal(s.sealed, sealed) || !ofCompany(s.kid, company) {
		return "", nil, nil
	}
	return s.kid, s.k, s.plain
}

// forget drops the plaintexts sealed under kid.
func (f *fresh) forget(kid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.slots {
		if f.slots[i].kid == kid {
			f.slots[i] = freshSeal{}
		}
	}
}

// ofCompany reports whether the key id kid (company NUL name) is
// company's.
func ofCompany(kid, company string) bool {
	return len(kid) > len(company) && kid[len(company)] == 0 && kid[:len(company)] == company
}
