package session

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/hub"
	"github.com/parleyhq/parley/sdkapi/directory"
	"github.com/parleyhq/parley/sdkapi/token"
	"golang.org/x/time/rate"
)

// Close codes Parley uses beyond the standard ones; the reason text is
// the error code.
const (
	closeRefused      websocket.StatusCode = 4001 // connect refused
	closeTokenExpired websocket.StatusCode = 4002
	closeForced       websocket.StatusCode = 4003 // user deactivated or deleted
	closeSlow         websocket.StatusCode = 4004 // slow consumer: resume with lastSeq
)

const (
	connectTimeout = 10 * time.Second
	writeTimeout   = 5 * time.Second
)

// session is one device's connection. Only run's goroutine writes.
type session struct {
	m       *Manager
	c       *websocket.Conn
	remote  string
	app     string
	user    string
	control chan Push
	limiter *rate.Limiter
}

func (s *session) write(ctx context.Context, v any) error {
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return wsjson.Write(wctx, s.c, v)
}

func (s *session) reply(ctx context.Context, id json.RawMessage, result any, err error) error {
	if err != nil {
		return s.write(ctx, Response{ID: id, Error: kernel.AsError(err)})
	}
	return s.write(ctx, Response{ID: id, Result: result})
}

// refuse answers with err and closes the socket.
func (s *session) refuse(ctx context.Context, id json.RawMessage, err error) {
	e := kernel.AsError(err)
	s.reply(ctx, id, nil, e)
	s.c.Close(closeRefused, string(e.Code))
}

func (s *session) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	rctx, rcancel := context.WithTimeout(ctx, connectTimeout)
	_, b, err := s.c.Read(rctx)
	rcancel()
	if err != nil {
		s.c.Close(websocket.StatusPolicyViolation, "connect expected")
		return
	}
	req, err := DecodeRequest(b)
	if err == nil && req.Method != "connect" {
		err = kernel.Errorf(CodeNotConnected, "the first request must be connect, not %q", req.Method)
	}
	if err != nil {
		s.refuse(ctx, req.ID, err)
		return
	}
	var p ConnectParams
	if err := params(req, &p); err != nil {
		code := kernel.CodeValidation
		var ute *json.UnmarshalTypeError
		if errors.As(json.Unmarshal(req.Params, new(ConnectParams)), &ute) && ute.Field == "sdkVersion" {
			code = CodeSDKVersionInvalid // the reference's code for a parameter of the wrong type
		}
		s.refuse(ctx, req.ID, kernel.Errorf(code, "%s", kernel.AsError(err).Message))
		return
	}
	claims, err := s.m.authenticate(p)
	if err != nil {
		s.refuse(ctx, req.ID, err)
		return
	}
	s.app, s.user = p.AppID, p.UserID
	if err := s.m.join(s); err != nil {
		s.refuse(ctx, req.ID, err)
		return
	}
	defer s.m.leave(s)
	sub, pos := s.m.hub.Subscribe(s.app, s.user)
	defer s.m.hub.Unsubscribe(sub)
	// A deactivation logged before pos will not come through the hub: make
	// sure the directory has seen everything up to pos, then check again.
	if err := s.m.dir.WaitFor(ctx, pos); err != nil {
		return
	}
	if u, ok := s.m.dir.User(s.app, s.user); !ok || !u.Active {
		s.refuse(ctx, req.ID, kernel.Errorf(directory.CodeUserNotFound, "no active user %q", s.user))
		return
	}
	s.m.record(s.app, s.user, "client.connected", map[string]any{"sdk_version": p.SDKVersion, "remote": s.remote})

	resync := p.LastSeq != nil && pos > *p.LastSeq && pos-*p.LastSeq > s.m.cfg.ResyncLimit
	result := map[string]any{
		"userId": s.user, "expiresAt": claims.ExpiresAt.UTC().Format(time.RFC3339), "seq": pos,
		"onlineUsers": s.m.OnlineUsers(s.app), "resync": resync,
	}
	if err := s.reply(ctx, req.ID, result, nil); err != nil {
		return
	}
	if p.LastSeq != nil && !resync && *p.LastSeq < pos {
		if err := s.replay(ctx, *p.LastSeq+1, pos); err != nil {
			return
		}
	}
	reason := s.loop(ctx, claims, sub)
	s.m.record(s.app, s.user, "client.disconnected", map[string]any{"reason": reason})
}

// replay pushes the logged events in [from, to] that concern the user.
func (s *session) replay(ctx context.Context, from, to uint64) error {
	return s.m.k.Log().Read(ctx, from, to, func(e eventlog.Event) error {
		if e.Company != s.app || !slices.Contains(e.Audience, s.user) {
			return nil
		}
		return s.write(ctx, pushOf(e))
	})
}

func pushOf(e eventlog.Event) Push {
	return Push{Event: e.Type, Data: json.RawMessage(e.Payload), Seq: e.Seq}
}

// loop serves the connected session; it returns why it ended.
func (s *session) loop(ctx context.Context, claims token.Claims, sub *hub.Subscription) string {
	reqs := make(chan []byte)
	readErr := make(chan error, 1)
	// The reader has its own context: coder/websocket drops the connection
	// when a read's context ends, which would beat our close frame.
	readCtx, stopReading := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReading() // after the loop sent its close frame
	go func() {         // ends when the socket closes or stopReading runs
		for {
			_, b, err := s.c.Read(readCtx)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case reqs <- b:
			case <-readCtx.Done():
				return
			}
		}
	}()
	warn, expire := time.NewTimer(0), time.NewTimer(0)
	defer warn.Stop()
	defer expire.Stop()
	arm := func(expiresAt time.Time) {
		warn.Reset(time.Until(expiresAt.Add(-s.m.cfg.TokenLead)))
		expire.Reset(time.Until(expiresAt))
	}
	<-warn.C
	<-expire.C
	arm(claims.ExpiresAt)
	expiresAt := claims.ExpiresAt

	for {
		select {
		case e := <-sub.C():
			if forced(*e, s.user) {
				s.write(ctx, Push{Event: "client:force_disconnect", Data: map[string]string{"reason": e.Type}, Seq: e.Seq})
				s.m.record(s.app, s.user, "client.force_disconnected", map[string]any{"cause": e.Type})
				s.c.Close(closeForced, "force_disconnect")
				return "force_disconnect"
			}
			if err := s.write(ctx, pushOf(*e)); err != nil {
				return "write_failed"
			}
		case <-sub.Gone():
			s.c.Close(closeSlow, "slow_consumer")
			return "slow_consumer"
		case p := <-s.control:
			if err := s.write(ctx, p); err != nil {
				return "write_failed"
			}
		case b := <-reqs:
			done, err := s.handle(ctx, b, &expiresAt, arm)
			if err != nil {
				return "write_failed"
			}
			if done {
				s.c.Close(websocket.StatusNormalClosure, "disconnect")
				return "client_disconnect"
			}
		case err := <-readErr:
			switch {
			case websocket.CloseStatus(err) == websocket.StatusMessageTooBig:
				return "frame_too_large"
			case websocket.CloseStatus(err) != -1:
				return "client_closed"
			default:
				var ce websocket.CloseError
				if errors.As(err, &ce) {
					return "client_closed"
				}
				return "connection_lost"
			}
		case <-warn.C:
			s.write(ctx, Push{Event: "client:access_token:about_to_expire", Data: map[string]string{"expiresAt": expiresAt.UTC().Format(time.RFC3339)}})
		case <-expire.C:
			s.write(ctx, Push{Event: "client:access_token:expired", Data: map[string]string{}})
			s.m.record(s.app, s.user, "client.token.expired", map[string]any{})
			s.c.Close(closeTokenExpired, "access_token_expired")
			return "access_token_expired"
		case <-ctx.Done():
			s.c.Close(websocket.StatusGoingAway, "server_shutdown")
			return "server_shutdown"
		}
	}
}

// forced reports whether e deactivates or deletes the session's user.
func forced(e eventlog.Event, user string) bool {
	if e.Type != "user.deactivated" && e.Type != "user.deleted" {
		return false
	}
	var p struct {
		UserID string `json:"user_id"`
	}
	return json.Unmarshal(e.Payload, &p) == nil && p.UserID == user
}

// handle answers one request; done is true after disconnect.
func (s *session) handle(ctx context.Context, b []byte, expiresAt *time.Time, arm func(time.Time)) (done bool, err error) {
	req, derr := DecodeRequest(b)
	if !s.limiter.Allow() { // every frame counts, malformed ones too
		return false, s.reply(ctx, req.ID, nil, kernel.Errorf(CodeRateLimited, "more than %.0f requests a second", s.m.cfg.RequestsPerSecond))
	}
	if derr != nil {
		return false, s.reply(ctx, req.ID, nil, derr)
	}
	switch req.Method {
	case "disconnect":
		return true, s.reply(ctx, req.ID, map[string]any{}, nil)
	case "getOnlineUsers":
		return false, s.reply(ctx, req.ID, map[string]any{"users": s.m.OnlineUsers(s.app)}, nil)
	case "updateAccessToken":
		var p struct {
			AccessToken string `json:"accessToken"`
		}
		if err := params(req, &p); err != nil {
			return false, s.reply(ctx, req.ID, nil, err)
		}
		claims, err := s.m.tokens.Verify(s.app, p.AccessToken)
		if err == nil && claims.UserID != s.user {
			err = kernel.Errorf(token.CodeInvalidUser, "the access token is not %q's", s.user)
		}
		if u, ok := s.m.dir.User(s.app, s.user); err == nil && (!ok || !u.Active) {
			err = kernel.Errorf(directory.CodeUserNotFound, "no active user %q", s.user)
		}
		if err != nil {
			return false, s.reply(ctx, req.ID, nil, err)
		}
		*expiresAt = claims.ExpiresAt
		arm(claims.ExpiresAt)
		exp := claims.ExpiresAt.UTC().Format(time.RFC3339)
		s.m.record(s.app, s.user, "client.token.refreshed", map[string]any{"expires_at": exp})
		return false, s.reply(ctx, req.ID, map[string]string{"expiresAt": exp}, nil)
	case "connect":
		return false, s.reply(ctx, req.ID, nil, kernel.Errorf(kernel.CodeValidation, "already connected"))
	default:
		return false, s.reply(ctx, req.ID, nil, kernel.Errorf(CodeUnknownMethod, "no method %q", req.Method))
	}
}
