package session

import (
	"context"
	"encoding/json"
	"time"

	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/plugins"
)

// callTimeout bounds one plugin method call.
const callTimeout = 10 * time.Second

// CommandResult answers a plugin command: the events it appended, as the
// pushes the session would deliver, and the seq of the last one (0 when
// the command changed nothing). A client passes that seq as a query's
// minSeq to read its own writes.
type CommandResult struct {
	Seq    uint64 `json:"seq"`
	Events []Push `json:"events"`
}

// call runs a plugin's client method (kernel.ClientRoute) for the
// session's user: a query is answered with the plugin's JSON, a command
// with a CommandResult. The actor is always the connected user and the
// company theirs; the plugin authorises.
func (s *session) call(req Request) (any, error) {
	r, ok := s.m.k.ClientRoute(req.Method)
	if !ok {
		return nil, kernel.Errorf(CodeUnknownMethod, "no method %q", req.Method)
	}
	params := req.Params
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	ctx, cancel := context.WithTimeout(s.m.base, callTimeout)
	defer cancel()
	if r.Query {
		ans, err := s.m.k.Query(ctx, kernel.Query{Name: r.Name, Company: s.app, Actor: s.user, Payload: params})
		if err != nil {
			return nil, err
		}
		return json.RawMessage(ans), nil
	}
	stream, err := plugins.ExpandStream(r.Stream, s.app, s.user, params)
	if err != nil {
		return nil, err
	}
	evs, err := s.m.k.Execute(ctx, kernel.Command{Name: r.Name, Stream: stream, Company: s.app, Actor: s.user, Payload: params})
	if err != nil {
		return nil, err
	}
	res := CommandResult{Events: make([]Push, 0, len(evs))}
	for i := range evs {
		res.Seq = evs[i].Seq
		if ev, ok := s.m.hub.Open(&evs[i]); ok {
			res.Events = append(res.Events, pushOf(ev))
		}
	}
	return res, nil
}
