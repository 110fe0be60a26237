package session

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
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

// Buffer sizes of an upgraded connection. net/http hands a hijacked
// connection 4 KiB read and write buffers, held for the connection's
// life; the session protocol's frames are mostly a few hundred bytes, and
// bufio passes larger reads and writes straight through, so small buffers
// cost a syscall now and then and save 6 KiB per idle session.
const (
	readBuffer  = 1 << 10
	writeBuffer = 1 << 10
)

// smallBuffers gives a hijacked connection smaller buffers (see
// readBuffer).
type smallBuffers struct{ http.ResponseWriter }

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, readBuffer)
	if n := brw.Reader.Buffered(); n > 0 { // bytes the client sent right after the upgrade request
		b, _ := brw.Reader.Peek(n)
		// They must sit in br's buffer, not in a reader behind it:
		// coder/websocket re-points br at the connection after Hijack.
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn), max(n, readBuffer))
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	// brw.Writer is empty: net/http flushed the 101 response before hijacking.
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, writeBuffer)), nil
}

// session is one device's connection.
//
// It runs on one goroutine, which reads requests and answers them. Pushes
// (hub events, presence, token warnings) are written by a drain goroutine
// started on demand and gone when there is nothing left to write; token
// timers are time.AfterFunc. An idle session therefore holds one goroutine
// blocked in a read, and no buffers of its own.
type session struct {
	m       *Manager
	c       *websocket.Conn
	remote  string
	device  string // this connection's id: commands carry it, ephemeral events may target it
	app     string
	user    string
	limiter *rate.Limiter
	sub     *hub.Subscription
	link    *link // a call-link session's scope (joinCallURL); nil after connect

	mu        sync.Mutex
	closing   bool     // no worker starts after this
	live      bool     // pushes flow (after connect's answer and replay)
	draining  bool     // a drain goroutine runs
	control   [][]byte // encoded pushes
	reason    string   // why the session ended; the first cause wins
	expiresAt time.Time
	recent    [8]uint64 // seqs of events in this device's latest command answers
	next      int       // where the next answered seq goes in recent
	warn      *time.Timer
	expire    *time.Timer
	workers   sync.WaitGroup // drains and timer callbacks

	answers writeTimer // bounds the writes of the goroutine that reads and answers requests
	pushes  writeTimer // bounds the drain's writes (drains never overlap)
}

// enter registers a worker (a drain, a timer callback) unless the session
// is closing; the worker calls s.workers.Done when it ends.
func (s *session) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.workers.Add(1)
	return true
}

// writeTimer bounds writes to writeTimeout with one timer reused from
// write to write: a write that overruns has the connection closed under
// it, which fails it, as coder/websocket does when a write's context
// expires. Writes then go with a context that never ends, for which
// coder/websocket sets nothing up, rather than with a context, a timer and
// a cancellation hook per frame. The zero value is ready to use; it is not
// safe for concurrent use, so each writing goroutine has its own.
type writeTimer struct{ t *time.Timer }

// start arms the timer for a write on c.
func (w *writeTimer) start(c *websocket.Conn) {
	if w.t == nil {
		w.t = time.AfterFunc(writeTimeout, func() { c.CloseNow() })
	} else {
		w.t.Reset(writeTimeout)
	}
}

// stop disarms the timer once the write returned.
func (w *writeTimer) stop() { w.t.Stop() }

// write writes v as JSON, bounded by w.
func (s *session) write(w *writeTimer, v any) error {
	w.start(s.c)
	defer w.stop()
	return wsjson.Write(context.Background(), s.c, v)
}

// writeFrame writes an encoded frame, bounded by w.
func (s *session) writeFrame(w *writeTimer, b []byte) error {
	w.start(s.c)
	defer w.stop()
	return s.c.Write(context.Background(), websocket.MessageText, b)
}

// buffers recycles the buffers request frames are read into and answers
// are built in. A buffer goes back once its frame has been handled or
// written: coder/websocket keeps nothing it writes, and DecodeRequest
// copies what it keeps of a request.
var buffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuffer bounds the buffers kept for reuse: a rare large frame
// should not pin its size in the pool.
const maxPooledBuffer = 16 << 10

func getBuffer() *[]byte { return buffers.Get().(*[]byte) }

// putBuffer returns bp to the pool, holding b (its contents, maybe grown).
func putBuffer(bp *[]byte, b []byte) {
	if cap(b) <= maxPooledBuffer {
		*bp = b[:0]
		buffers.Put(bp)
	}
}

// pooledJSON is a JSON result built in a pooled buffer: reply writes it
// and puts the buffer back.
type pooledJSON struct{ buf *[]byte }

// reply answers request id with result, or with err when it is not nil.
// A result that is JSON already (a plugin's answer, checked by the kernel)
// goes into the frame as is.
func (s *session) reply(id json.RawMessage, result any, err error) error {
	if err != nil {
		return s.write(&s.answers, Response{ID: id, Error: kernel.AsError(err)})
	}
	switch r := result.(type) {
	case pooledJSON:
		defer putBuffer(r.buf, *r.buf)
		return s.replyJSON(id, *r.buf)
	case json.RawMessage:
		return s.replyJSON(id, r)
	}
	return s.write(&s.answers, Response{ID: id, Result: result})
}

// replyJSON answers request id with a result that is JSON already, the
// frame built by hand in a pooled buffer.
func (s *session) replyJSON(id json.RawMessage, result []byte) error {
	if len(id) == 0 { // {"id":null}, as encoding/json writes it
		return s.write(&s.answers, Response{Result: json.RawMessage(result)})
	}
	bp := getBuffer()
	b := append((*bp)[:0], `{"id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, result...)
	b = append(b, '}')
	err := s.writeFrame(&s.answers, b)
	putBuffer(bp, b)
	return err
}

// readFrame waits for the next frame and reads it into a pooled buffer,
// which the caller puts back (putBuffer) once it has handled the frame. A
// session waiting for a frame holds no buffer.
func (s *session) readFrame() (*[]byte, []byte, error) {
	_, r, err := s.c.Reader(context.Background()) // the socket's close ends it
	if err != nil {
		return nil, nil, err
	}
	bp := getBuffer()
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // grow, as io.ReadAll does
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return bp, b, nil
		}
		if err != nil {
			putBuffer(bp, b)
			return nil, nil, err
		}
	}
}

// finish records why the session ends (the first cause wins) and closes
// the socket with code and the reason; the read loop then returns.
func (s *session) finish(reason string, code websocket.StatusCode) {
	s.mu.Lock()
	if s.reason != "" {
		s.mu.Unlock()
		return
	}
	s.reason = reason
	s.mu.Unlock()
	s.c.Close(code, reason)
}

// refuse answers a connect with err and closes the socket.
func (s *session) refuse(id json.RawMessage, err error) {
	e := kernel.AsError(err)
	s.reply(id, nil, e)
	s.c.Close(closeRefused, string(e.Code))
}

// run serves the session until it ends. It owns every goroutine the
// session starts and returns after they have all ended.
func (s *session) run() {
	defer s.c.CloseNow()
	claims, req, ok := s.connect()
	if !ok {
		return
	}
	if err := s.m.join(s); err != nil {
		s.refuse(req.ID, err)
		return
	}
	defer s.m.leave(s)
	var pos uint64
	s.sub, pos = s.m.hub.Subscribe(s.app, s.user, s.device, s.wake)
	defer s.m.hub.Unsubscribe(s.sub)
	// A deactivation logged before pos will not come through the hub: make
	// sure the directory has seen everything up to pos, then check again.
	if err := s.m.dir.WaitFor(s.m.base, pos); err != nil {
		return
	}
	if u, ok := s.m.dir.User(s.app, s.user); !ok || !u.Active {
		s.refuse(req.ID, kernel.Errorf(directory.CodeUserNotFound, "no active user %q", s.user))
		return
	}
	var p ConnectParams
	json.Unmarshal(req.Params, &p) // checked by connect (joinCallURL's params share sdkVersion and lastSeq)
	var linked map[string]any
	if s.link != nil {
		var err error
		if linked, err = s.joinLink(); err != nil {
			s.refuse(req.ID, err)
			return
		}
	}
	s.m.record(s.app, s.user, "client.connected", map[string]any{"sdk_version": p.SDKVersion, "remote": s.remote})

	resync := p.LastSeq != nil && pos > *p.LastSeq && pos-*p.LastSeq > s.m.cfg.ResyncLimit
	result := map[string]any{
		"userId": s.user, "device": s.device, "expiresAt": claims.ExpiresAt.UTC().Format(time.RFC3339), "seq": pos,
		"onlineUsers": s.m.OnlineUsers(s.app), "resync": resync,
	}
	if s.link == nil {
		result["deviceKey"] = s.m.deviceKey(s.app, s.user, s.device)
	} else { // no token to expire; only the room's participants are anyone's business
		delete(result, "expiresAt")
		result["onlineUsers"] = s.link.onlinePeers(result["onlineUsers"].([]string))
		maps.Copy(result, linked)
	}
	reason := "write_failed"
	if err := s.reply(req.ID, result, nil); err == nil &&
		(p.LastSeq == nil || resync || *p.LastSeq >= pos || s.replay(*p.LastSeq+1, pos) == nil) {
		reason = s.serve(claims)
	}
	s.m.record(s.app, s.user, "client.disconnected", map[string]any{"reason": reason})
}

// connect reads and checks the connect request.
func (s *session) connect() (token.Claims, Request, bool) {
	ctx, cancel := context.WithTimeout(s.m.base, connectTimeout)
	_, b, err := s.c.Read(ctx)
	cancel()
	if err != nil {
		s.c.Close(websocket.StatusPolicyViolation, "connect expected")
		return token.Claims{}, Request{}, false
	}
	req, err := DecodeRequest(b)
	if err == nil && req.Method == "joinCallURL" {
		return s.connectLink(req)
	}
	if err == nil && req.Method != "connect" {
		err = kernel.Errorf(CodeNotConnected, "the first request must be connect or joinCallURL, not %q", req.Method)
	}
	if err != nil {
		s.refuse(req.ID, err)
		return token.Claims{}, req, false
	}
	var p ConnectParams
	if err := params(req, &p); err != nil {
		code := kernel.CodeValidation
		var ute *json.UnmarshalTypeError
		if errors.As(json.Unmarshal(req.Params, new(ConnectParams)), &ute) && ute.Field == "sdkVersion" {
			code = CodeSDKVersionInvalid // the reference's code for a parameter of the wrong type
		}
		s.refuse(req.ID, kernel.Errorf(code, "%s", kernel.AsError(err).Message))
		return token.Claims{}, req, false
	}
	claims, err := s.m.authenticate(p)
	if err != nil {
		s.refuse(req.ID, err)
		return token.Claims{}, req, false
	}
	s.app, s.user = p.AppID, p.UserID
	if s.m.deviceKeyOK(s.app, s.user, p.Device, p.DeviceKey) {
		s.device = p.Device
	}
	return claims, req, true
}

// replay pushes the logged events in [from, to] that concern the user.
func (s *session) replay(from, to uint64) error {
	return s.m.k.Log().Read(s.m.base, from, to, func(e eventlog.Event) error {
		if e.Company != s.app || !slices.Contains(e.Audience, s.user) {
			return nil
		}
		// Opened before the link's scope check, which reads the payload.
		if !s.m.hub.Open(&e) || (s.link != nil && !s.link.allows(s, &e)) {
			return nil
		}
		return s.writeFrame(&s.answers, EncodePush(&e))
	})
}

// serve reads and answers requests until the session ends, and returns why
// it ended.
func (s *session) serve(claims token.Claims) string {
	s.mu.Lock()
	s.live = true
	s.expiresAt = claims.ExpiresAt
	s.warn = time.AfterFunc(time.Until(claims.ExpiresAt.Add(-s.m.cfg.TokenLead)), s.warnExpiry)
	s.expire = time.AfterFunc(time.Until(claims.ExpiresAt), s.expireToken)
	s.mu.Unlock()
	stopShutdown := context.AfterFunc(s.m.base, func() {
		if s.enter() {
			defer s.workers.Done()
			s.finish("server_shutdown", websocket.StatusGoingAway)
		}
	})
	s.wake() // events that arrived during the replay

	var readErr error
	for {
		bp, b, err := s.readFrame()
		if err != nil {
			readErr = err
			break
		}
		done := s.handle(b)
		putBuffer(bp, b)
		if done {
			s.finish("client_disconnect", websocket.StatusNormalClosure)
			break
		}
	}

	s.mu.Lock()
	s.closing = true
	s.warn.Stop()
	s.expire.Stop()
	if s.reason == "" { // before CloseNow, whose failed writes are not the cause
		s.reason = readEndReason(readErr)
	}
	s.mu.Unlock()
	stopShutdown()
	s.c.CloseNow() // unblocks a drain stuck writing to a client that stopped reading
	s.workers.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

func readEndReason(err error) string {
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
}

// answer records the seqs of events a command answer carried, so that
// the drain does not push them to this device again.
func (s *session) answer(seqs ...uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range seqs {
		s.recent[s.next] = q
		s.next = (s.next + 1) % len(s.recent)
	}
}

// answered reports whether seq was in one of the device's latest command
// answers.
func (s *session) answered(seq uint64) bool {
	if seq == 0 { // ephemeral: never in an answer
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.recent {
		if q == seq {
			return true
		}
	}
	return false
}

// push queues a server-initiated frame (presence, token warning).
func (s *session) push(frame []byte) {
	s.mu.Lock()
	if len(s.control) >= 16 { // a client this far behind is about to be dropped anyway
		s.mu.Unlock()
		return
	}
	s.control = append(s.control, frame)
	s.mu.Unlock()
	s.wake()
}

// wake starts a drain unless one runs or the session is not live. It is
// the hub's notify: it never blocks.
func (s *session) wake() {
	s.mu.Lock()
	if s.draining && !s.closing && s.sub.Dropped() != nil && s.reason == "" {
		// The drain is stuck writing to a client that stopped reading: do
		// not wait for its write to time out.
		s.workers.Add(1)
		s.mu.Unlock()
		go func() { // owned by the session: serve waits for workers
			defer s.workers.Done()
			s.finish("slow_consumer", closeSlow)
		}()
		return
	}
	if !s.live || s.closing || s.draining {
		s.mu.Unlock()
		return
	}
	s.draining = true
	s.workers.Add(1)
	s.mu.Unlock()
	go s.drain() // owned by the session: serve waits for workers
}

// drain writes queued pushes until there are none, then ends. After an
// error or a terminal event it ends with draining still set, so no other
// drain starts on a session that is going away.
func (s *session) drain() {
	defer s.workers.Done()
	for {
		s.mu.Lock()
		ctrl := s.control
		s.control = nil
		s.mu.Unlock()
		for _, f := range ctrl {
			if s.writeFrame(&s.pushes, f) != nil {
				s.finish("write_failed", websocket.StatusInternalError)
				return
			}
		}
		evs, err := s.sub.Take()
		if errors.Is(err, hub.ErrSlow) {
			s.finish("slow_consumer", closeSlow)
			return
		}
		for _, it := range evs {
			e := it.Event
			if forced(e, s.user) {
				s.write(&s.pushes, Push{Event: "client:force_disconnect", Data: map[string]string{"reason": e.Type}, Seq: e.Seq})
				s.m.record(s.app, s.user, "client.force_disconnected", map[string]any{"cause": e.Type})
				s.finish("force_disconnect", closeForced)
				return
			}
			if s.link != nil && !s.link.allows(s, e) {
				continue // outside the call-link session's scope
			}
			if s.link != nil && s.link.ends(e) {
				s.closeLinkSoon()
			}
			if s.answered(e.Seq) {
				continue // this device has it in a command's answer
			}
			frame := it.Frame
			if frame == nil {
				frame = EncodePush(e)
			}
			if s.writeFrame(&s.pushes, frame) != nil {
				s.finish("write_failed", websocket.StatusInternalError)
				return
			}
		}
		if len(ctrl) > 0 || len(evs) > 0 {
			continue
		}
		s.mu.Lock()
		if len(s.control) == 0 && !s.sub.Pending() || s.closing {
			s.draining = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// warnExpiry pushes about_to_expire, unless the token was renewed since.
func (s *session) warnExpiry() {
	if !s.enter() {
		return
	}
	defer s.workers.Done()
	s.mu.Lock()
	exp := s.expiresAt
	s.mu.Unlock()
	if time.Now().Before(exp.Add(-s.m.cfg.TokenLead)) { // renewed: a newer timer fires
		return
	}
	frame, _ := json.Marshal(Push{Event: "client:access_token:about_to_expire", Data: map[string]string{"expiresAt": exp.UTC().Format(time.RFC3339)}})
	s.push(frame)
}

// expireToken ends the session when its token expires, unless renewed.
func (s *session) expireToken() {
	if !s.enter() {
		return
	}
	defer s.workers.Done()
	s.mu.Lock()
	exp := s.expiresAt
	s.mu.Unlock()
	if time.Now().Before(exp) {
		return
	}
	var once writeTimer // this goroutine's only write
	s.write(&once, Push{Event: "client:access_token:expired", Data: map[string]string{}})
	s.m.record(s.app, s.user, "client.token.expired", map[string]any{})
	s.finish("access_token_expired", closeTokenExpired)
}

// forced reports whether e deactivates or deletes the session's user.
func forced(e *eventlog.Event, user string) bool {
	if e.Type != "user.deactivated" && e.Type != "user.deleted" {
		return false
	}
	var p struct {
		UserID string `json:"user_id"`
	}
	return json.Unmarshal(e.Payload, &p) == nil && p.UserID == user
}

// handle answers one request; it returns true after disconnect.
func (s *session) handle(b []byte) (done bool) {
	req, derr := DecodeRequest(b)
	if !s.limiter.Allow() { // every frame counts, malformed ones too
		s.reply(req.ID, nil, kernel.Errorf(CodeRateLimited, "more than %.0f requests a second", s.m.cfg.RequestsPerSecond))
		return false
	}
	if derr != nil {
		s.reply(req.ID, nil, derr)
		return false
	}
	if s.link != nil {
		if err := s.link.permit(s, req); err != nil {
			s.reply(req.ID, nil, err)
			return false
		}
	}
	switch req.Method {
	case "disconnect":
		s.reply(req.ID, map[string]any{}, nil)
		return true
	case "getOnlineUsers":
		users := s.m.OnlineUsers(s.app)
		if s.link != nil {
			users = s.link.onlinePeers(users)
		}
		s.reply(req.ID, map[string]any{"users": users}, nil)
	case "updateAccessToken":
		res, err := s.updateToken(req)
		s.reply(req.ID, res, err)
	case "connect":
		s.reply(req.ID, nil, kernel.Errorf(kernel.CodeValidation, "already connected"))
	default:
		res, err := s.call(req)
		s.reply(req.ID, res, err)
	}
	return false
}

// updateToken takes a fresh access token and re-arms the expiry timers.
func (s *session) updateToken(req Request) (any, error) {
	var p struct {
		AccessToken string `json:"accessToken"`
	}
	if err := params(req, &p); err != nil {
		return nil, err
	}
	claims, err := s.m.tokens.Verify(s.app, p.AccessToken)
	if err == nil && claims.UserID != s.user {
		err = kernel.Errorf(token.CodeInvalidUser, "the access token is not %q's", s.user)
	}
	if u, ok := s.m.dir.User(s.app, s.user); err == nil && (!ok || !u.Active) {
		err = kernel.Errorf(directory.CodeUserNotFound, "no active user %q", s.user)
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.expiresAt = claims.ExpiresAt
	s.warn.Reset(time.Until(claims.ExpiresAt.Add(-s.m.cfg.TokenLead)))
	s.expire.Reset(time.Until(claims.ExpiresAt))
	s.mu.Unlock()
	exp := claims.ExpiresAt.UTC().Format(time.RFC3339)
	s.m.record(s.app, s.user, "client.token.refreshed", map[string]any{"expires_at": exp})
	return map[string]string{"expiresAt": exp}, nil
}
