package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp/kb"
	"github.com/parleyhq/parley/sdkapi/sdk/browsertest"
)

// TestDemoChat is the newcomer's path: `kernel serve --demo`, /demo in two
// browser tabs, one user in each, a message from one to the other through
// the widget.
func TestDemoChat(t *testing.T) {
	s := startServer(t, t.TempDir(), "--demo")
	b := browsertest.Start(t)
	alice, bob := b.Open(t, s.base+"/demo"), b.Open(t, s.base+"/demo")
	for _, c := range []struct {
		p    *browsertest.Page
		user string
	}{{alice, "alice"}, {bob, "bob"}} {
		c.p.Wait("the users to pick from", "document.querySelector('#users button[data-user-id="+c.user+"]')", 10*time.Second)
		c.p.Eval("document.querySelector('#users button[data-user-id="+c.user+"]').click()", nil)
		c.p.Wait(c.user+" connected", "!document.getElementById('chat').hidden", 10*time.Second)
	}
	alice.Wait("bob online on alice's page", "document.querySelector('#others button[data-user-id=bob] .dot.on')", 5*time.Second)
	alice.Eval("document.querySelector('#others button[data-user-id=bob]').click()", nil)
	w := "document.querySelector('bandyer-widget').shadowRoot"
	alice.Wait("the chat with bob", w+".querySelector('.bw-title-name').textContent === 'Bob Ferri' && !"+w+".querySelector('.bw-chat').hidden", 5*time.Second)
	alice.Eval(w+".querySelector('.bw-textarea').focus()", nil)
	alice.Keys("hello from the demo")
	alice.Keys(kb.Enter)
	bob.Wait("bob's log", "document.getElementById('log').textContent.includes('received from Dr. Alice Rossi: hello from the demo')", 5*time.Second)
	bob.Wait("bob's channel row", w+".querySelector('.bw-row .bw-name').textContent === 'Dr. Alice Rossi' && "+w+".querySelector('.bw-row .bw-unread').textContent === '1'", 5*time.Second)
	bob.Screenshot(t.ArtifactDir(), "demo-bob")
	alice.Screenshot(t.ArtifactDir(), "demo-alice")

	// A reload keeps the tab's user (sessionStorage) and the history.
	bob.Eval("location.reload()", nil)
	bob.Wait("bob again after a reload", "typeof client === 'object' && client !== null && client.userId === 'bob' && client.channelsView.length === 1", 10*time.Second)
}

// TestDemoTokenIsLoopbackOnly: /demo/token hands out tokens without a
// login, so only to this machine.
func TestDemoTokenIsLoopbackOnly(t *testing.T) {
	d := &widgetDemo{started: make(chan struct{})}
	mux := http.NewServeMux()
	d.mount(mux)
	req := httptest.NewRequest("POST", "/demo/token", strings.NewReader(`{"userId":"alice"}`))
	req.RemoteAddr = "192.0.2.7:40000"
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	var e struct{ Code string }
	if json.Unmarshal(rec.Body.Bytes(), &e); rec.Code != http.StatusForbidden || e.Code != "permission_denied" {
		t.Fatalf("from another machine: %d %s", rec.Code, rec.Body)
	}
	// From this machine, before the kernel made its first company: not yet.
	req = httptest.NewRequest("POST", "/demo/token", strings.NewReader(`{"userId":"alice"}`))
	req.RemoteAddr = "[::1]:40000"
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("before start: %d %s", rec.Code, rec.Body)
	}
}

// TestDemoTokens: the demo's users and tokens through the real binary; a
// token opens a session like any other.
func TestDemoTokens(t *testing.T) {
	s := startServer(t, t.TempDir(), "--demo")
	code, body := get(t, s.base+"/demo")
	if code != 200 || !strings.Contains(body, `<script src="/sdk/js/chat/latest/bandyer-widget.min.js"></script>`) {
		t.Fatalf("/demo: %d", code)
	}
	var users struct {
		AppID, Region, Environment string
		Users                      []struct{ UserID, DisplayName string }
	}
	code, body = get(t, s.base+"/demo/users")
	if json.Unmarshal([]byte(body), &users); code != 200 || users.AppID == "" || users.Region != "eu" || len(users.Users) != 3 {
		t.Fatalf("/demo/users: %d %s", code, body)
	}
	// Asking again seeds nothing new.
	if _, again := get(t, s.base+"/demo/users"); !strings.Contains(again, users.AppID) {
		t.Fatalf("a second seed made another company: %s", again)
	}
	resp, err := http.Post(s.base+"/demo/token", "application/json", strings.NewReader(`{"userId":"bob"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ AppID, UserID, AccessToken, ExpiresAt string }
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != 200 || tok.AppID != users.AppID || tok.UserID != "bob" || strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatalf("/demo/token: %d %+v", resp.StatusCode, tok)
	}
	resp, err = http.Post(s.base+"/demo/token", "application/json", strings.NewReader(`{"userId":"mallory"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("a token for a stranger: %d", resp.StatusCode)
	}
	// The SDK is served by the binary.
	if code, js := get(t, s.base+"/sdk/js/chat/latest/bandyer-widget.min.js"); code != 200 || !strings.Contains(js, "BandyerSDK") {
		t.Fatalf("the SDK: %d", code)
	}
}
