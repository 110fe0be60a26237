package rest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/parleyhq/parley/kernel"
	"github.com/parleyhq/parley/sdkapi/directory"
)

// The rooms' routes (call links) call the call plugin (parley.call)
// through the kernel, as the company (actor "apikey:<app_id>"); the
// streams come from its manifest's client methods. The plugin keeps the
// rooms; the API signs each participant's link with the company's token
// secret (token.IssueLink), so the links themselves are in no event.
const (
	callRoomCreate  = "call.room.create"
	callRoomDisable = "call.room.disable"
	callRoomDelete  = "call.room.delete"
	callRoomGet     = "call.room.get"
	callRooms       = "call.rooms"
)

// The call plugin's codes with a status of their own; its others
// (validation_error, no_plus_user) are the client's to fix: 400.
const (
	CodeRoomNotFound kernel.Code = "room_not_found" // no such room (or deleted)
)

// LinkPath is the path segment of a call link, as the vendor's:
// <base>/<region>/direct-rest-call-handler/<token>.
const LinkPath = "direct-rest-call-handler"

// RoomParticipant is one invitee of a room.
type RoomParticipant struct {
	UserID  string `json:"user_id"`
	IsAdmin bool   `json:"is_admin"`
	// Tools: missing is every tool on, an empty object every tool off.
	Tools json.RawMessage `json:"tools,omitempty"`
}

// RoomCreate is POST /v2/rooms' body.
type RoomCreate struct {
	Participants []RoomParticipant `json:"participants"`        // 2..25
	Recording    string            `json:"recording,omitempty"` // none (default), manual or automatic
	Duration     *int              `json:"duration,omitempty"`  // seconds of call with both connected, at least 60; absent: no limit
	CallType     string            `json:"call_type,omitempty"` // audio_only, audio_upgradable or audio_video (default)
	Live         bool              `json:"live,omitempty"`      // ring the invitees when the first one opens their link
}

// UserURL is one participant's call link.
type UserURL struct {
	User    string          `json:"user"`
	URL     string          `json:"url"`
	Tools   json.RawMessage `json:"tools"`
	IsAdmin bool            `json:"is_admin"`
}

// Room is a room as the REST API shows it.
type Room struct {
	RoomID       string            `json:"room_id"`
	Participants []RoomParticipant `json:"participants"`
	Recording    string            `json:"recording"`
	Duration     int               `json:"duration"`
	CallType     string            `json:"call_type"`
	Live         bool              `json:"live"`
	CreatedAt    string            `json:"created_at"`
	Disabled     bool              `json:"disabled"`
	// Link is false for the room of a call made with the widget's
	// createCall (GET /v2/rooms/{id} answers those too, without links).
	Link       bool      `json:"link"`
	CallID     string    `json:"call_id,omitempty"`     // the room's call in progress
	CallStatus string    `json:"call_status,omitempty"` // its status
	UserURLs   []UserURL `json:"user_urls,omitempty"`   // one link per participant (POST, GET by id, disable)
}

// theCalls is what the REST API calls the call plugin in its errors.
const theCalls = "the call plugin"

// roomQuery asks the call plugin about a room (or all, id "") and decodes
// its answer into v.
func (a *API) roomQuery(ctx context.Context, c directory.Company, name, roomID string, v any) error {
	return a.pluginQuery(ctx, c, name, theCalls, map[string]any{"room_id": roomID}, v)
}

// withLinks adds each participant's call link to a link room.
func (a *API) withLinks(r *http.Request, c directory.Company, room *Room) error {
	if !room.Link {
		return nil
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	base := scheme + "://" + r.Host + "/" + c.Region + "/" + LinkPath + "/"
	room.UserURLs = make([]UserURL, len(room.Participants))
	for i, pt := range room.Participants {
		tok, err := a.tokens.IssueLink(r.Context(), c.AppID, pt.UserID, room.RoomID)
		if err != nil {
			return err
		}
		room.UserURLs[i] = UserURL{User: pt.UserID, URL: base + tok, Tools: pt.Tools, IsAdmin: pt.IsAdmin}
	}
	return nil
}

// room answers one room, with its links, as {"room": Room}.
func (a *API) room(w http.ResponseWriter, r *http.Request, c directory.Company, id string, status int) {
	var room Room
	if err := a.roomQuery(r.Context(), c, callRoomGet, id, &room); err != nil {
		WriteError(w, err)
		return
	}
	if err := a.withLinks(r, c, &room); err != nil {
		WriteError(w, err)
		return
	}
	WriteJSON(w, status, map[string]Room{"room": room})
}

// createRoom creates a call link's room: 201 with a link per participant.
func (a *API) createRoom(w http.ResponseWriter, r *http.Request, c directory.Company) {
	var in RoomCreate
	if err := decode(r, &in); err != nil {
		WriteError(w, err)
		return
	}
	for _, pt := range in.Participants {
		if _, ok := a.dir.User(c.AppID, pt.UserID); !ok && directory.ValidUserID(pt.UserID) {
			WriteError(w, kernel.Errorf(directory.CodeUserNotFound, "no user %q", pt.UserID))
			return
		}
	}
	evs, err := a.pluginExecute(r.Context(), c, callRoomCreate, theCalls, in)
	if err != nil {
		WriteError(w, err)
		return
	}
	var created struct {
		RoomID string `json:"room_id"`
	}
	if len(evs) != 1 || json.Unmarshal(evs[0].Payload, &created) != nil || created.RoomID == "" {
		WriteError(w, kernel.Errorf(kernel.CodeInternal, "the call plugin created no room"))
		return
	}
	a.room(w, r, c, created.RoomID, http.StatusCreated)
}

// listRooms lists the company's call links' rooms, oldest first, without
// their links.
func (a *API) listRooms(w http.ResponseWriter, r *http.Request, c directory.Company) {
	var ans struct {
		Rooms []Room `json:"rooms"`
	}
	if err := a.roomQuery(r.Context(), c, callRooms, "", &ans); err != nil {
		WriteError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, ans)
}

func (a *API) getRoom(w http.ResponseWriter, r *http.Request, c directory.Company) {
	a.room(w, r, c, r.PathValue("id"), http.StatusOK)
}

// disableRoom disables a room: its links stop working and its call in
// progress ends (room_closed). Disabling it again changes nothing.
func (a *API) disableRoom(w http.ResponseWriter, r *http.Request, c directory.Company) {
	id := r.PathValue("id")
	if _, err := a.pluginExecute(r.Context(), c, callRoomDisable, theCalls, map[string]string{"room_id": id}); err != nil {
		WriteError(w, err)
		return
	}
	a.room(w, r, c, id, http.StatusOK)
}

// deleteRoom deletes a room: as disable, and it is gone.
func (a *API) deleteRoom(w http.ResponseWriter, r *http.Request, c directory.Company) {
	if _, err := a.pluginExecute(r.Context(), c, callRoomDelete, theCalls, map[string]string{"room_id": r.PathValue("id")}); err != nil {
		WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
