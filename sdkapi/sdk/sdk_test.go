package sdk_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/parleyhq/parley/sdkapi/sdk"
)

// gzipBudget is the budget for the bundle, gzipped.
const gzipBudget = 120 << 10

// goBin is the go command running these tests.
func goBin(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatal("the go command is needed to rebuild the bundle")
	}
	return p
}

// generateArgs reads sdk.go's go:generate line: the test runs exactly the
// command go generate runs.
func generateArgs(t *testing.T) []string {
	f, err := os.Open("sdk.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "//go:generate "); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatal("sdk.go has no go:generate line")
	return nil
}

// TestBundleIsCurrent rebuilds the bundle from the TypeScript source with
// go generate's own command and compares it with the committed (embedded)
// file: run `go generate ./sdkapi/sdk` after changing the source.
func TestBundleIsCurrent(t *testing.T) {
	args := generateArgs(t)
	out := filepath.Join(t.TempDir(), sdk.BundleName)
	replaced := false
	for i, a := range args {
		if strings.HasPrefix(a, "--outfile=") {
			args[i], replaced = "--outfile="+out, true
		}
	}
	if !replaced || args[0] != "go" {
		t.Fatalf("unexpected go:generate command %q", args)
	}
	cmd := exec.Command(goBin(t), args[1:]...)
	cmd.Dir = "."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, b)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join("dist", sdk.BundleName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Fatalf("dist/%s is stale (%d bytes; the source builds %d): run `go generate ./sdkapi/sdk` and commit the result", sdk.BundleName, len(committed), len(fresh))
	}
	if !bytes.Equal(sdk.Bundle(), committed) {
		t.Fatal("the embedded bundle is not dist's")
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(committed)
	zw.Close()
	t.Logf("bundle: %d bytes, %d bytes gzipped (budget %d)", len(committed), gz.Len(), gzipBudget)
	if gz.Len() > gzipBudget {
		t.Errorf("the bundle is %d bytes gzipped, over the %d budget", gz.Len(), gzipBudget)
	}
	if !bytes.Contains(committed, []byte(`"`+sdk.Version+`"`)) {
		t.Errorf("the bundle does not carry version %s", sdk.Version)
	}
}

// TestTypeDeclarations type-checks the declarations, the implementation
// against them, and examples/consumer.ts (the reference's examples) with
// tsc --noEmit. make deps installs tsc (Debian's node-typescript).
func TestTypeDeclarations(t *testing.T) {
	tsc, err := exec.LookPath("tsc")
	if err != nil {
		t.Fatal("tsc not found: install it with `make deps` or `apt-get install -y node-typescript`; this test does not skip")
	}
	cmd := exec.Command(tsc, "--noEmit", "-p", ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc --noEmit -p sdkapi/sdk: %v\n%s", err, b)
	}
}

func TestServe(t *testing.T) {
	mux := http.NewServeMux()
	sdk.Mount(mux, sdk.Info{Region: "in", Environment: "production"})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		// A bare transport: the default one would ask for gzip itself and
		// hide Content-Encoding.
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	for _, c := range []struct {
		version, cache string
	}{
		{sdk.Version, "public, max-age=31536000, immutable"},
		{"latest", "public, max-age=300, must-revalidate"},
	} {
		path := "/sdk/js/chat/" + c.version + "/bandyer-widget.min.js"
		resp, body := get(path)
		h := resp.Header
		if resp.StatusCode != 200 || !bytes.Equal(body, sdk.Bundle()) {
			t.Fatalf("%s: %d, %d bytes", path, resp.StatusCode, len(body))
		}
		for k, want := range map[string]string{
			"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": c.cache, "X-Content-Type-Options": "nosniff",
			"Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin", "Vary": "Accept-Encoding",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
		etag := h.Get("ETag")
		if len(etag) < 10 || h.Get("Content-Encoding") != "" {
			t.Errorf("%s: ETag %q, Content-Encoding %q", path, etag, h.Get("Content-Encoding"))
		}
		if resp, _ := get(path, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s with If-None-Match: %d, want 304", path, resp.StatusCode)
		}
		resp, body = get(path, "Accept-Encoding", "br, gzip")
		if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("ETag") == etag {
			t.Fatalf("%s gzipped: encoding %q, ETag %q", path, resp.Header.Get("Content-Encoding"), resp.Header.Get("ETag"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := io.ReadAll(zr)
		if !bytes.Equal(plain, sdk.Bundle()) {
			t.Fatalf("%s gzipped does not decompress to the bundle", path)
		}
		t.Logf("%s: %d bytes gzipped on the wire", path, len(body))
	}

	if resp, _ := get("/sdk/js/chat/1.0.0/bandyer-widget.min.js"); resp.StatusCode != 404 {
		t.Errorf("another version: %d, want 404", resp.StatusCode)
	}
	if resp, _ := get("/sdk/js/chat/latest/other.js"); resp.StatusCode != 404 {
		t.Errorf("another file: %d, want 404", resp.StatusCode)
	}
	if resp, body := get("/sdk/js/chat/latest/bandyer-widget.d.ts"); resp.StatusCode != 200 || !bytes.Contains(body, []byte("interface Client")) {
		t.Errorf("declarations: %d", resp.StatusCode)
	}
	resp, body := get("/sdk/info")
	var info map[string]string
	if json.Unmarshal(body, &info) != nil || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		info["region"] != "in" || info["environment"] != "production" || info["version"] != sdk.Version {
		t.Errorf("/sdk/info: %d %s", resp.StatusCode, body)
	}
}
