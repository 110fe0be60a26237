package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel/hub"
	"github.com/parleyhq/parley/kernel/logbus"
)

// EventHandler handles one event delivered by the bus. Returning an error
// makes the bus retry it (with backoff); after the retries a durable event
// goes to the subscriber's dead-letter stream and delivery moves on.
type EventHandler func(ctx context.Context, e eventlog.Event) error

// Bus delivers events to subscribers over a Watermill router.
//
// Durable subscriptions read the event log through logbus: each has a
// durable cursor named after it, receives the events of its topic in seq
// order, one at a time, at least once, and resumes after a restart where
// it left off. A slow subscriber delays only itself; the append path never
// waits for subscribers.
//
// Ephemeral events never touch the log: they go over an in-memory GoChannel,
// with no order, persistence or redelivery guarantee; a handler error is
// retried, then logged and dropped.
//
// Every handler runs behind the same middleware, outermost first: the
// poison queue (durable) or a drop-and-log (ephemeral), retry with
// exponential backoff (3 retries from 50 ms), and a recoverer that turns a
// panic into an error.
type Bus struct {
	log     *eventlog.Log
	logger  *slog.Logger
	wlogger watermill.LoggerAdapter
	metrics *Metrics
	router  *message.Router
	eph     *gochannel.GoChannel
	poison  message.HandlerMiddleware
	retry   middleware.Retry

	mu   sync.Mutex
	subs map[string]*logbus.Subscriber // durable, by name
	eps  map[string]bool               // ephemeral names
	taps []func(eventlog.Event)        // synchronous ephemeral subscribers
}

// deadLetterType is the durable type a poisoned event leaves in the log.
const deadLetterType = "bus.message.poisoned"

func newBus(log *eventlog.Log, logger *slog.Logger, metrics *Metrics) (*Bus, error) {
	wl := watermill.NewSlogLogger(logger.With("component", "bus"))
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 3 * time.Second}, wl)
	if err != nil {
		return nil, err
	}
	b := &Bus{
		log: log, logger: logger, wlogger: wl, metrics: metrics, router: router,
		eph:  gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1024, PreserveContext: true}, wl),
		subs: map[string]*logbus.Subscriber{}, eps: map[string]bool{},
	}
	b.retry = middleware.Retry{MaxRetries: 3, InitialInterval: 50 * time.Millisecond, MaxInterval: time.Second, Multiplier: 2, Logger: wl}
	b.poison, err = middleware.PoisonQueue(deadLetters{b}, "deadletter")
	if err != nil {
		return nil, err
	}
	return b, nil
}

func adapt(h EventHandler) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		e, ok := logbus.EventFromMessage(msg)
		if !ok {
			return errors.New("bus: message carries no event")
		}
		return h(msg.Context(), e)
	}
}

func (b *Bus) claim(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if name == "" {
		return errors.New("bus: subscriber name must not be empty")
	}
	if _, ok := b.subs[name]; ok || b.eps[name] {
		return fmt.Errorf("bus: subscriber %q already exists", name)
	}
	return nil
}

// Subscribe adds a durable subscriber: handler h receives every event of
// topic (a family like "channel", a type, or "*") from the subscriber's
// cursor on. It may be called before or after the bus runs.
func (b *Bus) Subscribe(name, topic string, h EventHandler) error {
	if err := b.claim(name); err != nil {
		return err
	}
	sub := logbus.NewSubscriber(b.log, logbus.SubscriberConfig{ConsumerGroup: name, Logger: b.wlogger})
	b.mu.Lock()
	b.subs[name] = sub
	b.mu.Unlock()
	// The first middleware is the outermost: the poison queue sees an error
	// only once retry has given up, and retry sees panics as errors.
	b.router.AddConsumerHandler(name, topic, sub, adapt(h)).AddMiddleware(b.poison, b.retry.Middleware, middleware.Recoverer)
	return b.startHandlers()
}

// SubscribeEphemeral adds a subscriber for ephemeral events of topic.
func (b *Bus) SubscribeEphemeral(name, topic string, h EventHandler) error {
	if err := b.claim(name); err != nil {
		return err
	}
	b.mu.Lock()
	b.eps[name] = true
	b.mu.Unlock()
	drop := func(next message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := next(msg)
			if err != nil {
				b.logger.Warn("ephemeral event dropped after retries", "subscriber", name, "type", msg.Metadata.Get(logbus.MetaType), "err", err)
			}
			return out, nil
		}
	}
	b.router.AddConsumerHandler(name, topic, b.eph, adapt(h)).AddMiddleware(drop, b.retry.Middleware, middleware.Recoverer)
	return b.startHandlers()
}

// startHandlers starts handlers added after the router began running.
func (b *Bus) startHandlers() error {
	if !b.router.IsRunning() {
		return nil
	}
	return b.router.RunHandlers(context.Background())
}

// TapEphemeral adds a synchronous subscriber to every ephemeral event:
// tap runs in PublishEphemeral's caller, in publish order, so it must not
// block. The session hub is one: WebRTC signaling must reach a device in
// the order it was published, which the GoChannel's per-message delivery
// does not promise.
func (b *Bus) TapEphemeral(tap func(eventlog.Event)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.taps = append(b.taps, tap)
}

// PublishEphemeral hands an ephemeral event to the taps, then to the
// subscribers of its family. It is not logged and has no seq.
func (b *Bus) PublishEphemeral(e eventlog.Event) error {
	b.mu.Lock()
	taps := b.taps
	b.mu.Unlock()
	for _, tap := range taps {
		tap(e)
	}
	msg := logbus.ToMessage(e)
	msg.SetContext(logbus.ContextWithEvent(context.Background(), e))
	return b.eph.Publish(eventlog.Family(e.Type), msg)
}

// MetaDevice is the Meta key of an ephemeral event addressed to one device
// (plugins.NewEvent.Device), as the session hub reads it.
const MetaDevice = hub.MetaDevice

// EphemeralEvent is the bus form of an ephemeral event a handler decided
// or a plugin published: of company, by actor, for one device when
// e.Device is set.
func EphemeralEvent(e NewEvent, company, actor string) eventlog.Event {
	ev := eventlog.Event{Type: e.Type, Stream: e.Stream, Company: company, Actor: actor, Audience: e.Audience, Payload: e.Payload}
	if e.Device != "" {
		ev.Meta = map[string]string{MetaDevice: e.Device}
	}
	return ev
}

// Lags returns, per durable subscriber, how many events it has yet to
// handle.
func (b *Bus) Lags() map[string]uint64 {
	head := b.log.Head()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]uint64, len(b.subs))
	for name, s := range b.subs {
		out[name] = head - min(head, s.Position())
	}
	return out
}

// run runs the router until ctx ends or Close is called.
func (b *Bus) run(ctx context.Context) error { return b.router.Run(ctx) }

// running is closed once the router runs.
func (b *Bus) running() chan struct{} { return b.router.Running() }

// close stops every handler (waiting up to the router's close timeout) and
// saves the durable cursors.
func (b *Bus) close() error {
	err := b.router.Close()
	b.mu.Lock()
	subs := make([]*logbus.Subscriber, 0, len(b.subs))
	for _, s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
	return errors.Join(err, b.eph.Close())
}

// deadLetters is the poison queue's publisher: it appends a
// bus.message.poisoned event to stream deadletter/<subscriber>.
type deadLetters struct{ b *Bus }

func (d deadLetters) Publish(_ string, msgs ...*message.Message) error {
	drafts := make([]eventlog.Draft, 0, len(msgs))
	for _, m := range msgs {
		handler := m.Metadata.Get(middleware.PoisonedHandlerKey)
		seq, _ := strconv.ParseUint(m.Metadata.Get(logbus.MetaSeq), 10, 64)
		payload, err := json.Marshal(map[string]any{
			"subscriber": handler, "topic": m.Metadata.Get(middleware.PoisonedTopicKey),
			"reason": m.Metadata.Get(middleware.ReasonForPoisonedKey), "seq": seq,
			"type": m.Metadata.Get(logbus.MetaType), "stream": m.Metadata.Get(logbus.MetaStream),
		})
		if err != nil {
			return err
		}
		drafts = append(drafts, eventlog.Draft{
			Type: deadLetterType, Stream: "deadletter/" + handler, Actor: "kernel", Payload: payload,
		})
		d.b.metrics.deadLetters.WithLabelValues(handler).Inc()
		d.b.logger.Error("event moved to dead letters", "subscriber", handler, "seq", seq, "reason", m.Metadata.Get(middleware.ReasonForPoisonedKey))
	}
	_, err := d.b.log.Append(context.Background(), drafts...)
	return err
}

func (deadLetters) Close() error { return nil }
