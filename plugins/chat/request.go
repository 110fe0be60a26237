package chat

import (
	"encoding/json"
	"slices"

	"github.com/parleyhq/parley/plugins"
)

// Acting is in every request: who the REST API acts for, and (queries) the
// log position the answer must reflect.
type Acting struct {
	// AsUser is the user the company's REST API (actor "apikey:<company>")
	// acts for; ignored for user actors.
	AsUser string `json:"asUser"`
	// MinSeq, in a query, is a seq the answer must reflect (the seq of a
	// command's events, to read one's own writes).
	MinSeq uint64 `json:"minSeq"`
}

// UserRequest is the payload of chat.channel.add, chat.channel.remove and
// chat.channel.get.
type UserRequest struct {
	Acting
	UserID string `json:"userId"`
	// ChannelID, in chat.channel.get, looks the channel up by id instead
	// of by the other user; in chat.channel.remove, it is the channel the
	// caller means to remove: another one between the same users (removed
	// and added again since the caller looked) is left alone.
	ChannelID string `json:"channelId"`
}

// SendRequest is the payload of chat.message.send.
type SendRequest struct {
	Acting
	ChannelID string `json:"channelId"`
	Text      string `json:"text"`
}

// ReadRequest is the payload of chat.channel.read.
type ReadRequest struct {
	Acting
	ChannelID string `json:"channelId"`
	MessageID string `json:"messageId"`
}

// ChannelsRequest is the payload of chat.channels.
type ChannelsRequest struct {
	Acting
}

// FetchRequest is the payload of chat.messages.fetch.
type FetchRequest struct {
	Acting
	ChannelID       string `json:"channelId"`
	MessagesToFetch *int   `json:"messagesToFetch"`
	MessageToFetch  *int   `json:"messageToFetch"` // the widget reference's spelling
	Anchor          anchor `json:"anchor"`
	Direction       string `json:"direction"` // "backwards" (default) or "afterward"
}

// anchor is a messageId. The widget reference types it String[]: a
// one-element array is accepted too.
type anchor string

func (a *anchor) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = anchor(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil || len(list) > 1 {
		return plugins.Errorf(CodeValidation, "anchor must be a messageId")
	}
	*a = ""
	if len(list) == 1 {
		*a = anchor(list[0])
	}
	return nil
}

// actingOnChannel is actingUser for a request naming channelID: the
// company's REST API may also act for a participant of that channel whom
// it has since deleted, so that a channel whose participants are both
// deleted can still be read and removed (its messages erased).
func (s *state) actingOnChannel(company, actor string, in Acting, channelID string) (string, error) {
	me, err := s.actingUser(company, actor, in)
	if err == nil || actor != plugins.ActorAPIKeyPrefix+company || channelID == "" {
		return me, err
	}
	// actingUser refused a well-formed asUser only if the company does not
	// know them: deleted.
	if ch := s.lookup(company).channels[channelID]; ch != nil && slices.Contains(ch.participants[:], in.AsUser) {
		return in.AsUser, nil
	}
	return "", err
}

// decode reads a request payload (plugins.DecodePayload).
var decode = plugins.DecodePayload

// actingUser returns the user a command or query acts for: a user actor,
// who must be an active user of the company, or the user the company's
// REST API names in asUser, who must exist.
func (s *state) actingUser(company, actor string, in Acting) (string, error) {
	c := s.lookup(company)
	switch {
	case company == "":
		return "", plugins.Errorf(CodeAuthentication, "no company")
	case plugins.IsUser(actor):
		if !c.users[actor] {
			return "", plugins.Errorf(CodeAuthentication, "%q is not an active user of company %s", actor, company)
		}
		return actor, nil
	case actor == plugins.ActorAPIKeyPrefix+company:
		if !plugins.ValidUserID(in.AsUser) {
			return "", plugins.Errorf(CodeValidation, "asUser must name the user the REST API acts for")
		}
		if _, ok := c.users[in.AsUser]; !ok {
			return "", plugins.Errorf(CodeValidation, "asUser %q is not a user of company %s", in.AsUser, company)
		}
		return in.AsUser, nil
	default:
		return "", plugins.Errorf(CodeAuthentication, "actor %q may not use the chat of company %s", actor, company)
	}
}
