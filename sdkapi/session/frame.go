package session

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
)

// Request is a client frame: {id, method, params}.
type Request struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// Response answers a request: {id, result} or {id, error}.
type Response struct {
	ID     json.RawMessage `json:"id"`
	Result any             `json:"result,omitempty"`
	Error  *kernel.Error   `json:"error,omitempty"`
}

// Push is a server-initiated frame: {event, data, seq}. seq is 0 for
// events that are not in the log (presence, token warnings).
type Push struct {
	Event string `json:"event"`
	Data  any    `json:"data"`
	Seq   uint64 `json:"seq,omitempty"`
}

// Codes of the session protocol itself.
const (
	CodeMalformedFrame  kernel.Code = "malformed_frame"
	CodeUnknownMethod   kernel.Code = "method_unknown"
	CodeRateLimited     kernel.Code = "rate_limited"
	CodeTooManySessions kernel.Code = "too_many_sessions"
	CodeNotConnected    kernel.Code = "not_connected"
)

// maxIDLen bounds a request id, which is echoed back.
const maxIDLen = 64

// DecodeRequest parses one frame. Every failure is a *kernel.Error with
// code malformed_frame; the id is returned when it could be read, so the
// error can answer it.
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		return Request{}, kernel.Errorf(CodeMalformedFrame, "the frame is not a JSON request: %v", err)
	}
	if len(r.ID) > maxIDLen {
		return Request{}, kernel.Errorf(CodeMalformedFrame, "id longer than %d bytes", maxIDLen)
	}
	if err := validID(r.ID); err != nil {
		return Request{}, err
	}
	if r.Method == "" {
		return r, kernel.Errorf(CodeMalformedFrame, "the request has no method")
	}
	return r, nil
}

// validID accepts a number or a string id, as JSON-RPC does. The frame
// was valid JSON, so the first byte tells the id's type.
func validID(id json.RawMessage) error {
	if len(id) == 0 {
		return kernel.Errorf(CodeMalformedFrame, "the request has no id")
	}
	switch c := id[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return nil
	case c == 'n' && string(id) == "null":
		return kernel.Errorf(CodeMalformedFrame, "the request has no id")
	default:
		return kernel.Errorf(CodeMalformedFrame, "the id must be a number or a string")
	}
}

// params decodes a request's params strictly into v.
func params(r Request, v any) error {
	if len(r.Params) == 0 {
		return kernel.Errorf(kernel.CodeValidation, "%s needs params", r.Method)
	}
	if err := json.Unmarshal(r.Params, v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return kernel.Errorf(kernel.CodeValidation, "%s: %s must be a %s", r.Method, ute.Field, ute.Type)
		}
		return kernel.Errorf(kernel.CodeValidation, "%s: %v", r.Method, err)
	}
	return nil
}

// EncodePush encodes a durable event as its push frame, {event, data,
// seq}, without reflection: the hub encodes each event once for all its
// recipients. A payload that is not JSON (binary tool data) goes as
// dataBase64 instead of data.
func EncodePush(e *eventlog.Event) []byte {
	return AppendPush(make([]byte, 0, len(e.Payload)+len(e.Type)+48), e)
}

// AppendPush appends e's push frame (see EncodePush) to b.
func AppendPush(b []byte, e *eventlog.Event) []byte {
	b = append(b, `{"event":`...)
	b = appendString(b, e.Type)
	switch {
	case len(e.Payload) == 0:
		b = append(b, `,"data":null`...)
	case json.Valid(e.Payload):
		b = append(b, `,"data":`...)
		b = append(b, e.Payload...)
	default:
		b = append(b, `,"data":null,"dataBase64":"`...)
		b = base64.StdEncoding.AppendEncode(b, e.Payload)
		b = append(b, '"')
	}
	if e.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, e.Seq, 10)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
