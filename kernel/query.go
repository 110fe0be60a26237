package kernel

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/parleyhq/parley/plugins"
)

// Query asks for data on behalf of an actor and changes nothing; the
// plugin contract's type, so handlers in and out of process see the same.
type Query = plugins.Query

// QueryHandler answers a query with JSON, or refuses it with a coded
// *Error. It must not change anything: a query is neither logged nor
// serialised with commands.
type QueryHandler interface {
	HandleQuery(ctx context.Context, q Query) (json.RawMessage, error)
}

// QueryHandlerFunc adapts a function to QueryHandler.
type QueryHandlerFunc func(ctx context.Context, q Query) (json.RawMessage, error)

// HandleQuery calls f.
func (f QueryHandlerFunc) HandleQuery(ctx context.Context, q Query) (json.RawMessage, error) {
	return f(ctx, q)
}

// HandleQuery registers the handler of a query name. A name has one owner,
// and names a query or a command (Handle), not both.
func (k *Kernel) HandleQuery(name string, h QueryHandler) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.freeNameLocked("query", name); err != nil {
		return err
	}
	k.queries[name] = h
	return nil
}

// Query asks the handler registered for q.Name. The answer is JSON (null
// when the handler returns none). Errors are *Error: unknown_query,
// payload_too_large (the limit commands have), unavailable while the
// kernel is not serving, internal_error when the handler panics or answers
// something that is not JSON, and the handler's own coded errors unchanged.
func (k *Kernel) Query(ctx context.Context, q Query) (json.RawMessage, error) {
	ans, err := k.query(ctx, q)
	k.metrics.queries.WithLabelValues(outcome(k, k.queries, q.Name, err)).Inc()
	if err != nil {
		return nil, AsError(err)
	}
	return ans, nil
}

func (k *Kernel) query(ctx context.Context, q Query) (json.RawMessage, error) {
	if !k.ready.Load() {
		return nil, Errorf(CodeUnavailable, "the kernel is not serving")
	}
	k.mu.RLock()
	h, ok := k.queries[q.Name]
	k.mu.RUnlock()
	if !ok {
		return nil, Errorf(CodeUnknownQuery, "no handler for query %q", q.Name)
	}
	if len(q.Payload) > k.cfg.EventLog.MaxPayloadBytes {
		return nil, Errorf(CodePayloadTooLarge, "query payload of %d bytes, the limit is %d", len(q.Payload), k.cfg.EventLog.MaxPayloadBytes)
	}
	ans, err := k.answer(ctx, h, q)
	switch {
	case err != nil:
		return nil, err
	case len(ans) == 0:
		return json.RawMessage("null"), nil
	case !json.Valid(ans):
		return nil, Errorf(CodeInternal, "handler of %s answered with invalid JSON", q.Name)
	}
	return ans, nil
}

// answer calls the handler, turning a panic into an internal error.
func (k *Kernel) answer(ctx context.Context, h QueryHandler, q Query) (ans json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			k.logger.Error("query handler panicked", "query", q.Name, "panic", p, "stack", string(debug.Stack()))
			ans, err = nil, Errorf(CodeInternal, "handler of %s failed", q.Name)
		}
	}()
	return h.HandleQuery(ctx, q)
}

// outcome returns the metric labels of a command or query: its name if
// names has it, "unknown" otherwise (callers choose names; they must not
// grow the label sets), and its result code, "ok" on success.
func outcome[H any](k *Kernel, names map[string]H, name string, err error) (string, string) {
	k.mu.RLock()
	_, ok := names[name]
	k.mu.RUnlock()
	if !ok {
		name = "unknown"
	}
	if err != nil {
		return name, string(AsError(err).Code)
	}
	return name, "ok"
}

// ClientRoute is a command or query that the session protocol lets a
// connected user call by name (a plugin's Manifest.Client). The session
// runs it with the user as the actor and the user's company: a query
// through Query, a command through Execute on the stream that
// plugins.ExpandStream makes of Stream and the call's params.
type ClientRoute struct {
	plugins.ClientMethod
	Query bool // a query (Kernel.Query); otherwise a command (Kernel.Execute)
}

// ExposeClient offers a command or query to users of the session protocol.
// Its name must already have a handler of that kind (Handle or
// HandleQuery); a command needs a stream template and a query takes none.
// A name is exposed once.
func (k *Kernel) ExposeClient(r ClientRoute) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.clients[r.Name]; ok {
		return fmt.Errorf("kernel: client method %s is already exposed", r.Name)
	}
	if r.Query {
		if _, ok := k.queries[r.Name]; !ok {
			return fmt.Errorf("kernel: client method %s: no query of that name has a handler", r.Name)
		}
		if r.Stream != "" {
			return fmt.Errorf("kernel: client method %s is a query: it takes no stream", r.Name)
		}
	} else {
		if _, ok := k.handlers[r.Name]; !ok {
			return fmt.Errorf("kernel: client method %s: no command of that name has a handler", r.Name)
		}
		if r.Stream == "" {
			return fmt.Errorf("kernel: client method %s is a command: it needs a stream template", r.Name)
		}
	}
	k.clients[r.Name] = r
	return nil
}

// WithdrawClient stops offering the named client methods; names not
// offered are ignored. The commands and queries themselves stay routed.
func (k *Kernel) WithdrawClient(names ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, n := range names {
		delete(k.clients, n)
	}
}

// ClientRoute returns the client method of that name, if it is offered.
func (k *Kernel) ClientRoute(name string) (ClientRoute, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	r, ok := k.clients[name]
	return r, ok
}

// ClientRoutes returns every offered client method, sorted by name.
func (k *Kernel) ClientRoutes() []ClientRoute {
	k.mu.RLock()
	out := make([]ClientRoute, 0, len(k.clients))
	for _, r := range k.clients {
		out = append(out, r)
	}
	k.mu.RUnlock()
	slices.SortFunc(out, func(a, b ClientRoute) int { return strings.Compare(a.Name, b.Name) })
	return out
}
