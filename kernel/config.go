package kernel

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"go.yaml.in/yaml/v3"
)

// Config is the kernel's configuration. Each setting has one key; the same
// key names it in the YAML file (nested at the dots), in the environment
// (PARLEY_ + the key in capitals, dots as underscores) and as a flag (the
// key with dashes). Precedence: flags over environment over file over
// defaults.
type Config struct {
	DataDir         string
	HTTPAddr        string
	Demo            bool
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration
	PluginsDir      string
	PluginTransport string
	// PluginStartTimeout bounds a plugin's start: launch, handshake and
	// Start, in which the built-in plugins rebuild their state from the
	// whole log.
	PluginStartTimeout time.Duration
	Region             string
	Environment        string
	CORSOrigins        string
	// MasterKeyFile holds the master key that wraps company keys; empty
	// means MasterKeyFileName in DataDir (see MasterKeyPath).
	MasterKeyFile string
	EventLog      EventLogConfig
	Runtime       RuntimeConfig
}

// RuntimeConfig tunes the Go runtime of the process serving the kernel.
type RuntimeConfig struct {
	// GCPercent is the garbage collector's target (GOGC): a collection
	// when the heap has grown by this much since the last. The default,
	// 400, collects a quarter as often as Go's 100 for five times the
	// live heap: at 2,000 chat messages/s the collections' mark phases
	// are what make the latency tail (bench/README.md). 0 or the GOGC
	// environment variable leave Go's own setting.
	GCPercent int
	// MemoryLimitMB is a soft limit on the process's memory (GOMEMLIMIT):
	// the collector runs more often near it. 0 or GOMEMLIMIT leave Go's.
	MemoryLimitMB int
}

// Apply sets the process's garbage collector from the configuration,
// except where GOGC or GOMEMLIMIT in the environment say otherwise.
// kernel serve calls it; a program embedding the kernel chooses.
func (r RuntimeConfig) Apply(getenv func(string) string) {
	if r.GCPercent != 0 && getenv("GOGC") == "" {
		debug.SetGCPercent(r.GCPercent)
	}
	if r.MemoryLimitMB > 0 && getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(r.MemoryLimitMB) << 20)
	}
}

// MasterKeyFileName is the master key file's name in the data directory
// when master_key_file is not set.
const MasterKeyFileName = "master.key"

// MasterKeyPath is the master key file the kernel uses: MasterKeyFile, or
// MasterKeyFileName in DataDir.
func (c *Config) MasterKeyPath() string {
	if c.MasterKeyFile != "" {
		return c.MasterKeyFile
	}
	return filepath.Join(c.DataDir, MasterKeyFileName)
}

// EventLogConfig tunes the event log writer.
type EventLogConfig struct {
	QueueSize       int
	MaxBatch        int
	MaxPayloadBytes int
	CommitDelay     time.Duration
}

// The regions and environments a kernel (and its companies) may serve.
var (
	Regions      = []string{"eu", "in", "us", "me"}
	Environments = []string{"sandbox", "production"}
)

// DefaultConfig is what `kernel serve` runs with when nothing is set.
func DefaultConfig() Config {
	return Config{
		DataDir: "./data", HTTPAddr: ":8080", LogLevel: "info", LogFormat: "text",
		ShutdownTimeout: 4 * time.Second, PluginsDir: "./plugins-installed", PluginTransport: "inproc", PluginStartTimeout: time.Minute,
		Region: "eu", Environment: "sandbox",
		EventLog: EventLogConfig{QueueSize: 8192, MaxBatch: 1024, MaxPayloadBytes: 1 << 20},
		Runtime:  RuntimeConfig{GCPercent: 400},
	}
}

// EventLogOptions turns the configuration into eventlog options.
func (c *Config) EventLogOptions() eventlog.Options {
	return eventlog.Options{
		QueueSize: c.EventLog.QueueSize, MaxBatch: c.EventLog.MaxBatch, MaxPayload: c.EventLog.MaxPayloadBytes,
		CommitDelay: c.EventLog.CommitDelay,
	}
}

// setting binds one key to a field.
type setting struct {
	key, usage string
	value      flag.Value
}

type fieldValue[T any] struct {
	p      *T
	parse  func(string) (T, error)
	format func(T) string
}

func (v fieldValue[T]) String() string {
	if v.p == nil {
		return ""
	}
	return v.format(*v.p)
}

func (v fieldValue[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}

// IsBoolFlag lets `--demo` stand for `--demo=true`.
func (v fieldValue[T]) IsBoolFlag() bool { _, ok := any(v.p).(*bool); return ok }

func str(p *string) flag.Value {
	return fieldValue[string]{p, func(s string) (string, error) { return s, nil }, func(s string) string { return s }}
}
func integer(p *int) flag.Value { return fieldValue[int]{p, strconv.Atoi, strconv.Itoa} }
func boolean(p *bool) flag.Value {
	return fieldValue[bool]{p, strconv.ParseBool, strconv.FormatBool}
}
func duration(p *time.Duration) flag.Value {
	return fieldValue[time.Duration]{p, time.ParseDuration, time.Duration.String}
}

func (c *Config) settings() []setting {
	return []setting{
		{"data_dir", "directory holding the event log", str(&c.DataDir)},
		{"http_addr", "address for HTTP: the API, /metrics, /healthz, /readyz", str(&c.HTTPAddr)},
		{"demo", "serve the demo page at /", boolean(&c.Demo)},
		{"log_level", "debug, info, warn or error", str(&c.LogLevel)},
		{"log_format", "text or json", str(&c.LogFormat)},
		{"shutdown_timeout", "how long SIGTERM waits for in-flight work", duration(&c.ShutdownTimeout)},
		{"plugins_dir", "directory of installed plugins (kernel plugin install)", str(&c.PluginsDir)},
		{"plugin_transport", "how built-in plugins run: inproc (fastest; a panic is recovered and the plugin restarted) or process (each in its own process)", str(&c.PluginTransport)},
		{"plugin_start_timeout", "how long a plugin may take to start, rebuilding its state from the log included; one that takes longer is restarted, and failed after 3 tries", duration(&c.PluginStartTimeout)},
		{"region", "the region this kernel serves: eu, in, us or me", str(&c.Region)},
		{"environment", "the environment this kernel serves: sandbox or production", str(&c.Environment)},
		{"cors_origins", "comma-separated origins allowed to call the REST API from browsers (none by default)", str(&c.CORSOrigins)},
		{"master_key_file", "file with the 32-byte master key that wraps company keys (default <data_dir>/master.key, generated if absent); keep it backed up and off the data disk", str(&c.MasterKeyFile)},
		{"eventlog.queue_size", "appends that may wait for the writer before callers get busy", integer(&c.EventLog.QueueSize)},
		{"eventlog.max_batch", "appends committed in one transaction at most", integer(&c.EventLog.MaxBatch)},
		{"eventlog.max_payload_bytes", "largest event payload accepted", integer(&c.EventLog.MaxPayloadBytes)},
		{"eventlog.commit_delay", "how long the writer may wait to gather a small batch (fewer fsyncs, a little latency); 0 commits at once", duration(&c.EventLog.CommitDelay)},
		{"runtime.gc_percent", "the garbage collector's target (GOGC): higher collects less often for more memory; 0 or GOGC in the environment leave Go's", integer(&c.Runtime.GCPercent)},
		{"runtime.memory_limit_mb", "a soft memory limit in MiB (GOMEMLIMIT); 0 or GOMEMLIMIT in the environment leave Go's", integer(&c.Runtime.MemoryLimitMB)},
	}
}

// FlagName and EnvName derive a setting's other names from its key.
func FlagName(key string) string { return strings.NewReplacer(".", "-", "_", "-").Replace(key) }
func EnvName(key string) string {
	return "PARLEY_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// EnvConfigFile names the YAML file when --config is not given.
const EnvConfigFile = "PARLEY_CONFIG"

// LoadConfig reads the configuration: defaults, then the YAML file (from
// --config or PARLEY_CONFIG), then PARLEY_* variables of environ, then the
// flags in args. Every error names the offending key.
//
// extra names string flags of the calling command (not settings) to
// define on fs before parsing, such as "name".
func LoadConfig(fs *flag.FlagSet, args, environ []string, extra ...string) (Config, error) {
	c := DefaultConfig()
	for _, name := range extra {
		fs.String(name, "", "")
	}
	settings := c.settings()
	byKey := map[string]setting{}
	byEnv := map[string]setting{}
	for _, s := range settings {
		byKey[s.key] = s
		byEnv[EnvName(s.key)] = s
		fs.Var(s.value, FlagName(s.key), s.usage+" ("+EnvName(s.key)+")")
	}
	file := fs.String("config", "", "YAML configuration file ("+EnvConfigFile+")")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	// Flags win: remember what was set on the command line to apply last.
	flagged := map[string]string{}
	fs.Visit(func(f *flag.Flag) { flagged[f.Name] = f.Value.String() })

	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "PARLEY_") {
			env[k] = v
		}
	}
	path := *file
	if path == "" {
		path = env[EnvConfigFile]
	}
	if path != "" {
		if err := loadFile(path, byKey); err != nil {
			return c, err
		}
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == EnvConfigFile {
			continue
		}
		s, ok := byEnv[k]
		if !ok {
			return c, fmt.Errorf("environment: %s is not a Parley setting (known: %s)", k, knownEnv(settings))
		}
		if err := s.value.Set(env[k]); err != nil {
			return c, fmt.Errorf("environment: %s: invalid value %q: %v", k, env[k], err)
		}
	}
	for _, s := range settings {
		if v, ok := flagged[FlagName(s.key)]; ok {
			_ = s.value.Set(v) // parsed once already
		}
	}
	return c, c.Validate()
}

func knownEnv(settings []setting) string {
	var names []string
	for _, s := range settings {
		names = append(names, EnvName(s.key))
	}
	return strings.Join(names, ", ")
}

func loadFile(path string, byKey map[string]setting) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	flat := map[string]any{}
	var walk func(prefix string, m map[string]any) error
	walk = func(prefix string, m map[string]any) error {
		for k, v := range m {
			key := prefix + k
			if sub, ok := v.(map[string]any); ok {
				if err := walk(key+".", sub); err != nil {
					return err
				}
				continue
			}
			flat[key] = v
		}
		return nil
	}
	if err := walk("", tree); err != nil {
		return err
	}
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s, ok := byKey[k]
		if !ok {
			return fmt.Errorf("config file %s: unknown key %q", path, k)
		}
		if err := s.value.Set(fmt.Sprint(flat[k])); err != nil {
			return fmt.Errorf("config file %s: %s: invalid value %q: %v", path, k, fmt.Sprint(flat[k]), err)
		}
	}
	return nil
}

// Validate checks every setting and names the first bad key.
func (c *Config) Validate() error {
	bad := func(key, format string, a ...any) error {
		return fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, a...))
	}
	if c.DataDir == "" {
		return bad("data_dir", "must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return bad("http_addr", "%q is not host:port: %v", c.HTTPAddr, err)
	}
	for _, e := range []struct {
		key, value string
		allowed    []string
	}{
		{"log_level", c.LogLevel, []string{"debug", "info", "warn", "error"}},
		{"log_format", c.LogFormat, []string{"text", "json"}},
		{"plugin_transport", c.PluginTransport, []string{"process", "inproc"}},
		{"region", c.Region, Regions},
		{"environment", c.Environment, Environments},
	} {
		if !slices.Contains(e.allowed, e.value) {
			return bad(e.key, "%q is not one of %s", e.value, strings.Join(e.allowed, ", "))
		}
	}
	if c.PluginStartTimeout <= 0 {
		return bad("plugin_start_timeout", "must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		return bad("shutdown_timeout", "must be positive")
	}
	for _, r := range []struct {
		key      string
		v, lo, h int
	}{
		{"eventlog.queue_size", c.EventLog.QueueSize, 1, 1 << 20},
		{"eventlog.max_batch", c.EventLog.MaxBatch, 1, 1 << 16},
		{"eventlog.max_payload_bytes", c.EventLog.MaxPayloadBytes, 1, 64 << 20},
	} {
		if r.v < r.lo || r.v > r.h {
			return bad(r.key, "%d is outside %d..%d", r.v, r.lo, r.h)
		}
	}
	return nil
}

// ErrHelp is returned by LoadConfig for -h.
var ErrHelp = flag.ErrHelp
