package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/plugins/demo"
	"github.com/parleyhq/parley/sdkapi"
	"github.com/parleyhq/parley/sdkapi/directory"
	"github.com/parleyhq/parley/sdkapi/rest"
)

var (
	//go:embed demo.html
	demoPage []byte
	//go:embed demo-chat.html
	demoChatPage []byte
)

// demoCompany names the company the widget demo seeds.
const demoCompany = "Parley demo"

// demoUser is one of the people the widget demo lets a newcomer be.
type demoUser struct {
	UserID      string `json:"userId"`
	DisplayName string `json:"displayName"`
	Role        string `json:"role"`
}

var demoUsers = []demoUser{
	{"alice", "Dr. Alice Rossi", "plus"}, // a call needs a plus user: any two of them can call
	{"bob", "Bob Ferri", "plus"},
	{"carol", "Carol Neri", "plus"},
}

// demoTokenTTL is how long a demo access token lasts; the page renews it.
const demoTokenTTL = time.Hour

// widgetDemo is the chat widget demo at /demo: a company of its own with a
// few users, seeded the first time the page asks for them (not at start,
// so a demo kernel's log begins like any other), and access tokens for
// them from /demo/token, which answers loopback clients only: it hands
// out tokens with no authentication at all.
type widgetDemo struct {
	k       *kernel.Kernel
	svc     *sdkapi.Service
	cfg     kernel.Config
	started chan struct{} // closed once the kernel's first company exists

	mu  sync.Mutex
	app string // the seeded company
}

// start lets the demo seed: after Bootstrap, so that the demo company is
// never the one Bootstrap finds instead of creating the first company.
func (d *widgetDemo) start() { close(d.started) }

// seed creates the demo company and users unless they exist, and returns
// the company's app id.
func (d *widgetDemo) seed(ctx context.Context) (string, error) {
	select {
	case <-d.started:
	default:
		return "", kernel.Errorf(kernel.CodeUnavailable, "the kernel is starting")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.app == "" {
		for _, c := range d.svc.Dir.Companies() {
			if c.Name == demoCompany {
				d.app = c.AppID
			}
		}
	}
	if d.app == "" {
		c, _, err := d.svc.CreateCompany(ctx, demoCompany)
		if err != nil {
			return "", err
		}
		d.app = c.AppID
	}
	for _, u := range demoUsers {
		if _, ok := d.svc.Dir.User(d.app, u.UserID); ok {
			continue
		}
		p, _ := json.Marshal(directory.UserCreate{UserID: u.UserID, Role: u.Role, DisplayName: u.DisplayName})
		evs, err := d.k.Execute(ctx, kernel.Command{Name: directory.CmdUserCreate, Stream: directory.UserStream(d.app, u.UserID), Company: d.app, Actor: "operator", Payload: p})
		if err != nil {
			return "", err
		}
		if err := d.svc.Dir.WaitFor(ctx, evs[len(evs)-1].Seq); err != nil {
			return "", err
		}
	}
	return d.app, nil
}

// loopback reports whether the request comes from this machine.
func loopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

func (d *widgetDemo) mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /demo", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(demoChatPage)
	})
	mux.HandleFunc("GET /demo/users", func(w http.ResponseWriter, r *http.Request) {
		app, err := d.seed(r.Context())
		if err != nil {
			rest.WriteError(w, err)
			return
		}
		rest.WriteJSON(w, http.StatusOK, map[string]any{"appId": app, "region": d.cfg.Region, "environment": d.cfg.Environment, "users": demoUsers})
	})
	mux.HandleFunc("POST /demo/token", func(w http.ResponseWriter, r *http.Request) {
		if !loopback(r) {
			rest.WriteError(w, kernel.Errorf(kernel.CodePermissionDenied, "demo tokens are handed out to this machine only (the demo has no login)"))
			return
		}
		var in struct {
			UserID string `json:"userId"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&in); err != nil {
			rest.WriteError(w, kernel.Errorf(kernel.CodeValidation, "body: %v", err))
			return
		}
		app, err := d.seed(r.Context())
		if err != nil {
			rest.WriteError(w, err)
			return
		}
		known := false
		for _, u := range demoUsers {
			known = known || u.UserID == in.UserID
		}
		if !known {
			rest.WriteError(w, kernel.Errorf(directory.CodeUserNotFound, "%q is not a demo user", in.UserID))
			return
		}
		tok, exp, err := d.svc.Tokens.Issue(r.Context(), app, in.UserID, demoTokenTTL)
		if err != nil {
			rest.WriteError(w, err)
			return
		}
		rest.WriteJSON(w, http.StatusOK, map[string]string{"appId": app, "userId": in.UserID, "accessToken": tok, "expiresAt": exp.UTC().Format(time.RFC3339)})
	})
}

// mountDemo adds the demos: at / a page that sends an echo command
// through the whole flow (the parley.demo plugin decides, the kernel
// appends, the plugin is delivered the event and counts it) and shows the
// log's newest events; at /demo the chat widget (see widgetDemo). It
// returns the widget demo, to start once the first company exists.
func mountDemo(k *kernel.Kernel, svc *sdkapi.Service, cfg kernel.Config, mux *http.ServeMux) (*widgetDemo, error) {
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
	d := &widgetDemo{k: k, svc: svc, cfg: cfg, started: make(chan struct{})}
	d.mount(mux)
	return d, nil
}
