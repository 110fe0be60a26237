// Package plugins is the contract every Parley plugin implements and the
// SDK an integrator imports to write one. It links neither the kernel nor
// the event log: a plugin binary is `plugins.Serve(myPlugin)` and nothing
// else of Parley.
//
// A plugin is a Go value that describes itself (Plugin.Manifest) and
// implements what it needs of:
//
//   - CommandHandler: decide the events a command produces, or refuse it
//     with an *Error whose code clients see. Deciding has no side effects:
//     the kernel may decide again when the stream moved meanwhile.
//   - QueryHandler: answer a query from the plugin's state.
//   - EventApplier: receive the events it subscribes to, in seq order, at
//     least once, resumed from a durable cursor after a restart.
//   - Starter and Stopper: set up with the narrow Kernel API, clean up.
//   - Aborter (in process only): clean up after the host killed the
//     activation, keeping what the next one takes over.
//
// The Manifest is also everything a plugin may do: the commands and
// queries it owns, the client methods the session protocol exposes to
// users (with the stream template each command is serialised on), the
// event types it emits (durable or ephemeral), the stream prefixes it
// writes, the topics it subscribes to, and the Kernel API permissions it
// calls (log.append, log.read, publish, kv, keys). The kernel refuses
// anything beyond it, and an installed plugin is pinned to the manifest
// the operator approved.
//
// The same plugin runs in the kernel's process or in its own process
// (hashicorp/go-plugin over gRPC, see Serve and the proto package) with
// the same behaviour; package plugintest runs one against an in-memory
// kernel for unit tests. docs/plugins.md is the integrator's guide.
package plugins
