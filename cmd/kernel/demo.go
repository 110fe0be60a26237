package main

import (
	_ "embed"
	"encoding/json"
	"net/http"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/plugins/demo"
	"github.com/parleyhq/parley/sdkapi/rest"
)

//go:embed demo.html
var demoPage []byte

// mountDemo adds the demo: a page at / that sends an echo command through
// the whole flow (the parley.demo plugin decides, the kernel appends, the
// plugin is delivered the event and counts it) and shows the log's newest
// events. It grows with the widget in later issues.
func mountDemo(k *kernel.Kernel, mux *http.ServeMux) error {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(demoPage)
	})
	mux.HandleFunc("GET /demo/state", func(w http.ResponseWriter, r *http.Request) {
		l := k.Log()
		head := l.Head()
		recent := []eventlog.Event{}
		from := uint64(1)
		if head > 20 {
			from = head - 19
		}
		if head > 0 {
			if err := l.Read(r.Context(), from, head, func(e eventlog.Event) error { recent = append(recent, e); return nil }); err != nil {
				rest.WriteError(w, err)
				return
			}
		}
		ready := "ready"
		if err := k.Ready(); err != nil {
			ready = err.Error()
		}
		var tally json.RawMessage
		if v, ok, _ := l.GetState("plugin/"+demo.ID, "tally"); ok {
			tally = v
		}
		rest.WriteJSON(w, http.StatusOK, map[string]any{"head": head, "ready": ready, "version": kernel.Version, "events": recent, "plugin_tally": tally})
	})
	mux.HandleFunc("POST /demo/echo", func(w http.ResponseWriter, r *http.Request) {
		body := http.MaxBytesReader(w, r.Body, 4096)
		var payload json.RawMessage
		if err := json.NewDecoder(body).Decode(&payload); err != nil {
			rest.WriteError(w, kernel.Errorf(kernel.CodeInvalidCommand, "body: %v", err))
			return
		}
		evs, err := k.Execute(r.Context(), kernel.Command{Name: "demo.echo", Stream: "demo/echo", Company: "demo", Actor: "demo-page", Payload: payload})
		if err != nil {
			rest.WriteError(w, err)
			return
		}
		rest.WriteJSON(w, http.StatusOK, map[string]any{"events": evs})
	})
	return nil
}
