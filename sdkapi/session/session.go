// Package session is the WebSocket session the browser SDK speaks, at
// /v2/ws. Frames are JSON: requests {id, method, params}, responses
// {id, result} or {id, error: {code, message}}, pushes {event, data, seq}.
//
// # Connecting
//
// The first frame must be connect {appId, userId, accessToken, sdkVersion,
// lastSeq?}; anything else, or a refusal, closes the socket after the coded
// answer (app_id_invalid, user_not_found, access_token_expired,
// access_token_invalid, access_token_invalid_signature,
// access_token_invalid_user, sdk_version_invalid, sdk_version_unsupported,
// too_many_sessions, rate_limited: a user opening sessions faster than
// ConnectsPerSecond past a burst). The answer carries the user's expiresAt, the log
// position and the online users. With lastSeq, the events since then whose
// audience includes the user are pushed before live ones, each once, in
// seq order; too far back, the answer says resync: true instead. The
// answer also names the session's device, with a deviceKey: a connect that
// gives both back (device, deviceKey; the SDK does when it resumes) keeps
// that device, and with it the calls bound to it. A key this kernel did
// not give for the user (or given before a restart) gets a new device.
//
// joinCallURL {url, sdkVersion, ...} instead of connect opens a session
// restricted to one call link's call (see link.go). A link's sessions
// are counted apart from their user's own (MaxSessionsPerUser each), and
// make nobody online: whoever holds a user's link can neither use up the
// user's sessions nor announce them.
//
// # Afterwards
//
// Methods: updateAccessToken {accessToken} → {expiresAt}; getOnlineUsers
// → {users}; disconnect; and every plugin method the kernel offers to
// clients (kernel.ClientRoute: a plugin's Manifest.Client, such as
// chat.message.send), called with the user as the actor. A plugin query
// answers with the plugin's JSON; a plugin command answers with {seq,
// events}: the events it appended, as push frames, so a client can pass
// seq as a query's minSeq and read its own writes (a minSeq past the
// newest event is refused with validation_error). Those events are not
// pushed again to the device that sent the command (its other devices get
// them); a client should still ignore a seq it has already seen. Pushes: every durable event whose audience
// includes the user (event = its type, seq = its seq),
// client:access_token:about_to_expire {expiresAt} a configurable lead
// before expiry, client:access_token:expired (then the socket closes),
// client:force_disconnect when the user is deactivated or deleted (on every
// device), user:status:changed [{userId, status}, ...] when other users of
// the company come online or go offline. Presence changes are coalesced
// over PresenceBatch into one frame (the SDK emits one widget event per
// entry), and offline is announced only after a grace period, so flapping
// connections stay quiet.
//
// Ephemeral events (WebRTC signaling, pointer moves) are pushed the same
// way without a seq, in the order they were published, to every device of
// their audience or, when a plugin addressed one (NewEvent.Device), to that
// device alone: connect's answer names the connection's device, and every
// command it sends carries it (Command.Device). A device that is not
// connected misses them.
//
// Connect, disconnect, token refresh, expiry and force-disconnect are
// durable client.* events in stream client/<app_id>/<user_id>.
//
// # Limits
//
// Frames over MaxFrame close the socket (1009); requests beyond the rate
// get rate_limited; malformed frames get malformed_frame; unknown methods
// method_unknown. A client too slow to take its pushes is disconnected
// with reason slow_consumer and can resume with lastSeq.
package session

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/hub"
	"github.com/parleyhq/parley/sdkapi/directory"
	"github.com/parleyhq/parley/sdkapi/token"
	"golang.org/x/time/rate"
)

// Connect error codes of the widget reference not defined elsewhere.
const (
	CodeAppIDInvalid          kernel.Code = "app_id_invalid"
	CodeSDKVersionInvalid     kernel.Code = "sdk_version_invalid"
	CodeSDKVersionUnsupported kernel.Code = "sdk_version_unsupported"
)

// Config sets the limits and timings. Zero values take the defaults.
type Config struct {
	MaxFrame           int64         // bytes (default 64 KiB)
	RequestsPerSecond  float64       // per session (default 20, burst twice that)
	MaxSessionsPerUser int           // devices (default 10); as many call-link sessions again
	ConnectsPerSecond  float64       // per user, connects and joinCallURLs alike (default 2, burst 2 × MaxSessionsPerUser)
	TokenLead          time.Duration // about_to_expire this long before expiry (default 60 s)
	PresenceGrace      time.Duration // offline announced after this (default 2 s)
	PresenceBatch      time.Duration // presence changes are coalesced over this (default 200 ms)
	ResyncLimit        uint64        // a resume further back than this many events answers resync (default 10,000)
	MinSDKMajor        int           // oldest SDK major version accepted (default 2)
}

func (c Config) withDefaults() Config {
	if c.MaxFrame <= 0 {
		c.MaxFrame = 64 << 10
	}
	if c.RequestsPerSecond <= 0 {
		c.RequestsPerSecond = 20
	}
	if c.MaxSessionsPerUser <= 0 {
		c.MaxSessionsPerUser = 10
	}
	if c.ConnectsPerSecond <= 0 {
		c.ConnectsPerSecond = 2
	}
	if c.TokenLead <= 0 {
		c.TokenLead = time.Minute
	}
	if c.PresenceGrace <= 0 {
		c.PresenceGrace = 2 * time.Second
	}
	if c.PresenceBatch <= 0 {
		c.PresenceBatch = 200 * time.Millisecond
	}
	if c.ResyncLimit == 0 {
		c.ResyncLimit = 10_000
	}
	if c.MinSDKMajor <= 0 {
		c.MinSDKMajor = 2
	}
	return c
}

// EventTypes are the session's durable event types.
var EventTypes = []kernel.EventType{
	{Name: "client.connected", Durable: true, Doc: "a device connected (payload: user_id, sdk_version, remote)"},
	{Name: "client.disconnected", Durable: true, Doc: "a device disconnected (payload: user_id, reason)"},
	{Name: "client.token.refreshed", Durable: true, Doc: "a session took a new access token (payload: user_id, expires_at)"},
	{Name: "client.token.expired", Durable: true, Doc: "a session's access token expired and it was closed (payload: user_id)"},
	{Name: "client.force_disconnected", Durable: true, Doc: "a device was disconnected because its user was deactivated or deleted (payload: user_id)"},
}

type userKey struct{ app, user string }

// Manager accepts sessions and keeps presence.
type Manager struct {
	deviceSecret [32]byte // keys the device keys connect hands out (deviceKey); new at every start
	k            *kernel.Kernel
	dir          *directory.Directory
	tokens       *token.Issuer
	hub          *hub.Hub
	cfg          Config
	logger       *slog.Logger

	mu       sync.Mutex
	sessions map[string]map[string]map[*session]struct{} // app -> user -> the user's sessions
	links    map[userKey]map[*session]struct{}           // call-link sessions: counted apart, no presence
	connects map[connectKey]*rate.Limiter                // each user's connects; dropped once full again (flushPresence)
	offline  map[string]map[string]*time.Timer           // app -> user -> pending offline announcement
	wg       sync.WaitGroup
	base     context.Context // every session ends when it does
	stop     context.CancelFunc
	closed   bool                         // guarded by mu: no session starts after Close
	changes  map[string]map[string]string // app -> user -> status, not yet announced
	flushed  chan struct{}                // closed when the presence flusher stops
}

// New declares the session's event types and returns a manager. The hub
// must be running.
func New(k *kernel.Kernel, dir *directory.Directory, tokens *token.Issuer, h *hub.Hub, cfg Config, logger *slog.Logger) (*Manager, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := k.EventTypes().Declare(EventTypes...); err != nil {
		return nil, err
	}
	base, stop := context.WithCancel(context.Background())
	m := &Manager{
		k: k, dir: dir, tokens: tokens, hub: h, cfg: cfg.withDefaults(), logger: logger,
		sessions: map[string]map[string]map[*session]struct{}{}, offline: map[string]map[string]*time.Timer{},
		links: map[userKey]map[*session]struct{}{}, connects: map[connectKey]*rate.Limiter{},
		base: base, stop: stop, changes: map[string]map[string]string{}, flushed: make(chan struct{}),
	}
	rand.Read(m.deviceSecret[:])
	go m.flushPresence() // owned by the Manager: Close stops it
	return m, nil
}

// deviceKey proves that this kernel named device for user of app: a
// session that gives it back with its device when it connects again
// (after a network drop) keeps that device, so the calls bound to it stay
// its own.
func (m *Manager) deviceKey(app, user, device string) string {
	mac := hmac.New(sha256.New, m.deviceSecret[:])
	mac.Write([]byte(app + "\x00" + user + "\x00" + device))
	return hex.EncodeToString(mac.Sum(nil))
}

// deviceKeyOK reports whether key is deviceKey's for app, user and device.
func (m *Manager) deviceKeyOK(app, user, device, key string) bool {
	return device != "" && hmac.Equal([]byte(key), []byte(m.deviceKey(app, user, device)))
}

// Close ends every session (code 1001, server_shutdown; each records its
// disconnection) and waits for them. The HTTP server does not track
// upgraded connections, so shutdown must call this.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.stop()
	m.wg.Wait()
	<-m.flushed
}

// ServeHTTP upgrades to a WebSocket and starts the session on a goroutine
// of its own (owned by the Manager: Close waits for it), so that net/http's
// request state is released once the connection is upgraded.
func (m *Manager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Any origin: the widget runs on the integrator's pages; the access
	// token, not a cookie, authenticates, so there is nothing to forge.
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	m.wg.Add(1) // under mu, so Close's Wait never races an Add
	m.mu.Unlock()
	c, err := websocket.Accept(smallBuffers{w}, r, &websocket.AcceptOptions{OriginPatterns: []string{"*"}})
	if err != nil {
		m.wg.Done()
		return
	}
	c.SetReadLimit(m.cfg.MaxFrame)
	s := &session{m: m, c: c, remote: r.RemoteAddr, device: newDeviceID(), limiter: rate.NewLimiter(rate.Limit(m.cfg.RequestsPerSecond), int(2*m.cfg.RequestsPerSecond))}
	go func() {
		defer m.wg.Done()
		s.run()
	}()
}

// newDeviceID names a connection: 16 random bytes, hex.
func newDeviceID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "dev_" + hex.EncodeToString(b)
}

// ConnectParams are connect's params.
type ConnectParams struct {
	AppID       string  `json:"appId"`
	UserID      string  `json:"userId"`
	AccessToken string  `json:"accessToken"`
	SDKVersion  string  `json:"sdkVersion"`
	LastSeq     *uint64 `json:"lastSeq"`
	// Device and DeviceKey, from an earlier connect's answer, keep that
	// device (a session back after a network drop); a key this kernel did
	// not give for them (another user's, a kernel restarted since) gets a
	// new device, as without them.
	Device    string `json:"device,omitempty"`
	DeviceKey string `json:"deviceKey,omitempty"`
}

// authenticate checks connect's params in the reference's order.
func (m *Manager) authenticate(p ConnectParams) (token.Claims, error) {
	major, ok := sdkMajor(p.SDKVersion)
	switch {
	case !ok:
		return token.Claims{}, kernel.Errorf(CodeSDKVersionInvalid, "sdkVersion %q is not a version like 3.1.0", p.SDKVersion)
	case major < m.cfg.MinSDKMajor:
		return token.Claims{}, kernel.Errorf(CodeSDKVersionUnsupported, "sdk %s is too old; %d.0.0 or newer is needed", p.SDKVersion, m.cfg.MinSDKMajor)
	}
	if _, ok := m.dir.Company(p.AppID); !ok {
		return token.Claims{}, kernel.Errorf(CodeAppIDInvalid, "no company %q here", p.AppID)
	}
	claims, err := m.tokens.Verify(p.AppID, p.AccessToken)
	if err != nil {
		return token.Claims{}, err
	}
	if claims.UserID != p.UserID {
		return token.Claims{}, kernel.Errorf(token.CodeInvalidUser, "the access token is not %q's", p.UserID)
	}
	u, ok := m.dir.User(p.AppID, p.UserID)
	if !ok || !u.Active {
		return token.Claims{}, kernel.Errorf(directory.CodeUserNotFound, "no active user %q", p.UserID)
	}
	return claims, nil
}

func sdkMajor(v string) (int, bool) {
	parts := strings.Split(strings.TrimPrefix(v, "v"), ".")
	if len(parts) != 3 {
		return 0, false
	}
	var nums [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0, false
		}
		nums[i] = n
	}
	return nums[0], true
}

// join registers a session for presence; it reports whether the user was
// offline (and so others must hear it came online).
func (m *Manager) join(s *session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := userKey{s.app, s.user}
	if s.link != nil {
		// A call link's sessions have their own count and connect rate,
		// and make nobody online: whoever holds the link cannot lock its
		// user out of their own sessions, nor announce them.
		if len(m.links[k]) >= m.cfg.MaxSessionsPerUser {
			return kernel.Errorf(CodeTooManySessions, "user %q has %d call-link sessions open, the limit", s.user, m.cfg.MaxSessionsPerUser)
		}
		if err := m.connectLocked(connectKey{k, true}); err != nil {
			return err
		}
		if m.links[k] == nil {
			m.links[k] = map[*session]struct{}{}
		}
		m.links[k][s] = struct{}{}
		return nil
	}
	users := m.sessions[s.app]
	if len(users[s.user]) >= m.cfg.MaxSessionsPerUser {
		return kernel.Errorf(CodeTooManySessions, "user %q has %d sessions open, the limit", s.user, m.cfg.MaxSessionsPerUser)
	}
	if err := m.connectLocked(connectKey{k, false}); err != nil {
		return err
	}
	if users == nil {
		users = map[string]map[*session]struct{}{}
		m.sessions[s.app] = users
	}
	if users[s.user] == nil {
		users[s.user] = map[*session]struct{}{}
	}
	first := len(users[s.user]) == 0
	users[s.user][s] = struct{}{}
	if t, pending := m.offline[s.app][s.user]; pending {
		t.Stop() // came back within the grace period: nobody heard it left
		m.dropOffline(k)
	} else if first {
		m.announceLocked(s.app, s.user, "online")
	}
	return nil
}

// dropOffline forgets k's pending offline announcement; m.mu is held.
func (m *Manager) dropOffline(k userKey) {
	if delete(m.offline[k.app], k.user); len(m.offline[k.app]) == 0 {
		delete(m.offline, k.app)
	}
}

// connectKey names a connect rate: a user's own sessions, or their call
// link's.
type connectKey struct {
	userKey
	link bool
}

// connectLocked takes a connect from k's rate; m.mu is held. Every session
// opened is logged (client.connected, then client.disconnected): a token
// holder looping connects would grow the log without end. Only sessions
// that open count.
func (m *Manager) connectLocked(k connectKey) error {
	l := m.connects[k]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(m.cfg.ConnectsPerSecond), 2*m.cfg.MaxSessionsPerUser)
		m.connects[k] = l
	}
	if !l.Allow() {
		return kernel.Errorf(CodeRateLimited, "user %q opens sessions faster than %g a second", k.user, m.cfg.ConnectsPerSecond)
	}
	return nil
}

// leave unregisters a session; the last one of a user starts the grace
// period after which the user is announced offline.
func (m *Manager) leave(s *session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := userKey{s.app, s.user}
	if s.link != nil {
		if delete(m.links[k], s); len(m.links[k]) == 0 {
			delete(m.links, k)
		}
		return
	}
	users := m.sessions[s.app]
	if _, ok := users[s.user][s]; !ok {
		return
	}
	delete(users[s.user], s)
	if len(users[s.user]) > 0 {
		return
	}
	delete(users, s.user)
	if len(users) == 0 {
		delete(m.sessions, s.app)
	}
	var t *time.Timer
	t = time.AfterFunc(m.cfg.PresenceGrace, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.offline[k.app][k.user] != t || len(m.sessions[k.app][k.user]) > 0 { // rejoined, or a newer timer owns it
			return
		}
		m.dropOffline(k)
		m.announceLocked(k.app, k.user, "offline")
	})
	if m.offline[k.app] == nil {
		m.offline[k.app] = map[string]*time.Timer{}
	}
	m.offline[k.app][k.user] = t
}

// announceLocked queues a presence change for the other users of the
// company; m.mu is held. Changes are coalesced (the last status of a user
// wins) and sent every PresenceBatch, one frame per session: when many
// users come online at once, each session gets one frame, not one per user.
func (m *Manager) announceLocked(app, user, status string) {
	if m.changes[app] == nil {
		m.changes[app] = map[string]string{}
	}
	m.changes[app][user] = status
}

// sweepEvery is how many presence batches go by between two sweeps of
// the connect rates (every 5 s by default).
const sweepEvery = 25

// flushPresence sends the queued presence changes until the Manager closes.
func (m *Manager) flushPresence() {
	defer close(m.flushed)
	t := time.NewTicker(m.cfg.PresenceBatch)
	defer t.Stop()
	ticks := 0
	for {
		select {
		case <-m.base.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		for app, changes := range m.changes {
			users := make([]string, 0, len(changes))
			for u := range changes {
				users = append(users, u)
			}
			slices.Sort(users)
			entries := make([][]byte, len(users)) // {"userId":..,"status":..}, encoded once
			for i, u := range users {
				entries[i], _ = json.Marshal(map[string]string{"userId": u, "status": changes[u]})
			}
			for user, ss := range m.sessions[app] { // the company's sessions only
				// One frame per user, shared by their devices: every change
				// but the user's own.
				frame := append(make([]byte, 0, 64+len(entries)*48), `{"event":"user:status:changed","data":[`...)
				n := 0
				for i, u := range users {
					if u == user {
						continue
					}
					if n++; n > 1 {
						frame = append(frame, ',')
					}
					frame = append(frame, entries[i]...)
				}
				if n == 0 {
					continue
				}
				frame = append(frame, "]}"...)
				for s := range ss {
					if s.link == nil { // a call-link session hears of nobody's presence
						s.push(frame)
					}
				}
			}
		}
		clear(m.changes)
		if ticks++; ticks%sweepEvery == 0 {
			for k, l := range m.connects { // a full bucket is a fresh one: forget it
				if l.Tokens() >= float64(l.Burst()) {
					delete(m.connects, k)
				}
			}
		}
		m.mu.Unlock()
	}
}

// OnlineUsers lists the users of a company with a session open.
func (m *Manager) OnlineUsers(app string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	users := []string{}
	for u := range m.sessions[app] {
		users = append(users, u)
	}
	for u := range m.offline[app] { // within the grace period: still online to everyone else
		users = append(users, u)
	}
	slices.Sort(users)
	return users
}

// record appends a client.* event.
func (m *Manager) record(app, user, typ string, fields map[string]any) {
	fields["user_id"] = user
	p, _ := json.Marshal(fields)
	_, err := m.k.Log().Append(context.Background(), eventlog.Draft{
		Type: typ, Stream: "client/" + app + "/" + user, Company: app, Actor: user, Payload: p,
	})
	if err != nil {
		m.logger.Error("recording a client event", "type", typ, "err", err)
	}
}
