// Package token issues and verifies the SDK access tokens: JWTs (HS256)
// signed with a per-company secret, naming the user and the company.
//
// Secrets live in the event log's state store (never in the events, so an
// audit export shows none). Rotate adds a new secret and keeps the previous
// one for verification, so tokens already issued stay valid until they
// expire; a second rotation retires the oldest.
package token

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
)

// The error codes of the widget reference for tokens.
const (
	CodeExpired          kernel.Code = "access_token_expired"
	CodeInvalid          kernel.Code = "access_token_invalid"
	CodeInvalidSignature kernel.Code = "access_token_invalid_signature"
	CodeInvalidUser      kernel.Code = "access_token_invalid_user"
)

// Lifetimes a token may be issued for, in seconds (the vendor's limits).
const (
	MinTTL = 360 * time.Second
	MaxTTL = 86400 * time.Second
)

const issuer = "parley"

// Claims are what a token says.
type Claims struct {
	UserID    string
	AppID     string
	ExpiresAt time.Time
}

// Issuer signs and verifies tokens for every company.
type Issuer struct {
	log *eventlog.Log
	now func() time.Time
	mu  sync.Mutex // serialises changes to the secrets (read, change, write)
}

// New returns an issuer keeping its secrets in log's state store.
func New(log *eventlog.Log) *Issuer { return NewWithClock(log, time.Now) }

// NewWithClock is New with a clock for issuing and checking expiry; tests
// use a clock in the past to get tokens that expire within seconds.
func NewWithClock(log *eventlog.Log, now func() time.Time) *Issuer {
	return &Issuer{log: log, now: now}
}

type secret struct {
	ID  string `json:"id"`
	Key []byte `json:"key"`
}

const namespace = "sdkapi/token-secrets"

func (i *Issuer) secrets(appID string) ([]secret, error) {
	v, ok, err := i.log.GetState(namespace, appID)
	if err != nil || !ok {
		return nil, err
	}
	var s []secret
	return s, json.Unmarshal(v, &s)
}

// Rotate makes a new signing secret for a company (the first one if it has
// none) and keeps the previous one for verification only.
func (i *Issuer) Rotate(ctx context.Context, appID string) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.rotateLocked(ctx, appID)
}

func (i *Issuer) rotateLocked(ctx context.Context, appID string) error {
	old, err := i.secrets(appID)
	if err != nil {
		return err
	}
	key := make([]byte, 32)
	rand.Read(key)
	id := make([]byte, 6)
	rand.Read(id)
	s := append([]secret{{ID: hex.EncodeToString(id), Key: key}}, old...)
	if len(s) > 2 {
		s = s[:2]
	}
	b, _ := json.Marshal(s)
	return i.log.PutState(ctx, namespace, appID, b)
}

// Issue signs a token for userID of appID, valid for ttl.
func (i *Issuer) Issue(ctx context.Context, appID, userID string, ttl time.Duration) (string, time.Time, error) {
	if ttl < MinTTL || ttl > MaxTTL {
		return "", time.Time{}, kernel.Errorf(kernel.CodeValidation, "expires_in must be %d..%d seconds", int(MinTTL.Seconds()), int(MaxTTL.Seconds()))
	}
	now := i.now()
	exp := now.Add(ttl).Truncate(time.Second)
	signed, err := i.sign(ctx, appID, jwt.RegisteredClaims{
		Issuer: issuer, Subject: userID, Audience: jwt.ClaimStrings{appID},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
	})
	return signed, exp, err
}

// sign signs claims with the company's current secret, made on first use.
func (i *Issuer) sign(ctx context.Context, appID string, claims jwt.Claims) (string, error) {
	s, err := i.secrets(appID)
	if err != nil {
		return "", err
	}
	if len(s) == 0 { // the company's first token: make its secret, once
		i.mu.Lock()
		if s, err = i.secrets(appID); err == nil && len(s) == 0 {
			if err = i.rotateLocked(ctx, appID); err == nil {
				s, err = i.secrets(appID)
			}
		}
		i.mu.Unlock()
		if err != nil {
			return "", err
		}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["kid"] = s[0].ID
	return t.SignedString(s[0].Key)
}

// key finds the secret a token names (its kid), among those of the
// company its audience names; it reports that company in app.
func (i *Issuer) key(app *string) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		aud, err := t.Claims.GetAudience()
		if err != nil || len(aud) != 1 {
			return nil, errors.New("token names no company")
		}
		*app = aud[0]
		secrets, err := i.secrets(*app)
		if err != nil {
			return nil, err
		}
		kid, _ := t.Header["kid"].(string)
		for _, s := range secrets {
			if s.ID == kid {
				return s.Key, nil
			}
		}
		return nil, jwt.ErrTokenSignatureInvalid
	}
}

// Verify checks a token and returns its claims, or an *kernel.Error with
// one of the reference's codes. appID, when not empty, must be the
// token's company.
func (i *Issuer) Verify(appID, raw string) (Claims, error) {
	var rc jwt.RegisteredClaims
	var tokenApp string
	_, err := jwt.ParseWithClaims(raw, &rc, i.key(&tokenApp),
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(issuer), jwt.WithTimeFunc(i.now), jwt.WithExpirationRequired())
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, kernel.Errorf(CodeExpired, "the access token expired")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return Claims{}, kernel.Errorf(CodeInvalidSignature, "the access token's signature does not verify")
	default:
		return Claims{}, kernel.Errorf(CodeInvalid, "the access token is invalid: %v", err)
	}
	if appID != "" && tokenApp != appID {
		return Claims{}, kernel.Errorf(CodeInvalid, "the access token belongs to another company")
	}
	return Claims{UserID: rc.Subject, AppID: tokenApp, ExpiresAt: rc.ExpiresAt.Time}, nil
}
