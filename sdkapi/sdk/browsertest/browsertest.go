// Package browsertest drives Debian's Chromium for tests: one headless
// browser process per test, a fresh browser context (its own cookies and
// storage, like a separate profile) per page, fake camera and microphone.
//
// Chromium is found as $PARLEY_CHROMIUM, or chromium, chromium-browser,
// google-chrome or google-chrome-stable on PATH. Without one the test
// fails with instructions, never skips: `make deps` (or `apt-get install
// -y chromium`) installs it.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Find returns the path of a Chromium binary, or an error saying how to
// install one.
func Find() (string, error) {
	if p := os.Getenv("PARLEY_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("PARLEY_CHROMIUM=%s: %w", p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no Chromium found (looked for $PARLEY_CHROMIUM, chromium, chromium-browser, google-chrome): " +
		"install it with `make deps` or `apt-get install -y chromium` (Debian/Ubuntu), or set PARLEY_CHROMIUM; the browser tests do not skip")
}

// Browser is one Chromium process.
type Browser struct {
	root context.Context
}

// Start launches Chromium for the test; it stops when the test ends.
func Start(t testing.TB) *Browser {
	t.Helper()
	path, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		// WebRTC on loopback, with plain addresses (no mDNS names).
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Screen sharing without a picker: with these and the fake media
		// flags above, getDisplayMedia answers at once with a fake screen.
		chromedp.Flag("auto-select-desktop-capture-source", "Entire screen"),
		chromedp.Flag("enable-usermedia-screen-capturing", true),
		// The SDK's window mode opens its popup when a call starts, which
		// the test does without a user gesture.
		chromedp.Flag("disable-popup-blocking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1100, 760),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelRoot := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelRoot(); cancelAlloc() })
	if err := chromedp.Do(root); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	return &Browser{root: root}
}

// Page is one tab in a browser context of its own.
type Page struct {
	t   testing.TB
	ctx context.Context
}

// Open opens url in a new browser context; it closes when the test ends.
func (b *Browser) Open(t testing.TB, url string) *Page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &Page{t: t, ctx: ctx}
	// The first run creates the tab, which lives as long as that run's
	// context: it must not be one with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	if err := p.do(chromedp.EmulateViewport(1100, 760), chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return p
}

// Popup waits up to timeout for a window that the page opened
// (window.open) and returns it as a page of its own: Eval and Wait run in
// the popup's document. It fails the test when none opens.
func (p *Page) Popup(timeout time.Duration) *Page {
	p.t.Helper()
	c := chromedp.FromContext(p.ctx)
	if c == nil || c.Target == nil {
		p.t.Fatal("Popup: the page has no target")
	}
	self := c.Target.TargetID
	deadline := time.Now().Add(timeout)
	for {
		infos, err := chromedp.Targets(p.ctx)
		for _, in := range infos {
			if in.Type != "page" || in.OpenerID != self {
				continue
			}
			ctx, cancel := chromedp.NewContext(p.ctx, chromedp.WithTargetID(in.TargetID))
			p.t.Cleanup(cancel)
			if err := chromedp.Do(ctx); err != nil {
				p.t.Fatalf("attach to the popup %s: %v", in.URL, err)
			}
			return &Page{t: p.t, ctx: ctx}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no popup window opened within %v (last error: %v)", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Popups counts the windows the page opened that are still open.
func (p *Page) Popups() int {
	p.t.Helper()
	self := chromedp.FromContext(p.ctx).Target.TargetID
	infos, err := chromedp.Targets(p.ctx)
	if err != nil {
		p.t.Fatalf("list targets: %v", err)
	}
	n := 0
	for _, in := range infos {
		if in.Type == "page" && in.OpenerID == self {
			n++
		}
	}
	return n
}

// For returns the page reporting failures to t: a page opened by a test
// and used by its subtests.
func (p *Page) For(t testing.TB) *Page {
	q := *p
	q.t = t
	return &q
}

func (p *Page) do(steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// Eval evaluates a JavaScript expression (awaiting a promise) and decodes
// its JSON value into out (nil to ignore it). An exception or a rejected
// promise fails the test.
func (p *Page) Eval(js string, out any) {
	p.t.Helper()
	if err := p.TryEval(js, out); err != nil {
		p.t.Fatalf("%s\n→ %v", js, err)
	}
}

// TryEval is Eval returning the error.
func (p *Page) TryEval(js string, out any) error {
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if out == nil {
		// By reference: the value may be an SDK object, which does not
		// serialise (it refers to itself).
		_, err := chromedp.Run(ctx, chromedp.Evaluate[*runtime.RemoteObject](js, chromedp.EvalAwaitPromise, chromedp.EvalObjectGroup("ignored")))
		return err
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	if len(raw) == 0 {
		raw = []byte("null")
	}
	return json.Unmarshal(raw, out)
}

// String evaluates js to a string.
func (p *Page) String(js string) string {
	p.t.Helper()
	var s string
	p.Eval(js, &s)
	return s
}

// Wait polls js until it is truthy, failing the test after timeout.
func (p *Page) Wait(what, js string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		err := p.TryEval("!!("+js+")", &ok)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out after %v waiting for %s (%s; last error: %v)", timeout, what, js, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Keys types keys into the focused element with real key events.
func (p *Page) Keys(keys string) {
	p.t.Helper()
	if err := p.do(chromedp.KeyEvent(keys)); err != nil {
		p.t.Fatalf("typing %q: %v", keys, err)
	}
}

// Screenshot writes the viewport as dir/name.png and returns the path.
func (p *Page) Screenshot(dir, name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, strings.TrimSuffix(name, ".png")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// Quote makes a JavaScript string literal of s.
func Quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
