package kernel

import (
	"context"
	"errors"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/plugins"
)

// Code is a stable error code that clients see. The type lives in the
// plugin contract so plugins return the same errors; this file is the one
// catalogue of the codes the kernel uses, and the widget API's codes
// (sdkapi) join it rather than inventing a second scheme.
type Code = plugins.Code

// The kernel's error codes.
const (
	CodeUnknownCommand   Code = "unknown_command"            // no handler owns the command name
	CodeUnknownQuery     Code = "unknown_query"              // no handler answers the query name
	CodeInvalidCommand        = plugins.CodeInvalidCommand   // the command is malformed (no stream, bad payload)
	CodeValidation            = plugins.CodeValidation       // an argument is invalid (the widget reference's code)
	CodeConflict              = plugins.CodeConflict         // the stream moved on while the command was decided
	CodeBusy             Code = "busy"                       // the append queue is full, or a command gave up waiting for its stream; retry later
	CodePayloadTooLarge  Code = "payload_too_large"          // a payload over the configured limit
	CodePermissionDenied      = plugins.CodePermissionDenied // a plugin called outside its manifest
	CodeUnavailable           = plugins.CodeUnavailable      // the kernel or the owning plugin is not serving
	CodeInternal              = plugins.CodeInternal         // a bug: a handler panicked or broke a rule
)

// Error is an error with a stable code and a message for humans.
type Error = plugins.Error

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return plugins.Errorf(code, format, args...)
}

// AsError maps any error to a coded *Error: coded errors pass through,
// event log errors get their code, anything else is internal.
func AsError(err error) *Error {
	var e *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.Is(err, eventlog.ErrConflict):
		return &Error{Code: CodeConflict, Message: err.Error()}
	case errors.Is(err, eventlog.ErrQueueFull):
		return &Error{Code: CodeBusy, Message: err.Error()}
	case errors.Is(err, eventlog.ErrPayloadTooLarge):
		return &Error{Code: CodePayloadTooLarge, Message: err.Error()}
	case errors.Is(err, eventlog.ErrInvalidEvent):
		return &Error{Code: CodeInvalidCommand, Message: err.Error()}
	case errors.Is(err, eventlog.ErrClosed), errors.Is(err, eventlog.ErrFailed):
		return &Error{Code: CodeUnavailable, Message: err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The caller gave up (or the kernel is stopping): not a bug.
		return &Error{Code: CodeUnavailable, Message: err.Error()}
	default:
		return &Error{Code: CodeInternal, Message: err.Error()}
	}
}
