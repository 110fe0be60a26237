// Package kernel is Parley's core: it routes commands to their handlers,
// appends the events they decide to the event log, and delivers events to
// subscribers over the bus.
//
// # The flow
//
//	cmd := kernel.Command{Name: "chat.message.send", Stream: "channel/42", Actor: "alice", Payload: p}
//	events, err := k.Execute(ctx, cmd)
//
// Execute finds the one handler registered for cmd.Name, reads the
// stream's durable version, and asks the handler to decide (Handler.Handle
// sees it in cmd.Version). Durable events are appended with that version as
// the expectation, so a concurrent writer to the stream is detected, never
// merged: the command is decided again (up to 3 times). The caller gets its
// answer only when the events are durable. Ephemeral events are then
// published on the bus. Commands on one stream are serialised in this
// process; different streams run in parallel. A command waiting for the
// one before it on its stream gives up when its context does (code busy),
// so a slow handler holds up its stream's callers only as long as each is
// willing to wait.
//
// Errors are *Error with a stable Code from errors.go; AsError maps any
// error to one.
//
// # Queries and client methods
//
//	answer, err := k.Query(ctx, kernel.Query{Name: "poll.results", Company: "acme", Actor: "alice", Payload: p})
//
// A query reads: Query finds the one QueryHandler registered for its name
// (HandleQuery) and returns its JSON answer. Nothing is logged or
// serialised; handlers run concurrently. A name is a command or a query,
// never both.
//
// Some commands and queries are client methods (ExposeClient), which a
// user connected to the session protocol may call by name; ClientRoute
// tells the session which, and for a command the stream template to
// expand. Plugin hosts expose a plugin's client methods with its handlers
// and withdraw them when the plugin ends for good (stopped or failed),
// while its commands and queries stay routed and answer unavailable.
//
// # Event types
//
// Every event type is declared (EventTypes.Declare) as durable or
// ephemeral; the kernel refuses to emit an undeclared one. Durable types
// are what audit sees; docs/events.md lists them.
//
// # The bus
//
// See Bus for the delivery guarantees: durable subscribers tail the log
// through Watermill (kernel/logbus) from a durable cursor, in seq order, at
// least once; ephemeral events use an in-memory GoChannel.
//
// # Sealed payloads
//
// An event a handler decides with NewEvent.Seal set is appended with its
// payload encrypted under that company key (kernel/keystore; the master
// key file is Config.MasterKeyFile). OpenEvent turns a stored event back
// into what readers see: opened, or erased once EraseKey destroyed the
// key. Execute answers with the payloads as decided. A payload with a
// top-level "$sealed" key, from a caller or a handler, is refused: only
// the kernel writes those.
//
// # Lifecycle
//
// Open (log, bus, metrics) → Handle/HandleQuery/Subscribe → Start (bus running,
// kernel.started recorded, ready) → Close (bus drained, cursors saved,
// kernel.stopped recorded, queued appends committed, log closed).
//
// Configuration (Config, LoadConfig) comes from flags, PARLEY_*
// environment variables and an optional YAML file; every error names the
// setting.
package kernel
