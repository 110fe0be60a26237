package token

import (
	"context"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/parleyhq/parley/kernel"
)

// CodeLinkInvalid is the widget reference's code for a call link whose
// token does not verify (joinCallURL's invalid_token).
const CodeLinkInvalid kernel.Code = "invalid_token"

// linkIssuer tells call-link tokens from access tokens: neither passes
// for the other.
const linkIssuer = "parley-link"

// LinkClaims are what a call-link token says: one user's access to one
// room of a company.
type LinkClaims struct {
	AppID, UserID, RoomID string
}

type linkClaims struct {
	jwt.RegisteredClaims
	Room string `json:"room"`
}

// IssueLink signs a call-link token for userID in roomID of appID, with
// the company's token secret. It does not expire: the room's state (a
// disabled or deleted room refuses it) and the secret's rotation (two
// rotations retire it) end it.
func (i *Issuer) IssueLink(ctx context.Context, appID, userID, roomID string) (string, error) {
	return i.sign(ctx, appID, linkClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: linkIssuer, Subject: userID, Audience: jwt.ClaimStrings{appID}, IssuedAt: jwt.NewNumericDate(i.now()),
		},
		Room: roomID,
	})
}

// VerifyLink checks a call-link token and returns its claims, or a
// *kernel.Error with code invalid_token.
func (i *Issuer) VerifyLink(raw string) (LinkClaims, error) {
	var c linkClaims
	var app string
	_, err := jwt.ParseWithClaims(raw, &c, i.key(&app),
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(linkIssuer), jwt.WithTimeFunc(i.now), jwt.WithLeeway(time.Minute))
	if err == nil && (c.Subject == "" || c.Room == "") {
		err = errors.New("it names no user or no room")
	}
	if err != nil {
		return LinkClaims{}, kernel.Errorf(CodeLinkInvalid, "the call link's token is invalid: %v", err)
	}
	return LinkClaims{AppID: app, UserID: c.Subject, RoomID: c.Room}, nil
}
