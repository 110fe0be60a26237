package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// ProtocolVersion is the plugin protocol this package speaks. The kernel
// and a plugin negotiate the highest version both support.
const ProtocolVersion = 1

// Permission names a part of the kernel API a plugin may call.
type Permission string

// The kernel API permissions.
const (
	PermAppend  Permission = "log.append" // append durable events to the streams it owns
	PermRead    Permission = "log.read"   // read the whole log
	PermPublish Permission = "publish"    // publish ephemeral events
	PermKV      Permission = "kv"         // its own key/value store
	PermKeys    Permission = "keys"       // seal event payloads under company keys and erase those keys
)

// Actors. A command or query carries who asks: a user of the company
// (their bare user id, which never contains ':'), or one of these.
const (
	ActorAPIKeyPrefix = "apikey:"  // the company's server, through the REST API ("apikey:<app_id>")
	ActorOperator     = "operator" // the appliance's operator, through the CLI
	ActorKernel       = "kernel"
)

// IsUser reports whether an actor is a user (not the REST API, the
// operator, the kernel or a plugin).
func IsUser(actor string) bool {
	return actor != "" && !strings.Contains(actor, ":") && actor != ActorOperator && actor != ActorKernel
}

// userIDPattern is the platform's user id rule (the REST API's, for
// POST /v2/users).
var userIDPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,128}$`)

// ValidUserID reports whether id can be a user's id: the platform's rule,
// and not an id the kernel reserves for itself (operator, kernel).
func ValidUserID(id string) bool {
	return userIDPattern.MatchString(id) && id != ActorOperator && id != ActorKernel
}

// DecodePayload reads a command's or query's payload, a JSON object (or
// nothing), into v; a payload that does not fit is a validation_error.
func DecodePayload(payload json.RawMessage, v any) error {
	if len(bytes.TrimSpace(payload)) == 0 {
		return nil
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return Errorf(CodeValidation, "payload: %v", err)
	}
	return nil
}

// EventType is an event type a plugin emits, durable (logged) or
// ephemeral (bus only).
type EventType struct {
	Name    string `json:"name"`
	Durable bool   `json:"durable"`
}

// Manifest describes a plugin: who it is and everything it may do. The
// kernel routes and refuses according to it.
type Manifest struct {
	ID          string         `json:"id"`          // reverse-dotted: "tool.acme.poll"
	Version     string         `json:"version"`     // the plugin's own version
	Protocol    int            `json:"protocol"`    // ProtocolVersion it was built against
	Commands    []string       `json:"commands"`    // command names it owns (exact)
	Subscribes  []string       `json:"subscribes"`  // topics it receives: a family ("channel"), a type, or "*"
	Events      []EventType    `json:"events"`      // event types it emits
	Permissions []Permission   `json:"permissions"` // kernel API it calls
	Streams     []string       `json:"streams"`     // stream prefixes it appends to ("poll/")
	Queries     []string       `json:"queries"`     // query names it answers (exact)
	Client      []ClientMethod `json:"client"`      // commands and queries the session protocol exposes to users
}

// ClientMethod exposes one of the plugin's commands or queries to the
// session protocol: a connected user calls it by Name, with the user as
// the actor and the user's company; the plugin authorises. Stream, for a
// command, is the template of the stream it is serialised on: text with
// {company}, {actor} and {params.<field>} (a non-empty string field of the
// request's params, without '/'), e.g. "chat/{company}/{params.channelId}".
// Queries take no stream.
type ClientMethod struct {
	Name   string `json:"name"`
	Stream string `json:"stream,omitempty"`
}

// ReservedFamilies are event families and stream prefixes only the kernel
// writes: a plugin can neither declare their types nor own their streams.
var ReservedFamilies = []string{"kernel", "plugin", "bus", "deadletter", "client", "topic", "company", "user"}

var idPattern = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$`)

// Validate checks the manifest is well formed.
func (m *Manifest) Validate() error {
	if !idPattern.MatchString(m.ID) || len(m.ID) > 128 {
		return fmt.Errorf("plugin id %q must be reverse-dotted lowercase, like tool.acme.poll", m.ID)
	}
	for _, p := range m.Permissions {
		switch p {
		case PermAppend, PermRead, PermPublish, PermKV, PermKeys:
		default:
			return fmt.Errorf("plugin %s: unknown permission %q", m.ID, p)
		}
	}
	for _, e := range m.Events {
		if !strings.Contains(e.Name, ".") {
			return fmt.Errorf("plugin %s: event type %q must be dotted, family first", m.ID, e.Name)
		}
		if slices.Contains(ReservedFamilies, strings.SplitN(e.Name, ".", 2)[0]) {
			return fmt.Errorf("plugin %s: event type %q is in a family the kernel reserves (%v)", m.ID, e.Name, ReservedFamilies)
		}
	}
	for _, p := range m.Streams {
		if len(p) < 2 || !strings.HasSuffix(p, "/") {
			return fmt.Errorf("plugin %s: stream prefix %q must be a name ending in \"/\", like \"poll/\"", m.ID, p)
		}
		if slices.Contains(ReservedFamilies, strings.TrimSuffix(p, "/")) {
			return fmt.Errorf("plugin %s: stream prefix %q is reserved for the kernel", m.ID, p)
		}
	}
	for _, c := range append(slices.Clip(m.Commands), m.Queries...) {
		if c == "" {
			return fmt.Errorf("plugin %s: empty command or query name", m.ID)
		}
	}
	for _, q := range m.Queries {
		if slices.Contains(m.Commands, q) {
			return fmt.Errorf("plugin %s: %s is declared both a command and a query", m.ID, q)
		}
	}
	for _, c := range m.Client {
		switch {
		case slices.Contains(m.Commands, c.Name):
			var coded *Error
			if _, err := ExpandStream(c.Stream, "company", "actor", nil); err != nil && !errors.As(err, &coded) {
				return fmt.Errorf("plugin %s: client method %s: %v", m.ID, c.Name, err)
			}
			if lit, _, _ := strings.Cut(c.Stream, "{"); !m.OwnsStream(lit) {
				return fmt.Errorf("plugin %s: client method %s: stream template %q must start with a stream prefix it owns", m.ID, c.Name, c.Stream)
			}
		case slices.Contains(m.Queries, c.Name):
			if c.Stream != "" {
				return fmt.Errorf("plugin %s: client method %s is a query: it takes no stream", m.ID, c.Name)
			}
		default:
			return fmt.Errorf("plugin %s: client method %s is neither a command nor a query it declares", m.ID, c.Name)
		}
	}
	return nil
}

// ExpandStream fills a ClientMethod stream template. A missing, empty,
// non-string or '/'-bearing params field is a validation_error *Error; a
// malformed template is a plain error.
func ExpandStream(tmpl, company, actor string, params json.RawMessage) (string, error) {
	var b strings.Builder
	b.Grow(len(tmpl) + len(company) + len(actor) + len(params)) // enough: one allocation
	for rest := tmpl; rest != ""; {
		lit, after, found := strings.Cut(rest, "{")
		b.WriteString(lit)
		if !found {
			break
		}
		name, tail, ok := strings.Cut(after, "}")
		if !ok {
			return "", fmt.Errorf("stream template %q: unclosed {", tmpl)
		}
		rest = tail
		switch {
		case name == "company":
			b.WriteString(company)
		case name == "actor":
			b.WriteString(actor)
		case strings.HasPrefix(name, "params.") && len(name) > len("params."):
			if err := writeParam(&b, params, name[len("params."):]); err != nil {
				return "", err
			}
		default:
			return "", fmt.Errorf("stream template %q: unknown placeholder {%s}", tmpl, name)
		}
	}
	return b.String(), nil
}

// writeParam writes params' top-level string member field to b, for a
// stream template: params must be an object (or null), the member a
// non-empty string without '/'. The usual member, a plain ASCII string,
// is copied without decoding params.
func writeParam(b *strings.Builder, params json.RawMessage, field string) error {
	var raw []byte
	isObject := false
	if json.Valid(params) {
		raw, isObject = member(params, field)
	}
	if !isObject && !isNull(params) {
		return Errorf(CodeValidation, "params must be an object with %s", field)
	}
	v, ok := plainString(raw)
	if !ok { // escaped, not ASCII or not a string: decode it
		var s string
		if json.Unmarshal(raw, &s) != nil {
			s = ""
		}
		v = []byte(s)
	}
	if len(v) == 0 || bytes.IndexByte(v, '/') >= 0 {
		return Errorf(CodeValidation, "params.%s must be a non-empty string without '/'", field)
	}
	b.Write(v)
	return nil
}

// isNull reports whether b is the JSON null.
func isNull(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }

// plainString returns the contents of the JSON string s when it is
// printable ASCII without escapes, which is what decoding it would give.
func plainString(s []byte) ([]byte, bool) {
	if len(s) < 2 || s[0] != '"' {
		return nil, false
	}
	for _, c := range s[1 : len(s)-1] {
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return nil, false
		}
	}
	return s[1 : len(s)-1], true
}

// Allows reports whether the manifest grants p.
func (m *Manifest) Allows(p Permission) bool { return slices.Contains(m.Permissions, p) }

// OwnsStream reports whether stream is under one of the manifest's prefixes.
func (m *Manifest) OwnsStream(stream string) bool {
	for _, p := range m.Streams {
		if strings.HasPrefix(stream, p) {
			return true
		}
	}
	return false
}

// EmitsType returns the declared event type of that name.
func (m *Manifest) EmitsType(name string) (EventType, bool) {
	for _, e := range m.Events {
		if e.Name == name {
			return e, true
		}
	}
	return EventType{}, false
}

// Exceeds lists what m asks for beyond granted (the manifest recorded at
// install); empty when m stays within it. A client method counts as
// granted only with the same stream template.
func (m *Manifest) Exceeds(granted *Manifest) []string {
	var over []string
	for _, p := range m.Permissions {
		if !granted.Allows(p) {
			over = append(over, "permission "+string(p))
		}
	}
	for _, c := range m.Commands {
		if !slices.Contains(granted.Commands, c) {
			over = append(over, "command "+c)
		}
	}
	for _, s := range m.Streams {
		if !slices.ContainsFunc(granted.Streams, func(g string) bool { return strings.HasPrefix(s, g) }) {
			over = append(over, "stream prefix "+s)
		}
	}
	for _, e := range m.Events {
		if g, ok := granted.EmitsType(e.Name); !ok || g.Durable != e.Durable {
			over = append(over, "event type "+e.Name)
		}
	}
	for _, s := range m.Subscribes {
		if !slices.Contains(granted.Subscribes, s) && !slices.Contains(granted.Subscribes, "*") {
			over = append(over, "subscription "+s)
		}
	}
	for _, q := range m.Queries {
		if !slices.Contains(granted.Queries, q) {
			over = append(over, "query "+q)
		}
	}
	for _, c := range m.Client {
		if !slices.Contains(granted.Client, c) { // a changed stream template is a different method
			over = append(over, "client method "+c.Name)
		}
	}
	return over
}

// Command is a request routed to the plugin that owns its name.
type Command struct {
	Name    string
	Stream  string // commands on one stream are serialised by the kernel
	Company string
	Actor   string
	Payload json.RawMessage
	// Version is the stream's durable version when the handler runs; the
	// events it returns are appended only if the stream is still there.
	Version uint64
	// Device identifies the session (one device of the actor) that sent
	// the command over the session protocol; empty from the REST API. A
	// handler addresses an ephemeral answer to that device alone with
	// NewEvent.Device.
	Device string
}

// NewEvent is an event a plugin decides; the kernel fills in the envelope.
type NewEvent struct {
	Type     string
	Stream   string // defaults to the command's stream
	Audience []string
	// Payload is the kernel's once returned: an in-process plugin must
	// not change or reuse its bytes afterwards (the kernel keeps them
	// without a copy).
	Payload json.RawMessage
	// Seal, when set, names a company key (inside a stream prefix the
	// plugin owns, e.g. "chat/<channel>"; PermKeys): the kernel encrypts
	// Payload under it before the event is appended, and opens it again for
	// every reader while the key lives. Once the key is erased
	// (Kernel.EraseKey) the payload can never be read again, yet the
	// envelope (type, stream, actor, time, audience) stays and the hash
	// chain still verifies. The key belongs to the event's company: the
	// command's, or Company for events appended through Kernel.Append.
	// Ephemeral events never reach the log and are not sealed.
	Seal string
	// Device, for an ephemeral event, delivers it to that one device
	// (Command.Device) of its audience's user rather than to all their
	// devices: a WebRTC answer or ICE candidate belongs to one connection.
	// Durable events ignore it.
	Device string
	// Company is the company of an event a plugin appends or publishes
	// through the Kernel API, where no command supplies one (a command's
	// events are its company's, whatever this says). Sessions receive only
	// their own company's events. A plugin serves the whole appliance (the
	// operator installs it for every company), so it may name any: its
	// manifest bounds what it does (types, streams, keys, permissions),
	// not for which company.
	Company string
	// Expect is the version the event's stream must be at (the number of
	// events it holds): if another event got there first, nothing is
	// appended. Through Kernel.Append the append fails with code conflict,
	// so a plugin deciding on its own (a timer) never overrides a command
	// decided meanwhile. A command's events on its own stream ignore it
	// (the kernel expects the version the command was decided at); on
	// another stream it holds them to the state they were decided on too,
	// and a conflict has the command decided again, as one on its own
	// stream does.
	Expect *uint64
}

// Event is a durable event as delivered to plugins.
type Event struct {
	Seq      uint64
	ID       string
	Time     time.Time
	Type     string
	Stream   string
	Version  uint64
	Company  string
	Actor    string
	Audience []string
	Payload  json.RawMessage
	// Erased is true for a sealed event whose key was erased: Payload is
	// empty and cannot be recovered.
	Erased bool
}

// Query asks a plugin for data, on behalf of an actor; it changes nothing.
type Query struct {
	Name    string
	Company string
	Actor   string
	Payload json.RawMessage
}

// Plugin is what every plugin implements: it describes itself.
type Plugin interface {
	Manifest() Manifest
}

// CommandHandler is implemented by plugins that own commands. It decides
// the events a command produces, or refuses it with an *Error. It may be
// called again for the same command if the stream moved on meanwhile.
type CommandHandler interface {
	HandleCommand(ctx context.Context, cmd Command) ([]NewEvent, error)
}

// QueryHandler is implemented by plugins that answer queries (the
// manifest's Queries). The answer is JSON, or an *Error.
type QueryHandler interface {
	HandleQuery(ctx context.Context, q Query) (json.RawMessage, error)
}

// EventApplier is implemented by plugins that subscribe to events. Events
// arrive in seq order, in batches, at least once: after a crash or restart
// events since the last saved cursor are delivered again. Returning an
// error means "not now": the same batch comes again after a pause
// (doubling from 100 ms to 5 s); the plugin keeps running.
type EventApplier interface {
	ApplyEvents(ctx context.Context, events []Event) error
}

// Starter is implemented by plugins that need the kernel API or set-up.
// Start is called once per activation, before any command or event.
type Starter interface {
	Start(ctx context.Context, k Kernel) error
}

// Stopper is implemented by plugins that clean up. Stop has a deadline;
// past it an out-of-process plugin is killed.
type Stopper interface {
	Stop(ctx context.Context) error
}

// Aborter is implemented by in-process plugins that keep something open
// for their next activation. When the host kills an in-process
// activation (after a panic, a call past its deadline, or a failed Start)
// it calls Abort instead of Stop: the plugin ends its own goroutines, as Stop does, but
// may leave open what the next activation takes over (a socket, the media
// of live calls). If no next activation starts (the plugin is marked
// failed, or the kernel stops first), the host calls the aborted
// plugin's Stop. A plugin process that is killed ends whole: Abort is
// never called on one.
type Aborter interface {
	Abort(ctx context.Context) error
}

// Kernel is the narrow API a plugin calls back through. Each method needs
// the matching permission in the manifest; a refusal is an *Error with
// code permission_denied.
type Kernel interface {
	// Append appends durable events to streams the plugin owns (PermAppend).
	Append(ctx context.Context, events []NewEvent) ([]Event, error)
	// ReadLog reads up to limit events from seq from on (PermRead).
	ReadLog(ctx context.Context, from uint64, limit int) ([]Event, error)
	// Publish publishes an ephemeral event (PermPublish).
	Publish(ctx context.Context, e NewEvent) error
	// KVGet, KVPut and KVDelete use the plugin's own durable key/value
	// store (PermKV). Values are limited to 64 KiB.
	KVGet(ctx context.Context, key string) ([]byte, bool, error)
	KVPut(ctx context.Context, key string, value []byte) error
	KVDelete(ctx context.Context, key string) error
	// EraseKey destroys a company key events were sealed under (PermKeys;
	// the name must be inside a stream prefix the plugin owns). Every
	// payload sealed under it becomes unreadable, for good; the kernel
	// appends a kernel.key.erased event. Erasing an absent key is not an
	// error, so a plugin can call it again after a restart.
	EraseKey(ctx context.Context, company, name string) error
}

// Need returns a permission_denied *Error unless m grants p.
func (m *Manifest) Need(p Permission) error {
	if !m.Allows(p) {
		return Errorf(CodePermissionDenied, "plugin %s has no %s permission", m.ID, p)
	}
	return nil
}

// CheckAppend returns a permission_denied *Error unless m lets its plugin
// append e through the kernel API: the permission, a declared durable
// type, an owned stream, a payload that does not pass for a sealed one
// (HasSealedKey) and, with Seal set, CheckKey.
func (m *Manifest) CheckAppend(e NewEvent) error {
	if err := m.Need(PermAppend); err != nil {
		return err
	}
	if t, ok := m.EmitsType(e.Type); !ok || !t.Durable {
		return Errorf(CodePermissionDenied, "plugin %s does not declare durable event type %q", m.ID, e.Type)
	}
	if !m.OwnsStream(e.Stream) {
		return Errorf(CodePermissionDenied, "plugin %s does not own stream %q", m.ID, e.Stream)
	}
	return m.checkPayload(e)
}

// CheckKey returns a permission_denied *Error unless m lets its plugin
// seal payloads under the company key name and erase it: PermKeys, and a
// name inside a stream prefix it owns.
func (m *Manifest) CheckKey(name string) error {
	if err := m.Need(PermKeys); err != nil {
		return err
	}
	if !m.OwnsStream(name) {
		return Errorf(CodePermissionDenied, "plugin %s may not use key %q: it is outside the stream prefixes it owns", m.ID, name)
	}
	return nil
}

// checkPayload refuses a payload that would pass for a sealed one, and a
// Seal the plugin may not use.
func (m *Manifest) checkPayload(e NewEvent) error {
	if HasSealedKey(e.Payload) {
		return Errorf(CodePermissionDenied, "plugin %s wrote a payload with a top-level %q key: only the kernel seals payloads", m.ID, SealedKey)
	}
	if e.Seal != "" {
		return m.CheckKey(e.Seal)
	}
	return nil
}

// CheckPublish returns a permission_denied *Error unless m lets its plugin
// publish the ephemeral event e.
func (m *Manifest) CheckPublish(e NewEvent) error {
	if err := m.Need(PermPublish); err != nil {
		return err
	}
	if t, ok := m.EmitsType(e.Type); !ok || t.Durable {
		return Errorf(CodePermissionDenied, "plugin %s does not declare ephemeral event type %q", m.ID, e.Type)
	}
	return nil
}

// CheckDecided returns a permission_denied *Error unless the events a
// command handler decided for cmd are declared and go to streams the
// plugin owns (an event without a stream goes to the command's, which the
// caller chose: it must be owned too), with payloads and seals checked as
// by CheckAppend.
func (m *Manifest) CheckDecided(cmd Command, evs []NewEvent) error {
	for _, e := range evs {
		if _, ok := m.EmitsType(e.Type); !ok {
			return Errorf(CodePermissionDenied, "plugin %s emitted undeclared event type %q", m.ID, e.Type)
		}
		stream := e.Stream
		if stream == "" {
			stream = cmd.Stream
		}
		if !m.OwnsStream(stream) {
			return Errorf(CodePermissionDenied, "plugin %s may not write stream %q", m.ID, stream)
		}
		if err := m.checkPayload(e); err != nil {
			return err
		}
	}
	return nil
}

// MatchesTopic reports whether an event type belongs to a subscription
// topic: the type itself, a prefix of it at a dot ("channel" matches
// "channel.message.sent"), or "*" for everything.
func MatchesTopic(topic, eventType string) bool {
	if topic == "*" || eventType == topic {
		return true
	}
	return len(eventType) > len(topic) && eventType[len(topic)] == '.' && strings.HasPrefix(eventType, topic)
}

// Subscribed reports whether the manifest's subscriptions include eventType.
func (m *Manifest) Subscribed(eventType string) bool {
	return slices.ContainsFunc(m.Subscribes, func(t string) bool { return MatchesTopic(t, eventType) })
}
