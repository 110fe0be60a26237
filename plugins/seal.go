package plugins

import (
	"bytes"
	"encoding/json"
	"strings"
)

// SealedKey is the top-level key of a payload the kernel sealed
// (NewEvent.Seal): {"$sealed":{"key":...,"nonce":...,"data":...}}. Only
// the kernel writes it: a payload that carries it is refused.
const SealedKey = "$sealed"

// HasSealedKey reports whether payload is a JSON object with SealedKey at
// its top level, in any letter case or escaping ("\u0024sealed"), as
// encoding/json would match it. Such a payload would pass for one the
// kernel sealed, so the kernel refuses it from commands, handlers and
// plugins. Payloads without a '$' or a \u escape are answered without
// parsing.
func HasSealedKey(payload []byte) bool {
	if bytes.IndexByte(payload, '$') < 0 && !bytes.Contains(payload, []byte(`\u`)) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		if k, _ := t.(string); strings.EqualFold(k, SealedKey) {
			return true
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return false
}
