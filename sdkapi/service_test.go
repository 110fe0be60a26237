package sdkapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/kernel/kerneltest"
	"github.com/parleyhq/parley/sdkapi"
	"github.com/parleyhq/parley/sdkapi/rest"
	"github.com/parleyhq/parley/sdkapi/sdkapitest"
)

type env struct {
	t    *testing.T
	srv  *httptest.Server
	svc  *sdkapi.Service
	keyX string
	keyY string
	appX string
}

// newEnv runs a real kernel in a temp dir with the REST API on a real HTTP
// server, and two companies, X and Y.
func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := kerneltest.Config(t.TempDir())
	cfg.CORSOrigins = "https://app.example"
	s := sdkapitest.Start(t, cfg, sdkapi.Options{})
	svc, ctx := s.Svc, context.Background()
	x, keyX, err := svc.Bootstrap(ctx)
	if err != nil || keyX == "" {
		t.Fatalf("bootstrap: %v", err)
	}
	if _, again, _ := svc.Bootstrap(ctx); again != "" {
		t.Fatal("bootstrap created a second first company")
	}
	_, keyY := s.Company(t, "Other clinic")
	return &env{t: t, srv: s.HTTP, svc: svc, keyX: keyX, keyY: keyY, appX: x.AppID}
}

// do sends a request and decodes the JSON answer.
func (e *env) do(method, path, key, body string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("apikey", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func TestUsersLifecycle(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, method, path, key, body string
		status                        int
		want                          string // a field=value or code in the answer
	}{
		{"no key", "GET", "/v2/users", "", "", 401, "code=unauthorized"},
		{"wrong key", "GET", "/v2/users", "pk_nope", "", 401, "code=unauthorized"},
		{"create", "POST", "/v2/users", e.keyX, `{"id":"alice","role":"plus"}`, 201, "user_id=alice"},
		{"create default role", "POST", "/v2/users", e.keyX, `{"id":"bob","can_video":false}`, 201, "role=basic"},
		{"duplicate id", "POST", "/v2/users", e.keyX, `{"id":"alice"}`, 409, "code=user_already_exists"},
		{"bad id", "POST", "/v2/users", e.keyX, `{"id":"no spaces"}`, 400, "code=validation_error"},
		{"bad role", "POST", "/v2/users", e.keyX, `{"id":"carol","role":"admin"}`, 400, "code=validation_error"},
		{"unknown field", "POST", "/v2/users", e.keyX, `{"id":"dave","isAdmin":true}`, 400, "code=malformed_json"},
		{"malformed", "POST", "/v2/users", e.keyX, `{"id":`, 400, "code=malformed_json"},
		{"too large", "POST", "/v2/users", e.keyX, `{"display_name":"` + strings.Repeat("x", rest.MaxBody) + `"}`, 413, "code=payload_too_large"},
		{"get", "GET", "/v2/users/alice", e.keyX, "", 200, "role=plus"},
		{"update", "PUT", "/v2/users/alice", e.keyX, `{"display_name":"Dr. Alice"}`, 200, "display_name=Dr. Alice"},
		{"update nothing", "PUT", "/v2/users/alice", e.keyX, `{"display_name":"Dr. Alice"}`, 400, "code=nothing_to_update"},
		{"set language", "PUT", "/v2/users/alice", e.keyX, `{"language":"fr"}`, 200, "language=fr"},
		{"clear language", "PUT", "/v2/users/alice", e.keyX, `{"language":""}`, 200, "language="},
		{"cleared stays cleared", "PUT", "/v2/users/alice", e.keyX, `{"can_video":false}`, 200, "language="},
		{"deactivate", "PUT", "/v2/users/bob", e.keyX, `{"active":false}`, 200, "active=false"},
		{"update inactive", "PUT", "/v2/users/bob", e.keyX, `{"role":"plus"}`, 400, "code=user_inactive"},
		{"token for inactive", "POST", "/v2/sdk/credentials", e.keyX, `{"user_id":"bob","expires_in":3600}`, 400, "code=user_inactive"},
		{"delete", "DELETE", "/v2/users/alice", e.keyX, "", 204, ""},
		{"get deleted", "GET", "/v2/users/alice", e.keyX, "", 404, "code=user_not_found"},
		{"reuse deleted id", "POST", "/v2/users", e.keyX, `{"id":"alice"}`, 409, "code=user_already_exists"},
		{"delete missing", "DELETE", "/v2/users/zed", e.keyX, "", 404, "code=user_not_found"},
	}
	for _, c := range cases {
		status, out := e.do(c.method, c.path, c.key, c.body)
		if status != c.status {
			t.Errorf("%s: status %d, want %d (%v)", c.name, status, c.status, out)
			continue
		}
		if c.want != "" {
			field, value, _ := strings.Cut(c.want, "=")
			if got := fmtValue(out[field]); got != value {
				t.Errorf("%s: %s=%q, want %q (%v)", c.name, field, got, value, out)
			}
		}
	}
	_, list := e.do("GET", "/v2/users", e.keyX, "")
	users := list["users"].([]any)
	if len(users) != 1 || users[0].(map[string]any)["user_id"] != "bob" {
		t.Fatalf("list %v", list)
	}
}

func fmtValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case bool:
		if v {
			return "true"
		}
		return "false"
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// TestCompaniesAreIsolated: company Y's key neither sees nor changes
// company X's users, and tokens name their company.
func TestCompaniesAreIsolated(t *testing.T) {
	e := newEnv(t)
	if s, _ := e.do("POST", "/v2/users", e.keyX, `{"id":"alice"}`); s != 201 {
		t.Fatal(s)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v2/users/alice", ""},
		{"PUT", "/v2/users/alice", `{"role":"plus"}`},
		{"DELETE", "/v2/users/alice", ""},
		{"POST", "/v2/sdk/credentials", `{"user_id":"alice","expires_in":3600}`},
	} {
		if s, out := e.do(c.method, c.path, e.keyY, c.body); s != 404 || out["code"] != "user_not_found" {
			t.Errorf("Y %s %s: %d %v", c.method, c.path, s, out)
		}
	}
	if _, list := e.do("GET", "/v2/users", e.keyY, ""); len(list["users"].([]any)) != 0 {
		t.Fatalf("Y sees X's users: %v", list)
	}
	// Y can have its own alice: ids are per company.
	if s, _ := e.do("POST", "/v2/users", e.keyY, `{"id":"alice"}`); s != 201 {
		t.Fatalf("Y's alice: %d", s)
	}
	_, tok := e.do("POST", "/v2/sdk/credentials", e.keyX, `{"user_id":"alice","expires_in":3600}`)
	claims, err := e.svc.Tokens.Verify("", tok["access_token"].(string))
	if err != nil || claims.AppID != e.appX || claims.UserID != "alice" {
		t.Fatalf("X's token: %+v %v", claims, err)
	}
	if _, err := e.svc.Tokens.Verify("other-company", tok["access_token"].(string)); kernel.AsError(err).Code != "access_token_invalid" {
		t.Fatalf("X's token accepted for another company: %v", err)
	}
}

func TestCredentials(t *testing.T) {
	e := newEnv(t)
	e.do("POST", "/v2/users", e.keyX, `{"id":"alice"}`)
	before := time.Now()
	s, out := e.do("POST", "/v2/sdk/credentials", e.keyX, `{"user_id":"alice","expires_in":3600}`)
	if s != 200 || out["user_id"] != "alice" {
		t.Fatalf("%d %v", s, out)
	}
	exp, err := time.Parse(time.RFC3339, out["expires_at"].(string))
	if err != nil || exp.Before(before.Add(3599*time.Second)) || exp.After(before.Add(3601*time.Second)) {
		t.Fatalf("expires_at %v %v", out["expires_at"], err)
	}
	if !regexp.MustCompile(`^[\w-]+\.[\w-]+\.[\w-]+$`).MatchString(out["access_token"].(string)) {
		t.Fatalf("not a JWT: %v", out["access_token"])
	}
	for _, body := range []string{`{"user_id":"alice","expires_in":359}`, `{"user_id":"alice","expires_in":86401}`, `{"user_id":"alice","expires_in":18446744434}`, `{"user_id":"alice","expires_in":9223372036}`} {
		if s, out := e.do("POST", "/v2/sdk/credentials", e.keyX, body); s != 400 || out["code"] != "validation_error" {
			t.Errorf("%s: %d %v", body, s, out)
		}
	}
	if s, out := e.do("POST", "/v2/sdk/credentials", e.keyX, `{"user_id":"ghost","expires_in":3600}`); s != 404 || out["code"] != "user_not_found" {
		t.Errorf("unknown user: %d %v", s, out)
	}
}

// TestOpenAPIMatchesRoutes keeps /v2/openapi.json and the route table in
// step, both ways.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.srv.URL + "/v2/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: %v %q", err, doc.OpenAPI)
	}
	var documented, served []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	for _, r := range rest.Routes {
		served = append(served, r.Method+" "+r.Path)
	}
	sort.Strings(documented)
	sort.Strings(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Fatalf("documented:\n%s\nserved:\n%s", strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
}

func TestCORSOffUnlessConfigured(t *testing.T) {
	e := newEnv(t)
	for origin, want := range map[string]string{"https://app.example": "https://app.example", "https://evil.example": ""} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v2/users", bytes.NewReader(nil))
		req.Header.Set("apikey", e.keyX)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("origin %s: allow-origin %q, want %q", origin, got, want)
		}
	}
}

// TestDirectoryRebuildsFromTheLog: after a restart the companies, keys and
// users are what the log says.
func TestDirectoryRebuildsFromTheLog(t *testing.T) {
	cfg := kernel.DefaultConfig()
	cfg.DataDir = t.TempDir()
	run := func(f func(svc *sdkapi.Service, mux *http.ServeMux)) {
		k, err := kernel.Open(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		svc, _ := sdkapi.New(k, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		k.Start(ctx)
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		mux := http.NewServeMux()
		svc.Mount(mux)
		f(svc, mux)
		cancel()
		<-done
		k.Close(context.Background(), "test")
	}
	call := func(mux *http.ServeMux, method, path, key, body string) int {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("apikey", key)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Code
	}
	var key string
	run(func(svc *sdkapi.Service, mux *http.ServeMux) {
		_, key, _ = svc.Bootstrap(context.Background())
		if c := call(mux, "POST", "/v2/users", key, `{"id":"alice"}`); c != 201 {
			t.Fatalf("create: %d", c)
		}
		call(mux, "POST", "/v2/users", key, `{"id":"bob"}`)
		call(mux, "DELETE", "/v2/users/bob", key, "")
	})
	run(func(svc *sdkapi.Service, mux *http.ServeMux) {
		if _, again, _ := svc.Bootstrap(context.Background()); again != "" {
			t.Fatal("a restart created another first company")
		}
		if c := call(mux, "GET", "/v2/users/alice", key, ""); c != 200 {
			t.Fatalf("alice after restart: %d", c)
		}
		if c := call(mux, "GET", "/v2/users/bob", key, ""); c != 404 {
			t.Fatalf("deleted bob after restart: %d", c)
		}
	})
}

// TestCallLinkPage: a call link opened in a browser serves the widget
// configured for the link's company and joining its call; a link that
// does not verify, or names another region, is a 404 page.
func TestCallLinkPage(t *testing.T) {
	e := newEnv(t)
	tok, err := e.svc.Tokens.IssueLink(context.Background(), e.appX, "alice", "room_1")
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/eu/" + rest.LinkPath + "/" + tok)
	for _, want := range []string{`/sdk/js/chat/latest/bandyer-widget.min.js`, `appId: "` + e.appX + `"`, `region: "eu"`, `joinCallURL(location.href)`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("link page: %d, want %q in\n%s", code, want, body)
		}
	}
	for _, path := range []string{"/eu/" + rest.LinkPath + "/not-a-token", "/us/" + rest.LinkPath + "/" + tok} {
		if code, _ := get(path); code != 404 {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
}

// TestReservedUserIDs: a user cannot be named like the platform's own
// actors, so no user passes for the operator or the kernel.
func TestReservedUserIDs(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"operator", "kernel"} {
		if code, body := e.do("POST", "/v2/users", e.keyX, `{"id":"`+id+`"}`); code != 400 || body["code"] != "validation_error" {
			t.Errorf("user %q: %d %v", id, code, body)
		}
	}
	if code, _ := e.do("POST", "/v2/users", e.keyX, `{"id":"operator2"}`); code != 201 {
		t.Errorf("user operator2: %d", code)
	}
}
