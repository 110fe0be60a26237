// Command kernel is the Parley binary: it serves the platform, audits the
// event log and reports its version.
//
//	kernel serve [flags]          start the kernel (see kernel serve -h)
//	kernel audit verify [flags]   check the log's hash chain
//	kernel audit export [flags]   write events as JSON Lines
//	kernel version                print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/pluginhost"
	"github.com/parleyhq/parley/sdkapi"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: kernel <command> [flags]

commands:
  serve          start the kernel (HTTP, event log, bus); -h lists settings
  audit verify   verify the event log's hash chain (the kernel must be stopped)
  audit export   export events as JSON Lines, with filters
  plugin         serve, install or list plugins
  company        create or list companies (tenants), with the kernel stopped
  version        print the version
`

// run is main with its exit code, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "audit":
		return audit(args[1:], stdout, stderr)
	case "plugin":
		return pluginCmd(args[1:], stdout, stderr)
	case "company":
		return companyCmd(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "kernel: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func versionString() string {
	rev := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = s.Value[:12]
			}
		}
	}
	return fmt.Sprintf("parley kernel %s (revision %s, %s, %s/%s)", kernel.Version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func newLogger(cfg kernel.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kernel serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := kernel.LoadConfig(fs, args, os.Environ())
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "kernel serve:", err)
		return 2
	}
	logger := newLogger(cfg, stderr)
	cfg.Runtime.Apply(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	followGoRun()

	k, err := kernel.Open(cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "kernel serve:", err)
		return 1
	}
	host, err := pluginhost.New(k, pluginhost.Config{StartTimeout: cfg.PluginStartTimeout}, logger)
	if err != nil {
		fmt.Fprintln(stderr, "kernel serve:", err)
		k.Close(context.Background(), "plugin host failed")
		return 1
	}
	svc, err := sdkapi.New(k, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "kernel serve:", err)
		k.Close(context.Background(), "sdkapi failed")
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle("/", k.HTTPHandler())
	svc.Mount(mux)
	mux.HandleFunc("GET /admin/plugins", adminPlugins(host))
	var pluginsUp atomic.Bool
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		err := k.Ready()
		if err == nil && !pluginsUp.Load() {
			err = errors.New("plugins are starting")
		}
		if err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	var demo *widgetDemo
	if cfg.Demo {
		if demo, err = mountDemo(k, svc, cfg, mux); err != nil {
			fmt.Fprintln(stderr, "kernel serve: demo:", err)
			k.Close(context.Background(), "demo failed")
			return 1
		}
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		fmt.Fprintf(stderr, "kernel serve: http_addr %s: %v\n", cfg.HTTPAddr, err)
		k.Close(context.Background(), "listen failed")
		return 1
	}
	if err := k.Start(ctx); err != nil {
		fmt.Fprintln(stderr, "kernel serve:", err)
		ln.Close()
		k.Close(context.Background(), "start failed")
		return 1
	}
	svcCtx, stopSvc := context.WithCancel(context.Background())
	svcDone := make(chan error, 1)
	go func() { svcDone <- svc.Run(svcCtx) }() // owned here: stopSvc below ends it
	stopService := func() { stopSvc(); <-svcDone }
	if c, key, err := svc.Bootstrap(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "kernel serve: first company:", err)
	} else if key != "" {
		fmt.Fprintf(stdout, "Created the first company. Keep these, the API key is not shown again:\n  app_id:  %s\n  apikey:  %s\n", c.AppID, key)
	}
	if demo != nil {
		demo.start()
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }() // owned here: Shutdown below ends it
	fmt.Fprintf(stdout, "Parley kernel %s listening on http://%s (data in %s)\n", kernel.Version, displayAddr(ln.Addr()), cfg.DataDir)

	// Plugins start while HTTP already answers (a slow plugin must not make
	// the kernel look hung); their commands answer "unavailable" until then.
	code := 0
	if err := startPlugins(ctx, k, cfg, host); err != nil && ctx.Err() == nil {
		logger.Error("plugins could not start", "err", err)
		fmt.Fprintln(stderr, "kernel serve: plugins:", err)
		code = 1
	} else if ctx.Err() == nil {
		pluginsUp.Store(true)
		list, running := host.List(), 0
		for _, st := range list {
			if st.State == pluginhost.StateRunning {
				running++
			}
		}
		fmt.Fprintf(stdout, "Ready: %d of %d plugins running (kernel plugin list shows them)\n", running, len(list))
		if cfg.Demo {
			fmt.Fprintf(stdout, "Demo: open http://%s/demo in two browser tabs, one user in each, to chat and call (the event log: http://%[1]s/)\n", displayAddr(ln.Addr()))
		}
	}
	if code == 0 {
		select {
		case <-ctx.Done():
			logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
		case err := <-served:
			logger.Error("http server stopped", "err", err)
			code = 1
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("http shutdown", "err", err)
	}
	stopService()
	host.Close() // plugins stop (Stop, then kill) before the log closes
	if err := k.Close(shutdownCtx, "shutdown"); err != nil {
		logger.Error("closing the kernel", "err", err)
		code = 1
	}
	logger.Info("stopped", "head", k.Log().Head())
	return code
}

// displayAddr turns ":8080" into something a browser opens.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
