package session

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/sdkapi/directory"
	"github.com/parleyhq/parley/sdkapi/token"
)

// Call links: joinCallURL {url, sdkVersion, appId?, userId?, lastSeq?} as
// the first frame, instead of connect, opens a session for the link's
// user that is restricted to the call of the link's room and to the chat
// with the room's other participants, and that closes (4005 call_ended)
// when that call ends.
//
// The session checks the link itself: invalid_access_link (no url, or a
// link of another region), invalid_url (not a link URL:
// http(s)://host/<region>/direct-rest-call-handler/<token>), invalid_token
// (the token does not verify), app_id_invalid (appId given and not the
// link's company), user_not_associated_to_link (userId given and not the
// link's user), user_not_found (the user is deleted or deactivated),
// sdk_version_invalid/unsupported. It then joins the room through the
// call plugin (call.room.join, as the user, from this device), whose
// refusals pass through: invalid_token (the room is disabled or deleted),
// user_not_associated_to_link, join_url_mtm, no_plus_user,
// another_call_in_progress, current_user_busy, all_users_busy,
// room_create_error. The answer is connect's, plus roomId, callId, call
// (the call as call.get shows it to the user) and join ({seq, events}, as
// a command's answer); it has no expiresAt: a link session does not
// expire, its call ends.
//
// In the session, the user may call disconnect, getOnlineUsers (the
// room's participants only), the call's methods for its callId
// (call.answer, call.end, call.get, call.media.*) and, when their tools
// allow the chat, the chat methods for a channel with the room's other
// participants (chat.channel.add and chat.channel.get by userId,
// chat.message.send, chat.channel.read, chat.messages.fetch and
// chat.channel.get by channelId); anything else is permission_denied.
// Pushes are restricted the same way: events of the call (family "call",
// by callId), of those chat channels (family "channel"), and nothing else.

// Codes of joinCallURL the session decides.
const (
	CodeInvalidAccessLink kernel.Code = "invalid_access_link"
	CodeInvalidURL        kernel.Code = "invalid_url"
	CodeUserNotAssociated kernel.Code = "user_not_associated_to_link"
)

// closeCallEnded closes a call-link session whose call ended.
const closeCallEnded websocket.StatusCode = 4005

// linkPath is the call link's path segment (rest.LinkPath).
const linkPath = "direct-rest-call-handler"

// The call and chat plugins' methods a link session may use, spelled here:
// sdkapi knows plugins by their names.
var (
	linkCallMethods = []string{"call.answer", "call.end", "call.get", "call.media.offer", "call.media.answer", "call.media.candidate", "call.media.leave"}
	linkChatByUser  = []string{"chat.channel.add", "chat.channel.get"}
	linkChatByID    = []string{"chat.message.send", "chat.channel.read", "chat.messages.fetch", "chat.channel.get"}
)

// LinkParams are joinCallURL's params.
type LinkParams struct {
	URL        string  `json:"url"`
	SDKVersion string  `json:"sdkVersion"`
	AppID      string  `json:"appId"`  // optional: the SDK's configured appId
	UserID     string  `json:"userId"` // optional: the SDK's configured user
	LastSeq    *uint64 `json:"lastSeq"`
}

// link is a call-link session's scope.
type link struct {
	room  string
	call  string   // set by the join, before the session is live
	peers []string // the room's other participants
	chat  bool     // the user's tools allow the chat

	mu       sync.Mutex
	channels map[string]bool // chat channel id -> between the user and peers
}

// linkForever is a link session's token expiry: it never expires.
const linkForever = 100 * 365 * 24 * time.Hour

// authenticateLink checks joinCallURL's params and the link's token.
func (m *Manager) authenticateLink(p LinkParams) (token.Claims, *link, error) {
	major, ok := sdkMajor(p.SDKVersion)
	switch {
	case !ok:
		return token.Claims{}, nil, kernel.Errorf(CodeSDKVersionInvalid, "sdkVersion %q is not a version like 3.1.0", p.SDKVersion)
	case major < m.cfg.MinSDKMajor:
		return token.Claims{}, nil, kernel.Errorf(CodeSDKVersionUnsupported, "sdk %s is too old; %d.0.0 or newer is needed", p.SDKVersion, m.cfg.MinSDKMajor)
	case strings.TrimSpace(p.URL) == "":
		return token.Claims{}, nil, kernel.Errorf(CodeInvalidAccessLink, "url is required")
	}
	u, err := url.Parse(p.URL)
	parts := []string{}
	if err == nil {
		parts = strings.Split(strings.Trim(u.Path, "/"), "/")
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(parts) != 3 || parts[1] != linkPath || parts[2] == "" {
		return token.Claims{}, nil, kernel.Errorf(CodeInvalidURL, "%q is not a call link (http(s)://host/<region>/%s/<token>)", p.URL, linkPath)
	}
	lc, err := m.tokens.VerifyLink(parts[2])
	if err != nil {
		return token.Claims{}, nil, err
	}
	c, ok := m.dir.Company(lc.AppID)
	switch {
	case !ok:
		return token.Claims{}, nil, kernel.Errorf(token.CodeLinkInvalid, "the link's company is gone")
	case p.AppID != "" && p.AppID != lc.AppID:
		return token.Claims{}, nil, kernel.Errorf(CodeAppIDInvalid, "the link is not of company %q", p.AppID)
	case parts[0] != c.Region:
		return token.Claims{}, nil, kernel.Errorf(CodeInvalidAccessLink, "the link is of region %q, this is %q", parts[0], c.Region)
	case p.UserID != "" && p.UserID != lc.UserID:
		return token.Claims{}, nil, kernel.Errorf(CodeUserNotAssociated, "the link is not %q's", p.UserID)
	}
	if u, ok := m.dir.User(lc.AppID, lc.UserID); !ok || !u.Active {
		return token.Claims{}, nil, kernel.Errorf(directory.CodeUserNotFound, "no active user %q", lc.UserID)
	}
	return token.Claims{UserID: lc.UserID, AppID: lc.AppID, ExpiresAt: time.Now().Add(linkForever)}, &link{room: lc.RoomID, chat: true, channels: map[string]bool{}}, nil
}

// joinLink joins the link's room through the call plugin, from this
// device, and returns what joinCallURL's answer adds to connect's.
func (s *session) joinLink() (map[string]any, error) {
	ctx, cancel := context.WithTimeout(s.m.base, callTimeout)
	defer cancel()
	r, ok := s.m.k.ClientRoute("call.room.join")
	if !ok || r.Query {
		return nil, kernel.Errorf(kernel.CodeUnavailable, "calls are not running")
	}
	params, _ := json.Marshal(map[string]string{"roomId": s.link.room})
	evs, err := s.execute(ctx, r, params)
	if err != nil {
		return nil, err
	}
	var joined struct {
		CallID string `json:"callId"`
	}
	if len(evs) == 0 || json.Unmarshal(evs[0].Payload, &joined) != nil || joined.CallID == "" {
		return nil, kernel.Errorf(kernel.CodeInternal, "the call plugin joined no call")
	}
	s.link.call = joined.CallID
	frames := make([]json.RawMessage, 0, len(evs))
	var seqs []uint64
	for i := range evs {
		if s.m.hub.Open(&evs[i]) {
			frames = append(frames, EncodePush(&evs[i]))
			seqs = append(seqs, evs[i].Seq)
		}
	}
	s.answer(seqs...)
	last := evs[len(evs)-1].Seq
	q, _ := json.Marshal(map[string]any{"callId": joined.CallID, "minSeq": last})
	ans, err := s.m.k.Query(ctx, kernel.Query{Name: "call.get", Company: s.app, Actor: s.user, Payload: q})
	if err != nil {
		return nil, err
	}
	var view struct {
		Participants []string       `json:"participants"`
		Tools        map[string]any `json:"tools"`
	}
	if err := json.Unmarshal(ans, &view); err != nil {
		return nil, kernel.Errorf(kernel.CodeInternal, "call.get answered %s: %v", ans, err)
	}
	for _, u := range view.Participants {
		if u != s.user {
			s.link.peers = append(s.link.peers, u)
		}
	}
	// The chat is on only when the participant's tools turn it on: the
	// REST API normalises missing tools to all on, and {} means all off.
	on, _ := view.Tools["chat"].(bool)
	s.link.chat = on
	return map[string]any{
		"roomId": s.link.room, "callId": joined.CallID, "call": json.RawMessage(ans),
		"join": map[string]any{"seq": last, "events": frames},
	}, nil
}

// permit refuses a request a link session may not make.
func (l *link) permit(s *session, req Request) error {
	deny := func(format string, args ...any) error {
		return kernel.Errorf(kernel.CodePermissionDenied, "a call-link session: "+format, args...)
	}
	var p struct {
		CallID    *string `json:"callId"`
		ChannelID *string `json:"channelId"`
		UserID    *string `json:"userId"`
	}
	json.Unmarshal(req.Params, &p) // a malformed request is the method's to refuse
	switch {
	case req.Method == "disconnect" || req.Method == "getOnlineUsers":
		return nil
	case slices.Contains(linkCallMethods, req.Method):
		if p.CallID == nil || *p.CallID != l.call {
			return deny("only call %s", l.call)
		}
		return nil
	case strings.HasPrefix(req.Method, "chat.") && !l.chat:
		return deny("the chat is not among your tools")
	case slices.Contains(linkChatByUser, req.Method) && p.UserID != nil:
		if !slices.Contains(l.peers, *p.UserID) || p.ChannelID != nil {
			return deny("only the chat with %v", l.peers)
		}
		return nil
	case slices.Contains(linkChatByID, req.Method) && p.ChannelID != nil:
		if !l.channelAllowed(s, *p.ChannelID) {
			return deny("only the chat with %v", l.peers)
		}
		return nil
	}
	return deny("%s is not available", req.Method)
}

// allows reports whether the session pushes e (durable or ephemeral).
func (l *link) allows(s *session, e *eventlog.Event) bool {
	var p struct {
		CallID       string   `json:"callId"`
		ChannelID    string   `json:"channelId"`
		Participants []string `json:"participants"`
	}
	switch eventlog.Family(e.Type) {
	case "call":
		return json.Unmarshal(e.Payload, &p) == nil && p.CallID == l.call
	case "channel":
		if !l.chat || json.Unmarshal(e.Payload, &p) != nil || p.ChannelID == "" {
			return false
		}
		if p.Participants != nil {
			ok := l.between(p.Participants, s.user)
			l.mu.Lock()
			l.channels[p.ChannelID] = ok
			l.mu.Unlock()
			return ok
		}
		return l.channelAllowed(s, p.ChannelID)
	}
	return false
}

// ends reports whether e ends the session's call.
func (l *link) ends(e *eventlog.Event) bool {
	if e.Type != "call.ended" {
		return false
	}
	var p struct {
		CallID string `json:"callId"`
	}
	return json.Unmarshal(e.Payload, &p) == nil && p.CallID == l.call
}

// between reports whether a channel's participants are the user and the
// room's other participants.
func (l *link) between(participants []string, user string) bool {
	for _, u := range participants {
		if u != user && !slices.Contains(l.peers, u) {
			return false
		}
	}
	return len(participants) > 0
}

// channelAllowed reports whether a chat channel is between the user and
// the room's other participants, asking the chat the first time.
func (l *link) channelAllowed(s *session, id string) bool {
	l.mu.Lock()
	ok, known := l.channels[id]
	l.mu.Unlock()
	if known {
		return ok
	}
	ctx, cancel := context.WithTimeout(s.m.base, callTimeout)
	defer cancel()
	q, _ := json.Marshal(map[string]string{"channelId": id})
	ans, err := s.m.k.Query(ctx, kernel.Query{Name: "chat.channel.get", Company: s.app, Actor: s.user, Payload: q})
	if err != nil {
		return false // not known to be the user's: refused, and asked again next time
	}
	var ch struct {
		Participants []string `json:"participants"`
	}
	ok = json.Unmarshal(ans, &ch) == nil && l.between(ch.Participants, s.user)
	l.mu.Lock()
	l.channels[id] = ok
	l.mu.Unlock()
	return ok
}

// onlinePeers is getOnlineUsers for a link session: the room's other
// participants who are online.
func (l *link) onlinePeers(online []string) []string {
	out := []string{}
	for _, u := range online {
		if slices.Contains(l.peers, u) {
			out = append(out, u)
		}
	}
	return out
}

// connectLink checks joinCallURL, the first frame of a call-link session.
func (s *session) connectLink(req Request) (token.Claims, Request, bool) {
	var p LinkParams
	if err := params(req, &p); err != nil {
		code := kernel.CodeValidation
		var ute *json.UnmarshalTypeError
		if errors.As(json.Unmarshal(req.Params, new(LinkParams)), &ute) {
			switch ute.Field {
			case "sdkVersion":
				code = CodeSDKVersionInvalid
			case "url":
				code = CodeInvalidAccessLink
			}
		}
		s.refuse(req.ID, kernel.Errorf(code, "%s", kernel.AsError(err).Message))
		return token.Claims{}, req, false
	}
	claims, l, err := s.m.authenticateLink(p)
	if err != nil {
		s.refuse(req.ID, err)
		return token.Claims{}, req, false
	}
	s.app, s.user, s.link = claims.AppID, claims.UserID, l
	return claims, req, true
}

// linkCloseDelay is how long a call-link session stays open after its
// call ended: the answer to the end() that ended it goes out first.
const linkCloseDelay = 250 * time.Millisecond

// closeLinkSoon closes the session, its call having ended.
func (s *session) closeLinkSoon() {
	if !s.enter() {
		return
	}
	time.AfterFunc(linkCloseDelay, func() { // a worker: serve waits for it
		defer s.workers.Done()
		s.finish("call_ended", closeCallEnded)
	})
}
