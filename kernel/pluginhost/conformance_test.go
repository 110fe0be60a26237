package pluginhost_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/parleyhq/parley/plugins"
)

// confPlugin is the plugin the conformance suite runs, in process and out
// of process (the test binary re-executes itself as it).
type confPlugin struct {
	mode    string
	k       plugins.Kernel
	refused int
}

const confID = "test.conformance"

var confManifest = plugins.Manifest{
	ID: confID, Version: "1.0.0", Protocol: plugins.ProtocolVersion,
	Commands:   []string{"conf.add", "conf.fail", "conf.sneak", "conf.shout", "conf.kv", "conf.read", "conf.panic"},
	Subscribes: []string{"conf.added"},
	Events: []plugins.EventType{
		{Name: "conf.added", Durable: true}, {Name: "conf.applied", Durable: true}, {Name: "conf.ping", Durable: false},
	},
	Permissions: []plugins.Permission{plugins.PermAppend, plugins.PermRead, plugins.PermKV},
	Streams:     []string{"conf/"},
	Queries:     []string{"conf.get", "conf.refuse", "conf.boom"},
	Client:      []plugins.ClientMethod{{Name: "conf.add", Stream: "conf/{company}/{actor}"}, {Name: "conf.get"}},
}

var (
	_ plugins.CommandHandler = (*confPlugin)(nil)
	_ plugins.QueryHandler   = (*confPlugin)(nil)
	_ plugins.EventApplier   = (*confPlugin)(nil)
	_ plugins.Starter        = (*confPlugin)(nil)
)

func (p *confPlugin) Manifest() plugins.Manifest {
	m := confManifest
	switch p.mode { // ask for more than the install granted
	case "greedy":
		m.Permissions = append([]plugins.Permission{plugins.PermPublish}, m.Permissions...)
	case "nosy":
		m.Queries = slices.Concat(m.Queries, []string{"conf.secret"})
		m.Client = slices.Concat(m.Client, []plugins.ClientMethod{{Name: "conf.secret"}})
	}
	return m
}

func (p *confPlugin) Start(_ context.Context, k plugins.Kernel) error {
	p.k = k
	fmt.Fprintln(os.Stderr, "conformance plugin started") // must reach the kernel's log, tagged
	return nil
}

// slowPlugin applies events slowly, to show it holds up nobody else.
type slowPlugin struct{}

func (slowPlugin) Manifest() plugins.Manifest {
	return plugins.Manifest{ID: "test.slow", Version: "1", Protocol: plugins.ProtocolVersion, Subscribes: []string{"conf.added"}}
}

func (slowPlugin) ApplyEvents(context.Context, []plugins.Event) error {
	time.Sleep(150 * time.Millisecond)
	return nil
}

func (p *confPlugin) HandleCommand(ctx context.Context, cmd plugins.Command) ([]plugins.NewEvent, error) {
	switch cmd.Name {
	case "conf.add":
		switch string(cmd.Payload) {
		case `"slow"`: // 300 ms, whatever its context says
			say("conf.add slow begins")
			time.Sleep(300 * time.Millisecond)
			say("conf.add slow ends")
		case `"mark"`:
			say("conf.add mark")
		}
		return []plugins.NewEvent{{Type: "conf.added", Payload: cmd.Payload}}, nil
	case "conf.fail":
		return nil, plugins.Errorf("conf_refused", "refused %s", cmd.Payload)
	case "conf.sneak":
		_, err := p.k.Append(ctx, []plugins.NewEvent{{Type: "conf.added", Stream: "other/1", Payload: json.RawMessage(`{}`)}})
		return nil, err
	case "conf.shout":
		return nil, p.k.Publish(ctx, plugins.NewEvent{Type: "conf.ping", Stream: "conf/x"})
	case "conf.kv":
		if err := p.k.KVPut(ctx, "key", cmd.Payload); err != nil {
			return nil, err
		}
		v, ok, err := p.k.KVGet(ctx, "key")
		if err != nil || !ok {
			return nil, fmt.Errorf("kv get: %v %v", ok, err)
		}
		return []plugins.NewEvent{{Type: "conf.added", Payload: v}}, nil
	case "conf.read":
		evs, err := p.k.ReadLog(ctx, 1, 5)
		if err != nil {
			return nil, err
		}
		return []plugins.NewEvent{{Type: "conf.added", Payload: json.RawMessage(strconv.Itoa(len(evs)))}}, nil
	case "conf.panic":
		panic("conformance plugin asked to panic")
	}
	return nil, errors.New("unreachable")
}

// HandleQuery answers conf.get with what it was asked, by whom; the other
// queries fail, each its own way.
func (p *confPlugin) HandleQuery(_ context.Context, q plugins.Query) (json.RawMessage, error) {
	switch q.Name {
	case "conf.get":
		return json.Marshal(map[string]any{"company": q.Company, "actor": q.Actor, "asked": q.Payload})
	case "conf.refuse":
		return nil, plugins.Errorf("conf_refused", "refused %s", q.Payload)
	case "conf.boom":
		panic("conformance plugin asked to panic in a query")
	}
	return nil, errors.New("unreachable")
}

// ApplyEvents records every batch it is given as a conf.applied event, so
// the test can check what was applied, in which order, across crashes.
func (p *confPlugin) ApplyEvents(ctx context.Context, evs []plugins.Event) error {
	if p.mode == "flaky" && p.refused < 2 { // "not now", twice
		p.refused++
		return plugins.Errorf("not_now", "try again later")
	}
	seqs := make([]uint64, len(evs))
	for i, e := range evs {
		if e.Type != "conf.added" {
			return fmt.Errorf("delivered %s, not subscribed", e.Type)
		}
		seqs[i] = e.Seq
	}
	b, _ := json.Marshal(map[string]any{"seqs": seqs})
	_, err := p.k.Append(ctx, []plugins.NewEvent{{Type: "conf.applied", Stream: "conf/applied", Payload: b}})
	return err
}

// say writes line to the plugin's stderr, which the kernel's log gets,
// when the plugin runs in its own process.
func say(line string) {
	if _, child := os.LookupEnv("CONFORMANCE_PLUGIN_MODE"); child {
		fmt.Fprintln(os.Stderr, line)
	}
}

// servePluginIfAsked turns the test binary into the conformance plugin
// (or one of its misbehaving variants) when the host launches it.
func servePluginIfAsked() {
	mode, ok := os.LookupEnv("CONFORMANCE_PLUGIN_MODE")
	if !ok {
		return
	}
	switch mode {
	case "stdout":
		fmt.Println("hello from a plugin that prints before the handshake")
	case "hang":
		time.Sleep(time.Hour)
	}
	plugins.Serve(&confPlugin{mode: mode})
	os.Exit(0)
}
