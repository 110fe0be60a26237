package plugintest

import (
	"context"
	"fmt"

	"github.com/parleyhq/parley/plugins"
)

// InjectAs is Inject with the envelope's company and actor set, as the
// kernel stamps them: a company's user events, say.
func (k *Kernel) InjectAs(ctx context.Context, company, actor string, events ...plugins.NewEvent) ([]plugins.Event, error) {
	return k.append(ctx, company, actor, events)
}

// Restart puts p, typically a fresh instance of the same plugin, in the
// place of the running one and starts it (Starter) over the same log,
// key/value store and keys, as the kernel does after a crash or a restart.
// The old instance is dropped as by a crash: it is not stopped now (a
// Stopper still stops at the end of the test). Events already delivered
// are not delivered again. Do not call it concurrently with other calls.
func (k *Kernel) Restart(ctx context.Context, p plugins.Plugin) error {
	m := p.Manifest()
	if err := m.Validate(); err != nil {
		return fmt.Errorf("plugintest: manifest: %w", err)
	}
	k.mu.Lock()
	k.p, k.manifest = p, m
	k.mu.Unlock()
	if s, ok := p.(plugins.Starter); ok {
		if err := s.Start(ctx, k); err != nil {
			return fmt.Errorf("plugintest: Start: %w", err)
		}
	}
	if s, ok := p.(plugins.Stopper); ok {
		k.t.Cleanup(func() {
			if err := s.Stop(context.Background()); err != nil {
				k.t.Errorf("plugintest: Stop: %v", err)
			}
		})
	}
	return nil
}
