package rest

import (
	"context"
	"net/http"
	"strconv"

	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/sdkapi/directory"
)

// The chat's routes call the chat plugin (parley.chat) through the kernel,
// as the company (actor "apikey:<app_id>") acting for one of its users
// ("asUser"), exactly as a connected user calls it through the session.
// sdkapi drives the kernel and knows plugins only by their names, so the
// names are spelled here; the streams come from the plugin's own manifest
// (its client methods' templates), so they are never written twice.
const (
	chatChannelAdd    = "chat.channel.add"
	chatChannelRemove = "chat.channel.remove"
	chatChannels      = "chat.channels"
	chatChannelGet    = "chat.channel.get"
	chatMessagesFetch = "chat.messages.fetch"
)

// The chat plugin's codes (the widget reference's, verbatim) that have a
// status of their own; its other codes (validation_error,
// create_channel_oto, message_anchor_error) are the client's to fix: 400.
const (
	CodeChannelNotFound  kernel.Code = "channel_not_found"  // no such channel
	CodeChannelNotExists kernel.Code = "channel_not_exists" // no such channel, or the user does not take part in it
	CodeDeleteChannel    kernel.Code = "delete_channel"     // the channel to remove is gone
	CodeMessageNotSaved  kernel.Code = "message_not_saved"  // the chat could not decide in time; retry
)

// Channel is a chat channel as the REST API shows it.
type Channel struct {
	ChannelID    string   `json:"channel_id"`
	Participants []string `json:"participants"` // the two user ids, sorted
	CreatedAt    string   `json:"created_at"`   // ISO 8601, milliseconds, UTC
	// UnreadMessages counts the messages the user whose channels are
	// listed has not read; only GET /v2/users/{user_id}/channels has it.
	UnreadMessages *int     `json:"unread_messages,omitempty"`
	LastMessage    *Message `json:"last_message,omitempty"`
}

// Message is a chat message as the REST API shows it.
type Message struct {
	MessageID string `json:"message_id"`
	ChannelID string `json:"channel_id"`
	Sender    string `json:"sender"`
	Text      string `json:"text"`
	CreatedAt string `json:"created_at"` // ISO 8601, milliseconds, UTC
}

// Messages is a page of a channel's messages.
type Messages struct {
	Messages []Message `json:"messages"` // oldest first
	// Anchor continues in the same direction; "" when there is no more.
	Anchor string `json:"anchor"`
}

// pluginChannel and pluginMessage are what the chat plugin answers (the
// widget's names).
type pluginChannel struct {
	ChannelID      string         `json:"channelId"`
	Participants   []string       `json:"participants"`
	UnreadMessages int            `json:"unreadMessages"`
	CreationDate   string         `json:"creationDate"`
	LastMessage    *pluginMessage `json:"lastMessage"`
}

type pluginMessage struct {
	MessageID    string `json:"messageId"`
	ChannelID    string `json:"channelId"`
	Sender       string `json:"sender"`
	Text         string `json:"text"`
	CreationDate string `json:"creationDate"`
}

func (m pluginMessage) rest() Message {
	return Message{MessageID: m.MessageID, ChannelID: m.ChannelID, Sender: m.Sender, Text: m.Text, CreatedAt: m.CreationDate}
}

// rest converts a channel; withUnread keeps the count (it is one user's).
func (c pluginChannel) rest(withUnread bool) Channel {
	out := Channel{ChannelID: c.ChannelID, Participants: c.Participants, CreatedAt: c.CreationDate}
	if withUnread {
		n := c.UnreadMessages
		out.UnreadMessages = &n
	}
	if c.LastMessage != nil {
		m := c.LastMessage.rest()
		out.LastMessage = &m
	}
	return out
}

// chatRequest is the part of every chat payload the API fills in
// (pluginQuery adds minSeq).
type chatRequest struct {
	AsUser string `json:"asUser,omitempty"`
}

// what the REST API calls the chat in its errors.
const theChat = "the chat"

// chatExecute runs a chat command and returns the seq of its last event
// (0 when it decided nothing).
func (a *API) chatExecute(ctx context.Context, c directory.Company, name string, payload any) (uint64, error) {
	evs, err := a.pluginExecute(ctx, c, name, theChat, payload)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	return evs[len(evs)-1].Seq, nil
}

// chatQuery asks the chat and decodes its answer into v.
func (a *API) chatQuery(ctx context.Context, c directory.Company, name string, payload any, v any) error {
	return a.pluginQuery(ctx, c, name, theChat, payload, v)
}

// channelByID looks a channel up by id, as the company: it has no
// participant's view (unread counts are 0).
func (a *API) channelByID(ctx context.Context, c directory.Company, id string) (pluginChannel, error) {
	var ch pluginChannel
	err := a.chatQuery(ctx, c, chatChannelGet, &struct {
		chatRequest
		ChannelID string `json:"channelId"`
	}{ChannelID: id}, &ch)
	return ch, err
}

// knownUser answers user_not_found for a user the directory does not
// know, so the API names the missing user instead of the chat's "asUser".
func (a *API) knownUser(c directory.Company, id string) error {
	if _, ok := a.dir.User(c.AppID, id); !ok {
		return kernel.Errorf(directory.CodeUserNotFound, "no user %q", id)
	}
	return nil
}

// actingParticipant returns one participant to act as, one the directory
// still knows (a deleted user cannot be acted for), and the other one.
func (a *API) actingParticipant(c directory.Company, ch pluginChannel) (me, other string) {
	if len(ch.Participants) != 2 {
		return "", ""
	}
	me, other = ch.Participants[0], ch.Participants[1]
	if a.knownUser(c, me) != nil {
		me, other = other, me
	}
	return me, other
}

// userChannels lists a user's channels, the most recently active first,
// with the user's unread counts.
func (a *API) userChannels(w http.ResponseWriter, r *http.Request, c directory.Company) {
	id := r.PathValue("user_id")
	if err := a.knownUser(c, id); err != nil {
		WriteError(w, err)
		return
	}
	var ans struct {
		Channels []pluginChannel `json:"channels"`
	}
	if err := a.chatQuery(r.Context(), c, chatChannels, &chatRequest{AsUser: id}, &ans); err != nil {
		WriteError(w, err)
		return
	}
	out := make([]Channel, len(ans.Channels))
	for i, ch := range ans.Channels {
		out[i] = ch.rest(true)
	}
	WriteJSON(w, http.StatusOK, map[string]any{"channels": out})
}

// createChannel opens the channel between two users: 201 with the new
// channel, or 200 with the one they already have.
func (a *API) createChannel(w http.ResponseWriter, r *http.Request, c directory.Company) {
	var in struct {
		Participants []string `json:"participants"`
	}
	if err := decode(r, &in); err != nil {
		WriteError(w, err)
		return
	}
	if len(in.Participants) != 2 || in.Participants[0] == in.Participants[1] {
		WriteError(w, kernel.Errorf(kernel.CodeValidation, "participants must be two different user ids"))
		return
	}
	for _, u := range in.Participants {
		if err := a.knownUser(c, u); err != nil {
			WriteError(w, err)
			return
		}
	}
	me, other := in.Participants[0], in.Participants[1]
	seq, err := a.chatExecute(r.Context(), c, chatChannelAdd, struct {
		chatRequest
		UserID string `json:"userId"`
	}{chatRequest{AsUser: me}, other})
	if err != nil {
		WriteError(w, err)
		return
	}
	var ch pluginChannel
	err = a.chatQuery(r.Context(), c, chatChannelGet, &struct {
		chatRequest
		UserID string `json:"userId"`
	}{chatRequest{AsUser: me}, other}, &ch)
	if err != nil {
		WriteError(w, err)
		return
	}
	status := http.StatusCreated
	if seq == 0 {
		status = http.StatusOK
	}
	WriteJSON(w, status, ch.rest(false))
}

// deleteChannel removes a channel for good: its messages are erased. It
// answers once the chat has applied the removal, so the messages are gone
// by then.
func (a *API) deleteChannel(w http.ResponseWriter, r *http.Request, c directory.Company) {
	id := r.PathValue("channel_id")
	ch, err := a.channelByID(r.Context(), c, id)
	if err != nil {
		WriteError(w, err)
		return
	}
	// The chat removes "the channel between me and other"; channelId makes
	// sure it is still this one.
	me, other := a.actingParticipant(c, ch)
	if _, err := a.chatExecute(r.Context(), c, chatChannelRemove, struct {
		chatRequest
		UserID    string `json:"userId"`
		ChannelID string `json:"channelId"`
	}{chatRequest{AsUser: me}, other, id}); err != nil {
		WriteError(w, err)
		return
	}
	// Asked after the removal, the chat answers once it has applied it.
	_, err = a.channelByID(r.Context(), c, id)
	if e := kernel.AsError(err); e == nil || e.Code != CodeChannelNotFound {
		if e == nil {
			e = kernel.Errorf(kernel.CodeInternal, "channel %s is still there after its removal", id)
		}
		WriteError(w, e)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// channelMessages pages a channel's messages. user_id names a participant
// whose view is used; without it the API reads as a participant it still
// knows (reading changes nothing, read cursors included).
func (a *API) channelMessages(w http.ResponseWriter, r *http.Request, c directory.Company) {
	id, q := r.PathValue("channel_id"), r.URL.Query()
	in := struct {
		chatRequest
		ChannelID       string `json:"channelId"`
		MessagesToFetch *int   `json:"messagesToFetch,omitempty"`
		Anchor          string `json:"anchor,omitempty"`
		Direction       string `json:"direction,omitempty"`
	}{ChannelID: id, Anchor: q.Get("anchor"), Direction: q.Get("direction")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			WriteError(w, kernel.Errorf(kernel.CodeValidation, "limit must be a number, got %q", s))
			return
		}
		in.MessagesToFetch = &n
	}
	if in.AsUser = q.Get("user_id"); in.AsUser != "" {
		if err := a.knownUser(c, in.AsUser); err != nil {
			WriteError(w, err)
			return
		}
	} else {
		ch, err := a.channelByID(r.Context(), c, id)
		if err != nil {
			WriteError(w, err)
			return
		}
		in.AsUser, _ = a.actingParticipant(c, ch)
	}
	var ans struct {
		Messages []pluginMessage `json:"messages"`
		Anchor   string          `json:"anchor"`
	}
	if err := a.chatQuery(r.Context(), c, chatMessagesFetch, &in, &ans); err != nil {
		WriteError(w, err)
		return
	}
	out := Messages{Messages: make([]Message, len(ans.Messages)), Anchor: ans.Anchor}
	for i, m := range ans.Messages {
		out.Messages[i] = m.rest()
	}
	WriteJSON(w, http.StatusOK, out)
}
