// Package pluginhost runs plugins for the kernel: built-ins in its process
// (Transport inproc) or re-executed from the kernel binary, and installed
// plugins as separate executables pinned by SHA-256 (Transport process,
// hashicorp/go-plugin over gRPC with AutoMTLS).
//
// For each plugin (Spec) the Host:
//
//   - registers its commands, queries and client methods with the kernel
//     from its granted manifest, answering unavailable while it restarts;
//   - delivers the events it subscribes to from its durable cursor
//     (plugin/<id>) in batches, opening sealed payloads, redelivering a
//     refused batch after a pause, and saving the cursor only past what
//     the plugin applied;
//   - serves it the Kernel API, checking every call against the manifest;
//   - supervises it: start timeout, health pings, restart with backoff, a
//     crash budget after which it is failed, no orphaned processes
//     (parent-death signal), its stderr in the kernel's log tagged with
//     its id; plugin.started/crashed/failed/stopped are durable events.
//
// Install stages, hashes and inspects a plugin executable before it is
// copied to the plugins directory; LoadInstalled reads what `kernel serve`
// runs.
package pluginhost
