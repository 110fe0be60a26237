package rest

import (
	"context"
	"encoding/json"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/sdkapi/directory"
)

// The REST API reaches plugins (the chat, the calls) the way a session
// does, through their client methods, as the company's API key
// ("apikey:<app_id>"); the plugin decides what the company may do.

// notRunning turns "nobody handles this name" into unavailable: what
// answers is a plugin, and while it is not running the API is not broken,
// only unavailable. what names the plugin for the message.
func notRunning(err error, what string) error {
	if e := kernel.AsError(err); e != nil && (e.Code == kernel.CodeUnknownCommand || e.Code == kernel.CodeUnknownQuery) {
		return kernel.Errorf(kernel.CodeUnavailable, "%s is not running", what)
	}
	return err
}

// pluginExecute runs the plugin command name for company c on the stream
// its client method's template names (so the REST API and sessions
// serialise alike) and returns the events it appended.
func (a *API) pluginExecute(ctx context.Context, c directory.Company, name, what string, payload any) ([]eventlog.Event, error) {
	r, ok := a.k.ClientRoute(name)
	if !ok || r.Query {
		return nil, kernel.Errorf(kernel.CodeUnavailable, "%s is not running", what)
	}
	p, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	actor := plugins.ActorAPIKeyPrefix + c.AppID
	stream, err := plugins.ExpandStream(r.Stream, c.AppID, actor, p)
	if err != nil {
		return nil, err
	}
	evs, err := a.k.Execute(ctx, kernel.Command{Name: name, Stream: stream, Company: c.AppID, Actor: actor, Payload: p})
	return evs, notRunning(err, what)
}

// pluginQuery asks the plugin query name for company c and decodes its
// answer into v. payload must be a JSON object; its minSeq is raised to
// the log's head, so the answer reflects every write answered before the
// request came, whoever made it (plugins apply events a moment after they
// are durable).
func (a *API) pluginQuery(ctx context.Context, c directory.Company, name, what string, payload any, v any) error {
	p, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(p, &fields); err != nil {
		return err
	}
	fields["minSeq"], _ = json.Marshal(a.k.Log().Head())
	if p, err = json.Marshal(fields); err != nil {
		return err
	}
	ans, err := a.k.Query(ctx, kernel.Query{Name: name, Company: c.AppID, Actor: plugins.ActorAPIKeyPrefix + c.AppID, Payload: p})
	if err != nil {
		return notRunning(err, what)
	}
	if err := json.Unmarshal(ans, v); err != nil {
		return kernel.Errorf(kernel.CodeInternal, "%s answered %s with %s: %v", what, name, ans, err)
	}
	return nil
}
