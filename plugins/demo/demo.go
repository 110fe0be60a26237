// Package demo is the built-in plugin behind the kernel's demo page: it
// owns the demo.echo command, counts the echoes it has seen and answers
// the demo.tally query with the count. Both are client methods: a user of
// the session protocol can echo (on their own stream,
// demo/<company>/<user>) and ask for the tally. It runs out of process (the
// kernel re-executes itself as `kernel plugin serve parley.demo`) unless
// the operator chooses in-process.
package demo

import (
	"context"
	"encoding/json"
	"unicode/utf8"

	"github.com/parleyhq/parley/plugins"
)

// ID is the plugin's id.
const ID = "parley.demo"

// Plugin is the demo plugin.
type Plugin struct {
	k plugins.Kernel
}

// New returns the plugin.
func New() plugins.Plugin { return &Plugin{} }

var (
	_ plugins.CommandHandler = (*Plugin)(nil)
	_ plugins.QueryHandler   = (*Plugin)(nil)
	_ plugins.EventApplier   = (*Plugin)(nil)
	_ plugins.Starter        = (*Plugin)(nil)
)

// Manifest describes the plugin.
func (*Plugin) Manifest() plugins.Manifest {
	return plugins.Manifest{
		ID: ID, Version: "1.0.0", Protocol: plugins.ProtocolVersion,
		Commands:    []string{"demo.echo"},
		Subscribes:  []string{"demo.echoed"},
		Events:      []plugins.EventType{{Name: "demo.echoed", Durable: true}, {Name: "demo.typing", Durable: false}},
		Permissions: []plugins.Permission{plugins.PermKV, plugins.PermPublish},
		Streams:     []string{"demo/"},
		Queries:     []string{"demo.tally"},
		Client: []plugins.ClientMethod{
			{Name: "demo.echo", Stream: "demo/{company}/{actor}"},
			{Name: "demo.tally"},
		},
	}
}

// Start keeps the kernel API.
func (p *Plugin) Start(_ context.Context, k plugins.Kernel) error {
	p.k = k
	return nil
}

// HandleCommand answers demo.echo with a demo.echoed event.
func (p *Plugin) HandleCommand(ctx context.Context, cmd plugins.Command) ([]plugins.NewEvent, error) {
	var in struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(cmd.Payload, &in); err != nil {
		return nil, plugins.Errorf(plugins.CodeInvalidCommand, "payload: %v", err)
	}
	if n := utf8.RuneCountInString(in.Text); n == 0 || n > 500 {
		return nil, plugins.Errorf(plugins.CodeInvalidCommand, "text must be 1..500 characters, got %d", n)
	}
	out, _ := json.Marshal(map[string]any{"text": in.Text, "echo_number": cmd.Version + 1})
	return []plugins.NewEvent{{Type: "demo.echoed", Payload: out}}, nil
}

// tally is what the plugin keeps in its key/value store: one value, so it
// changes atomically.
type tally struct {
	Echoes  int    `json:"echoes"`
	LastSeq uint64 `json:"last_seq"`
}

// load reads the tally; a plugin that has seen no echo has a zero one.
func (p *Plugin) load(ctx context.Context) (tally, error) {
	var t tally
	v, ok, err := p.k.KVGet(ctx, "tally")
	if err != nil || !ok {
		return t, err
	}
	return t, json.Unmarshal(v, &t)
}

// HandleQuery answers demo.tally with the echoes applied so far, e.g.
// {"echoes":3,"last_seq":42}. Delivery is asynchronous: an echo that was
// just answered may not be counted yet.
func (p *Plugin) HandleQuery(ctx context.Context, _ plugins.Query) (json.RawMessage, error) {
	t, err := p.load(ctx)
	if err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

// ApplyEvents counts echoes in the plugin's key/value store; the demo page
// shows the figure, proving delivery reached the plugin.
func (p *Plugin) ApplyEvents(ctx context.Context, evs []plugins.Event) error {
	t, err := p.load(ctx)
	if err != nil {
		return err
	}
	for _, e := range evs {
		if e.Seq > t.LastSeq { // delivery is at-least-once: count each event once
			t.Echoes++
			t.LastSeq = e.Seq
		}
	}
	b, _ := json.Marshal(t)
	return p.k.KVPut(ctx, "tally", b)
}
