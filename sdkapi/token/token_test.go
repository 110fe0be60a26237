package token

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
)

func newIssuer(t *testing.T) *Issuer {
	l, err := eventlog.Open(t.TempDir(), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return New(l)
}

func code(err error) kernel.Code { return kernel.AsError(err).Code }

func TestIssueVerifyExpire(t *testing.T) {
	ctx := context.Background()
	i := newIssuer(t)
	now := time.Unix(1_800_000_000, 0)
	i.now = func() time.Time { return now }
	tok, exp, err := i.Issue(ctx, "app-x", "alice", 10*time.Minute)
	if err != nil || !exp.Equal(now.Add(10*time.Minute)) {
		t.Fatalf("issue: %v %v", exp, err)
	}
	c, err := i.Verify("app-x", tok)
	if err != nil || c.UserID != "alice" || c.AppID != "app-x" || !c.ExpiresAt.Equal(exp) {
		t.Fatalf("verify: %+v %v", c, err)
	}
	now = now.Add(11 * time.Minute)
	if _, err := i.Verify("app-x", tok); code(err) != CodeExpired {
		t.Fatalf("expired: %v", err)
	}
	for _, ttl := range []time.Duration{MinTTL - time.Second, MaxTTL + time.Second} {
		if _, _, err := i.Issue(ctx, "app-x", "alice", ttl); code(err) != kernel.CodeValidation {
			t.Errorf("ttl %s: %v", ttl, err)
		}
	}
}

func TestTamperedAndForeignTokens(t *testing.T) {
	ctx := context.Background()
	i := newIssuer(t)
	tok, _, _ := i.Issue(ctx, "app-x", "alice", time.Hour)
	parts := strings.Split(tok, ".")
	sig := []byte(parts[2])
	sig[3] ^= 1
	tampered := parts[0] + "." + parts[1] + "." + string(sig)
	if _, err := i.Verify("", tampered); code(err) != CodeInvalidSignature && code(err) != CodeInvalid {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := i.Verify("", "not.a.token"); code(err) != CodeInvalid {
		t.Fatalf("garbage: %v", err)
	}
	// A token signed by another kernel's secret for the same company.
	other := newIssuer(t)
	foreign, _, _ := other.Issue(ctx, "app-x", "alice", time.Hour)
	if _, err := i.Verify("", foreign); code(err) != CodeInvalidSignature {
		t.Fatalf("foreign: %v", err)
	}
}

// TestRotationKeepsIssuedTokens: after one rotation old tokens still
// verify; after a second, the oldest secret is retired.
func TestRotationKeepsIssuedTokens(t *testing.T) {
	ctx := context.Background()
	i := newIssuer(t)
	first, _, _ := i.Issue(ctx, "app-x", "alice", time.Hour)
	if err := i.Rotate(ctx, "app-x"); err != nil {
		t.Fatal(err)
	}
	second, _, _ := i.Issue(ctx, "app-x", "alice", time.Hour)
	for name, tok := range map[string]string{"first": first, "second": second} {
		if _, err := i.Verify("app-x", tok); err != nil {
			t.Fatalf("%s after one rotation: %v", name, err)
		}
	}
	i.Rotate(ctx, "app-x")
	if _, err := i.Verify("app-x", first); code(err) != CodeInvalidSignature {
		t.Fatalf("first after two rotations: %v", err)
	}
	if _, err := i.Verify("app-x", second); err != nil {
		t.Fatalf("second after two rotations: %v", err)
	}
}

// TestLinkTokens: a call-link token names its company, user and room; it
// does not pass for an access token, nor an access token for it; a
// forged one fails.
func TestLinkTokens(t *testing.T) {
	ctx := context.Background()
	iss := newIssuer(t)
	link, err := iss.IssueLink(ctx, "app-a", "alice", "room_1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := iss.VerifyLink(link)
	if err != nil || c != (LinkClaims{AppID: "app-a", UserID: "alice", RoomID: "room_1"}) {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := iss.Verify("app-a", link); err == nil {
		t.Fatal("a link token passed for an access token")
	}
	access, _, err := iss.Issue(ctx, "app-a", "alice", MinTTL)
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{"an access token": access, "garbage": "x.y.z", "a forged signature": link[:len(link)-4] + "AAAA"} {
		if _, err := iss.VerifyLink(raw); kernel.AsError(err).Code != CodeLinkInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
}
