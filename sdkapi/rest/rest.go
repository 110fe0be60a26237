// Package rest serves the integrator's REST API, shaped like the vendor's
// v2 API so existing server code ports: `apikey` header authentication,
// JSON in and out, errors as {"code", "message"} with a stable code.
//
// Routes (documented in openapi.json, served at /v2/openapi.json and
// checked against this table by a test):
//
//	POST   /v2/users             create a user
//	GET    /v2/users             list the company's users
//	GET    /v2/users/{id}        one user
//	PUT    /v2/users/{id}        change role, can_video, language, display_name; "active": false deactivates
//	DELETE /v2/users/{id}        delete (the id is never reused)
//	POST   /v2/sdk/credentials   an SDK access token for a user
//	GET    /v2/users/{user_id}/channels           a user's chat channels, with their unread counts
//	POST   /v2/channels                           {"participants": [a, b]}: 201 a new channel, 200 the existing one
//	DELETE /v2/channels/{channel_id}              remove a channel; its messages are erased for good
//	GET    /v2/channels/{channel_id}/messages     a page of messages (user_id, limit, anchor, direction)
//	POST   /v2/rooms                 a call link's room: {"room": {room_id, user_urls: [{user, url, tools, is_admin}], ...}}
//	GET    /v2/rooms                 the company's rooms (without links)
//	GET    /v2/rooms/{id}            one room, with its links ({"room": ...}); also a createCall call's room
//	DELETE /v2/rooms/{id}            delete a room; its call in progress ends
//	PUT    /v2/rooms/{id}/disable    disable a room: its links stop working, its call in progress ends
//
// Every request is authorised against the company its API key belongs to:
// a key sees and changes only its own company's users and channels.
//
// The chat routes call the chat plugin through the kernel (see chat.go);
// while it is not running they answer 503 unavailable. The plugin's codes
// pass through: channel_not_found, channel_not_exists and delete_channel
// are 404, message_not_saved 503, validation_error, create_channel_oto
// and message_anchor_error 400.
//
// The rooms' routes call the call plugin the same way (see rooms.go):
// room_not_found is 404, no_plus_user and validation_error 400, and while
// it is not running 503 unavailable.
package rest

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/sdkapi/directory"
	"github.com/parleyhq/parley/sdkapi/token"
)

//go:embed openapi.json
var openAPI []byte

// Codes of the REST layer itself.
const (
	CodeUnauthorized   kernel.Code = "unauthorized"
	CodeNotFound       kernel.Code = "not_found"
	CodeMalformedJSON  kernel.Code = "malformed_json"
	CodeInternalServer kernel.Code = "internal_server_error"
)

// MaxBody caps a request body.
const MaxBody = 64 << 10

// Config configures the API.
type Config struct {
	// CORSOrigins lists the origins allowed to call the API from a
	// browser; empty (the default) sends no CORS headers at all.
	CORSOrigins []string
}

// API is the REST API.
type API struct {
	k      *kernel.Kernel
	dir    *directory.Directory
	tokens *token.Issuer
	cfg    Config
}

// New returns the API.
func New(k *kernel.Kernel, dir *directory.Directory, tokens *token.Issuer, cfg Config) *API {
	return &API{k: k, dir: dir, tokens: tokens, cfg: cfg}
}

// Route is one documented route.
type Route struct {
	Method, Path string
	handle       func(*API, http.ResponseWriter, *http.Request, directory.Company)
}

// Routes is the API's route table.
var Routes = []Route{
	{"POST", "/v2/users", (*API).createUser},
	{"GET", "/v2/users", (*API).listUsers},
	{"GET", "/v2/users/{id}", (*API).getUser},
	{"PUT", "/v2/users/{id}", (*API).updateUser},
	{"DELETE", "/v2/users/{id}", (*API).deleteUser},
	{"POST", "/v2/sdk/credentials", (*API).credentials},
	{"GET", "/v2/users/{user_id}/channels", (*API).userChannels},
	{"POST", "/v2/channels", (*API).createChannel},
	{"DELETE", "/v2/channels/{channel_id}", (*API).deleteChannel},
	{"GET", "/v2/channels/{channel_id}/messages", (*API).channelMessages},
	{"POST", "/v2/rooms", (*API).createRoom},
	{"GET", "/v2/rooms", (*API).listRooms},
	{"GET", "/v2/rooms/{id}", (*API).getRoom},
	{"DELETE", "/v2/rooms/{id}", (*API).deleteRoom},
	{"PUT", "/v2/rooms/{id}/disable", (*API).disableRoom},
}

// Mount adds the routes (and /v2/openapi.json) to mux.
func (a *API) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /v2/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
	for _, r := range Routes {
		mux.Handle(r.Method+" "+r.Path, a.cors(a.authenticated(r.handle)))
	}
}

func (a *API) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			for _, allowed := range a.cfg.CORSOrigins {
				if o == allowed {
					w.Header().Set("Access-Control-Allow-Origin", o)
					w.Header().Set("Vary", "Origin")
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// authenticated resolves the apikey header to a company.
func (a *API) authenticated(h func(*API, http.ResponseWriter, *http.Request, directory.Company)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("apikey")
		c, ok := a.dir.CompanyByAPIKey(key)
		if key == "" || !ok {
			WriteError(w, kernel.Errorf(CodeUnauthorized, "a valid apikey header is required"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		h(a, w, r, c)
	})
}

// Status maps an error code to its HTTP status: the one mapping every
// HTTP surface of the kernel uses. Codes it does not name (a plugin's own)
// are the client's to fix: 400.
func Status(c kernel.Code) int {
	switch c {
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case directory.CodeUserNotFound, directory.CodeCompanyNotFound, CodeNotFound,
		CodeChannelNotFound, CodeChannelNotExists, CodeDeleteChannel, CodeRoomNotFound:
		return http.StatusNotFound
	case directory.CodeUserExists, kernel.CodeConflict:
		return http.StatusConflict
	case kernel.CodePayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case kernel.CodeBusy, kernel.CodeUnavailable, CodeMessageNotSaved:
		return http.StatusServiceUnavailable
	case kernel.CodeInternal, CodeInternalServer:
		return http.StatusInternalServerError
	case kernel.CodePermissionDenied:
		return http.StatusForbidden
	default:
		return http.StatusBadRequest
	}
}

// WriteJSON writes v as a JSON response with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// WriteError writes err as a coded JSON error with its HTTP status.
func WriteError(w http.ResponseWriter, err error) {
	e := kernel.AsError(err)
	WriteJSON(w, Status(e.Code), e)
}

// decode reads a JSON body strictly.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return kernel.Errorf(kernel.CodePayloadTooLarge, "the body is over %d bytes", MaxBody)
		}
		return kernel.Errorf(CodeMalformedJSON, "the body is not the expected JSON: %v", err)
	}
	return nil
}

// execute runs a command for company c and waits until the directory has
// applied its events, so the response and the next read agree.
func (a *API) execute(ctx context.Context, c directory.Company, name, stream string, payload any) ([]eventlog.Event, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	evs, err := a.k.Execute(ctx, kernel.Command{Name: name, Stream: stream, Company: c.AppID, Actor: "apikey:" + c.AppID, Payload: p})
	if err != nil {
		return nil, err
	}
	if len(evs) > 0 {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := a.dir.WaitFor(wctx, evs[len(evs)-1].Seq); err != nil {
			return nil, err
		}
	}
	return evs, nil
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, c directory.Company) {
	var in struct {
		ID          string `json:"id"`
		Role        string `json:"role"`
		CanVideo    *bool  `json:"can_video"`
		Language    string `json:"language"`
		DisplayName string `json:"display_name"`
	}
	if err := decode(r, &in); err != nil {
		WriteError(w, err)
		return
	}
	if in.ID == "" {
		in.ID = "u-" + strings.TrimPrefix(directory.NewAppID(), "app-")
	}
	if !directory.ValidUserID(in.ID) {
		WriteError(w, kernel.Errorf(kernel.CodeValidation, "id %q: 1..128 of a-z A-Z 0-9 . _ -", in.ID))
		return
	}
	cmd := directory.UserCreate{UserID: in.ID, Role: in.Role, CanVideo: in.CanVideo, Language: in.Language, DisplayName: in.DisplayName}
	if _, err := a.execute(r.Context(), c, directory.CmdUserCreate, directory.UserStream(c.AppID, in.ID), cmd); err != nil {
		WriteError(w, err)
		return
	}
	u, _ := a.dir.User(c.AppID, in.ID)
	WriteJSON(w, http.StatusCreated, u)
}

func (a *API) listUsers(w http.ResponseWriter, _ *http.Request, c directory.Company) {
	WriteJSON(w, http.StatusOK, map[string]any{"users": a.dir.Users(c.AppID)})
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request, c directory.Company) {
	u, ok := a.dir.User(c.AppID, r.PathValue("id"))
	if !ok {
		WriteError(w, kernel.Errorf(directory.CodeUserNotFound, "no user %q", r.PathValue("id")))
		return
	}
	WriteJSON(w, http.StatusOK, u)
}

func (a *API) updateUser(w http.ResponseWriter, r *http.Request, c directory.Company) {
	var in directory.UserUpdate
	if err := decode(r, &in); err != nil {
		WriteError(w, err)
		return
	}
	id := r.PathValue("id")
	if !directory.ValidUserID(id) {
		WriteError(w, kernel.Errorf(directory.CodeUserNotFound, "no user %q", id))
		return
	}
	in.UserID = id
	if _, err := a.execute(r.Context(), c, directory.CmdUserUpdate, directory.UserStream(c.AppID, id), in); err != nil {
		WriteError(w, err)
		return
	}
	u, _ := a.dir.User(c.AppID, id)
	WriteJSON(w, http.StatusOK, u)
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request, c directory.Company) {
	id := r.PathValue("id")
	if !directory.ValidUserID(id) {
		WriteError(w, kernel.Errorf(directory.CodeUserNotFound, "no user %q", id))
		return
	}
	if _, err := a.execute(r.Context(), c, directory.CmdUserDelete, directory.UserStream(c.AppID, id), map[string]string{"user_id": id}); err != nil {
		WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) credentials(w http.ResponseWriter, r *http.Request, c directory.Company) {
	var in struct {
		UserID    string `json:"user_id"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := decode(r, &in); err != nil {
		WriteError(w, err)
		return
	}
	u, ok := a.dir.User(c.AppID, in.UserID)
	if !ok {
		WriteError(w, kernel.Errorf(directory.CodeUserNotFound, "no user %q", in.UserID))
		return
	}
	if !u.Active {
		WriteError(w, kernel.Errorf(directory.CodeUserInactive, "user %q is deactivated", in.UserID))
		return
	}
	if in.ExpiresIn < int(token.MinTTL.Seconds()) || in.ExpiresIn > int(token.MaxTTL.Seconds()) { // before multiplying: no overflow
		WriteError(w, kernel.Errorf(kernel.CodeValidation, "expires_in must be %d..%d seconds", int(token.MinTTL.Seconds()), int(token.MaxTTL.Seconds())))
		return
	}
	tok, exp, err := a.tokens.Issue(r.Context(), c.AppID, u.ID, time.Duration(in.ExpiresIn)*time.Second)
	if err != nil {
		WriteError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"access_token": tok, "expires_at": exp.UTC().Format(time.RFC3339), "user_id": u.ID})
}
