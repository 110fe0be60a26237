// Package sdkapitest runs a real kernel with the sdkapi service (REST and
// WebSocket sessions) on a real HTTP server, for tests, and connects to it
// as a browser would: Device is a WebSocket client of the session
// protocol (requests, answers and pushes), with helpers for the JSON the
// tests exchange (Decode, MustJSON).
package sdkapitest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/kerneltest"
	"github.com/parleyhq/parley/sdkapi"
)

// Server is the running stack.
type Server struct {
	K    *kernel.Kernel
	Svc  *sdkapi.Service
	HTTP *httptest.Server
}

// Start runs the kernel with cfg and the service with opts; everything
// stops when the test ends (HTTP, then the service, then the kernel).
func Start(t testing.TB, cfg kernel.Config, opts sdkapi.Options) *Server {
	t.Helper()
	var svc *sdkapi.Service
	k := kerneltest.Start(t, cfg, nil, func(k *kernel.Kernel) {
		var err error
		if svc, err = sdkapi.NewWith(k, cfg, opts); err != nil {
			t.Fatal(err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }() // ended by the cleanup below
	t.Cleanup(func() { cancel(); <-done })
	mux := http.NewServeMux()
	svc.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &Server{K: k, Svc: svc, HTTP: srv}
}

// Company creates a company and returns its app id and API key.
func (s *Server) Company(t testing.TB, name string) (appID, apiKey string) {
	t.Helper()
	c, key, err := s.Svc.CreateCompany(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return c.AppID, key
}
