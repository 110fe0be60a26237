package eventlog

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// FormatVersion is the version byte that starts every encoded record. A
// reader refuses versions it does not know rather than guessing.
const FormatVersion = 1

// HashSize is the size of prev_hash and hash: SHA-256.
const HashSize = sha256.Size

// Hash is a SHA-256 digest in the chain.
type Hash [HashSize]byte

// String renders the hash as lowercase hex, the form export and audit print.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Limits on envelope fields. They keep a single record well inside a bbolt
// page run and make a malicious or buggy caller fail early with ErrInvalidEvent.
const (
	MaxTypeLen     = 128
	MaxStreamLen   = 256
	MaxNameLen     = 256 // company, actor, audience entries, meta keys and values
	MaxAudience    = 4096
	MaxMetaEntries = 64
)

// Event is one record of the log: the envelope and its payload.
//
// Events returned by readers share their slices (Audience, Payload, Meta)
// with other readers of the same record: treat them as read-only.
type Event struct {
	Seq      uint64    // global position, gap-free, starts at 1
	ID       ulid.ULID // unique id, monotonic in seq order unless the appender chose it
	Time     time.Time // append time, assigned by the log (UTC, nanoseconds)
	Type     string    // dotted, family first: "channel.message.sent"
	Stream   string    // "channel/<id>", "call/<id>", "client/<user>"
	Version  uint64    // position within Stream, starts at 1
	Company  string
	Actor    string
	Audience []string          // user ids that must receive it
	Meta     map[string]string // transport headers (e.g. a Watermill message id); hashed like the rest
	Payload  []byte            // opaque; JSON by convention
	PrevHash Hash              // Hash of the record at Seq-1 (zero for Seq 1)
	Hash     Hash              // SHA-256 over this record's encoding, PrevHash included
}

// Family is the part of Type before the first dot: the bus topic the event
// belongs to ("channel" for "channel.message.sent").
func (e *Event) Family() string { return Family(e.Type) }

// Family returns the family of an event type.
func Family(eventType string) string {
	if i := strings.IndexByte(eventType, '.'); i >= 0 {
		return eventType[:i]
	}
	return eventType
}

var errTruncated = errors.New("record truncated")

// appendRecord encodes e (without its Hash) onto dst. The layout, all
// integers as unsigned varints unless noted:
//
//	version byte | seq | id [16] | time (varint, unix ns) | type | stream |
//	stream version | company | actor | n audience, each string |
//	n meta, each key, value (sorted by key) | payload | prev_hash [32]
//
// A string or byte field is its length then its bytes. The stored value is
// this encoding followed by Hash = SHA-256(encoding).
func appendRecord(dst []byte, e *Event) []byte {
	dst = append(dst, FormatVersion)
	dst = binary.AppendUvarint(dst, e.Seq)
	dst = append(dst, e.ID[:]...)
	dst = binary.AppendVarint(dst, e.Time.UnixNano())
	dst = appendString(dst, e.Type)
	dst = appendString(dst, e.Stream)
	dst = binary.AppendUvarint(dst, e.Version)
	dst = appendString(dst, e.Company)
	dst = appendString(dst, e.Actor)
	dst = binary.AppendUvarint(dst, uint64(len(e.Audience)))
	for _, a := range e.Audience {
		dst = appendString(dst, a)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Meta)))
	if len(e.Meta) > 0 {
		keys := make([]string, 0, len(e.Meta))
		for k := range e.Meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = appendString(dst, k)
			dst = appendString(dst, e.Meta[k])
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Payload)))
	dst = append(dst, e.Payload...)
	dst = append(dst, e.PrevHash[:]...)
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// sealRecord encodes e, sets e.Hash and returns the stored value.
func sealRecord(dst []byte, e *Event) []byte {
	start := len(dst)
	dst = appendRecord(dst, e)
	e.Hash = sha256.Sum256(dst[start:])
	return append(dst, e.Hash[:]...)
}

// decoder reads the record layout; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(max int) string {
	n := d.uvarint()
	if d.err == nil && n > uint64(max) {
		d.err = fmt.Errorf("string of %d bytes exceeds %d", n, max)
	}
	return string(d.bytes(n))
}

func (d *decoder) count(max int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(max) {
		d.err = fmt.Errorf("count %d exceeds %d", n, max)
		return 0
	}
	return int(n)
}

// decodeRecord decodes a stored value (encoding followed by hash). It copies
// everything it keeps, so the result outlives the bbolt transaction. It does
// not check the hash: see checkRecord.
func decodeRecord(v []byte, e *Event) error {
	if len(v) < 1+HashSize {
		return errTruncated
	}
	if v[0] != FormatVersion {
		return fmt.Errorf("unknown record format version %d", v[0])
	}
	d := decoder{b: v[1 : len(v)-HashSize]}
	e.Seq = d.uvarint()
	copy(e.ID[:], d.bytes(16))
	e.Time = time.Unix(0, d.varint()).UTC()
	e.Type = d.string(MaxTypeLen)
	e.Stream = d.string(MaxStreamLen)
	e.Version = d.uvarint()
	e.Company = d.string(MaxNameLen)
	e.Actor = d.string(MaxNameLen)
	e.Audience = nil
	if n := d.count(MaxAudience); n > 0 {
		e.Audience = make([]string, n)
		for i := range e.Audience {
			e.Audience[i] = d.string(MaxNameLen)
		}
	}
	e.Meta = nil
	if n := d.count(MaxMetaEntries); n > 0 {
		e.Meta = make(map[string]string, n)
		for range n {
			k := d.string(MaxNameLen)
			e.Meta[k] = d.string(MaxNameLen)
		}
	}
	p := d.bytes(d.uvarint())
	e.Payload = nil
	if len(p) > 0 {
		e.Payload = append([]byte(nil), p...)
	}
	copy(e.PrevHash[:], d.bytes(HashSize))
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d trailing bytes", len(d.b))
	}
	copy(e.Hash[:], v[len(v)-HashSize:])
	return nil
}

// checkRecord reports whether the stored hash matches the record bytes.
func checkRecord(v []byte) bool {
	if len(v) < 1+HashSize {
		return false
	}
	sum := sha256.Sum256(v[:len(v)-HashSize])
	return Hash(v[len(v)-HashSize:]) == sum
}

// DecodeRecord decodes one stored record and checks its hash. It is exported
// for tools that read raw values and for the fuzz tests; readers of the log
// use Log's methods.
func DecodeRecord(v []byte) (Event, error) {
	var e Event
	if !checkRecord(v) {
		return e, fmt.Errorf("%w: hash does not match record bytes", ErrCorrupt)
	}
	if err := decodeRecord(v, &e); err != nil {
		return e, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return e, nil
}

// jsonEvent is the export rendering of an Event.
type jsonEvent struct {
	Seq           uint64            `json:"seq"`
	ID            string            `json:"id"`
	Time          string            `json:"time"`
	Type          string            `json:"type"`
	Stream        string            `json:"stream"`
	Version       uint64            `json:"version"`
	Company       string            `json:"company,omitempty"`
	Actor         string            `json:"actor,omitempty"`
	Audience      []string          `json:"audience,omitempty"`
	Meta          map[string]string `json:"meta,omitempty"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadBase64 string            `json:"payload_base64,omitempty"`
	PrevHash      string            `json:"prev_hash"`
	Hash          string            `json:"hash"`
}

// MarshalJSON renders the event for export: hashes in hex, time in RFC 3339
// with nanoseconds, the payload inline when it is valid JSON and as
// payload_base64 otherwise (ciphertext, binary tool data).
func (e Event) MarshalJSON() ([]byte, error) {
	j := jsonEvent{
		Seq: e.Seq, ID: e.ID.String(), Time: e.Time.UTC().Format(time.RFC3339Nano),
		Type: e.Type, Stream: e.Stream, Version: e.Version, Company: e.Company, Actor: e.Actor,
		Audience: e.Audience, Meta: e.Meta, PrevHash: e.PrevHash.String(), Hash: e.Hash.String(),
	}
	if len(e.Payload) > 0 {
		if json.Valid(e.Payload) {
			j.Payload = e.Payload
		} else {
			j.PayloadBase64 = base64.StdEncoding.EncodeToString(e.Payload)
		}
	}
	return json.Marshal(j)
}
