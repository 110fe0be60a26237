package kernel_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/plugins"
)

// lookup answers note.lookup with who asked and what; other names let the
// test reach each error path.
var lookup = kernel.QueryHandlerFunc(func(_ context.Context, q kernel.Query) (json.RawMessage, error) {
	switch string(q.Payload) {
	case `"refuse"`:
		return nil, kernel.Errorf("note_hidden", "note %s is hidden", q.Payload)
	case `"panic"`:
		panic("query handler bug")
	case `"garbage"`:
		return json.RawMessage(`{"unclosed":`), nil
	case `"nothing"`:
		return nil, nil
	}
	return json.Marshal(map[string]any{"company": q.Company, "actor": q.Actor, "asked": q.Payload})
})

func TestQuery(t *testing.T) {
	k := start(t, t.TempDir(), func(k *kernel.Kernel) {
		if err := k.HandleQuery("note.lookup", lookup); err != nil {
			t.Fatal(err)
		}
	})
	ctx := context.Background()
	ans, err := k.Query(ctx, kernel.Query{Name: "note.lookup", Company: "acme", Actor: "alice", Payload: json.RawMessage(`"n1"`)})
	if err != nil || string(ans) != `{"actor":"alice","asked":"n1","company":"acme"}` {
		t.Fatalf("answer %s, %v", ans, err)
	}
	if ans, err := k.Query(ctx, kernel.Query{Name: "note.lookup", Payload: json.RawMessage(`"nothing"`)}); err != nil || string(ans) != "null" {
		t.Fatalf("empty answer %q, %v", ans, err)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", 2<<20) + `"`)
	for _, c := range []struct {
		name    string
		q       kernel.Query
		code    kernel.Code
		message string
	}{
		{"unknown query", kernel.Query{Name: "note.nope"}, kernel.CodeUnknownQuery, `no handler for query "note.nope"`},
		{"a command's name", kernel.Query{Name: "note.add"}, kernel.CodeUnknownQuery, ""},
		{"refused by handler", kernel.Query{Name: "note.lookup", Payload: json.RawMessage(`"refuse"`)}, "note_hidden", `note "refuse" is hidden`},
		{"handler panics", kernel.Query{Name: "note.lookup", Payload: json.RawMessage(`"panic"`)}, kernel.CodeInternal, ""},
		{"answer is not JSON", kernel.Query{Name: "note.lookup", Payload: json.RawMessage(`"garbage"`)}, kernel.CodeInternal, ""},
		{"payload too large", kernel.Query{Name: "note.lookup", Payload: big}, kernel.CodePayloadTooLarge, ""},
	} {
		_, err := k.Query(ctx, c.q)
		var ke *kernel.Error
		if !errors.As(err, &ke) || ke.Code != c.code || (c.message != "" && ke.Message != c.message) {
			t.Errorf("%s: got %v, want code %s", c.name, err, c.code)
		}
	}
	want := map[string]float64{
		"note.lookup internal_error": 2, "note.lookup note_hidden": 1, "note.lookup ok": 2,
		"note.lookup payload_too_large": 1, "unknown unknown_query": 2,
	}
	if got := queryCounts(t, k); !maps.Equal(got, want) {
		t.Fatalf("parley_kernel_queries_total %v, want %v", got, want)
	}
}

// queryCounts reads parley_kernel_queries_total as "query code" → count.
func queryCounts(t *testing.T, k *kernel.Kernel) map[string]float64 {
	t.Helper()
	mfs, err := k.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "parley_kernel_queries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out[l["query"]+" "+l["code"]] = m.GetCounter().GetValue()
		}
	}
	return out
}

func TestQueryNotServing(t *testing.T) {
	k, err := kernel.Open(testConfig(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close(context.Background(), "test")
	k.HandleQuery("note.lookup", lookup)
	if _, err := k.Query(context.Background(), kernel.Query{Name: "note.lookup"}); plugins.AsCoded(err).Code != kernel.CodeUnavailable {
		t.Fatalf("query before Start: %v", err)
	}
}

// TestOneOwnerPerName: a name is one command or one query.
func TestOneOwnerPerName(t *testing.T) {
	start(t, t.TempDir(), func(k *kernel.Kernel) {
		for _, c := range []struct {
			name string
			err  error
			ok   bool
		}{
			{"command", k.Handle("note.add", notes), true},
			{"query", k.HandleQuery("note.lookup", lookup), true},
			{"query twice", k.HandleQuery("note.lookup", lookup), false},
			{"query named like a command", k.HandleQuery("note.add", lookup), false},
			{"command named like a query", k.Handle("note.lookup", notes), false},
			{"empty query name", k.HandleQuery("", lookup), false},
		} {
			if (c.err == nil) != c.ok {
				t.Errorf("%s: %v", c.name, c.err)
			}
		}
	})
}

func TestClientRoutes(t *testing.T) {
	k := start(t, t.TempDir(), func(k *kernel.Kernel) {
		k.EventTypes().Declare(noteTypes...)
		k.Handle("note.add", notes)
		k.HandleQuery("note.lookup", lookup)
	})
	add := kernel.ClientRoute{ClientMethod: plugins.ClientMethod{Name: "note.add", Stream: "notes/{company}/{actor}"}}
	get := kernel.ClientRoute{ClientMethod: plugins.ClientMethod{Name: "note.lookup"}, Query: true}
	for _, c := range []struct {
		name string
		r    kernel.ClientRoute
		ok   bool
	}{
		{"command", add, true},
		{"query", get, true},
		{"twice", add, false},
		{"no handler", kernel.ClientRoute{ClientMethod: plugins.ClientMethod{Name: "note.other", Stream: "notes/x"}}, false},
		{"a command as a query", kernel.ClientRoute{ClientMethod: plugins.ClientMethod{Name: "note.add"}, Query: true}, false},
		{"a query as a command", kernel.ClientRoute{ClientMethod: plugins.ClientMethod{Name: "note.lookup", Stream: "notes/x"}}, false},
	} {
		k.WithdrawClient("note.add", "note.lookup", "note.other") // each case starts with none
		err := k.ExposeClient(c.r)
		if c.name == "twice" {
			err = k.ExposeClient(c.r)
		}
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if err := errors.Join(k.ExposeClient(get), k.ExposeClient(add)); err != nil {
		t.Fatal(err)
	}
	if r, ok := k.ClientRoute("note.add"); !ok || r != add {
		t.Fatalf("note.add: %+v %v", r, ok)
	}
	if _, ok := k.ClientRoute("note.other"); ok {
		t.Fatal("a refused route is offered")
	}
	if got := k.ClientRoutes(); !slices.Equal(got, []kernel.ClientRoute{add, get}) {
		t.Fatalf("routes %+v", got)
	}
	k.WithdrawClient("note.add", "never.exposed")
	if _, ok := k.ClientRoute("note.add"); ok {
		t.Fatal("withdrawn route still offered")
	}
	if got := k.ClientRoutes(); !slices.Equal(got, []kernel.ClientRoute{get}) {
		t.Fatalf("routes after withdrawal %+v", got)
	}
	// Withdrawn from users, the command is still routed for everyone else.
	if _, err := k.Execute(context.Background(), noteCmd("notes/1", "still here")); err != nil {
		t.Fatal(err)
	}
}
