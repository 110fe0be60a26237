// Package directory owns companies, their API keys and their users: the
// commands that change them, the events they leave in the log, and an
// in-memory projection the REST API and sessions read.
//
// # Streams and events
//
// A company lives in stream company/<app_id> (company.created,
// company.apikey.created, company.apikey.revoked); a user in
// user/<app_id>/<user_id> (user.created, user.updated, user.deactivated,
// user.deleted). Commands decide against their own stream, read from the
// log, so a decision never depends on how far the projection has got.
//
// # Secrets
//
// API keys are stored as SHA-256 hashes (a key is 32 random bytes, so a
// plain hash is enough); the key itself is shown once, when it is made.
package directory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/plugins"
)

// Error codes of the directory, part of the API's catalogue.
const (
	CodeCompanyNotFound   kernel.Code = "company_not_found"
	CodeCompanyExists     kernel.Code = "company_already_exists"
	CodeUserNotFound      kernel.Code = "user_not_found"
	CodeUserExists        kernel.Code = "user_already_exists"
	CodeUserInactive      kernel.Code = "user_inactive"
	CodeAPIKeyInvalid     kernel.Code = "api_key_invalid"
	CodeNothingToUpdate   kernel.Code = "nothing_to_update"
	CodeRegionUnsupported kernel.Code = "region_unsupported"
)

// Roles a user may have.
var Roles = []string{"basic", "plus"}

// Company is a tenant.
type Company struct {
	AppID           string    `json:"app_id"`
	Name            string    `json:"name"`
	Region          string    `json:"region"`
	Environment     string    `json:"environment"`
	DefaultLanguage string    `json:"default_language"`
	CreatedAt       time.Time `json:"created_at"`
}

// User is a user of a company.
type User struct {
	ID          string    `json:"user_id"`
	AppID       string    `json:"-"`
	Role        string    `json:"role"`
	CanVideo    bool      `json:"can_video"`
	Language    string    `json:"language,omitempty"`
	DisplayName string    `json:"display_name,omitempty"`
	Active      bool      `json:"active"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

var appIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{2,63}$`)

// ValidUserID reports whether id follows the vendor's rules and is not a
// name the platform gives its own actors ("operator", "kernel"), which a
// user must not be able to pass for (plugins.ValidUserID).
var ValidUserID = plugins.ValidUserID

// CompanyStream and UserStream name the streams.
func CompanyStream(appID string) string      { return "company/" + appID }
func UserStream(appID, userID string) string { return "user/" + appID + "/" + userID }

// EventTypes are the directory's durable event types.
var EventTypes = []kernel.EventType{
	{Name: "company.created", Durable: true, Doc: "a company (tenant) was created (payload: app_id, name, region, environment, default_language)"},
	{Name: "company.apikey.created", Durable: true, Doc: "an API key was issued (payload: key_id, sha256 of the key)"},
	{Name: "company.apikey.revoked", Durable: true, Doc: "an API key was revoked (payload: key_id)"},
	{Name: "user.created", Durable: true, Doc: "a user was created (payload: the user)"},
	{Name: "user.updated", Durable: true, Doc: "a user's attributes changed (payload: the user after the change)"},
	{Name: "user.deactivated", Durable: true, Doc: "a user was deactivated; the id cannot be reused (payload: user_id)"},
	{Name: "user.deleted", Durable: true, Doc: "a user was deleted; the id cannot be reused (payload: user_id)"},
}

// Commands the directory handles.
const (
	CmdCompanyCreate = "company.create"
	CmdAPIKeyCreate  = "company.apikey.create"
	CmdUserCreate    = "user.create"
	CmdUserUpdate    = "user.update"
	CmdUserDelete    = "user.delete"
)

// Directory registers the commands, keeps the projection and answers
// lookups. It is safe for concurrent use.
type Directory struct {
	k *kernel.Kernel

	mu        sync.RWMutex
	cond      *sync.Cond
	applied   uint64
	companies map[string]*Company
	keys      map[string]string // sha256 hex of an API key -> app id
	keyIDs    map[string]string // key id -> sha256 hex
	users     map[string]map[string]*User
	closed    bool
}

// New declares the event types, registers the command handlers on k and
// returns the directory. Call Run to keep the projection up to date.
func New(k *kernel.Kernel) (*Directory, error) {
	d := &Directory{
		k: k, companies: map[string]*Company{}, keys: map[string]string{}, keyIDs: map[string]string{},
		users: map[string]map[string]*User{},
	}
	d.cond = sync.NewCond(d.mu.RLocker())
	if err := k.EventTypes().Declare(EventTypes...); err != nil {
		return nil, err
	}
	for name, h := range map[string]kernel.HandlerFunc{
		CmdCompanyCreate: d.decideCompanyCreate,
		CmdAPIKeyCreate:  d.decideAPIKeyCreate,
		CmdUserCreate:    d.decideUserCreate,
		CmdUserUpdate:    d.decideUserUpdate,
		CmdUserDelete:    d.decideUserDelete,
	} {
		if err := k.Handle(name, h); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Run tails the log from the start and applies directory events to the
// projection until ctx ends. The Directory owns no goroutine: the caller
// runs Run in one and cancels ctx to stop it.
func (d *Directory) Run(ctx context.Context) error {
	defer func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		d.cond.Broadcast()
	}()
	tail := d.k.Log().Tail(1)
	for {
		e, err := tail.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		d.mu.Lock()
		d.apply(e)
		d.applied = e.Seq
		d.mu.Unlock()
		d.cond.Broadcast()
	}
}

// WaitFor blocks until the projection has applied seq (or Run stopped), so
// a read after a write sees the write.
func (d *Directory) WaitFor(ctx context.Context, seq uint64) error {
	stop := context.AfterFunc(ctx, func() {
		d.mu.Lock() // taken so the wake-up cannot fall between the check and Wait
		defer d.mu.Unlock()
		d.cond.Broadcast()
	})
	defer stop()
	d.mu.RLock()
	defer d.mu.RUnlock()
	for d.applied < seq && !d.closed {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.cond.Wait()
	}
	return nil
}

func (d *Directory) apply(e eventlog.Event) {
	// Only events the directory's own commands decided count: the kernel
	// stamps the company on them and the streams are the directory's.
	switch {
	case strings.HasPrefix(e.Type, "company.") && e.Stream != CompanyStream(e.Company):
		return
	case strings.HasPrefix(e.Type, "user.") && !strings.HasPrefix(e.Stream, "user/"+e.Company+"/"):
		return
	}
	switch e.Type {
	case "company.created":
		var c Company
		if json.Unmarshal(e.Payload, &c) == nil && c.AppID == e.Company && d.companies[c.AppID] == nil {
			c.CreatedAt = e.Time
			d.companies[c.AppID] = &c
			d.users[c.AppID] = map[string]*User{}
		}
	case "company.apikey.created":
		var p APIKeyCreate
		if json.Unmarshal(e.Payload, &p) == nil {
			d.keys[p.SHA256] = strings.TrimPrefix(e.Stream, "company/")
			d.keyIDs[p.KeyID] = p.SHA256
		}
	case "company.apikey.revoked":
		var p APIKeyCreate
		if json.Unmarshal(e.Payload, &p) == nil {
			delete(d.keys, d.keyIDs[p.KeyID])
		}
	case "user.created", "user.updated":
		var u User
		if json.Unmarshal(e.Payload, &u) == nil {
			u.AppID = e.Company
			if old := d.users[e.Company][u.ID]; old != nil {
				u.CreatedAt = old.CreatedAt
			} else {
				u.CreatedAt = e.Time
			}
			u.UpdatedAt = e.Time
			if d.users[e.Company] == nil {
				d.users[e.Company] = map[string]*User{}
			}
			d.users[e.Company][u.ID] = &u
		}
	case "user.deactivated":
		var p userRef
		if json.Unmarshal(e.Payload, &p) == nil {
			if u := d.users[e.Company][p.UserID]; u != nil {
				u.Active, u.UpdatedAt = false, e.Time
			}
		}
	case "user.deleted":
		var p userRef
		if json.Unmarshal(e.Payload, &p) == nil {
			delete(d.users[e.Company], p.UserID)
		}
	}
}

// userRef is the payload of user.deactivated and user.deleted.
type userRef struct {
	UserID string `json:"user_id"`
}

// CompanyByAPIKey authenticates an API key.
func (d *Directory) CompanyByAPIKey(key string) (Company, bool) {
	sum := sha256.Sum256([]byte(key))
	d.mu.RLock()
	defer d.mu.RUnlock()
	c, ok := d.companies[d.keys[hex.EncodeToString(sum[:])]]
	if !ok {
		return Company{}, false
	}
	return *c, true
}

// Company returns a company.
func (d *Directory) Company(appID string) (Company, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	c, ok := d.companies[appID]
	if !ok {
		return Company{}, false
	}
	return *c, true
}

// Companies returns every company, sorted by app id.
func (d *Directory) Companies() []Company {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]Company, 0, len(d.companies))
	for _, c := range d.companies {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b Company) int { return strings.Compare(a.AppID, b.AppID) })
	return out
}

// User returns a user of a company (deleted users are gone).
func (d *Directory) User(appID, userID string) (User, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	u, ok := d.users[appID][userID]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// Users returns a company's users sorted by id.
func (d *Directory) Users(appID string) []User {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]User, 0, len(d.users[appID]))
	for _, u := range d.users[appID] {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// NewAPIKey returns a fresh key, its id and its hash.
func NewAPIKey() (key, keyID, hash string) {
	b := make([]byte, 32)
	rand.Read(b)
	key = "pk_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	hash = hex.EncodeToString(sum[:])
	return key, hash[:12], hash
}

// NewAppID returns a fresh app id.
func NewAppID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "app-" + hex.EncodeToString(b)
}

// streamEvents folds a stream's events: the command handlers decide on
// the stream's own history, read from the log.
func (d *Directory) streamEvents(ctx context.Context, stream string) ([]eventlog.Event, error) {
	var evs []eventlog.Event
	err := d.k.Log().ReadStream(ctx, stream, 1, func(e eventlog.Event) error {
		evs = append(evs, e)
		return nil
	})
	return evs, err
}

func invalid(format string, args ...any) error {
	return kernel.Errorf(kernel.CodeValidation, format, args...)
}

func payload(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("directory: marshal %T: %v", v, err))
	}
	return b
}
