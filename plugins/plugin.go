package plugins

import (
	"context"
	"encoding/json"
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
)

// EventType is an event type a plugin emits, durable (logged) or
// ephemeral (bus only).
type EventType struct {
	Name    string `json:"name"`
	Durable bool   `json:"durable"`
}

// Manifest describes a plugin: who it is and everything it may do. The
// kernel routes and refuses according to it.
type Manifest struct {
	ID          string       `json:"id"`          // reverse-dotted: "tool.acme.poll"
	Version     string       `json:"version"`     // the plugin's own version
	Protocol    int          `json:"protocol"`    // ProtocolVersion it was built against
	Commands    []string     `json:"commands"`    // command names it owns (exact)
	Subscribes  []string     `json:"subscribes"`  // topics it receives: a family ("channel"), a type, or "*"
	Events      []EventType  `json:"events"`      // event types it emits
	Permissions []Permission `json:"permissions"` // kernel API it calls
	Streams     []string     `json:"streams"`     // stream prefixes it appends to ("poll/")
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
		case PermAppend, PermRead, PermPublish, PermKV:
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
	for _, c := range m.Commands {
		if c == "" {
			return fmt.Errorf("plugin %s: empty command name", m.ID)
		}
	}
	return nil
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
// install); empty when m stays within it.
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
}

// NewEvent is an event a plugin decides; the kernel fills in the envelope.
type NewEvent struct {
	Type     string
	Stream   string // defaults to the command's stream
	Audience []string
	Payload  json.RawMessage
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
// type, an owned stream.
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
// caller chose: it must be owned too).
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
