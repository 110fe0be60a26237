package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bin is the kernel binary built once for these tests: they run it as an
// operator would.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-kernel-bin-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755) // the read-only test runs it as nobody
	bin = filepath.Join(dir, "kernel")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the kernel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `kernel serve`.
type server struct {
	cmd    *exec.Cmd
	base   string
	apikey string // printed once when serve creates the first company
	stderr *bytes.Buffer
	done   chan error
}

var listening = regexp.MustCompile(`listening on (http://\S+)`)

func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	s := &server{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() { // reads stdout until the process exits
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	deadline := time.After(20 * time.Second)
	for {
		select {
		case line := <-lines:
			if m := listening.FindStringSubmatch(line); m != nil {
				s.base = m[1]
			}
			if k, ok := strings.CutPrefix(strings.TrimSpace(line), "apikey:"); ok {
				s.apikey = strings.TrimSpace(k)
			}
			if strings.HasPrefix(line, "Ready:") && s.base != "" {
				return s
			}
		case err := <-s.done:
			t.Fatalf("kernel exited early: %v\n%s", err, s.stderr)
		case <-deadline:
			t.Fatalf("kernel did not start\n%s", s.stderr)
		}
	}
}

// stop sends SIGTERM and returns the exit code and how long it took.
func (s *server) stop(t *testing.T) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("kernel ignored SIGTERM\n%s", s.stderr)
	}
	return s.cmd.ProcessState.ExitCode(), time.Since(start)
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARLEY_") {
			env = append(env, kv)
		}
	}
	return env
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// kernelCmd runs the binary to completion.
func kernelCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

func TestServeMetricsHealthAndSIGTERM(t *testing.T) {
	s := startServer(t, t.TempDir(), "--demo", "--plugin-transport", "process") // the built-ins re-executed from the binary
	for path, want := range map[string]string{
		"/healthz": "ok", "/readyz": "ready",
		"/metrics": "parley_eventlog_append_seconds_bucket",
		"/":        "<title>Parley kernel",
	} {
		code, body := get(t, s.base+path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want %q in %.200s", path, code, want, body)
		}
	}
	_, metrics := get(t, s.base+"/metrics")
	for _, m := range []string{"parley_eventlog_commit_seconds", "parley_eventlog_batch_events", `parley_eventlog_events_total{type="kernel.started"} 1`, `parley_eventlog_events_total{type="plugin.started"} 3`, `parley_plugin_state{plugin="parley.demo",state="running",transport="process"} 1`, `parley_plugin_state{plugin="parley.chat",state="running",transport="process"} 1`, `parley_plugin_state{plugin="parley.call",state="running",transport="process"} 1`, "parley_calls_up 1", "parley_calls_created_total 0"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	code, took := s.stop(t)
	if code != 0 || took > 5*time.Second {
		t.Fatalf("SIGTERM: exit %d after %s\n%s", code, took, s.stderr)
	}
	t.Logf("SIGTERM to exit: %s", took)
}

func post(t *testing.T, url, body string) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAuditVerifyNamesTamperedSeq(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--demo")
	for i := 1; i <= 10; i++ {
		if code := post(t, s.base+"/demo/echo", fmt.Sprintf(`{"text":"marker-%02d"}`, i)); code != 200 {
			t.Fatalf("echo %d: %d", i, code)
		}
	}
	// While the kernel runs, audit refuses clearly.
	code, _, stderr := kernelCmd(t, "audit", "verify", "--data-dir", dir)
	if code != exitUnusable || !strings.Contains(stderr, "in use by a running kernel") {
		t.Fatalf("audit on a running kernel: exit %d, %s", code, stderr)
	}
	if code, _ := s.stop(t); code != 0 {
		t.Fatalf("stop: %d", code)
	}
	// kernel.started, company.created, company.apikey.created, plugin.started
	// (chat, call, demo), 10 echoes, plugin.stopped (chat, call, demo),
	// kernel.stopped
	code, out, _ := kernelCmd(t, "audit", "verify", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "ok: 20 events") {
		t.Fatalf("clean verify: exit %d, %s", code, out)
	}
	code, out, _ = kernelCmd(t, "audit", "export", "--data-dir", dir, "--type", "demo.*", "--from-seq", "10")
	if code != 0 || strings.Count(out, "\n") != 7 || !strings.Contains(out, `"text":"marker-04"`) || strings.Contains(out, `"text":"marker-03"`) {
		t.Fatalf("export: exit %d, %s", code, out)
	}
	var seq7 uint64
	for _, line := range strings.Split(out, "\n") {
		var e struct{ Seq uint64 }
		if strings.Contains(line, "marker-07") && json.Unmarshal([]byte(line), &e) == nil {
			seq7 = e.Seq
		}
	}
	// bbolt's copy-on-write may leave stale copies of the page: alter them all.
	b, _ := os.ReadFile(filepath.Join(dir, "events.db"))
	marker := []byte("marker-07")
	if bytes.Count(b, marker) == 0 {
		t.Fatal("marker not in file")
	}
	b = bytes.ReplaceAll(b, marker, []byte("marker-06"))
	os.WriteFile(filepath.Join(dir, "events.db"), b, 0o600)
	code, out, _ = kernelCmd(t, "audit", "verify", "--data-dir", dir)
	if code != exitBroken || !strings.Contains(out, fmt.Sprintf("BROKEN at seq %d:", seq7)) {
		t.Fatalf("tampered verify: exit %d, %s", code, out)
	}
}

func TestServeRefusesBadDataDirectories(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a-file")
	os.WriteFile(file, []byte("hello"), 0o600)
	corrupt := filepath.Join(tmp, "corrupt")
	os.Mkdir(corrupt, 0o700)
	os.WriteFile(filepath.Join(corrupt, "events.db"), bytes.Repeat([]byte("garbage!"), 4096), 0o600)
	for _, c := range []struct {
		name, dir, want string
	}{
		{"file as data dir", file, "is a file, not a directory"},
		{"corrupt log", corrupt, "not a Parley event log"},
	} {
		code, _, stderr := kernelCmd(t, "serve", "--data-dir", c.dir, "--http-addr", "127.0.0.1:0")
		if code != 1 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "panic") {
			t.Errorf("%s: exit %d, %s", c.name, code, stderr)
		}
	}
	code, _, stderr := kernelCmd(t, "serve", "--eventlog-queue-size", "-1")
	if code != 2 || !strings.Contains(stderr, "eventlog.queue_size") {
		t.Errorf("bad setting: exit %d, %s", code, stderr)
	}
}

// TestServeRefusesReadOnlyDirectory runs the kernel as an unprivileged user
// on a directory it cannot write (as root, permissions would not bind).
func TestServeRefusesReadOnlyDirectory(t *testing.T) {
	parent, err := os.MkdirTemp("", "parley-ro-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(parent)
	os.Chmod(parent, 0o755)
	ro := filepath.Join(parent, "ro")
	os.Mkdir(ro, 0o555)
	cmd := exec.Command(bin, "serve", "--data-dir", ro, "--http-addr", "127.0.0.1:0")
	cmd.Env = cleanEnv()
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { <-ctx.Done(); cmd.Process.Kill() }()
	err = cmd.Run()
	if err == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(errb.String(), "not writable") {
		t.Fatalf("read-only dir: %v, %s", err, errb.String())
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := kernelCmd(t, "version")
	if code != 0 || !strings.HasPrefix(out, "parley kernel ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

// TestExamplePluginInstallAndRun builds the example plugin as its README
// says, installs it, runs it under `kernel serve` and lists it; then a
// tampered binary is refused.
func TestExamplePluginInstallAndRun(t *testing.T) {
	tmp := t.TempDir()
	crm := filepath.Join(tmp, "crmlog")
	build := exec.Command("go", "build", "-o", crm, "../../plugins/examples/crmlog")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pdir := filepath.Join(tmp, "plugins")
	code, out, stderr := kernelCmd(t, "plugin", "install", "--plugins-dir", pdir, crm)
	if code != 0 || !strings.Contains(out, "installed tool.acme.crmlog 0.1.0") || !strings.Contains(out, "sha256:") {
		t.Fatalf("install: %d %s %s", code, out, stderr)
	}
	data := filepath.Join(tmp, "data")
	s := startServer(t, data, "--demo", "--plugins-dir", pdir)
	if c := post(t, s.base+"/demo/echo", `{"text":"hello crm"}`); c != 200 {
		t.Fatalf("echo: %d", c)
	}
	var list string
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, list, stderr = kernelCmd(t, "plugin", "list", "--addr", s.base)
		if code == 0 && regexp.MustCompile(`tool\.acme\.crmlog\s+0\.1\.0\s+process\s+running\s+\d+\s+[1-9]\d*\s+0\s+0`).MatchString(list) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin list never showed crmlog running and caught up:\n%s%s", list, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(list, "parley.demo") {
		t.Fatalf("built-in demo plugin missing:\n%s", list)
	}
	if code, _ := s.stop(t); code != 0 {
		t.Fatalf("stop: %d\n%s", code, s.stderr)
	}

	// A binary changed after install is refused.
	f, _ := os.OpenFile(filepath.Join(pdir, "tool.acme.crmlog"), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("tampered"))
	f.Close()
	s = startServer(t, data, "--plugins-dir", pdir)
	deadline = time.Now().Add(20 * time.Second)
	for {
		_, list, _ = kernelCmd(t, "plugin", "list", "--addr", s.base)
		if strings.Contains(list, "failed") && strings.Contains(list, "checksum") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tampered plugin not refused:\n%s\n%s", list, s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop(t)
}

// TestRESTWithThePrintedKey follows the README: the key serve prints on a
// fresh data directory creates a user and an access token; a restart
// prints no new key, and the old one still works.
func TestRESTWithThePrintedKey(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	if !strings.HasPrefix(s.apikey, "pk_") {
		t.Fatalf("no API key printed:\n%s", s.stderr)
	}
	call := func(s *server, method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
		req.Header.Set("apikey", s.apikey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if c, body := call(s, "POST", "/v2/users", `{"id":"dr.alice","role":"plus"}`); c != 201 {
		t.Fatalf("create user: %d %s", c, body)
	}
	if c, body := call(s, "POST", "/v2/sdk/credentials", `{"user_id":"dr.alice","expires_in":3600}`); c != 200 || !strings.Contains(body, `"access_token":"ey`) {
		t.Fatalf("credentials: %d %s", c, body)
	}
	key := s.apikey
	s.stop(t)
	s = startServer(t, dir)
	if s.apikey != "" {
		t.Fatal("a restart printed a new key")
	}
	s.apikey = key
	if c, body := call(s, "GET", "/v2/users/dr.alice", ""); c != 200 || !strings.Contains(body, `"role":"plus"`) {
		t.Fatalf("after restart: %d %s", c, body)
	}
	s.stop(t)
}
