package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/parleyhq/parley/plugins"
)

// ID is the plugin's id.
const ID = "parley.chat"

// Error codes, verbatim from the widget reference.
const (
	CodeValidation                    = plugins.CodeValidation  // a parameter is missing or malformed
	CodeAuthentication   plugins.Code = "authentication_error"  // the actor is not an active user of the company (nor its REST API)
	CodeCreateChannel    plugins.Code = "create_channel_oto"    // addChannel failed: the other user is unknown or inactive
	CodeDeleteChannel    plugins.Code = "delete_channel"        // removeChannel failed: there is no channel with that user
	CodeChannelNotFound  plugins.Code = "channel_not_found"     // getChannelView: no channel with that user
	CodeChannelNotExists plugins.Code = "channel_not_exists"    // no such channel, removed, or the actor is not a participant
	CodeMessageAnchor    plugins.Code = "message_anchor_error"  // the anchor (a messageId) is not a message of the channel
	CodeMessageNotSaved  plugins.Code = "message_not_saved"     // the message could not be decided in time; retry
	CodeUnavailable                   = plugins.CodeUnavailable // the projection could not catch up in time
)

// Commands, queries and event types.
const (
	CmdChannelAdd    = "chat.channel.add"
	CmdChannelRemove = "chat.channel.remove"
	CmdMessageSend   = "chat.message.send"
	CmdChannelRead   = "chat.channel.read"

	QueryChannels   = "chat.channels"
	QueryChannelGet = "chat.channel.get"
	QueryMessages   = "chat.messages.fetch"

	EvChannelAdded   = "channel.added"
	EvChannelRemoved = "channel.removed"
	EvChannelClosed  = "channel.closed" // on the channel's stream, after its removal; pushed to nobody
	EvMessageSent    = "channel.message.sent"
	EvChannelRead    = "channel.read"
)

// Limits of requests.
const (
	MaxTextRunes = 4096 // characters (runes) in a message
	MaxFetch     = 100  // messagesToFetch upper bound
	DefaultFetch = 20   // messagesToFetch when absent
)

const (
	timeLayout      = "2006-01-02T15:04:05.000Z07:00" // what JavaScript's toISOString writes
	channelIDPrefix = "ch_"
	messageIDPrefix = "msg_"
)

// ChannelsStream is the stream serialising channel creation and removal in
// a company.
func ChannelsStream(company string) string { return "chat/" + company + "/channels" }

// ChannelStream is the stream of one channel's messages and read cursors.
func ChannelStream(company, channelID string) string { return "chat/" + company + "/ch/" + channelID }

// KeyName is the company key a channel's messages are sealed under.
func KeyName(channelID string) string { return "chat/" + channelID }

// Plugin is the chat plugin. Its state is a projection of the log, rebuilt
// at Start and kept by ApplyEvents (and by catching up from the log when a
// command or query needs a position the delivery has not reached yet).
type Plugin struct {
	k plugins.Kernel

	// applyMu serialises appliers (event delivery and catching up): only
	// its holder changes st, so it may read st without mu. Lock order:
	// applyMu, then mu.
	applyMu sync.Mutex
	mu      sync.RWMutex
	st      *state
	caught  plugins.CatchUp // waits for the projection to reach a position
	proj    *plugins.Projection[*state]

	now func() time.Time // the clock for creationDate
}

// New returns the plugin.
func New() plugins.Plugin {
	p := &Plugin{st: newState(), now: time.Now}
	p.proj = &plugins.Projection[*state]{
		Mu: &p.mu, State: func() *state { return p.st }, Applied: func(s *state) uint64 { return s.applied },
		ReadLog: p.catchUp, Caught: &p.caught, Code: CodeUnavailable, Name: "chat",
	}
	return p
}

var (
	_ plugins.CommandHandler = (*Plugin)(nil)
	_ plugins.QueryHandler   = (*Plugin)(nil)
	_ plugins.EventApplier   = (*Plugin)(nil)
	_ plugins.Starter        = (*Plugin)(nil)
)

// Manifest describes the plugin.
func (*Plugin) Manifest() plugins.Manifest {
	return plugins.Manifest{
		ID: ID, Version: "1.0.0", Protocol: plugins.ProtocolVersion,
		Commands:   []string{CmdChannelAdd, CmdChannelRemove, CmdMessageSend, CmdChannelRead},
		Queries:    []string{QueryChannels, QueryChannelGet, QueryMessages},
		Subscribes: []string{"channel", "user"},
		Events: []plugins.EventType{
			{Name: EvChannelAdded, Durable: true},
			{Name: EvChannelRemoved, Durable: true},
			{Name: EvChannelClosed, Durable: true},
			{Name: EvMessageSent, Durable: true},
			{Name: EvChannelRead, Durable: true},
		},
		Permissions: []plugins.Permission{plugins.PermRead, plugins.PermKeys},
		Streams:     []string{"chat/"},
		Client: []plugins.ClientMethod{
			{Name: CmdChannelAdd, Stream: "chat/{company}/channels"},
			{Name: CmdChannelRemove, Stream: "chat/{company}/channels"},
			{Name: CmdMessageSend, Stream: "chat/{company}/ch/{params.channelId}"},
			{Name: CmdChannelRead, Stream: "chat/{company}/ch/{params.channelId}"},
			{Name: QueryChannels},
			{Name: QueryChannelGet},
			{Name: QueryMessages},
		},
	}
}

// Start rebuilds the projection from the whole log: the kernel's delivery
// cursor resumes where the last activation left off, so the events before
// it would otherwise never be seen again.
func (p *Plugin) Start(ctx context.Context, k plugins.Kernel) error {
	p.applyMu.Lock()
	p.k = k
	p.mu.Lock()
	p.st = newState()
	p.mu.Unlock()
	p.applyMu.Unlock()
	if err := p.catchUp(ctx); err != nil {
		return fmt.Errorf("chat: rebuild from the log: %w", err)
	}
	return nil
}

// ApplyEvents applies delivered events, skipping those already applied
// (delivery is at least once, and catching up may have got there first).
func (p *Plugin) ApplyEvents(ctx context.Context, evs []plugins.Event) error {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	return p.applyLocked(ctx, evs)
}

// catchUp reads the log from the projection's position to the head and
// applies it. Commands and queries call it when the projection is behind
// what they need; Start calls it to rebuild.
func (p *Plugin) catchUp(ctx context.Context) error {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	return plugins.ReadLogFrom(ctx, p.k, func() uint64 { return p.st.applied },
		func(evs []plugins.Event) error { return p.applyLocked(ctx, evs) })
}

// applyLocked applies evs in order; applyMu is held. A key that must be
// erased is erased before the event counts as applied, so a failure (the
// batch comes again) or a crash (the rebuild meets the event again) retries
// the erasure.
func (p *Plugin) applyLocked(ctx context.Context, evs []plugins.Event) error {
	for _, e := range evs {
		if e.Seq <= p.st.applied {
			continue
		}
		if company, key, ok := p.st.eraseBefore(e); ok {
			if err := p.k.EraseKey(ctx, company, key); err != nil {
				return fmt.Errorf("erase key %s of company %s (event %d): %w", key, company, e.Seq, err)
			}
		}
		p.mu.Lock()
		p.st.apply(e)
		p.caught.Moved()
		p.mu.Unlock()
	}
	return nil
}

func newChannelID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return channelIDPrefix + hex.EncodeToString(b)
}

func marshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("chat: marshal %T: %v", v, err))
	}
	return b
}
