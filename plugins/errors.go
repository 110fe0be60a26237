package plugins

import (
	"errors"
	"fmt"
)

// Code is a stable error code, seen by clients. The kernel's catalogue
// (kernel/errors.go) lists the codes it uses; a plugin may add its own.
type Code string

// Codes every plugin may return or meet.
const (
	CodeInvalidCommand   Code = "invalid_command"   // the command's payload is not acceptable
	CodePermissionDenied Code = "permission_denied" // a kernel API call outside the manifest
	CodeInternal         Code = "internal_error"    // a bug: a panic, a broken rule
	CodeUnavailable      Code = "unavailable"       // the plugin or kernel is not serving
	CodeValidation       Code = "validation_error"  // a parameter is missing or malformed (the widget reference's code)
	CodeConflict         Code = "conflict"          // the stream was not at the version expected (NewEvent.Expect)
)

// Error is an error with a stable code and a message for humans. It
// crosses the process boundary unchanged.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsCoded returns err as an *Error, with code internal_error when it
// carries none.
func AsCoded(err error) *Error {
	var e *Error
	if err == nil {
		return nil
	}
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}
