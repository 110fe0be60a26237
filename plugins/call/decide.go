package call

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/parleyhq/parley/plugins"
)

// HandleCommand decides a call command. It first makes sure the projection
// has applied the command's stream up to cmd.Version, so the decision never
// rests on stale state; the kernel appends the events only if the stream is
// still at that version.
func (p *Plugin) HandleCommand(ctx context.Context, cmd plugins.Command) ([]plugins.NewEvent, error) {
	var decide func(*state) ([]plugins.NewEvent, error)
	onRooms := func() error {
		if want := RoomsStream(cmd.Company); cmd.Stream != want {
			return plugins.Errorf(CodeValidation, "%s is serialised on stream %s, not %q", cmd.Name, want, cmd.Stream)
		}
		return nil
	}
	switch cmd.Name {
	case CmdCreate:
		var in CreateRequest
		if err := decode(cmd.Payload, &in); err != nil {
			return nil, err
		}
		if err := onRooms(); err != nil {
			return nil, err
		}
		decide = func(s *state) ([]plugins.NewEvent, error) { return p.decideCreate(s, cmd, in) }
	case CmdRoomJoin:
		var in JoinRequest
		if err := decode(cmd.Payload, &in); err != nil {
			return nil, err
		}
		if err := onRooms(); err != nil {
			return nil, err
		}
		decide = func(s *state) ([]plugins.NewEvent, error) { return p.decideJoin(s, cmd, in) }
	case CmdRoomCreate:
		var in RoomRequest
		if err := decode(cmd.Payload, &in); err != nil {
			return nil, err
		}
		if err := onRooms(); err != nil {
			return nil, err
		}
		decide = func(s *state) ([]plugins.NewEvent, error) { return p.decideRoomCreate(s, cmd, in) }
	case CmdRoomDisable, CmdRoomDelete:
		var in RoomQuery
		if err := decode(cmd.Payload, &in); err != nil {
			return nil, err
		}
		if err := onRooms(); err != nil {
			return nil, err
		}
		decide = func(s *state) ([]plugins.NewEvent, error) { return p.decideRoomClose(s, cmd, in) }
	case CmdAnswer, CmdEnd:
		var in CallRequest
		if err := decode(cmd.Payload, &in); err != nil {
			return nil, err
		}
		if err := onCallStream(cmd, in.CallID, ""); err != nil {
			return nil, err
		}
		decide = func(s *state) ([]plugins.NewEvent, error) { return p.decideEnd(s, cmd, in) }
		if cmd.Name == CmdAnswer {
			decide = func(s *state) ([]plugins.NewEvent, error) { return decideAnswer(s, cmd, in) }
		}
	case CmdMediaOffer, CmdMediaAnswer, CmdMediaCandidate, CmdMediaLeave:
		return p.handleMedia(ctx, cmd)
	default:
		return nil, plugins.Errorf(plugins.CodeInvalidCommand, "the call plugin has no command %q", cmd.Name)
	}
	if err := p.proj.WaitFor(ctx, func(s *state) bool { return s.versions[cmd.Stream] >= cmd.Version }, false); err != nil {
		return nil, err
	}
	if cmd.Name == CmdCreate || cmd.Name == CmdRoomJoin {
		// These read users' roles and activity (a user made basic a
		// moment ago cannot still start a call as plus).
		if err := p.proj.UpToDate(ctx); err != nil {
			return nil, err
		}
	}
	evs, err := plugins.Retrying(ctx, p.proj, decide)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		if id, ok := callOf(cmd.Company, e.Stream); ok {
			p.sched.decided(id)
		} else if e.Type == EvCreated {
			var c CallCreated
			if decode(e.Payload, &c) == nil {
				p.sched.decided(c.CallID)
			}
		}
	}
	return evs, nil
}

// onCallStream checks a call command is serialised on its call's stream
// (plus suffix, for signaling): that is what orders its transitions.
func onCallStream(cmd plugins.Command, callID, suffix string) error {
	if !strings.HasPrefix(callID, callIDPrefix) || strings.Contains(callID, "/") {
		return plugins.Errorf(CodeValidation, "callId must be a call id (call_...)")
	}
	if want := CallStream(cmd.Company, callID) + suffix; cmd.Stream != want {
		return plugins.Errorf(CodeValidation, "%s is serialised on stream %s, not %q", cmd.Name, want, cmd.Stream)
	}
	return nil
}

// busy is the error for a user who takes part in k already: on another of
// their devices (current_user_busy), or on this one or ringing on all of
// them (another_call_in_progress).
func busy(k *call, me, device string) error {
	if d := k.devices[me]; d != "" && d != device {
		return plugins.Errorf(CodeCurrentUserBusy, "you are in call %s on another device", k.CallID)
	}
	return plugins.Errorf(CodeAnotherCallInProgress, "you are already in call %s", k.CallID)
}

func (p *Plugin) decideCreate(s *state, cmd plugins.Command, in CreateRequest) ([]plugins.NewEvent, error) {
	me := cmd.Actor
	switch {
	case !plugins.IsUser(me):
		return nil, plugins.Errorf(CodeValidation, "createCall is a connected user's method")
	case cmd.Device == "":
		return nil, plugins.Errorf(CodeValidation, "createCall needs the caller's connected device")
	case len(in.Users) != 1:
		return nil, plugins.Errorf(CodeValidation, "users must name exactly one user: calls are one-to-one, got %d", len(in.Users))
	case !plugins.ValidUserID(in.Users[0]):
		return nil, plugins.Errorf(CodeValidation, "users[0] must be a user id (1..128 of a-z A-Z 0-9 . _ -)")
	case in.Users[0] == me:
		return nil, plugins.Errorf(CodeValidation, "a call is between two different users")
	}
	opts, admin, err := in.Options.options()
	if err != nil {
		return nil, err
	}
	callee := in.Users[0]
	c := s.lookup(cmd.Company)
	if !c.activeUser(me) {
		return nil, plugins.Errorf(CodeCurrentUserNotAvail, "%q is not an active user of company %s", me, cmd.Company)
	}
	if k := c.active[me]; k != nil {
		return nil, busy(k, me, cmd.Device)
	}
	if !c.activeUser(callee) {
		return nil, plugins.Errorf(CodeValidation, "user %q is not an active user of the company", callee)
	}
	if k := c.active[callee]; k != nil {
		return nil, plugins.Errorf(CodeAllUsersBusy, "user %q is in another call", callee)
	}
	if !c.users[me].plus && !c.users[callee].plus {
		return nil, plugins.Errorf(CodeNoPlusUser, "neither %q nor %q has the plus role", me, callee)
	}
	if p.media == nil {
		return nil, plugins.Errorf(CodeRoomCreate, "the media server is not running")
	}
	admins := []string{}
	if admin {
		admins = append(admins, me)
	}
	now := p.now()
	callID, roomID := newIDs()
	created := CallCreated{
		CallID: callID, RoomID: roomID, Status: StatusDialing, Caller: me, Callee: callee, Participants: []string{me, callee},
		CallerDevice: cmd.Device, Options: opts, Admins: admins, CreationDate: p.stamp(now),
		DialDeadline: p.stamp(now.Add(p.cfg.DialTimeout)),
	}
	return []plugins.NewEvent{{Type: EvCreated, Stream: cmd.Stream, Audience: []string{me, callee}, Payload: marshal(created)}}, nil
}

// decideJoin opens a call link's room for its user: it starts the room's
// call (the user calls the other participant), answers it (the user is the
// callee of the call waiting there), or moves the user's media to this
// device (they opened their link again).
func (p *Plugin) decideJoin(s *state, cmd plugins.Command, in JoinRequest) ([]plugins.NewEvent, error) {
	me := cmd.Actor
	switch {
	case !plugins.IsUser(me):
		return nil, plugins.Errorf(CodeValidation, "joining a room is a connected user's method")
	case cmd.Device == "":
		return nil, plugins.Errorf(CodeValidation, "joining a room needs a connected device")
	case in.RoomID == "":
		return nil, plugins.Errorf(CodeValidation, "roomId is required")
	}
	c := s.lookup(cmd.Company)
	if !c.activeUser(me) {
		return nil, plugins.Errorf(CodeCurrentUserNotAvail, "%q is not an active user of company %s", me, cmd.Company)
	}
	rm := c.rooms[in.RoomID]
	if rm == nil || rm.disabled {
		return nil, plugins.Errorf(CodeInvalidToken, "room %s is disabled or deleted", in.RoomID)
	}
	if left := time.Duration(rm.Duration)*time.Second - rm.used; rm.Duration > 0 && c.calls[rm.call] == nil && left < expiringLead {
		// A new call would ring the other participant, and end with
		// duration_expired (warned at once) as soon as both connected.
		return nil, plugins.Errorf(CodeInvalidToken, "room %s has %v of its %d s left, less than a call's %v warning", in.RoomID, max(left, 0), rm.Duration, expiringLead)
	}
	if !slices.ContainsFunc(rm.Participants, func(pt Participant) bool { return pt.UserID == me }) {
		return nil, plugins.Errorf(CodeUserNotAssociatedLink, "%q is not a participant of room %s", me, rm.RoomID)
	}
	if len(rm.Participants) > 2 {
		return nil, plugins.Errorf(CodeJoinURLMTM, "room %s has %d participants: many-to-many calls are not supported", rm.RoomID, len(rm.Participants))
	}
	if !slices.ContainsFunc(rm.Participants, func(pt Participant) bool { u := c.users[pt.UserID]; return u != nil && u.plus }) {
		return nil, plugins.Errorf(CodeNoPlusUser, "no participant of room %s has the plus role", rm.RoomID)
	}
	other := rm.Participants[0].UserID
	if other == me {
		other = rm.Participants[1].UserID
	}
	if k := c.calls[rm.call]; k != nil { // the room's call: answer it, or take it over on this device
		stream := CallStream(cmd.Company, k.CallID)
		if a := c.active[me]; a != nil && a != k { // the room's call rang nobody, and the user took another
			return nil, busy(a, me, cmd.Device)
		}
		// Decided on the call's state, appended to its stream, not the
		// command's (the rooms'): only if the call is still where it was
		// (not ended or answered meanwhile); else the join is decided again.
		at := s.versions[stream]
		if k.status == StatusDialing && me == k.Callee {
			a := CallAnswered{CallID: k.CallID, RoomID: k.RoomID, Status: StatusConnecting, UserID: me, Device: cmd.Device}
			return []plugins.NewEvent{{Type: EvAnswered, Stream: stream, Audience: slices.Clone(k.Participants), Payload: marshal(a), Expect: &at}}, nil
		}
		r := CallRejoined{CallID: k.CallID, RoomID: k.RoomID, Status: k.status, UserID: me, Device: cmd.Device}
		return []plugins.NewEvent{{Type: EvRejoined, Stream: stream, Audience: slices.Clone(k.Participants), Payload: marshal(r), Expect: &at}}, nil
	}
	if k := c.active[me]; k != nil {
		return nil, busy(k, me, cmd.Device)
	}
	if !c.activeUser(other) {
		return nil, plugins.Errorf(CodeRoomCreate, "the other participant %q is no longer an active user", other)
	}
	if c.active[other] != nil && rm.Live {
		return nil, plugins.Errorf(CodeAllUsersBusy, "user %q is in another call", other)
	}
	if p.media == nil {
		return nil, plugins.Errorf(CodeRoomCreate, "the media server is not running")
	}
	admins := []string{}
	for _, pt := range rm.Participants {
		if pt.IsAdmin {
			admins = append(admins, pt.UserID)
		}
	}
	now := p.now()
	callID, _ := newIDs()
	created := CallCreated{
		CallID: callID, RoomID: rm.RoomID, Status: StatusDialing, Caller: me, Callee: other, Participants: []string{me, other},
		CallerDevice: cmd.Device, Admins: admins, CreationDate: p.stamp(now), Link: true,
		Options: Options{CallType: rm.CallType, Recording: rm.Recording != RecordingNone, RecordingType: rm.Recording, Live: rm.Live},
	}
	audience := []string{me}
	if rm.Live { // the other participant's devices ring, and the call times out like any other
		created.DialDeadline = p.stamp(now.Add(p.cfg.DialTimeout))
		audience = append(audience, other)
	}
	return []plugins.NewEvent{{Type: EvCreated, Stream: cmd.Stream, Audience: audience, Payload: marshal(created)}}, nil
}

func decideAnswer(s *state, cmd plugins.Command, in CallRequest) ([]plugins.NewEvent, error) {
	me := cmd.Actor
	c := s.lookup(cmd.Company)
	k := c.calls[in.CallID]
	switch {
	case !plugins.IsUser(me):
		return nil, plugins.Errorf(CodeDialAnswer, "answer is a connected user's method")
	case k == nil || !k.participant(me):
		return nil, plugins.Errorf(CodeDialAnswer, "there is no call %s of yours", in.CallID)
	case k.Caller == me:
		return nil, plugins.Errorf(CodeInvalidCallStatus, "only an incoming call is answered: you are calling")
	case k.status != StatusDialing:
		return nil, plugins.Errorf(CodeInvalidCallStatus, "the call is %s, not dialing", k.status)
	case cmd.Device == "":
		return nil, plugins.Errorf(CodeDialAnswer, "answer needs a connected device")
	case !c.activeUser(me):
		return nil, plugins.Errorf(CodeDialAnswer, "%q is not an active user of company %s", me, cmd.Company)
	case !c.activeUser(k.Caller):
		return nil, plugins.Errorf(CodeCalleeNotAvailable, "the caller %q is no longer available", k.Caller)
	case k.Link && !k.Options.Live:
		return nil, plugins.Errorf(CodeDialAnswer, "the call of room %s rang nobody: open your call link to join it", k.RoomID)
	}
	if a := c.active[me]; a != nil && a != k {
		return nil, busy(a, me, cmd.Device)
	}
	a := CallAnswered{CallID: k.CallID, RoomID: k.RoomID, Status: StatusConnecting, UserID: me, Device: cmd.Device}
	return []plugins.NewEvent{{Type: EvAnswered, Stream: cmd.Stream, Audience: slices.Clone(k.Participants), Payload: marshal(a)}}, nil
}

// decideEnd is the widget's Call.end(): it declines, cancels or hangs up,
// by the call's status and who ends it.
func (p *Plugin) decideEnd(s *state, cmd plugins.Command, in CallRequest) ([]plugins.NewEvent, error) {
	me, device := cmd.Actor, cmd.Device
	k := s.lookup(cmd.Company).calls[in.CallID]
	switch {
	case !plugins.IsUser(me) || k == nil || !k.participant(me):
		return nil, plugins.Errorf(CodeDialStop, "there is no call %s of yours", in.CallID)
	case k.ended():
		return nil, plugins.Errorf(CodeInvalidCallStatus, "the call has ended already (%s)", k.endReason)
	}
	bound := k.devices[me]
	var reason string
	switch {
	case k.status == StatusDialing && me == k.Caller:
		if device != "" && device != bound {
			return nil, plugins.Errorf(CodeDialStop, "the call is being dialed from another of your devices")
		}
		reason = ReasonCanceled
	case k.status == StatusDialing:
		if k.Link && !k.Options.Live {
			return nil, plugins.Errorf(CodeDialDecline, "the call never rang for you (a call link without live): open your link to join it")
		}
		reason = ReasonDeclined
	default:
		if device != "" && device != bound {
			return nil, plugins.Errorf(CodeUserNotInDialing, "this device is not in the call: it was answered on another of your devices")
		}
		reason = ReasonHangUp
	}
	x := CallEnded{CallID: k.CallID, RoomID: k.RoomID, Status: StatusEnded, EndReason: reason, UserID: me, Device: device}
	return []plugins.NewEvent{{Type: EvEnded, Stream: cmd.Stream, Audience: slices.Clone(k.Participants), Payload: marshal(x)}}, nil
}

// companyAPI refuses anyone but the company's REST API.
func companyAPI(cmd string, company, actor string) error {
	if company == "" || actor != plugins.ActorAPIKeyPrefix+company {
		return plugins.Errorf(CodePermissionDenied, "%s is the company's REST API's (/v2/rooms)", cmd)
	}
	return nil
}

func (p *Plugin) decideRoomCreate(s *state, cmd plugins.Command, in RoomRequest) ([]plugins.NewEvent, error) {
	if err := companyAPI(cmd.Name, cmd.Company, cmd.Actor); err != nil {
		return nil, err
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	c := s.lookup(cmd.Company)
	plus := false
	for _, pt := range in.Participants {
		if !c.activeUser(pt.UserID) {
			return nil, plugins.Errorf(CodeValidation, "user %q is not an active user of the company", pt.UserID)
		}
		plus = plus || c.users[pt.UserID].plus
	}
	if !plus {
		return nil, plugins.Errorf(CodeNoPlusUser, "a room needs at least one participant with the plus role")
	}
	_, roomID := newIDs()
	r := RoomCreated{
		RoomID: roomID, Participants: in.Participants, Recording: in.Recording, CallType: in.CallType, Live: in.Live,
		CreatedAt: p.stamp(p.now()),
	}
	if in.Duration != nil {
		r.Duration = *in.Duration
	}
	return []plugins.NewEvent{{Type: EvRoomCreated, Stream: cmd.Stream, Payload: marshal(r)}}, nil
}

// decideRoomClose disables or deletes a room; the call in progress in it
// ends with room_closed. Disabling a disabled room decides nothing.
func (p *Plugin) decideRoomClose(s *state, cmd plugins.Command, in RoomQuery) ([]plugins.NewEvent, error) {
	if err := companyAPI(cmd.Name, cmd.Company, cmd.Actor); err != nil {
		return nil, err
	}
	c := s.lookup(cmd.Company)
	rm := c.rooms[in.RoomID]
	if rm == nil {
		return nil, plugins.Errorf(CodeRoomNotFound, "there is no room %q", in.RoomID)
	}
	typ := EvRoomDeleted
	if cmd.Name == CmdRoomDisable {
		if rm.disabled {
			return nil, nil
		}
		typ = EvRoomDisabled
	}
	evs := []plugins.NewEvent{{Type: typ, Stream: cmd.Stream, Payload: marshal(RoomRef{RoomID: rm.RoomID})}}
	if k := c.calls[rm.call]; k != nil && !k.ended() {
		x := CallEnded{CallID: k.CallID, RoomID: k.RoomID, Status: StatusEnded, EndReason: ReasonRoomClosed}
		stream := CallStream(cmd.Company, k.CallID)
		at := s.versions[stream] // an end() at the same instant wins; this is decided again
		evs = append(evs, plugins.NewEvent{Type: EvEnded, Stream: stream, Audience: slices.Clone(k.Participants), Payload: marshal(x), Expect: &at})
	}
	return evs, nil
}
