// Package sdkapi is everything clients speak: the REST API shaped like the
// vendor's v2 API (sdkapi/rest), the companies, API keys and users behind
// it (sdkapi/directory), the SDK access tokens (sdkapi/token), the
// WebSocket session (sdkapi/session) and the browser SDK, which the kernel
// serves (sdkapi/sdk).
//
// sdkapi drives the kernel: every change is a command executed by the
// kernel and recorded as events in the log; sdkapi reads them back through
// its projections. The kernel does not import sdkapi.
package sdkapi
