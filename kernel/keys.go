package kernel

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel/keystore"
	"github.com/parleyhq/parley/plugins"
)

// keyErasedType is the durable event EraseKey records.
const keyErasedType = "kernel.key.erased"

// Keys is the kernel's store of company keys (NewEvent.Seal).
func (k *Kernel) Keys() *keystore.Store { return k.keys }

// OpenEvent returns e as readers see it: a sealed payload opened, or, when
// its key was erased, erased true and no payload. An event that was never
// sealed comes back as is, without allocating. A sealed payload that does
// not open (tampered with: Verify says where) is logged and treated as
// erased, since nobody can read it; only store failures are errors. The
// returned event's Hash still covers the stored, sealed bytes.
func (k *Kernel) OpenEvent(e eventlog.Event) (opened eventlog.Event, erased bool, err error) {
	plain, sealed, erased, err := k.keys.Open(e.Company, e.Payload)
	if errors.Is(err, keystore.ErrBroken) {
		k.logger.Error("sealed payload does not open; treating it as erased", "seq", e.Seq, "type", e.Type, "err", err)
		plain, erased, err = nil, true, nil
	}
	if err != nil || !sealed {
		return e, false, err
	}
	e.Payload = plain
	return e, erased, nil
}

// EraseKey destroys company's key name: every payload sealed under it
// opens as erased from then on. When a live key existed, a durable
// kernel.key.erased event (stream "kernel", company and actor in the
// envelope, payload {"key": name}) is appended first, so a crash in
// between leaves the event and a live key, and calling EraseKey again
// finishes the erasure. Erasing an absent or erased key does nothing.
// Permission checks are the caller's (the plugin host checks the grant).
func (k *Kernel) EraseKey(ctx context.Context, company, name, actor string) error {
	gen, live, err := k.keys.Generation(company, name)
	if err != nil || !live {
		return keyError(err)
	}
	p, err := json.Marshal(map[string]any{"key": name, "generation": gen})
	if err != nil {
		return err
	}
	if _, err := k.log.Append(ctx, eventlog.Draft{Type: keyErasedType, Stream: "kernel", Company: company, Actor: actor, Payload: p}); err != nil {
		return err
	}
	// Recorded: the key goes now, whatever the caller does meanwhile.
	_, err = k.keys.Erase(context.WithoutCancel(ctx), company, name)
	if err == nil {
		k.logger.Info("company key erased", "company", company, "key", name, "actor", actor)
	}
	return keyError(err)
}

// finishErasures erases every key a kernel.key.erased event names that is
// still live: EraseKey records the erasure before it destroys the key, so
// a crash in between leaves both, and the log's word must come true.
func (k *Kernel) finishErasures(ctx context.Context) error {
	return k.log.ReadStream(ctx, "kernel", 1, func(e eventlog.Event) error {
		if e.Type != keyErasedType {
			return nil
		}
		var p struct {
			Key        string `json:"key"`
			Generation uint32 `json:"generation"`
		}
		if json.Unmarshal(e.Payload, &p) != nil || p.Key == "" || p.Generation == 0 {
			return nil // recorded before generations were: its erasure cannot be told from a newer key's life
		}
		gen, live, err := k.keys.Generation(e.Company, p.Key)
		if err != nil || !live || gen != p.Generation {
			return keyError(err) // erased, or created again since: that one lives
		}
		if _, err := k.keys.Erase(ctx, e.Company, p.Key); err != nil {
			return keyError(err)
		}
		k.logger.Warn("finished an erasure interrupted by a crash", "company", e.Company, "key", p.Key, "seq", e.Seq)
		return nil
	})
}

// SealPayload returns the payload the log stores for e, an event of
// company: e.Payload, sealed under the key e.Seal names when it is set. A
// payload that would pass for a sealed one is refused (permission_denied),
// a bad key name too (invalid_command). Permission checks are the
// caller's.
func (k *Kernel) SealPayload(ctx context.Context, company string, e NewEvent) ([]byte, error) {
	if plugins.HasSealedKey(e.Payload) {
		return nil, Errorf(CodePermissionDenied, "event %s has a payload with a top-level %q key: only the kernel seals payloads", e.Type, plugins.SealedKey)
	}
	if e.Seal == "" {
		return e.Payload, nil
	}
	p, err := k.keys.Seal(ctx, company, e.Seal, e.Payload)
	return p, keyError(err)
}

// keyError gives a bad key name its code.
func keyError(err error) error {
	if errors.Is(err, keystore.ErrInvalidName) {
		return Errorf(CodeInvalidCommand, "%v", err)
	}
	return err
}
