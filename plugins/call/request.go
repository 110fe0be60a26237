package call

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/parleyhq/parley/plugins"
)

// Acting is in every request: who the REST API acts for (rooms need no
// one) and, in queries, the log position the answer must reflect.
type Acting struct {
	// MinSeq, in a query, is a seq the answer must reflect (the seq of a
	// command's events, to read one's own writes).
	MinSeq uint64 `json:"minSeq"`
}

// CreateRequest is the payload of call.create: the widget's
// createCall(users, options). The SDK sends the options of its
// configuration for those the caller left out; absent ones take the
// configuration's defaults (audio_video, no recording, not admin).
type CreateRequest struct {
	Users   []string      `json:"users"`
	Options CreateOptions `json:"options"`
}

// CreateOptions are createCall's options. call_type is the reference's
// example spelling of callType; both are accepted.
type CreateOptions struct {
	CallType      *string `json:"callType"`
	CallTypeSnake *string `json:"call_type"`
	Recording     *bool   `json:"recording"`
	RecordingType *string `json:"recordingType"`
	IsAdmin       *bool   `json:"isAdmin"`
}

// CallRequest is the payload of call.answer, call.end, call.media.leave
// and call.get.
type CallRequest struct {
	Acting
	CallID string `json:"callId"`
}

// MediaRequest is the payload of call.media.offer and call.media.answer
// (sdp) and call.media.candidate (candidate: an RTCIceCandidateInit
// object, or its JSON text).
type MediaRequest struct {
	CallID    string          `json:"callId"`
	SDP       string          `json:"sdp"`
	Candidate json.RawMessage `json:"candidate"`
}

// JoinRequest is the payload of call.room.join.
type JoinRequest struct {
	RoomID string `json:"roomId"`
}

// RoomRequest is the payload of call.room.create: POST /v2/rooms' body.
type RoomRequest struct {
	Participants []Participant `json:"participants"`
	Recording    string        `json:"recording"`
	Duration     *int          `json:"duration"`
	CallType     string        `json:"call_type"`
	Live         bool          `json:"live"`
}

// RoomQuery is the payload of call.room.get, call.room.disable and
// call.room.delete.
type RoomQuery struct {
	Acting
	RoomID string `json:"room_id"`
}

// Limits of requests.
const (
	MaxParticipants = 25
	MinDuration     = 60              // seconds
	MaxDuration     = 365 * 24 * 3600 // seconds: a year; a room lasts a meeting, and far larger overflowed the timers
	MaxSDP          = 32 << 10        // bytes of an SDP
	MaxCandidate    = 2 << 10         // bytes of a candidate
)

var (
	callTypes      = []string{TypeAudioOnly, TypeAudioUpgradable, TypeAudioVideo}
	recordingTypes = []string{RecordingNone, RecordingManual, RecordingAutomatic}
	// Tools are the widget's in-call tools; a missing tools object is all
	// of them on, an empty one all off.
	Tools      = []string{"chat", "screen_sharing", "file_upload", "whiteboard", "snapshot", "live_edit", "live_pointer"}
	wbTools    = []string{"wb_add_file", "wb_cursor", "wb_text", "wb_shape", "wb_pen", "wb_eraser"}
	allToolsOn = func() json.RawMessage {
		m := map[string]bool{}
		for _, t := range Tools {
			m[t] = true
		}
		return marshal(m)
	}()
)

// decode reads a request payload (plugins.DecodePayload).
var decode = plugins.DecodePayload

// options validates createCall's options and fills in the defaults.
func (in CreateOptions) options() (Options, bool, error) {
	o := Options{CallType: TypeAudioVideo, RecordingType: RecordingNone, Live: true}
	switch {
	case in.CallType != nil && in.CallTypeSnake != nil && *in.CallType != *in.CallTypeSnake:
		return o, false, plugins.Errorf(CodeValidation, "callType and call_type disagree")
	case in.CallType != nil:
		o.CallType = *in.CallType
	case in.CallTypeSnake != nil:
		o.CallType = *in.CallTypeSnake
	}
	if !slices.Contains(callTypes, o.CallType) {
		return o, false, plugins.Errorf(CodeValidation, "callType must be one of %v, got %q", callTypes, o.CallType)
	}
	if in.RecordingType != nil {
		o.RecordingType = *in.RecordingType
	}
	if !slices.Contains(recordingTypes, o.RecordingType) {
		return o, false, plugins.Errorf(CodeValidation, "recordingType must be one of %v, got %q", recordingTypes, o.RecordingType)
	}
	o.Recording = o.RecordingType != RecordingNone
	if in.Recording != nil {
		if *in.Recording && o.RecordingType == RecordingNone {
			return o, false, plugins.Errorf(CodeValidation, "recording needs a recordingType of manual or automatic")
		}
		o.Recording = *in.Recording
	}
	if !o.Recording {
		o.RecordingType = RecordingNone
	}
	return o, in.IsAdmin != nil && *in.IsAdmin, nil
}

// validate checks a room request and fills in the defaults.
func (in *RoomRequest) validate() error {
	n := len(in.Participants)
	if n < 2 || n > MaxParticipants {
		return plugins.Errorf(CodeValidation, "participants must be 2..%d, got %d", MaxParticipants, n)
	}
	seen := map[string]bool{}
	for i := range in.Participants {
		pt := &in.Participants[i]
		if !plugins.ValidUserID(pt.UserID) {
			return plugins.Errorf(CodeValidation, "participants[%d].user_id must be a user id", i)
		}
		if seen[pt.UserID] {
			return plugins.Errorf(CodeValidation, "user %q is twice among the participants", pt.UserID)
		}
		seen[pt.UserID] = true
		tools, err := validTools(pt.Tools)
		if err != nil {
			return plugins.Errorf(CodeValidation, "participants[%d].tools: %v", i, err)
		}
		pt.Tools = tools
	}
	if in.Recording == "" {
		in.Recording = RecordingNone
	}
	if !slices.Contains(recordingTypes, in.Recording) {
		return plugins.Errorf(CodeValidation, "recording must be one of %v, got %q", recordingTypes, in.Recording)
	}
	if in.Duration != nil && (*in.Duration < MinDuration || *in.Duration > MaxDuration) {
		return plugins.Errorf(CodeValidation, "duration must be %d to %d seconds, got %d", MinDuration, MaxDuration, *in.Duration)
	}
	if in.CallType == "" {
		in.CallType = TypeAudioVideo
	}
	if !slices.Contains(callTypes, in.CallType) {
		return plugins.Errorf(CodeValidation, "call_type must be one of %v, got %q", callTypes, in.CallType)
	}
	return nil
}

// validTools checks a participant's tools: missing is all on, else an
// object of known tools, each a boolean (whiteboard: a boolean or an
// object of whiteboard tools).
func validTools(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return allToolsOn, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, plugins.Errorf(CodeValidation, "tools must be an object")
	}
	for name, v := range m {
		var b bool
		switch {
		case !slices.Contains(Tools, name):
			return nil, plugins.Errorf(CodeValidation, "unknown tool %q (tools: %v)", name, Tools)
		case json.Unmarshal(v, &b) == nil:
		case name == "whiteboard":
			var wb map[string]bool
			if err := json.Unmarshal(v, &wb); err != nil {
				return nil, plugins.Errorf(CodeValidation, "whiteboard must be a boolean or an object of booleans")
			}
			for t := range wb {
				if !slices.Contains(wbTools, t) {
					return nil, plugins.Errorf(CodeValidation, "unknown whiteboard tool %q (tools: %v)", t, wbTools)
				}
			}
		default:
			return nil, plugins.Errorf(CodeValidation, "tool %q must be a boolean", name)
		}
	}
	return marshal(m), nil
}
