package pluginhost

import (
	"context"
	"encoding/json"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/plugins"
)

// api is the kernel API of one activation of a plugin: every call is
// checked against the plugin's granted manifest, and refused once that
// activation has ended.
type api struct {
	m *managed
	c conn
}

var _ plugins.Kernel = api{}

// grant returns the manifest to check against, or an error once the
// activation is over.
func (a api) grant() (*plugins.Manifest, error) {
	select {
	case <-a.c.Exited():
		return nil, plugins.Errorf(plugins.CodeUnavailable, "plugin %s: this activation has ended", a.m.id)
	default:
	}
	return a.m.grant(), nil
}

// maxRead caps one ReadLog call.
const maxRead = 1000

// check logs a refusal, tagged with the plugin id, and returns it.
func (a api) check(err error) error {
	if err != nil {
		a.m.logger.Warn("plugin refused", "reason", plugins.AsCoded(err).Message)
	}
	return err
}

func (a api) need(p plugins.Permission) error {
	g, err := a.grant()
	if err != nil {
		return err
	}
	return a.check(g.Need(p))
}

func (a api) Append(ctx context.Context, evs []plugins.NewEvent) ([]plugins.Event, error) {
	g, err := a.grant()
	if err != nil {
		return nil, err
	}
	drafts := make([]eventlog.Draft, 0, len(evs))
	for _, e := range evs {
		if err := a.check(g.CheckAppend(e)); err != nil {
			return nil, err
		}
		// The event's company (NewEvent.Company) owns its key.
		payload, err := a.m.h.k.SealPayload(ctx, e.Company, e)
		if err != nil {
			return nil, a.m.h.coded(err)
		}
		d := eventlog.Draft{Type: e.Type, Stream: e.Stream, Company: e.Company, Actor: a.m.actor(), Audience: e.Audience, Payload: payload}
		if e.Expect != nil {
			d.Expect = eventlog.ExpectVersion(*e.Expect)
		}
		drafts = append(drafts, d)
	}
	appended, err := a.m.h.k.Log().Append(ctx, drafts...)
	if err != nil {
		return nil, a.m.h.coded(err)
	}
	out := make([]plugins.Event, len(appended))
	for i := range appended {
		out[i] = toPluginEvent(appended[i])
		out[i].Payload = evs[i].Payload // what the plugin sealed, opened
	}
	return out, nil
}

func (a api) ReadLog(ctx context.Context, from uint64, limit int) ([]plugins.Event, error) {
	if err := a.need(plugins.PermRead); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > maxRead {
		limit = maxRead
	}
	out := make([]plugins.Event, 0, limit)
	head := a.m.h.k.Log().Head()
	if from == 0 {
		from = 1
	}
	if from > head {
		return out, nil
	}
	to := min(head, from+uint64(limit)-1)
	err := a.m.h.k.Log().Read(ctx, from, to, func(e eventlog.Event) error {
		pe, err := a.m.h.pluginEvent(e)
		out = append(out, pe)
		return err
	})
	if err != nil {
		return nil, a.m.h.coded(err)
	}
	return out, nil
}

func (a api) Publish(_ context.Context, e plugins.NewEvent) error {
	g, err := a.grant()
	if err != nil {
		return err
	}
	if err := a.check(g.CheckPublish(e)); err != nil {
		return err
	}
	return a.m.h.k.Bus().PublishEphemeral(kernel.EphemeralEvent(e, e.Company, a.m.actor()))
}

func (a api) namespace() string { return "plugin/" + a.m.id }

func (a api) KVGet(_ context.Context, key string) ([]byte, bool, error) {
	if err := a.need(plugins.PermKV); err != nil {
		return nil, false, err
	}
	v, ok, err := a.m.h.k.Log().GetState(a.namespace(), key)
	return v, ok, a.m.h.coded(err)
}

func (a api) KVPut(ctx context.Context, key string, value []byte) error {
	if err := a.need(plugins.PermKV); err != nil {
		return err
	}
	return a.m.h.coded(a.m.h.k.Log().PutState(ctx, a.namespace(), key, value))
}

func (a api) KVDelete(ctx context.Context, key string) error {
	if err := a.need(plugins.PermKV); err != nil {
		return err
	}
	return a.m.h.coded(a.m.h.k.Log().DeleteState(ctx, a.namespace(), key))
}

func (a api) EraseKey(ctx context.Context, company, name string) error {
	g, err := a.grant()
	if err != nil {
		return err
	}
	if err := a.check(g.CheckKey(name)); err != nil {
		return err
	}
	return a.m.h.coded(a.m.h.k.EraseKey(ctx, company, name, a.m.actor()))
}

// pluginEvent is e as a plugin receives it: opened, or erased.
func (h *Host) pluginEvent(e eventlog.Event) (plugins.Event, error) {
	opened, erased, err := h.k.OpenEvent(e)
	if err != nil {
		return plugins.Event{}, err
	}
	pe := toPluginEvent(opened)
	pe.Erased = erased
	return pe, nil
}

// toPluginEvent converts e as it is, sealed or not (see pluginEvent).
func toPluginEvent(e eventlog.Event) plugins.Event {
	return plugins.Event{
		Seq: e.Seq, ID: e.ID.String(), Time: e.Time, Type: e.Type, Stream: e.Stream, Version: e.Version,
		Company: e.Company, Actor: e.Actor, Audience: e.Audience, Payload: json.RawMessage(e.Payload),
	}
}
