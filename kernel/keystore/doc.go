// Package keystore keeps the kernel's company keys and seals event payloads
// with them, so that personal data can be erased from an append-only log:
// destroy the key and every payload sealed under it is unreadable for good,
// while the log's hash chain (which covers the ciphertext) still verifies.
//
// # Basics
//
//	ks, err := keystore.Open(ctx, log, "/etc/parley/master.key", logger)
//	sealed, err := ks.Seal(ctx, "acme", "chat/42", payload) // creates chat/42's key on first use
//	plain, sealed, erased, err := ks.Open("acme", stored)   // stored as is when it was never sealed
//	existed, err := ks.Erase(ctx, "acme", "chat/42")
//
// A key is identified by a company and a name (the kernel requires the name
// to lie inside a stream prefix the sealing plugin owns). Each key is 32
// random bytes used with AES-256-GCM. Keys are stored wrapped (AES-256-GCM
// under the master key) in the event log's state store, namespace
// "kernel/keys", and cached in memory (a bounded number of them).
//
// A sealed payload is JSON, so exports still print it:
//
//	{"$sealed":{"key":"chat/42","nonce":"<base64>","data":"<base64>"}}
//
// data is the ciphertext with its tag; the additional data is
// company + "\x00" + name, so a payload copied to another company or key
// does not open. The kernel refuses payloads that carry a top-level
// "$sealed" key themselves (plugins.HasSealedKey): only this package writes
// them.
//
// # The master key
//
// Open reads the master key (32 bytes, raw or as 64 hex digits) from a
// file. When the file is absent and the data directory has never used a
// master key, a new one is generated (mode 0600) and a warning says to back
// it up and keep it off the data disk: whoever holds both the disk and the
// master key can read every payload whose key still exists. A check value
// in the state store tells a wrong master key from the right one, so a
// wrong or missing file is a startup error naming the file rather than a
// log full of unreadable payloads.
//
// # Erasure
//
// Erase replaces the wrapped key with a tombstone. Payloads sealed under it
// then open as erased. Sealing again under the same name creates a new key
// (a new generation); payloads of the erased generation stay erased.
//
// # The latest seals
//
// A new event is opened by each of its first readers (the session hub,
// every plugin that subscribes to it) moments after it was sealed. The
// store keeps the plaintexts of its latest seals (1,024 of them), and Open
// hands those readers the plaintext instead of decrypting it again, as
// long as the payload is byte for byte the one sealed and its key is still
// the live generation. Erase drops the plaintexts of the key it erases.
//
// # Caveats
//
//   - Erasure destroys the key in the state store and in memory. bbolt
//     does not zero freed pages, so the wrapped key may linger in the file
//     until its page is reused; it is useless without the master key, which
//     is why the master key must not live on the data disk.
//   - A payload sealed while its key is being erased is erased as soon as
//     it is written.
//   - The sealed form does not name the key's generation: a payload that
//     fails to open under a re-created key is taken for one of an erased
//     generation and reads as erased, where under a first generation it is
//     ErrBroken. Tampering shows in eventlog's Verify either way.
//   - Sealing makes a payload about a third larger (base64) plus about
//     100 bytes; the event log's payload limit applies to the sealed form.
//   - Creating and erasing keys are serialised (each is a durable write);
//     sealing and opening under cached keys run in parallel.
package keystore
