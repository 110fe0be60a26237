// Command crmlog is an example integrator plugin for Parley: it logs notes
// for a CRM and counts the events it sees. Build it with `go build`, install
// it with `kernel plugin install`, see README.md.
package main

import (
	"context"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/parleyhq/parley/plugins"
)

// CRMLog is the plugin. Its state (event counts) lives in the kernel's
// key/value store, so it survives restarts and crashes.
type CRMLog struct {
	k plugins.Kernel
}

// Compile-time guards: the optional interfaces this plugin implements.
var (
	_ plugins.CommandHandler = (*CRMLog)(nil)
	_ plugins.EventApplier   = (*CRMLog)(nil)
	_ plugins.Starter        = (*CRMLog)(nil)
)

// Manifest says what the plugin owns, hears and may do.
func (*CRMLog) Manifest() plugins.Manifest {
	return plugins.Manifest{
		ID:          "tool.acme.crmlog",
		Version:     "0.1.0",
		Protocol:    plugins.ProtocolVersion,
		Commands:    []string{"crmlog.note"},
		Subscribes:  []string{"crmlog", "demo"},
		Events:      []plugins.EventType{{Name: "crmlog.noted", Durable: true}},
		Permissions: []plugins.Permission{plugins.PermKV},
		Streams:     []string{"crmlog/"},
	}
}

// Start keeps the kernel API for later calls.
func (c *CRMLog) Start(_ context.Context, k plugins.Kernel) error {
	c.k = k
	return nil
}

// HandleCommand decides a crmlog.noted event for a crmlog.note command, or
// refuses it with a coded error.
func (c *CRMLog) HandleCommand(_ context.Context, cmd plugins.Command) ([]plugins.NewEvent, error) {
	var in struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(cmd.Payload, &in); err != nil {
		return nil, plugins.Errorf(plugins.CodeInvalidCommand, "payload must be {\"text\": ...}: %v", err)
	}
	if !strings.HasPrefix(cmd.Stream, "crmlog/") {
		return nil, plugins.Errorf(plugins.CodeInvalidCommand, "notes go to a crmlog/<customer> stream, not %q", cmd.Stream)
	}
	if n := utf8.RuneCountInString(in.Text); n == 0 || n > 2000 {
		return nil, plugins.Errorf(plugins.CodeInvalidCommand, "text must be 1..2000 characters, got %d", n)
	}
	out, _ := json.Marshal(map[string]any{"text": in.Text, "note": cmd.Version + 1, "by": cmd.Actor})
	return []plugins.NewEvent{{Type: "crmlog.noted", Payload: out}}, nil
}

// counts is kept under one key so it changes atomically.
type counts struct {
	ByType  map[string]int `json:"by_type"`
	LastSeq uint64         `json:"last_seq"`
}

// ApplyEvents counts events by type. Delivery is at least once, so it
// skips what it has already counted.
func (c *CRMLog) ApplyEvents(ctx context.Context, evs []plugins.Event) error {
	cur := counts{ByType: map[string]int{}}
	if v, ok, err := c.k.KVGet(ctx, "counts"); err != nil {
		return err
	} else if ok {
		if err := json.Unmarshal(v, &cur); err != nil {
			return err
		}
	}
	for _, e := range evs {
		if e.Seq <= cur.LastSeq {
			continue
		}
		cur.ByType[e.Type]++
		cur.LastSeq = e.Seq
	}
	b, _ := json.Marshal(cur)
	return c.k.KVPut(ctx, "counts", b)
}

func main() {
	plugins.Serve(&CRMLog{})
}
