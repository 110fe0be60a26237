package chat

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"

	"github.com/parleyhq/parley/plugins"
)

// ChannelView is a channel as one participant sees it: the widget's
// Channel.
type ChannelView struct {
	ChannelID      string   `json:"channelId"`
	Participants   []string `json:"participants"`
	UnreadMessages int      `json:"unreadMessages"`
	CreationDate   string   `json:"creationDate"`
	LastMessage    *Message `json:"lastMessage,omitempty"`
}

// ChannelsAnswer answers chat.channels.
type ChannelsAnswer struct {
	Channels []ChannelView `json:"channels"` // the most recently active first
}

// FetchAnswer answers chat.messages.fetch: the widget's fetchMessages.
type FetchAnswer struct {
	Messages []Message `json:"messages"` // chronological
	// Anchor continues in the same direction; "" when there is nothing more.
	Anchor string `json:"anchor"`
}

// HandleQuery answers chat.channels, chat.channel.get and
// chat.messages.fetch.
func (p *Plugin) HandleQuery(ctx context.Context, q plugins.Query) (json.RawMessage, error) {
	var at Acting
	var answer func(*state) (any, error)
	switch q.Name {
	case QueryChannels:
		var in ChannelsRequest
		if err := decode(q.Payload, &in); err != nil {
			return nil, err
		}
		at, answer = in.Acting, func(s *state) (any, error) { return s.channelList(q, in) }
	case QueryChannelGet:
		var in UserRequest
		if err := decode(q.Payload, &in); err != nil {
			return nil, err
		}
		at, answer = in.Acting, func(s *state) (any, error) { return s.channelWith(q, in) }
	case QueryMessages:
		var in FetchRequest
		if err := decode(q.Payload, &in); err != nil {
			return nil, err
		}
		n, backwards, err := in.validate()
		if err != nil {
			return nil, err
		}
		at, answer = in.Acting, func(s *state) (any, error) { return s.fetch(q, in, n, backwards) }
	default:
		return nil, plugins.Errorf(plugins.CodeInvalidCommand, "the chat has no query %q", q.Name)
	}
	return plugins.Answer(ctx, p.proj, at.MinSeq, answer)
}

// view is the channel as participants[who] sees it; who < 0 (the company
// looking a channel up by id) counts nothing unread.
func (ch *channel) view(who int) ChannelView {
	v := ChannelView{ChannelID: ch.id, Participants: slices.Clone(ch.participants[:]), CreationDate: ch.created}
	if who >= 0 {
		v.UnreadMessages = ch.unread(who)
	}
	if len(ch.msgs) > 0 {
		last := ch.msgs[len(ch.msgs)-1].Message
		v.LastMessage = &last
	}
	return v
}

func (s *state) channelList(q plugins.Query, in ChannelsRequest) (any, error) {
	me, err := s.actingUser(q.Company, q.Actor, in.Acting)
	if err != nil {
		return nil, err
	}
	mine := s.lookup(q.Company).byUser[me]
	chans := make([]*channel, 0, len(mine))
	for _, ch := range mine {
		chans = append(chans, ch)
	}
	slices.SortFunc(chans, func(a, b *channel) int {
		return cmp.Or(cmp.Compare(b.lastSeq, a.lastSeq), cmp.Compare(a.id, b.id))
	})
	out := ChannelsAnswer{Channels: make([]ChannelView, len(chans))}
	for i, ch := range chans {
		out.Channels[i] = ch.view(ch.participant(me))
	}
	return out, nil
}

func (s *state) channelWith(q plugins.Query, in UserRequest) (any, error) {
	if in.ChannelID != "" {
		return s.channelByID(q, in)
	}
	me, err := s.actingUser(q.Company, q.Actor, in.Acting)
	if err != nil {
		return nil, err
	}
	if err := otherUser(in, me); err != nil {
		return nil, err
	}
	ch := s.lookup(q.Company).byPair[pairOf(me, in.UserID)]
	if ch == nil {
		return nil, plugins.Errorf(CodeChannelNotFound, "there is no channel between %q and %q", me, in.UserID)
	}
	return ch.view(ch.participant(me)), nil
}

// channelByID answers chat.channel.get {channelId}: the channel as the
// acting user sees it, or, for the company's REST API without asUser, as
// the company does (the API looks a channel up by id to act on it).
// Anything else, an outsider included, is channel_not_found.
func (s *state) channelByID(q plugins.Query, in UserRequest) (any, error) {
	if in.UserID != "" {
		return nil, plugins.Errorf(CodeValidation, "give userId or channelId, not both")
	}
	me := ""
	if q.Company == "" || q.Actor != plugins.ActorAPIKeyPrefix+q.Company || in.AsUser != "" {
		var err error
		if me, err = s.actingUser(q.Company, q.Actor, in.Acting); err != nil {
			return nil, err
		}
	}
	ch := s.lookup(q.Company).channels[in.ChannelID]
	if ch == nil || (me != "" && ch.participant(me) < 0) {
		return nil, plugins.Errorf(CodeChannelNotFound, "channel %s does not exist", in.ChannelID)
	}
	if me == "" {
		return ch.view(-1), nil
	}
	return ch.view(ch.participant(me)), nil
}

// validate checks what needs no state: the count and the direction.
func (in FetchRequest) validate() (n int, backwards bool, err error) {
	n = DefaultFetch
	if in.MessagesToFetch != nil {
		n = *in.MessagesToFetch
	} else if in.MessageToFetch != nil {
		n = *in.MessageToFetch
	}
	if n < 1 || n > MaxFetch {
		return 0, false, plugins.Errorf(CodeValidation, "messagesToFetch must be 1..%d, got %d", MaxFetch, n)
	}
	switch in.Direction {
	case "", "backwards":
		backwards = true
	case "afterward", "afterwards":
	default:
		return 0, false, plugins.Errorf(CodeValidation, `direction must be "backwards" or "afterward", got %q`, in.Direction)
	}
	if in.ChannelID == "" {
		return 0, false, plugins.Errorf(CodeValidation, "channelId is required")
	}
	return n, backwards, nil
}

// fetch pages a channel's messages. Positions follow the log's seq and a
// channel only grows at the end, so an anchor keeps its place while
// messages arrive.
func (s *state) fetch(q plugins.Query, in FetchRequest, n int, backwards bool) (any, error) {
	me, err := s.actingOnChannel(q.Company, q.Actor, in.Acting, in.ChannelID)
	if err != nil {
		return nil, err
	}
	ch, _, err := s.participating(q.Company, in.ChannelID, me)
	if err != nil {
		return nil, err
	}
	lo, hi := 0, len(ch.msgs) // the page is msgs[lo:hi]
	if in.Anchor != "" {
		pos, ok := ch.index[string(in.Anchor)]
		if !ok {
			return nil, plugins.Errorf(CodeMessageAnchor, "message %q is not in channel %s", in.Anchor, ch.id)
		}
		if backwards {
			hi = pos
		} else {
			lo = pos + 1
		}
	}
	if backwards {
		lo = max(lo, hi-n)
	} else {
		hi = min(hi, lo+n)
	}
	out := FetchAnswer{Messages: make([]Message, 0, hi-lo)}
	for _, m := range ch.msgs[lo:hi] {
		out.Messages = append(out.Messages, m.Message)
	}
	switch {
	case backwards && lo > 0:
		out.Anchor = ch.msgs[lo].MessageID
	case !backwards && hi < len(ch.msgs):
		out.Anchor = ch.msgs[hi-1].MessageID
	}
	return out, nil
}
