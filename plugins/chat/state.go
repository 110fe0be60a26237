package chat

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/parleyhq/parley/plugins"
)

// Message is a chat message: the payload of channel.message.sent and the
// widget's Message.
type Message struct {
	MessageID    string `json:"messageId"`
	ChannelID    string `json:"channelId"`
	Sender       string `json:"sender"`
	Text         string `json:"text"`
	CreationDate string `json:"creationDate"`
}

// ChannelAdded is the payload of channel.added.
type ChannelAdded struct {
	ChannelID    string   `json:"channelId"`
	Participants []string `json:"participants"` // sorted
	CreationDate string   `json:"creationDate"`
}

// ChannelRemoved is the payload of channel.removed.
type ChannelRemoved struct {
	ChannelID    string   `json:"channelId"`
	Participants []string `json:"participants"`
}

// ChannelClosed is the payload of channel.closed, on a removed channel's
// own stream.
type ChannelClosed struct {
	ChannelID string `json:"channelId"`
}

// ChannelRead is the payload of channel.read: userId has read the channel
// up to messageId included.
type ChannelRead struct {
	ChannelID string `json:"channelId"`
	UserID    string `json:"userId"`
	MessageID string `json:"messageId"`
}

// userEvent is what the plugin reads of the kernel's user events: user.created
// and user.updated carry the whole user, user.deactivated and user.deleted
// its id.
type userEvent struct {
	UserID string `json:"user_id"`
	Active *bool  `json:"active"`
}

// state is the projection. Appliers change it holding Plugin.applyMu and
// Plugin.mu; deciders and queries read it holding Plugin.mu for reading.
type state struct {
	applied   uint64            // every event up to this seq is applied
	versions  map[string]uint64 // stream -> version applied, for chat/ streams
	companies map[string]*company
}

type company struct {
	users    map[string]bool // user id -> active; deleted users are absent
	channels map[string]*channel
	byPair   map[[2]string]*channel
	byUser   map[string]map[string]*channel
}

type channel struct {
	id           string
	participants [2]string // sorted
	created      string
	lastSeq      uint64 // seq of the last activity (creation or message): the channel list's order
	msgs         []message
	index        map[string]int // messageId -> position in msgs
	read         [2]int         // per participant, the position of the last message read; -1 for none
	// plain and erased count the message events applied readable and
	// erased: when every one arrived erased, the key is already gone.
	plain, erased int
}

type message struct {
	Message
	seq     uint64
	byFirst int // messages of msgs[0..this] sent by participants[0]
}

func newState() *state {
	return &state{versions: map[string]uint64{}, companies: map[string]*company{}}
}

func (s *state) company(id string) *company {
	c := s.companies[id]
	if c == nil {
		c = &company{
			users: map[string]bool{}, channels: map[string]*channel{},
			byPair: map[[2]string]*channel{}, byUser: map[string]map[string]*channel{},
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

func pairOf(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

// channelOf returns the channel id of a channel stream of company.
func channelOf(company, stream string) (string, bool) {
	id, ok := strings.CutPrefix(stream, "chat/"+company+"/ch/")
	return id, ok && company != "" && id != "" && !strings.Contains(id, "/")
}

// participant returns the index of user in the channel's participants.
func (ch *channel) participant(user string) int {
	return slices.Index(ch.participants[:], user)
}

// sentBy counts the messages of msgs[0..pos] sent by participants[who].
func (ch *channel) sentBy(who, pos int) int {
	if pos < 0 {
		return 0
	}
	if who == 0 {
		return ch.msgs[pos].byFirst
	}
	return pos + 1 - ch.msgs[pos].byFirst
}

// unread counts the other participant's messages after user's read cursor.
func (ch *channel) unread(who int) int {
	other := 1 - who
	return ch.sentBy(other, len(ch.msgs)-1) - ch.sentBy(other, ch.read[who])
}

// eraseBefore reports the key to erase before e is applied: a removed
// channel's (unless every message of it already arrived erased), or that
// of a message which reached the log after its channel was removed (a send
// racing the removal on another stream) while its key still opens it.
func (s *state) eraseBefore(e plugins.Event) (company, key string, ok bool) {
	c := s.companies[e.Company]
	if c == nil {
		return "", "", false
	}
	switch e.Type {
	case EvChannelRemoved:
		var r ChannelRemoved
		if e.Stream != ChannelsStream(e.Company) || json.Unmarshal(e.Payload, &r) != nil {
			return "", "", false
		}
		ch := c.channels[r.ChannelID]
		if ch == nil || (ch.plain == 0 && ch.erased > 0) {
			return "", "", false
		}
		return e.Company, KeyName(ch.id), true
	case EvMessageSent:
		id, isChannel := channelOf(e.Company, e.Stream)
		if !isChannel || e.Erased || c.channels[id] != nil {
			return "", "", false
		}
		return e.Company, KeyName(id), true
	}
	return "", "", false
}

// apply folds one event into the projection. Events that do not fit (a
// malformed payload, an unknown channel) change nothing but the position.
func (s *state) apply(e plugins.Event) {
	s.applied = e.Seq
	if strings.HasPrefix(e.Stream, "chat/") {
		s.versions[e.Stream] = max(s.versions[e.Stream], e.Version)
	}
	if e.Company == "" {
		return
	}
	switch e.Type {
	case "user.created", "user.updated", "user.deactivated", "user.deleted":
		s.applyUser(e)
	case EvChannelAdded:
		var a ChannelAdded
		if e.Stream != ChannelsStream(e.Company) || json.Unmarshal(e.Payload, &a) != nil ||
			len(a.Participants) != 2 || a.Participants[0] >= a.Participants[1] || a.ChannelID == "" {
			return
		}
		c := s.company(e.Company)
		pair := [2]string(a.Participants)
		if c.channels[a.ChannelID] != nil || c.byPair[pair] != nil {
			return
		}
		ch := &channel{id: a.ChannelID, participants: pair, created: a.CreationDate, lastSeq: e.Seq, index: map[string]int{}, read: [2]int{-1, -1}}
		c.channels[ch.id], c.byPair[pair] = ch, ch
		for _, u := range pair {
			if c.byUser[u] == nil {
				c.byUser[u] = map[string]*channel{}
			}
			c.byUser[u][ch.id] = ch
		}
	case EvChannelRemoved:
		var r ChannelRemoved
		if e.Stream != ChannelsStream(e.Company) || json.Unmarshal(e.Payload, &r) != nil {
			return
		}
		c := s.lookup(e.Company)
		ch := c.channels[r.ChannelID]
		if ch == nil {
			return
		}
		delete(c.channels, ch.id)
		delete(c.byPair, ch.participants)
		for _, u := range ch.participants {
			delete(c.byUser[u], ch.id)
			if len(c.byUser[u]) == 0 {
				delete(c.byUser, u)
			}
		}
	case EvMessageSent:
		id, ok := channelOf(e.Company, e.Stream)
		ch := s.lookup(e.Company).channels[id]
		if !ok || ch == nil {
			return
		}
		if e.Erased { // the key was erased while the channel lives: nothing to show
			ch.erased++
			return
		}
		var m Message
		if json.Unmarshal(e.Payload, &m) != nil || m.ChannelID != id || m.MessageID == "" {
			return
		}
		who := ch.participant(m.Sender)
		if _, dup := ch.index[m.MessageID]; dup || who < 0 {
			return
		}
		byFirst := ch.sentBy(0, len(ch.msgs)-1)
		if who == 0 {
			byFirst++
		}
		ch.index[m.MessageID] = len(ch.msgs)
		ch.msgs = append(ch.msgs, message{Message: m, seq: e.Seq, byFirst: byFirst})
		ch.plain++
		ch.lastSeq = e.Seq
	case EvChannelRead:
		var r ChannelRead
		id, ok := channelOf(e.Company, e.Stream)
		if !ok || json.Unmarshal(e.Payload, &r) != nil || r.ChannelID != id {
			return
		}
		ch := s.lookup(e.Company).channels[id]
		if ch == nil {
			return
		}
		who := ch.participant(r.UserID)
		pos, found := ch.index[r.MessageID]
		if who >= 0 && found && pos > ch.read[who] {
			ch.read[who] = pos
		}
	}
}

func (s *state) applyUser(e plugins.Event) {
	var u userEvent
	if json.Unmarshal(e.Payload, &u) != nil || u.UserID == "" || e.Stream != "user/"+e.Company+"/"+u.UserID {
		return // only the kernel's own user events, on the user's stream, count
	}
	users := s.company(e.Company).users
	switch e.Type {
	case "user.created":
		users[u.UserID] = u.Active == nil || *u.Active
	case "user.updated":
		if _, ok := users[u.UserID]; ok && u.Active != nil {
			users[u.UserID] = *u.Active
		}
	case "user.deactivated":
		if _, ok := users[u.UserID]; ok {
			users[u.UserID] = false
		}
	case "user.deleted":
		delete(users, u.UserID)
	}
}
