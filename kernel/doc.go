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
// process; different streams run in parallel.
//
// Errors are *Error with a stable Code from errors.go; AsError maps any
// error to one.
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
// # Lifecycle
//
// Open (log, bus, metrics) → Handle/Subscribe → Start (bus running,
// kernel.started recorded, ready) → Close (bus drained, cursors saved,
// kernel.stopped recorded, queued appends committed, log closed).
//
// Configuration (Config, LoadConfig) comes from flags, PARLEY_*
// environment variables and an optional YAML file; every error names the
// setting.
package kernel
