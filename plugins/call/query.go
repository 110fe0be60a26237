package call

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"

	"github.com/parleyhq/parley/plugins"
)

// CallView is a call as one participant sees it: the widget's Call.
type CallView struct {
	CallID       string   `json:"callId"`
	RoomID       string   `json:"roomId"`
	CreationDate string   `json:"creationDate"`
	Participants []string `json:"participants"`
	Caller       string   `json:"caller"`
	Callee       string   `json:"callee"`
	// Direction is incoming for the callee, outgoing for the caller, ""
	// for the company's REST API.
	Direction      string  `json:"direction"`
	Status         string  `json:"status"`
	EndReason      *string `json:"endReason"` // null until ended
	Options        Options `json:"options"`
	IsAdmin        bool    `json:"isAdmin"`
	RecordingState string  `json:"recordingState"` // started or stopped (the recording plugin starts it)
	// Devices are the devices carrying each participant's media (the
	// callee's is "" until answered): a device of the viewer that is not
	// theirs shows the call ended with answered_of_another_device.
	Devices map[string]string `json:"devices"`
	Link    bool              `json:"link"`
	// Tools are the viewer's tools in a call link's room (the room's
	// participant's); absent otherwise.
	Tools json.RawMessage `json:"tools,omitempty"`
}

// ListAnswer answers call.list.
type ListAnswer struct {
	Calls []CallView `json:"calls"` // the viewer's calls that have not ended
}

// RoomView is a room as the REST API shows it (without the links, which
// the API signs).
type RoomView struct {
	RoomID       string        `json:"room_id"`
	Participants []Participant `json:"participants"`
	Recording    string        `json:"recording"`
	Duration     int           `json:"duration"`
	CallType     string        `json:"call_type"`
	Live         bool          `json:"live"`
	CreatedAt    string        `json:"created_at"`
	Disabled     bool          `json:"disabled"`
	// Link is true for a call link's room (POST /v2/rooms), false for the
	// room of a call made with createCall.
	Link bool `json:"link"`
	// CallID and CallStatus are the room's call in progress, if any (for
	// a createCall room: its call, ended or not).
	CallID     string `json:"call_id,omitempty"`
	CallStatus string `json:"call_status,omitempty"`
}

// RoomsAnswer answers call.rooms.
type RoomsAnswer struct {
	Rooms []RoomView `json:"rooms"` // call links' rooms, oldest first
}

// Stats answers call.stats: totals over the whole log, for the metrics.
type Stats struct {
	Created int            `json:"created"`
	Ended   map[string]int `json:"ended"`  // by end reason
	Active  map[string]int `json:"active"` // calls not ended, by status
}

// HandleQuery answers call.get, call.list, call.room.get, call.rooms and
// call.stats.
func (p *Plugin) HandleQuery(ctx context.Context, q plugins.Query) (json.RawMessage, error) {
	var at Acting
	var answer func(*state) (any, error)
	switch q.Name {
	case QueryGet:
		var in CallRequest
		if err := decode(q.Payload, &in); err != nil {
			return nil, err
		}
		at, answer = in.Acting, func(s *state) (any, error) { return s.callView(q, in.CallID) }
	case QueryList:
		var in CallRequest
		if err := decode(q.Payload, &in); err != nil {
			return nil, err
		}
		at, answer = in.Acting, func(s *state) (any, error) { return s.callList(q) }
	case QueryRoom:
		var in RoomQuery
		if err := decode(q.Payload, &in); err != nil {
			return nil, err
		}
		at, answer = in.Acting, func(s *state) (any, error) { return s.roomView(q, in.RoomID) }
	case QueryRooms:
		var in RoomQuery
		if err := decode(q.Payload, &in); err != nil {
			return nil, err
		}
		at, answer = in.Acting, func(s *state) (any, error) { return s.roomList(q) }
	case QueryStats:
		if q.Actor != "kernel" && q.Actor != plugins.ActorOperator {
			return nil, plugins.Errorf(CodePermissionDenied, "call.stats is the kernel's")
		}
		answer = func(s *state) (any, error) { return s.stats(), nil }
	default:
		return nil, plugins.Errorf(plugins.CodeInvalidCommand, "the call plugin has no query %q", q.Name)
	}
	return plugins.Answer(ctx, p.proj, at.MinSeq, answer)
}

// view is the call as viewer sees it ("" for the company).
func (s *state) view(k *call, viewer string) CallView {
	v := CallView{
		CallID: k.CallID, RoomID: k.RoomID, CreationDate: k.CreationDate, Participants: slices.Clone(k.Participants),
		Caller: k.Caller, Callee: k.Callee, Status: k.status, Options: k.Options, IsAdmin: k.isAdmin(viewer),
		RecordingState: "stopped", Devices: map[string]string{}, Link: k.Link,
	}
	for u, d := range k.devices {
		v.Devices[u] = d
	}
	switch viewer {
	case k.Caller:
		v.Direction = "outgoing"
	case k.Callee:
		v.Direction = "incoming"
	}
	if k.ended() {
		r := k.endReason
		v.EndReason = &r
	}
	if rm := s.lookup(k.company).rooms[k.RoomID]; rm != nil && k.Link {
		for _, pt := range rm.Participants {
			if pt.UserID == viewer {
				v.Tools = pt.Tools
			}
		}
	}
	return v
}

// viewer is who a query reads as: a user (any, even deactivated: they may
// look at their calls), the company's REST API ("", when allowed), or a
// refusal.
func viewer(q plugins.Query, company bool) (string, error) {
	switch {
	case q.Company != "" && plugins.IsUser(q.Actor):
		return q.Actor, nil
	case company && q.Company != "" && q.Actor == plugins.ActorAPIKeyPrefix+q.Company:
		return "", nil
	}
	return "", plugins.Errorf(CodePermissionDenied, "%s answers the company's users and REST API", q.Name)
}

func (s *state) callView(q plugins.Query, id string) (any, error) {
	me, err := viewer(q, true)
	if err != nil {
		return nil, err
	}
	k := s.lookup(q.Company).calls[id]
	if k == nil || (me != "" && !k.participant(me)) {
		return nil, plugins.Errorf(CodeCallNotFound, "there is no call %q of yours", id)
	}
	return s.view(k, me), nil
}

func (s *state) callList(q plugins.Query) (any, error) {
	me, err := viewer(q, false)
	if err != nil {
		return nil, err
	}
	out := ListAnswer{Calls: []CallView{}}
	if k := s.lookup(q.Company).active[me]; k != nil {
		out.Calls = append(out.Calls, s.view(k, me))
	}
	return out, nil
}

func (r *room) view(c *company) RoomView {
	v := RoomView{
		RoomID: r.RoomID, Participants: r.Participants, Recording: r.Recording, Duration: r.Duration, CallType: r.CallType,
		Live: r.Live, CreatedAt: r.CreatedAt, Disabled: r.disabled, Link: true,
	}
	if k := c.calls[r.call]; k != nil {
		v.CallID, v.CallStatus = k.CallID, k.status
	}
	return v
}

func (s *state) roomView(q plugins.Query, id string) (any, error) {
	if err := companyAPI(q.Name, q.Company, q.Actor); err != nil {
		return nil, err
	}
	c := s.lookup(q.Company)
	if r := c.rooms[id]; r != nil {
		return r.view(c), nil
	}
	k := c.byRoom[id]
	if k == nil {
		return nil, plugins.Errorf(CodeRoomNotFound, "there is no room %q", id)
	}
	v := RoomView{
		RoomID: k.RoomID, Recording: k.Options.RecordingType, CallType: k.Options.CallType, Live: k.Options.Live,
		CreatedAt: k.CreationDate, CallID: k.CallID, CallStatus: k.status,
	}
	for _, u := range k.Participants {
		v.Participants = append(v.Participants, Participant{UserID: u, IsAdmin: k.isAdmin(u)})
	}
	return v, nil
}

func (s *state) roomList(q plugins.Query) (any, error) {
	if err := companyAPI(q.Name, q.Company, q.Actor); err != nil {
		return nil, err
	}
	c := s.lookup(q.Company)
	out := RoomsAnswer{Rooms: []RoomView{}}
	for _, r := range c.rooms {
		out.Rooms = append(out.Rooms, r.view(c))
	}
	slices.SortFunc(out.Rooms, func(a, b RoomView) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.RoomID, b.RoomID))
	})
	return out, nil
}

func (s *state) stats() Stats {
	st := Stats{Created: s.created, Ended: map[string]int{}, Active: map[string]int{}}
	for r, n := range s.ended {
		st.Ended[r] = n
	}
	for _, status := range []string{StatusDialing, StatusConnecting, StatusConnected} {
		st.Active[status] = s.current[status]
	}
	return st
}
