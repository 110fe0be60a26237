package chat

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/parleyhq/parley/plugins"
)

// HandleCommand decides a chat command. It first makes sure the projection
// has applied the command's stream up to cmd.Version, so the decision never
// rests on stale state; the kernel appends the events only if the stream is
// still at that version.
func (p *Plugin) HandleCommand(ctx context.Context, cmd plugins.Command) ([]plugins.NewEvent, error) {
	var decide func(*state) ([]plugins.NewEvent, error)
	switch cmd.Name {
	case CmdChannelAdd, CmdChannelRemove:
		var in UserRequest
		if err := decode(cmd.Payload, &in); err != nil {
			return nil, err
		}
		if want := ChannelsStream(cmd.Company); cmd.Stream != want {
			return nil, plugins.Errorf(CodeValidation, "%s is serialised on stream %s, not %q", cmd.Name, want, cmd.Stream)
		}
		decide = func(s *state) ([]plugins.NewEvent, error) { return p.decideRemove(s, cmd, in) }
		if cmd.Name == CmdChannelAdd {
			decide = func(s *state) ([]plugins.NewEvent, error) { return p.decideAdd(s, cmd, in) }
		}
	case CmdMessageSend:
		var in SendRequest
		if err := decode(cmd.Payload, &in); err != nil {
			return nil, err
		}
		if err := onChannelStream(cmd, in.ChannelID); err != nil {
			return nil, err
		}
		decide = func(s *state) ([]plugins.NewEvent, error) { return p.decideSend(s, cmd, in) }
	case CmdChannelRead:
		var in ReadRequest
		if err := decode(cmd.Payload, &in); err != nil {
			return nil, err
		}
		if err := onChannelStream(cmd, in.ChannelID); err != nil {
			return nil, err
		}
		decide = func(s *state) ([]plugins.NewEvent, error) { return decideRead(s, cmd, in) }
	default:
		return nil, plugins.Errorf(plugins.CodeInvalidCommand, "the chat has no command %q", cmd.Name)
	}
	// Decide on the projection as of cmd.Version of the command's stream:
	// a removal closes the channel's stream too (channel.closed), so a send
	// decided after it sees the channel gone. The projection is normally
	// there already; waitFor waits for delivery, then reads the log.
	if err := p.proj.WaitFor(ctx, func(s *state) bool { return s.versions[cmd.Stream] >= cmd.Version }, false); err != nil {
		if cmd.Name == CmdMessageSend {
			return nil, plugins.Errorf(CodeMessageNotSaved, "the message was not saved, please retry: %v", err)
		}
		return nil, err
	}
	if cmd.Name == CmdChannelAdd {
		// Adding reads whether both users exist and are active.
		if err := p.proj.UpToDate(ctx); err != nil {
			return nil, err
		}
	}
	// Deciding has no side effects (the kernel may decide again): the key
	// is erased when channel.removed is applied, before the removal counts
	// as applied. A client that must see the messages gone waits for that
	// with a query's minSeq (the REST API and the SDK do).
	return plugins.Retrying(ctx, p.proj, decide)
}

// onChannelStream checks a channel command is serialised on its channel's
// stream: that is what orders its messages and read cursors.
func onChannelStream(cmd plugins.Command, channelID string) error {
	if channelID == "" {
		return plugins.Errorf(CodeValidation, "channelId is required")
	}
	if want := ChannelStream(cmd.Company, channelID); cmd.Stream != want {
		return plugins.Errorf(CodeValidation, "%s is serialised on stream %s, not %q", cmd.Name, want, cmd.Stream)
	}
	return nil
}

// otherUser validates the userId of a request acting as me.
func otherUser(in UserRequest, me string) error {
	switch {
	case !plugins.ValidUserID(in.UserID):
		return plugins.Errorf(CodeValidation, "userId must be a user id (1..128 of a-z A-Z 0-9 . _ -)")
	case in.UserID == me:
		return plugins.Errorf(CodeValidation, "a channel is between two different users")
	}
	return nil
}

func (p *Plugin) decideAdd(s *state, cmd plugins.Command, in UserRequest) ([]plugins.NewEvent, error) {
	me, err := s.actingUser(cmd.Company, cmd.Actor, in.Acting)
	if err != nil {
		return nil, err
	}
	if err := otherUser(in, me); err != nil {
		return nil, err
	}
	c := s.lookup(cmd.Company)
	active, exists := c.users[in.UserID]
	switch {
	case !exists:
		return nil, plugins.Errorf(CodeCreateChannel, "user %q does not exist", in.UserID)
	case !active:
		return nil, plugins.Errorf(CodeCreateChannel, "user %q is deactivated", in.UserID)
	case !c.users[me]:
		return nil, plugins.Errorf(CodeCreateChannel, "user %q is deactivated", me)
	}
	pair := pairOf(me, in.UserID)
	if c.byPair[pair] != nil {
		return nil, nil // it exists: adding is idempotent
	}
	added := ChannelAdded{ChannelID: newChannelID(), Participants: pair[:], CreationDate: p.stamp()}
	return []plugins.NewEvent{{Type: EvChannelAdded, Stream: cmd.Stream, Audience: slices.Clone(pair[:]), Payload: marshal(added)}}, nil
}

func (p *Plugin) decideRemove(s *state, cmd plugins.Command, in UserRequest) ([]plugins.NewEvent, error) {
	me, err := s.actingOnChannel(cmd.Company, cmd.Actor, in.Acting, in.ChannelID)
	if err != nil {
		return nil, err
	}
	if err := otherUser(in, me); err != nil {
		return nil, err
	}
	ch := s.lookup(cmd.Company).byPair[pairOf(me, in.UserID)]
	if ch == nil {
		return nil, plugins.Errorf(CodeDeleteChannel, "there is no channel between %q and %q", me, in.UserID)
	}
	if in.ChannelID != "" && in.ChannelID != ch.id {
		return nil, plugins.Errorf(CodeDeleteChannel, "channel %s is not the channel between %q and %q", in.ChannelID, me, in.UserID)
	}
	removed := ChannelRemoved{ChannelID: ch.id, Participants: slices.Clone(ch.participants[:])}
	return []plugins.NewEvent{
		{Type: EvChannelRemoved, Stream: cmd.Stream, Audience: slices.Clone(ch.participants[:]), Payload: marshal(removed)},
		// Moves the channel's own stream on, so that a send racing the
		// removal conflicts, is decided again and finds the channel gone.
		{Type: EvChannelClosed, Stream: ChannelStream(cmd.Company, ch.id), Payload: marshal(ChannelClosed{ChannelID: ch.id})},
	}, nil
}

// participating returns the live channel id of company if user takes part
// in it. Anything else is channel_not_exists, so an outsider cannot tell a
// channel exists.
func (s *state) participating(company, id, user string) (*channel, int, error) {
	ch := s.lookup(company).channels[id]
	if ch == nil || ch.participant(user) < 0 {
		return nil, -1, plugins.Errorf(CodeChannelNotExists, "channel %s does not exist", id)
	}
	return ch, ch.participant(user), nil
}

func (p *Plugin) decideSend(s *state, cmd plugins.Command, in SendRequest) ([]plugins.NewEvent, error) {
	me, err := s.actingUser(cmd.Company, cmd.Actor, in.Acting)
	if err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(in.Text); n == 0 || n > MaxTextRunes {
		return nil, plugins.Errorf(CodeValidation, "text must be 1..%d characters, got %d", MaxTextRunes, n)
	}
	ch, _, err := s.participating(cmd.Company, in.ChannelID, me)
	if err != nil {
		return nil, err
	}
	m := Message{
		MessageID:    messageID(ch.id, cmd.Version+1),
		ChannelID:    ch.id,
		Sender:       me,
		Text:         in.Text,
		CreationDate: p.stamp(),
	}
	return []plugins.NewEvent{{
		Type: EvMessageSent, Stream: cmd.Stream, Audience: slices.Clone(ch.participants[:]),
		Payload: marshal(m), Seal: KeyName(ch.id),
	}}, nil
}

// messageID names the message sent at version of its channel's stream,
// msg_<channel id without ch_>_<version, 12 digits or more>: the stream's
// version orders the channel's commands, so ids sort in send order, and
// the channel id makes them unique everywhere.
func messageID(channelID string, version uint64) string {
	var digits [20]byte
	v := strconv.AppendUint(digits[:0], version, 10)
	b := make([]byte, 0, 64)
	b = append(b, messageIDPrefix...)
	b = append(b, strings.TrimPrefix(channelID, channelIDPrefix)...)
	b = append(b, '_')
	for n := len(v); n < 12; n++ {
		b = append(b, '0')
	}
	return string(append(b, v...))
}

func decideRead(s *state, cmd plugins.Command, in ReadRequest) ([]plugins.NewEvent, error) {
	me, err := s.actingUser(cmd.Company, cmd.Actor, in.Acting)
	if err != nil {
		return nil, err
	}
	if in.MessageID == "" {
		return nil, plugins.Errorf(CodeValidation, "messageId is required")
	}
	ch, who, err := s.participating(cmd.Company, in.ChannelID, me)
	if err != nil {
		return nil, err
	}
	pos, ok := ch.index[in.MessageID]
	if !ok {
		return nil, plugins.Errorf(CodeMessageAnchor, "message %q is not in channel %s", in.MessageID, ch.id)
	}
	if pos <= ch.read[who] {
		return nil, nil // a read cursor never moves backwards
	}
	r := ChannelRead{ChannelID: ch.id, UserID: me, MessageID: in.MessageID}
	return []plugins.NewEvent{{Type: EvChannelRead, Stream: cmd.Stream, Audience: []string{me}, Payload: marshal(r)}}, nil
}

func (p *Plugin) stamp() string { return p.now().UTC().Format(timeLayout) }
