package session

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/plugins"
)

// callTimeout bounds one plugin method call.
const callTimeout = 10 * time.Second

// call runs a plugin's client method (kernel.ClientRoute) for the
// session's user: a query is answered with the plugin's JSON; a command
// with {seq, events}: the events it appended, as the pushes the session
// delivers, and the seq of the last one (0 when the command changed
// nothing). A client passes that seq as a query's minSeq to read its own
// writes. The device that sent the command is not pushed those events
// again; the user's other devices are. The actor is always the connected user and the
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
		// minSeq asks the plugin to have applied that event first: one
		// past the log's end never comes, and would hold the query (and
		// the plugin's catching up) until its time ran out.
		var fresh struct {
			MinSeq uint64 `json:"minSeq"`
		}
		if json.Unmarshal(params, &fresh) == nil && fresh.MinSeq > s.m.k.Log().Head() {
			return nil, kernel.Errorf(kernel.CodeValidation, "minSeq %d is past the newest event (%d)", fresh.MinSeq, s.m.k.Log().Head())
		}
		ans, err := s.m.k.Query(ctx, kernel.Query{Name: r.Name, Company: s.app, Actor: s.user, Payload: params})
		if err != nil {
			return nil, err
		}
		return json.RawMessage(ans), nil
	}
	evs, err := s.execute(ctx, r, params)
	if err != nil {
		return nil, err
	}
	// {seq, events: [push frames]}, encoded by hand in a pooled buffer: the
	// frames are the pushes as EncodePush writes them.
	bp := getBuffer()
	b := append((*bp)[:0], `{"seq":`...)
	var last uint64
	if len(evs) > 0 {
		last = evs[len(evs)-1].Seq
	}
	b = strconv.AppendUint(b, last, 10)
	b = append(b, `,"events":[`...)
	n := 0
	for i := range evs {
		if !slices.Contains(evs[i].Audience, s.user) {
			continue // not the user's to see (a marker on a stream, another user's cursor)
		}
		if !s.m.hub.Open(&evs[i]) {
			continue
		}
		if n++; n > 1 {
			b = append(b, ',')
		}
		b = AppendPush(b, &evs[i])
		s.answer(evs[i].Seq)
	}
	*bp = append(b, "]}"...)
	return pooledJSON{bp}, nil
}

// execute runs the client route r's command as this device of the
// connected user, on the stream its template names for params.
func (s *session) execute(ctx context.Context, r kernel.ClientRoute, params json.RawMessage) ([]eventlog.Event, error) {
	stream, err := plugins.ExpandStream(r.Stream, s.app, s.user, params)
	if err != nil {
		return nil, err
	}
	return s.m.k.Execute(ctx, kernel.Command{Name: r.Name, Stream: stream, Company: s.app, Actor: s.user, Device: s.device, Payload: params})
}
