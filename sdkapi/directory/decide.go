package directory

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/parleyhq/parley/kernel"
)

// CompanyCreate is the payload of company.create.
type CompanyCreate struct {
	AppID           string `json:"app_id"`
	Name            string `json:"name"`
	Region          string `json:"region"`
	Environment     string `json:"environment"`
	DefaultLanguage string `json:"default_language"`
}

func (d *Directory) decideCompanyCreate(_ context.Context, cmd kernel.Command) ([]kernel.NewEvent, error) {
	var c CompanyCreate
	if err := json.Unmarshal(cmd.Payload, &c); err != nil {
		return nil, invalid("company: %v", err)
	}
	switch {
	case !appIDPattern.MatchString(c.AppID):
		return nil, invalid("app_id %q: 3..64 of a-z 0-9 _ -", c.AppID)
	case cmd.Stream != CompanyStream(c.AppID):
		return nil, invalid("company.create on stream %q, want %q", cmd.Stream, CompanyStream(c.AppID))
	case c.Name == "" || len(c.Name) > 200:
		return nil, invalid("name must be 1..200 bytes")
	case !slices.Contains(kernel.Regions, c.Region):
		return nil, kernel.Errorf(CodeRegionUnsupported, "region %q is not one of %v", c.Region, kernel.Regions)
	case !slices.Contains(kernel.Environments, c.Environment):
		return nil, invalid("environment %q is not one of %v", c.Environment, kernel.Environments)
	case cmd.Version != 0:
		return nil, kernel.Errorf(CodeCompanyExists, "company %s already exists", c.AppID)
	}
	if c.DefaultLanguage == "" {
		c.DefaultLanguage = "en"
	}
	return []kernel.NewEvent{{Type: "company.created", Payload: payload(c)}}, nil
}

// APIKeyCreate is the payload of company.apikey.create: only the hash of
// the key enters the log.
type APIKeyCreate struct {
	KeyID  string `json:"key_id"`
	SHA256 string `json:"sha256"`
}

func (d *Directory) decideAPIKeyCreate(_ context.Context, cmd kernel.Command) ([]kernel.NewEvent, error) {
	var k APIKeyCreate
	if err := json.Unmarshal(cmd.Payload, &k); err != nil || len(k.SHA256) != 64 || k.KeyID == "" {
		return nil, invalid("api key: want key_id and a hex sha256")
	}
	if cmd.Version == 0 {
		return nil, kernel.Errorf(CodeCompanyNotFound, "no company on stream %s", cmd.Stream)
	}
	return []kernel.NewEvent{{Type: "company.apikey.created", Payload: payload(k)}}, nil
}

// UserCreate is the payload of user.create.
type UserCreate struct {
	UserID      string `json:"user_id"`
	Role        string `json:"role"`
	CanVideo    *bool  `json:"can_video"`
	Language    string `json:"language"`
	DisplayName string `json:"display_name"`
}

func (d *Directory) decideUserCreate(_ context.Context, cmd kernel.Command) ([]kernel.NewEvent, error) {
	var in UserCreate
	if err := json.Unmarshal(cmd.Payload, &in); err != nil {
		return nil, invalid("user: %v", err)
	}
	if _, ok := d.Company(cmd.Company); !ok {
		return nil, kernel.Errorf(CodeCompanyNotFound, "no company %q", cmd.Company)
	}
	u := User{ID: in.UserID, Role: in.Role, CanVideo: true, Language: in.Language, DisplayName: in.DisplayName, Active: true}
	if in.CanVideo != nil {
		u.CanVideo = *in.CanVideo
	}
	if u.Role == "" {
		u.Role = "basic"
	}
	if err := validateUser(u); err != nil {
		return nil, err
	}
	if cmd.Stream != UserStream(cmd.Company, u.ID) {
		return nil, invalid("user.create on stream %q, want %q", cmd.Stream, UserStream(cmd.Company, u.ID))
	}
	if cmd.Version != 0 { // ids are never reused, not even after deletion
		return nil, kernel.Errorf(CodeUserExists, "user %q already exists or existed", u.ID)
	}
	return []kernel.NewEvent{{Type: "user.created", Audience: []string{u.ID}, Payload: payload(u)}}, nil
}

func validateUser(u User) error {
	switch {
	case !ValidUserID(u.ID):
		return invalid("user_id %q: 1..128 of a-z A-Z 0-9 . _ -", u.ID)
	case !slices.Contains(Roles, u.Role):
		return invalid("role %q is not one of %v", u.Role, Roles)
	case len(u.Language) > 16, len(u.DisplayName) > 200:
		return invalid("language is at most 16 bytes, display_name 200")
	}
	return nil
}

// UserUpdate is the payload of user.update; absent fields stay.
type UserUpdate struct {
	UserID      string  `json:"user_id"`
	Role        *string `json:"role"`
	CanVideo    *bool   `json:"can_video"`
	Language    *string `json:"language"`
	DisplayName *string `json:"display_name"`
	Active      *bool   `json:"active"`
}

// current folds a user's stream into its present state.
func (d *Directory) current(ctx context.Context, cmd kernel.Command) (User, error) {
	evs, err := d.streamEvents(ctx, cmd.Stream)
	if err != nil {
		return User{}, err
	}
	var u User
	exists := false
	for _, e := range evs {
		switch e.Type {
		case "user.created", "user.updated":
			var next User // each event carries the whole user: absent fields are empty
			if json.Unmarshal(e.Payload, &next) == nil {
				u, exists = next, true
			}
		case "user.deactivated":
			u.Active = false
		case "user.deleted":
			exists = false
		}
	}
	if !exists {
		return User{}, kernel.Errorf(CodeUserNotFound, "no user on stream %s", cmd.Stream)
	}
	return u, nil
}

func (d *Directory) decideUserUpdate(ctx context.Context, cmd kernel.Command) ([]kernel.NewEvent, error) {
	var in UserUpdate
	if err := json.Unmarshal(cmd.Payload, &in); err != nil {
		return nil, invalid("user: %v", err)
	}
	u, err := d.current(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if !u.Active {
		return nil, kernel.Errorf(CodeUserInactive, "user %q is deactivated", u.ID)
	}
	next := u
	if in.Role != nil {
		next.Role = *in.Role
	}
	if in.CanVideo != nil {
		next.CanVideo = *in.CanVideo
	}
	if in.Language != nil {
		next.Language = *in.Language
	}
	if in.DisplayName != nil {
		next.DisplayName = *in.DisplayName
	}
	if err := validateUser(next); err != nil {
		return nil, err
	}
	var evs []kernel.NewEvent
	if next != u {
		evs = append(evs, kernel.NewEvent{Type: "user.updated", Audience: []string{u.ID}, Payload: payload(next)})
	}
	if in.Active != nil && !*in.Active {
		evs = append(evs, kernel.NewEvent{Type: "user.deactivated", Audience: []string{u.ID}, Payload: payload(userRef{UserID: u.ID})})
	}
	if len(evs) == 0 {
		return nil, kernel.Errorf(CodeNothingToUpdate, "the update changes nothing")
	}
	return evs, nil
}

func (d *Directory) decideUserDelete(ctx context.Context, cmd kernel.Command) ([]kernel.NewEvent, error) {
	u, err := d.current(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return []kernel.NewEvent{{Type: "user.deleted", Audience: []string{u.ID}, Payload: payload(userRef{UserID: u.ID})}}, nil
}
