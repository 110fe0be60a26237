package sdkapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/hub"
	"github.com/parleyhq/parley/sdkapi/directory"
	"github.com/parleyhq/parley/sdkapi/rest"
	"github.com/parleyhq/parley/sdkapi/sdk"
	"github.com/parleyhq/parley/sdkapi/session"
	"github.com/parleyhq/parley/sdkapi/token"
)

// Service wires the directory, the token issuer, the session hub, the
// WebSocket sessions and the REST API to a kernel.
type Service struct {
	k        *kernel.Kernel
	cfg      kernel.Config
	Dir      *directory.Directory
	Tokens   *token.Issuer
	API      *rest.API
	Hub      *hub.Hub
	Sessions *session.Manager
}

// Options tune a Service; the zero value is what `kernel serve` runs.
type Options struct {
	Session session.Config
	Clock   func() time.Time // token issuing and expiry (default time.Now)
	Logger  *slog.Logger
}

// New registers the directory's commands on k (before k.Start) and builds
// the API.
func New(k *kernel.Kernel, cfg kernel.Config) (*Service, error) {
	return NewWith(k, cfg, Options{})
}

// NewWith is New with options.
func NewWith(k *kernel.Kernel, cfg kernel.Config, opts Options) (*Service, error) {
	dir, err := directory.New(k)
	if err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	tokens := token.NewWithClock(k.Log(), opts.Clock)
	h := hub.New(k.Log(), hub.Options{Open: openFor(k, opts.Logger), Encode: session.EncodePush})
	sessions, err := session.New(k, dir, tokens, h, opts.Session, opts.Logger)
	if err != nil {
		return nil, err
	}
	// Ephemeral events (signaling, pointers) reach sessions straight from
	// the bus, in the order they were published.
	k.Bus().TapEphemeral(func(e eventlog.Event) { h.Ephemeral(&e) })
	var origins []string
	for _, o := range strings.Split(cfg.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	return &Service{
		k: k, cfg: cfg, Dir: dir, Tokens: tokens, Hub: h, Sessions: sessions,
		API: rest.New(k, dir, tokens, rest.Config{CORSOrigins: origins}),
	}, nil
}

// openFor opens sealed payloads for sessions, in place; an event whose
// key was erased is not pushed at all.
func openFor(k *kernel.Kernel, logger *slog.Logger) func(*eventlog.Event) bool {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return func(e *eventlog.Event) bool {
		opened, erased, err := k.OpenEvent(*e)
		switch {
		case err != nil:
			logger.Error("opening a sealed event for sessions", "seq", e.Seq, "err", err)
			return false
		case erased:
			return false
		}
		e.Payload = opened.Payload // all that opening changes; other readers may be reading the rest
		return true
	}
}

// Run keeps the directory's projection and the hub running until ctx
// ends, then waits for the sessions to close.
func (s *Service) Run(ctx context.Context) error {
	hubDone := make(chan error, 1)
	go func() { hubDone <- s.Hub.Run(ctx) }() // ends with ctx
	err := s.Dir.Run(ctx)
	s.Sessions.Close()
	return errors.Join(err, <-hubDone)
}

// Mount adds the REST API, the WebSocket endpoint and the browser SDK to
// mux.
func (s *Service) Mount(mux *http.ServeMux) {
	s.API.Mount(mux)
	mux.Handle("GET /v2/ws", s.Sessions)
	mux.HandleFunc(linkPattern, s.serveLinkPage)
	sdk.Mount(mux, sdk.Info{Region: s.cfg.Region, Environment: s.cfg.Environment})
}

// CreateCompany creates a company in the kernel's region and environment
// with a first API key and token secret, and returns the key: it is shown
// only here, the log keeps its hash.
func (s *Service) CreateCompany(ctx context.Context, name string) (directory.Company, string, error) {
	appID := directory.NewAppID()
	run := func(name string, payload any) error {
		p, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		evs, err := s.k.Execute(ctx, kernel.Command{Name: name, Stream: directory.CompanyStream(appID), Company: appID, Actor: "operator", Payload: p})
		if err != nil {
			return err
		}
		return s.Dir.WaitFor(ctx, evs[len(evs)-1].Seq)
	}
	err := run(directory.CmdCompanyCreate, directory.CompanyCreate{AppID: appID, Name: name, Region: s.cfg.Region, Environment: s.cfg.Environment})
	if err != nil {
		return directory.Company{}, "", fmt.Errorf("create company: %w", err)
	}
	key, keyID, hash := directory.NewAPIKey()
	if err := run(directory.CmdAPIKeyCreate, directory.APIKeyCreate{KeyID: keyID, SHA256: hash}); err != nil {
		return directory.Company{}, "", fmt.Errorf("create api key: %w", err)
	}
	if err := s.Tokens.Rotate(ctx, appID); err != nil {
		return directory.Company{}, "", fmt.Errorf("create token secret: %w", err)
	}
	c, _ := s.Dir.Company(appID)
	return c, key, nil
}

// Bootstrap waits for the directory to read the log and, when the kernel
// has no company yet, creates one. It returns the new company and its key
// (zero values when companies exist).
func (s *Service) Bootstrap(ctx context.Context) (directory.Company, string, error) {
	if err := s.Dir.WaitFor(ctx, s.k.Log().Head()); err != nil {
		return directory.Company{}, "", err
	}
	if len(s.Dir.Companies()) > 0 {
		return directory.Company{}, "", nil
	}
	return s.CreateCompany(ctx, "First company")
}
