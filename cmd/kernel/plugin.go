package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/pluginhost"
	"github.com/parleyhq/parley/plugins"
	"github.com/parleyhq/parley/plugins/call"
	"github.com/parleyhq/parley/plugins/chat"
	"github.com/parleyhq/parley/plugins/demo"
)

// builtins are the plugins compiled into the kernel binary. Out of process
// they run as `kernel plugin serve <id>`: one file ships everything.
var builtins = map[string]func() plugins.Plugin{
	call.ID: call.New,
	chat.ID: chat.New,
	demo.ID: demo.New,
}

const pluginUsage = `usage: kernel plugin serve <id>                 run a built-in plugin (the kernel does this itself)
       kernel plugin install [--plugins-dir DIR] <path>   install an external plugin, pinning its SHA-256
       kernel plugin list [--addr URL]               plugins of a running kernel: transport, state, lag, restarts
`

func pluginCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, pluginUsage)
		return 2
	}
	switch args[0] {
	case "serve":
		if len(args) != 2 || builtins[args[1]] == nil {
			fmt.Fprintf(stderr, "kernel plugin serve: unknown built-in plugin %q (have: %s)\n", strings.Join(args[1:], " "), builtinIDs())
			return 2
		}
		plugins.Serve(builtins[args[1]]())
		return 0
	case "install":
		fs := flag.NewFlagSet("kernel plugin install", flag.ContinueOnError)
		fs.SetOutput(stderr)
		dir := fs.String("plugins-dir", envOr("plugins_dir"), "directory of installed plugins ("+kernel.EnvName("plugins_dir")+")")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 {
			fmt.Fprint(stderr, pluginUsage)
			return 2
		}
		rec, err := pluginhost.Install(context.Background(), *dir, fs.Arg(0))
		if err != nil {
			fmt.Fprintln(stderr, "kernel plugin install:", err)
			return 1
		}
		m := rec.Manifest
		var events []string
		for _, e := range m.Events {
			kind := "ephemeral"
			if e.Durable {
				kind = "durable"
			}
			events = append(events, e.Name+" ("+kind+")")
		}
		fmt.Fprintf(stdout, "installed %s %s into %s\n  sha256:      %s\n  commands:    %s\n  subscribes:  %s\n  events:      %s\n  permissions: %v\n  streams:     %s\nrestart the kernel to run it\n",
			m.ID, m.Version, *dir, rec.SHA256, strings.Join(m.Commands, " "), strings.Join(m.Subscribes, " "), strings.Join(events, " "), m.Permissions, strings.Join(m.Streams, " "))
		return 0
	case "list":
		fs := flag.NewFlagSet("kernel plugin list", flag.ContinueOnError)
		fs.SetOutput(stderr)
		addr := fs.String("addr", "http://127.0.0.1:8080", "the running kernel's HTTP address")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		client := http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get(strings.TrimSuffix(*addr, "/") + "/admin/plugins")
		if err != nil {
			fmt.Fprintln(stderr, "kernel plugin list: is the kernel running?", err)
			return 1
		}
		defer resp.Body.Close()
		var list []pluginhost.Status
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 {
			fmt.Fprintf(stderr, "kernel plugin list: %s: %v\n", resp.Status, err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tVERSION\tTRANSPORT\tSTATE\tPID\tCURSOR\tLAG\tRESTARTS\tERROR")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", s.ID, s.Version, s.Transport, s.State, s.PID, s.Cursor, s.Lag, s.Restarts, s.Error)
		}
		tw.Flush()
		return 0
	default:
		fmt.Fprint(stderr, pluginUsage)
		return 2
	}
}

func builtinIDs() string {
	var ids []string
	for id := range builtins {
		ids = append(ids, id)
	}
	return strings.Join(ids, ", ")
}

// envOr returns the setting's environment variable or its default.
func envOr(key string) string {
	if v := os.Getenv(kernel.EnvName(key)); v != "" {
		return v
	}
	switch key {
	case "plugins_dir":
		return kernel.DefaultConfig().PluginsDir
	default:
		return kernel.DefaultConfig().DataDir
	}
}

// startPlugins adds the built-ins (the chat and the calls always, the demo
// when the configuration asks for it) and every installed plugin to a
// host, and starts them. The call plugin's settings (PARLEY_CALL_*) go to
// its process; in process, its media plane's metrics join the kernel's,
// and the call metrics (call.NewCollector) are registered either way.
func startPlugins(ctx context.Context, k *kernel.Kernel, cfg kernel.Config, h *pluginhost.Host) error {
	ids := []string{chat.ID, call.ID}
	if cfg.Demo {
		ids = append(ids, demo.ID)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, id := range ids {
		spec := pluginhost.Spec{ID: id, Transport: pluginhost.Transport(cfg.PluginTransport)}
		if spec.Transport == pluginhost.InProcess {
			spec.New = builtins[id]
		} else {
			spec.Path, spec.Args, spec.Env = self, []string{"plugin", "serve", id}, pluginhost.PluginEnv()
		}
		if id == call.ID {
			if spec.Transport == pluginhost.InProcess {
				spec.New = func() plugins.Plugin { return call.NewWithMetrics(k.Metrics().Registry) }
			}
			for _, kv := range os.Environ() {
				if strings.HasPrefix(kv, call.EnvPrefix) {
					spec.Env = append(spec.Env, kv)
				}
			}
			if err := k.Metrics().Registry.Register(call.NewCollector(func(ctx context.Context) (json.RawMessage, error) {
				return k.Query(ctx, kernel.Query{Name: call.QueryStats, Actor: plugins.ActorKernel})
			})); err != nil {
				return err
			}
		}
		if err := h.Add(spec); err != nil {
			return err
		}
	}
	installed, err := pluginhost.LoadInstalled(cfg.PluginsDir)
	if err != nil {
		return err
	}
	for _, s := range installed {
		if err := h.Add(s); err != nil {
			return err
		}
	}
	return h.Start(ctx)
}

// adminPlugins serves the plugin list to `kernel plugin list`, on loopback
// only until the REST API's authentication exists.
func adminPlugins(h *pluginhost.Host) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			http.Error(w, "forbidden: admin endpoints answer on loopback only", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(h.List())
	}
}
