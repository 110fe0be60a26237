package call

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/parleyhq/parley/plugins"
)

// Options are a call's options: the widget's Call.options plus recording.
type Options struct {
	CallType      string `json:"callType"`      // audio_only, audio_upgradable or audio_video
	Recording     bool   `json:"recording"`     // the call has the recording capability
	RecordingType string `json:"recordingType"` // none, manual or automatic
	Live          bool   `json:"live"`          // the callee's devices ring (call:incoming)
}

// CallCreated is the payload of call.created, on the company's rooms
// stream: a call starts dialing.
type CallCreated struct {
	CallID       string   `json:"callId"`
	RoomID       string   `json:"roomId"`
	Status       string   `json:"status"` // always dialing
	Caller       string   `json:"caller"`
	Callee       string   `json:"callee"`
	Participants []string `json:"participants"` // [caller, callee]
	// CallerDevice is the device the caller called from: it carries the
	// caller's media, and only it may cancel.
	CallerDevice string   `json:"callerDevice"`
	Options      Options  `json:"options"`
	Admins       []string `json:"admins"` // participants who control a manual recording (isAdmin)
	CreationDate string   `json:"creationDate"`
	// DialDeadline is when a call still dialing ends with timeout; empty
	// for a call link's call that does not ring (live false): it waits for
	// the other participant to open their link.
	DialDeadline string `json:"dialDeadline,omitempty"`
	Link         bool   `json:"link"` // started by opening a call link (joinCallURL)
}

// CallAnswered is the payload of call.answered: the callee answered on
// Device. The callee's other devices stop ringing: for them the call ends
// with answered_of_another_device (the SDK compares Device with its own).
type CallAnswered struct {
	CallID string `json:"callId"`
	RoomID string `json:"roomId"`
	Status string `json:"status"` // connecting
	UserID string `json:"userId"`
	Device string `json:"device"`
}

// CallRejoined is the payload of call.rejoined: a participant opened the
// call's link again, on a new device, which carries their media from now
// on.
type CallRejoined struct {
	CallID string `json:"callId"`
	RoomID string `json:"roomId"`
	Status string `json:"status"` // unchanged
	UserID string `json:"userId"`
	Device string `json:"device"`
}

// CallConnected is the payload of call.connected: the media of both
// participants flows.
type CallConnected struct {
	CallID string `json:"callId"`
	RoomID string `json:"roomId"`
	Status string `json:"status"` // connected
}

// CallEnded is the payload of call.ended.
type CallEnded struct {
	CallID    string `json:"callId"`
	RoomID    string `json:"roomId"`
	Status    string `json:"status"` // ended
	EndReason string `json:"endReason"`
	// UserID is who ended it (declined, canceled, hang_up) or whose media
	// was lost (connection_lost); empty otherwise.
	UserID string `json:"userId,omitempty"`
	Device string `json:"device,omitempty"`
}

// Participant is one invitee of a call link's room (the REST API's shape).
type Participant struct {
	UserID  string          `json:"user_id"`
	IsAdmin bool            `json:"is_admin"`
	Tools   json.RawMessage `json:"tools,omitempty"` // absent only for a createCall call's room
}

// RoomCreated is the payload of call.room.created: a call link's room,
// as the REST API creates it (its field names are the REST API's).
type RoomCreated struct {
	RoomID       string        `json:"room_id"`
	Participants []Participant `json:"participants"`
	Recording    string        `json:"recording"` // none, manual or automatic
	Duration     int           `json:"duration"`  // seconds of call with both connected; 0: no limit
	CallType     string        `json:"call_type"`
	Live         bool          `json:"live"`
	CreatedAt    string        `json:"created_at"`
}

// RoomRef is the payload of call.room.disabled and call.room.deleted.
type RoomRef struct {
	RoomID string `json:"room_id"`
}

// userEvent is what the plugin reads of the kernel's user events:
// user.created and user.updated carry the whole user, user.deactivated and
// user.deleted its id.
type userEvent struct {
	UserID   string `json:"user_id"`
	Role     string `json:"role"`
	CanVideo *bool  `json:"can_video"`
	Active   *bool  `json:"active"`
}

// state is the projection. Appliers change it holding Plugin.applyMu and
// Plugin.mu; deciders and queries read it holding Plugin.mu for reading.
type state struct {
	applied   uint64            // every event up to this seq is applied
	versions  map[string]uint64 // stream -> version applied, for call/ streams
	companies map[string]*company
	byID      map[string]*call // every call of every company, by id (ids are random)

	// Totals for the metrics, over the whole log.
	created int
	ended   map[string]int // by end reason
	current map[string]int // calls by status, ended excluded
}

type company struct {
	users  map[string]*user // deleted users are absent
	calls  map[string]*call
	rooms  map[string]*room // call links' rooms; deleted ones are absent
	active map[string]*call // user -> the call they take part in that has not ended
	byRoom map[string]*call // room id -> the call of a createCall room (one call each)
}

type user struct {
	active   bool
	plus     bool
	canVideo bool
}

type call struct {
	CallCreated
	company    string
	status     string
	endReason  string
	endedBy    string
	devices    map[string]string // participant -> the device carrying their media ("" while ringing)
	answeredAt time.Time
	connected  time.Time // when call.connected was applied (event time); zero before
	endedAt    time.Time
	deadline   time.Time // DialDeadline parsed; zero for none
}

type room struct {
	RoomCreated
	disabled bool
	call     string        // the call in progress in the room, "" for none
	used     time.Duration // time with both connected, over the room's ended calls
}

func newState() *state {
	return &state{
		versions: map[string]uint64{}, companies: map[string]*company{}, byID: map[string]*call{},
		ended: map[string]int{}, current: map[string]int{},
	}
}

func (s *state) company(id string) *company {
	c := s.companies[id]
	if c == nil {
		c = &company{
			users: map[string]*user{}, calls: map[string]*call{}, rooms: map[string]*room{},
			active: map[string]*call{}, byRoom: map[string]*call{},
		}
		s.companies[id] = c
	}
	return c
}

// lookup returns a company without creating it; the zero company answers
// every lookup with nothing.
func (s *state) lookup(id string) *company {
	if c := s.companies[id]; c != nil {
		return c
	}
	return &company{}
}

func (c *call) participant(u string) bool { return slices.Contains(c.Participants, u) }

func (c *call) isAdmin(u string) bool { return slices.Contains(c.Admins, u) }

func (c *call) ended() bool { return c.status == StatusEnded }

// callOf returns the call id of a call stream of company.
func callOf(company, stream string) (string, bool) {
	id, ok := strings.CutPrefix(stream, "call/"+company+"/")
	return id, ok && company != "" && strings.HasPrefix(id, callIDPrefix) && !strings.Contains(id, "/")
}

// apply folds one event into the projection and returns touched with the
// ids of the calls it concerns added (a call event's call; a user's calls
// when the user is no longer active). Events that do not fit (a malformed
// payload, a transition from the wrong status) change nothing but the
// position: ended is final, and the first call.ended wins.
func (s *state) apply(e plugins.Event, touched []string) []string {
	s.applied = e.Seq
	if strings.HasPrefix(e.Stream, "call/") {
		s.versions[e.Stream] = max(s.versions[e.Stream], e.Version)
	}
	if e.Company == "" {
		return touched
	}
	switch e.Type {
	case "user.created", "user.updated", "user.deactivated", "user.deleted":
		return s.applyUser(e, touched)
	case EvRoomCreated:
		var r RoomCreated
		if e.Stream != RoomsStream(e.Company) || json.Unmarshal(e.Payload, &r) != nil || r.RoomID == "" {
			return touched
		}
		c := s.company(e.Company)
		r.Duration = min(r.Duration, MaxDuration) // rooms logged before the limit: longer ones overflowed the timers
		if c.rooms[r.RoomID] == nil {
			c.rooms[r.RoomID] = &room{RoomCreated: r}
		}
	case EvRoomDisabled, EvRoomDeleted:
		var r RoomRef
		if e.Stream != RoomsStream(e.Company) || json.Unmarshal(e.Payload, &r) != nil {
			return touched
		}
		c := s.lookup(e.Company)
		if rm := c.rooms[r.RoomID]; rm != nil {
			rm.disabled = true
			if e.Type == EvRoomDeleted {
				delete(c.rooms, r.RoomID)
			}
		}
	case EvCreated:
		var cc CallCreated
		if e.Stream != RoomsStream(e.Company) || json.Unmarshal(e.Payload, &cc) != nil ||
			!strings.HasPrefix(cc.CallID, callIDPrefix) || strings.Contains(cc.CallID, "/") || len(cc.Participants) != 2 ||
			cc.Participants[0] != cc.Caller || cc.Participants[1] != cc.Callee || cc.Caller == cc.Callee {
			return touched
		}
		if s.byID[cc.CallID] != nil {
			return touched
		}
		c := s.company(e.Company)
		k := &call{CallCreated: cc, company: e.Company, status: StatusDialing, devices: map[string]string{cc.Caller: cc.CallerDevice, cc.Callee: ""}}
		if cc.DialDeadline != "" {
			k.deadline, _ = time.Parse(timeLayout, cc.DialDeadline)
		}
		c.calls[cc.CallID], s.byID[cc.CallID] = k, k
		for _, u := range cc.Participants {
			if u == cc.Callee && cc.Link && !cc.Options.Live {
				continue // nothing rang: the callee is not in the call until they open their link
			}
			c.active[u] = k
		}
		if rm := c.rooms[cc.RoomID]; rm != nil && cc.Link {
			rm.call = cc.CallID
		} else if !cc.Link {
			c.byRoom[cc.RoomID] = k
		}
		s.created++
		s.current[StatusDialing]++
		return append(touched, cc.CallID)
	case EvAnswered, EvRejoined, EvConnected, EvEnded:
		id, ok := callOf(e.Company, e.Stream)
		k := s.lookup(e.Company).calls[id]
		if !ok || k == nil || k.ended() {
			return touched
		}
		s.applyTransition(k, e)
		return append(touched, id)
	}
	return touched
}

// applyTransition applies a call stream's event to its call, which has
// not ended.
func (s *state) applyTransition(k *call, e plugins.Event) {
	switch e.Type {
	case EvAnswered:
		var a CallAnswered
		if json.Unmarshal(e.Payload, &a) != nil || k.status != StatusDialing || a.UserID != k.Callee || a.Device == "" {
			return
		}
		s.setStatus(k, StatusConnecting)
		k.devices[a.UserID], k.answeredAt = a.Device, e.Time
		if c := s.lookup(k.company); c.active[a.UserID] == nil { // the callee of a link's call that rang nobody
			c.active[a.UserID] = k
		}
	case EvRejoined:
		var r CallRejoined
		if json.Unmarshal(e.Payload, &r) != nil || !k.participant(r.UserID) || r.Device == "" {
			return
		}
		k.devices[r.UserID] = r.Device
	case EvConnected:
		if k.status == StatusConnecting {
			s.setStatus(k, StatusConnected)
			k.connected = e.Time
		}
	case EvEnded:
		var x CallEnded
		if json.Unmarshal(e.Payload, &x) != nil || x.EndReason == "" {
			return
		}
		s.setStatus(k, StatusEnded)
		k.endReason, k.endedBy, k.endedAt = x.EndReason, x.UserID, e.Time
		c := s.lookup(k.company)
		for _, u := range k.Participants {
			if c.active[u] == k {
				delete(c.active, u)
			}
		}
		if rm := c.rooms[k.RoomID]; rm != nil && rm.call == k.CallID {
			rm.call = ""
			if !k.connected.IsZero() {
				rm.used += k.endedAt.Sub(k.connected)
			}
		}
		s.ended[x.EndReason]++
	}
}

// setStatus moves k to status, keeping the counts by status.
func (s *state) setStatus(k *call, status string) {
	s.current[k.status]--
	k.status = status
	if status != StatusEnded {
		s.current[status]++
	}
}

// applyUser folds a user event in. A user no longer active (deactivated
// or deleted) has every call of theirs that has not ended looked at again
// (added to touched), for the scheduler to end: the one they are in, and a
// call link's call waiting for them.
func (s *state) applyUser(e plugins.Event, touched []string) []string {
	var u userEvent
	if json.Unmarshal(e.Payload, &u) != nil || u.UserID == "" || e.Stream != "user/"+e.Company+"/"+u.UserID {
		return touched // only the kernel's own user events, on the user's stream, count
	}
	c := s.company(e.Company)
	users := c.users
	switch e.Type {
	case "user.created", "user.updated":
		cur := users[u.UserID]
		if cur == nil {
			if e.Type == "user.updated" {
				break
			}
			cur = &user{active: true, canVideo: true}
			users[u.UserID] = cur
		}
		if u.Active != nil {
			cur.active = *u.Active
		}
		if u.CanVideo != nil {
			cur.canVideo = *u.CanVideo
		}
		if u.Role != "" {
			cur.plus = u.Role == "plus"
		}
	case "user.deactivated":
		if cur := users[u.UserID]; cur != nil {
			cur.active = false
		}
	case "user.deleted":
		delete(users, u.UserID)
	}
	if c.activeUser(u.UserID) {
		return touched
	}
	for id, k := range c.calls {
		if !k.ended() && k.participant(u.UserID) {
			touched = append(touched, id)
		}
	}
	return touched
}

// activeUser reports whether id is an active user of c.
func (c *company) activeUser(id string) bool {
	u := c.users[id]
	return u != nil && u.active
}

// canVideo reports whether the user may publish video.
func (c *company) canVideo(id string) bool {
	u := c.users[id]
	return u != nil && u.canVideo
}
