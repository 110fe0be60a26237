package call

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/parleyhq/parley/plugins"
	"github.com/prometheus/client_golang/prometheus"
)

// ID is the plugin's id.
const ID = "parley.call"

// Error codes, verbatim from the widget reference (see doc.go for when
// each applies), and the plugin's own.
const (
	CodeValidation                         = plugins.CodeValidation        // an argument is missing or malformed
	CodeAnotherCallInProgress plugins.Code = "another_call_in_progress"    // the user already takes part in a call (on this device, or ringing)
	CodeCurrentUserNotAvail   plugins.Code = "current_user_not_available"  // the acting user is not an active user of the company
	CodeCurrentUserBusy       plugins.Code = "current_user_busy"           // the acting user is in a call on another device
	CodeAllUsersBusy          plugins.Code = "all_users_busy"              // every user called is in another call
	CodeNoPlusUser            plugins.Code = "no_plus_user"                // no participant has the plus role
	CodeRoomCreate            plugins.Code = "room_create_error"           // the call cannot be set up: no media plane
	CodeInternalServer        plugins.Code = "internal_server_error"       // the projection could not catch up with the log in time
	CodeInvalidCallStatus     plugins.Code = "invalid_call_status"         // the call is not in a status that allows this
	CodeCalleeNotAvailable    plugins.Code = "callee_not_available"        // answer: the caller is no longer an active user
	CodeDialAnswer            plugins.Code = "dial_answer_error"           // answer: no such call of the user's, or no device to bind
	CodeUserNotInDialing      plugins.Code = "user_not_in_dialing"         // end: this device is not the one in the call
	CodeDialStop              plugins.Code = "dial_stop_error"             // end: no such call of the user's, or a cancel from another device
	CodeDialDecline           plugins.Code = "dial_decline_error"          // end: a decline of a call that never rang (link, live false)
	CodeInvalidToken          plugins.Code = "invalid_token"               // join: the room is disabled or deleted
	CodeUserNotAssociatedLink plugins.Code = "user_not_associated_to_link" // join: the user is not one of the room's participants
	CodeJoinURLMTM            plugins.Code = "join_url_mtm"                // join: the room has more than two participants
	CodeCallNotFound          plugins.Code = "call_not_found"              // the plugin's own: no such call of the actor's (media, call.get)
	CodeRoomNotFound          plugins.Code = "room_not_found"              // the plugin's own: no such room (REST)
	CodeMediaReset            plugins.Code = "media_reset"                 // the plugin's own: the media plane closed the device's peer connection (a negotiation it could not finish): make a new one
	CodePermissionDenied                   = plugins.CodePermissionDenied  // a user calling a REST-only command
)

// Statuses of a call, in order.
const (
	StatusDialing    = "dialing"
	StatusConnecting = "connecting"
	StatusConnected  = "connected"
	StatusEnded      = "ended"
)

// End reasons. The first five are the widget reference's;
// answered_of_another_device is never in a call.ended event: the SDK
// derives it per device from call.answered.
const (
	ReasonDeclined         = "declined"
	ReasonCanceled         = "canceled"
	ReasonAnsweredElswhere = "answered_of_another_device"
	ReasonHangUp           = "hang_up"
	ReasonTimeout          = "timeout"
	ReasonConnectionLost   = "connection_lost"  // a participant's media did not come up, or dropped, for too long
	ReasonDurationExpired  = "duration_expired" // a call link's room used up its duration
	ReasonRoomClosed       = "room_closed"      // the room was disabled or deleted through the REST API
	ReasonUserRemoved      = "user_removed"     // a participant was deactivated or deleted (UserID names them)
)

// Call types and recording types.
const (
	TypeAudioOnly       = "audio_only"
	TypeAudioUpgradable = "audio_upgradable"
	TypeAudioVideo      = "audio_video"

	RecordingNone      = "none"
	RecordingManual    = "manual"
	RecordingAutomatic = "automatic"
)

// Commands, queries and event types.
const (
	CmdCreate      = "call.create"
	CmdAnswer      = "call.answer"
	CmdEnd         = "call.end"
	CmdRoomJoin    = "call.room.join"
	CmdRoomCreate  = "call.room.create"
	CmdRoomDisable = "call.room.disable"
	CmdRoomDelete  = "call.room.delete"

	CmdMediaOffer     = "call.media.offer"
	CmdMediaAnswer    = "call.media.answer"
	CmdMediaCandidate = "call.media.candidate"
	CmdMediaLeave     = "call.media.leave"

	QueryGet   = "call.get"
	QueryList  = "call.list"
	QueryRoom  = "call.room.get"
	QueryRooms = "call.rooms"
	QueryStats = "call.stats"

	EvCreated      = "call.created"
	EvAnswered     = "call.answered"
	EvRejoined     = "call.rejoined"
	EvConnected    = "call.connected"
	EvEnded        = "call.ended"
	EvRoomCreated  = "call.room.created"
	EvRoomDisabled = "call.room.disabled"
	EvRoomDeleted  = "call.room.deleted"

	EvMediaSDP     = "call.media.sdp"     // ephemeral, to one device: {callId, type: answer|offer, sdp}
	EvMediaICE     = "call.media.ice"     // ephemeral, to one device: {callId, candidate}
	EvMediaState   = "call.media.state"   // ephemeral, to both participants: {callId, userId, state}
	EvRoomExpiring = "call.room.expiring" // ephemeral, to both participants: {callId, roomId, remaining}
)

const (
	timeLayout   = "2006-01-02T15:04:05.000Z07:00" // what JavaScript's toISOString writes
	callIDPrefix = "call_"
	roomIDPrefix = "room_"
)

// RoomsStream is the stream serialising the creation of calls and rooms
// in a company: two users calling each other at once get one call.
func RoomsStream(company string) string { return "call/" + company + "/rooms" }

// CallStream is the stream of one call's transitions.
func CallStream(company, callID string) string { return "call/" + company + "/" + callID }

// Plugin is the call plugin. Its state is a projection of the log, rebuilt
// at Start and kept by ApplyEvents (and by catching up from the log when a
// command or query needs a position the delivery has not reached yet).
type Plugin struct {
	cfg    Config
	media  Media
	owned  io.Closer // the media plane New made, closed at Stop; nil when the caller owns it
	logger *slog.Logger

	k plugins.Kernel

	// applyMu serialises appliers (event delivery and catching up): only
	// its holder changes st, so it may read st without mu. Lock order:
	// applyMu, then mu.
	applyMu sync.Mutex
	mu      sync.RWMutex
	st      *state
	caught  plugins.CatchUp // waits for the projection to reach a position
	proj    *plugins.Projection[*state]

	sched *scheduler // the plugin's own transitions: timeouts, media, durations
	calls callLocks  // orders signaling with the end of the call's media

	// life orders Start's attaching (the media plane's callbacks, the
	// scheduler) with Abort and Stop, which the host may call while a
	// Start past its deadline still runs: once ended, Start attaches
	// nothing.
	life  sync.Mutex
	ended bool
}

// New returns the plugin configured from the environment (ConfigFromEnv),
// with the media plane of plugins/call/sfu. A configuration error or a
// media plane that cannot start leaves the plugin running without media:
// every call is then refused with room_create_error, and the reason is
// logged.
func New() plugins.Plugin { return NewWithMetrics(nil) }

// NewWithMetrics is New with the media plane's collectors registered in
// reg (the kernel's registry, for a plugin run in process).
func NewWithMetrics(reg prometheus.Registerer) plugins.Plugin {
	logger := slog.New(slog.NewTextHandler(stderr, nil)).With("plugin", ID)
	cfg, err := ConfigFromEnv(environ())
	if err != nil {
		logger.Error("call configuration", "err", err)
	}
	m, closer, err := newMedia(cfg, reg, logger)
	if err != nil {
		logger.Error("the media plane did not start: calls are refused", "err", err)
	}
	p := NewWith(cfg, m)
	p.owned, p.logger = closer, logger
	return p
}

// NewWith returns the plugin with cfg and the media plane m (nil: calls
// are refused with room_create_error). The caller owns m.
func NewWith(cfg Config, m Media) *Plugin {
	cfg = cfg.withDefaults()
	p := &Plugin{cfg: cfg, media: m, st: newState(), logger: slog.New(slog.DiscardHandler)}
	p.proj = &plugins.Projection[*state]{
		Mu: &p.mu, State: func() *state { return p.st }, Applied: func(s *state) uint64 { return s.applied },
		ReadLog: p.catchUp, Caught: &p.caught, Code: CodeInternalServer, Name: "call",
	}
	p.sched = newScheduler(p)
	return p
}

var (
	_ plugins.CommandHandler = (*Plugin)(nil)
	_ plugins.QueryHandler   = (*Plugin)(nil)
	_ plugins.EventApplier   = (*Plugin)(nil)
	_ plugins.Starter        = (*Plugin)(nil)
	_ plugins.Stopper        = (*Plugin)(nil)
	_ plugins.Aborter        = (*Plugin)(nil)
)

// Manifest describes the plugin.
func (*Plugin) Manifest() plugins.Manifest {
	callStream := "call/{company}/{params.callId}"
	mediaStream := "call/{company}/{params.callId}/media/{actor}"
	rooms := "call/{company}/rooms"
	return plugins.Manifest{
		ID: ID, Version: "1.0.0", Protocol: plugins.ProtocolVersion,
		Commands: []string{
			CmdCreate, CmdAnswer, CmdEnd, CmdRoomJoin, CmdRoomCreate, CmdRoomDisable, CmdRoomDelete,
			CmdMediaOffer, CmdMediaAnswer, CmdMediaCandidate, CmdMediaLeave,
		},
		Queries:    []string{QueryGet, QueryList, QueryRoom, QueryRooms, QueryStats},
		Subscribes: []string{"call", "user"},
		Events: []plugins.EventType{
			{Name: EvCreated, Durable: true},
			{Name: EvAnswered, Durable: true},
			{Name: EvRejoined, Durable: true},
			{Name: EvConnected, Durable: true},
			{Name: EvEnded, Durable: true},
			{Name: EvRoomCreated, Durable: true},
			{Name: EvRoomDisabled, Durable: true},
			{Name: EvRoomDeleted, Durable: true},
			{Name: EvMediaSDP},
			{Name: EvMediaICE},
			{Name: EvMediaState},
			{Name: EvRoomExpiring},
		},
		Permissions: []plugins.Permission{plugins.PermRead, plugins.PermAppend, plugins.PermPublish},
		Streams:     []string{"call/"},
		Client: []plugins.ClientMethod{
			{Name: CmdCreate, Stream: rooms},
			{Name: CmdAnswer, Stream: callStream},
			{Name: CmdEnd, Stream: callStream},
			{Name: CmdRoomJoin, Stream: rooms},
			{Name: CmdRoomCreate, Stream: rooms},
			{Name: CmdRoomDisable, Stream: rooms},
			{Name: CmdRoomDelete, Stream: rooms},
			{Name: CmdMediaOffer, Stream: mediaStream},
			{Name: CmdMediaAnswer, Stream: mediaStream},
			{Name: CmdMediaCandidate, Stream: mediaStream},
			{Name: CmdMediaLeave, Stream: mediaStream},
			{Name: QueryGet},
			{Name: QueryList},
			{Name: QueryRoom},
			{Name: QueryRooms},
		},
	}
}

// Start rebuilds the projection from the whole log (the kernel's delivery
// cursor resumes where the last activation left off, so the events before
// it would otherwise never be seen again), then starts the scheduler,
// which times out the calls whose deadline passed while the plugin was
// not running.
func (p *Plugin) Start(ctx context.Context, k plugins.Kernel) error {
	p.applyMu.Lock()
	p.k = k
	p.mu.Lock()
	p.st = newState()
	p.mu.Unlock()
	p.applyMu.Unlock()
	if err := p.catchUp(ctx); err != nil {
		return fmt.Errorf("call: rebuild from the log: %w", err)
	}
	if err := p.attach(); err != nil {
		return err
	}
	p.mu.RLock()
	var open []string
	for id, c := range p.st.byID {
		if !c.ended() {
			open = append(open, id)
		}
	}
	p.mu.RUnlock()
	p.takeOverMedia(ctx)
	p.sched.kick(open...)
	return nil
}

// takeOverMedia sorts what a media plane kept from an aborted activation
// holds (Media.Devices): the media of calls that ended, or of devices that
// no longer carry their user's, is closed; the states of the others are
// taken as they are, so media that flows on is not taken for lost.
func (p *Plugin) takeOverMedia(ctx context.Context) {
	if p.media == nil {
		return
	}
	devices := p.media.Devices("")
	live := map[[2]string]bool{} // call, device: a peer connection not closed
	for _, d := range devices {
		live[[2]string{d.CallID, d.Device}] = d.State != "closed"
	}
	var ended []string
	for _, d := range devices {
		k := p.callInfo(d.CallID)
		switch {
		case k == nil || k.ended():
			if !slices.Contains(ended, d.CallID) {
				ended = append(ended, d.CallID)
			}
		case k.devices[d.User] != d.Device && live[[2]string{d.CallID, k.devices[d.User]}]:
			// The user's media moved to a device that has it now.
			unlock := p.calls.lock(d.CallID)
			if err := p.media.Leave(ctx, d.CallID, d.User, d.Device); err != nil {
				p.logger.Warn("closing the media of a device the user left", "call", d.CallID, "device", d.Device, "err", err)
			}
			unlock()
		case k.devices[d.User] != d.Device:
			// It moves to a device that has not offered yet: the old one is
			// closed when that offer succeeds (handleMedia).
		default:
			p.sched.seed(d.CallID, d.User, d.Device, d.State)
		}
	}
	for _, id := range ended {
		p.endMedia(ctx, id)
	}
}

// Stop ends the scheduler and, when New made it, the media plane.
func (p *Plugin) Stop(context.Context) error {
	p.end()
	p.sched.stop()
	if p.owned != nil {
		return p.owned.Close()
	}
	return nil
}

// Abort is Stop for an activation the host killed (after a panic, or a
// command that hung): it ends the scheduler and leaves the media plane
// open, so the calls' media flows on and the next activation (the next
// New in this process) takes it over. The plane holds the signalling it
// makes meanwhile (renegotiation offers, candidates) for that activation.
func (p *Plugin) Abort(context.Context) error {
	p.end()
	if p.media != nil {
		// First: stopping the scheduler may wait (on a call's lock), and
		// a detach after the next activation attached would undo its.
		p.media.Notify(MediaEvents{})
	}
	p.sched.stop()
	return nil
}

// attach sets the media plane's callbacks and starts the scheduler,
// unless the activation ended (Stop, Abort) while Start rebuilt.
func (p *Plugin) attach() error {
	p.life.Lock()
	defer p.life.Unlock()
	if p.ended {
		return errors.New("call: stopped while starting")
	}
	if p.media != nil {
		p.media.Notify(MediaEvents{Candidate: p.onCandidate, Offer: p.onOffer, State: p.onState})
	}
	p.sched.start()
	return nil
}

// end marks the activation ended (Stop, Abort): a Start still running
// attaches nothing from now on.
func (p *Plugin) end() {
	p.life.Lock()
	p.ended = true
	p.life.Unlock()
}

// ApplyEvents applies delivered events, skipping those already applied
// (delivery is at least once, and catching up may have got there first).
func (p *Plugin) ApplyEvents(_ context.Context, evs []plugins.Event) error {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	p.applyLocked(evs)
	return nil
}

// catchUp reads the log from the projection's position to the head and
// applies it.
func (p *Plugin) catchUp(ctx context.Context) error {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	return plugins.ReadLogFrom(ctx, p.k, func() uint64 { return p.st.applied },
		func(evs []plugins.Event) error { p.applyLocked(evs); return nil })
}

// applyLocked applies evs in order (applyMu is held) and has the scheduler
// look again at every call they concern.
func (p *Plugin) applyLocked(evs []plugins.Event) {
	var touched []string
	for _, e := range evs {
		if e.Seq <= p.st.applied {
			continue
		}
		p.mu.Lock()
		touched = p.st.apply(e, touched)
		p.caught.Moved()
		p.mu.Unlock()
	}
	p.sched.kick(touched...)
}

func (p *Plugin) now() time.Time { return p.cfg.Now() }

func (p *Plugin) stamp(t time.Time) string { return t.UTC().Format(timeLayout) }

// newIDs returns a fresh call id and the matching room id.
func newIDs() (callID, roomID string) {
	b := make([]byte, 12)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return callIDPrefix + h, roomIDPrefix + h
}

func marshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("call: marshal %T: %v", v, err))
	}
	return b
}
