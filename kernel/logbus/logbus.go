package logbus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/oklog/ulid/v2"
	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/plugins"
)

// Metadata keys of delivered messages.
const (
	MetaSeq      = "seq"
	MetaID       = "id"
	MetaTime     = "time"
	MetaType     = "type"
	MetaStream   = "stream"
	MetaVersion  = "version"
	MetaCompany  = "company"
	MetaActor    = "actor"
	MetaAudience = "audience"
	// MetaUUID keeps a message UUID that is not a ULID.
	MetaUUID = "watermill_uuid"
)

// AllTopics subscribes to every event.
const AllTopics = "*"

// Matches reports whether an event type belongs to topic (the plugin
// contract's rule, shared by every subscriber).
func Matches(topic, eventType string) bool { return plugins.MatchesTopic(topic, eventType) }

// Publisher appends Watermill messages to the log.
type Publisher struct {
	log    *eventlog.Log
	closed atomic.Bool
}

// NewPublisher returns a publisher appending to log.
func NewPublisher(log *eventlog.Log) *Publisher { return &Publisher{log: log} }

var _ message.Publisher = (*Publisher)(nil)

// ErrClosed is returned by a closed Publisher or Subscriber.
var ErrClosed = errors.New("logbus: closed")

// Publish appends msgs as events of type topic, atomically and in order,
// and returns once they are durable.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() {
		return ErrClosed
	}
	drafts := make([]eventlog.Draft, len(msgs))
	for i, m := range msgs {
		drafts[i] = Draft(topic, m)
	}
	ctx := context.Background()
	if len(msgs) > 0 && msgs[0].Context() != nil {
		ctx = context.WithoutCancel(msgs[0].Context())
	}
	_, err := p.log.Append(ctx, drafts...)
	return err
}

// Draft turns a Watermill message into an event draft of type topic.
func Draft(topic string, m *message.Message) eventlog.Draft {
	d := eventlog.Draft{Type: topic, Stream: "topic/" + topic, Payload: m.Payload}
	if id, err := ulid.ParseStrict(m.UUID); err == nil {
		d.ID = id
	} else if m.UUID != "" {
		d.Meta = map[string]string{MetaUUID: m.UUID}
	}
	for k, v := range m.Metadata {
		switch k {
		case MetaSeq, MetaID, MetaTime, MetaType, MetaVersion:
		case MetaStream:
			d.Stream = v
		case MetaCompany:
			d.Company = v
		case MetaActor:
			d.Actor = v
		case MetaAudience:
			if v != "" {
				d.Audience = strings.Split(v, ",")
			}
		default:
			if d.Meta == nil {
				d.Meta = map[string]string{}
			}
			d.Meta[k] = v
		}
	}
	return d
}

// Close makes further Publish calls fail. The log stays open.
func (p *Publisher) Close() error {
	p.closed.Store(true)
	return nil
}

type eventKey struct{}

// EventFromMessage returns the event a delivered message was made from.
func EventFromMessage(m *message.Message) (eventlog.Event, bool) {
	e, ok := m.Context().Value(eventKey{}).(eventlog.Event)
	return e, ok
}

// ContextWithEvent returns ctx carrying e, as delivered messages do.
func ContextWithEvent(ctx context.Context, e eventlog.Event) context.Context {
	return context.WithValue(ctx, eventKey{}, e)
}

// ToMessage renders an event as a Watermill message.
func ToMessage(e eventlog.Event) *message.Message {
	uuid := e.ID.String()
	md := make(message.Metadata, len(e.Meta)+9)
	for k, v := range e.Meta {
		if k == MetaUUID {
			uuid = v
			continue
		}
		md[k] = v
	}
	md[MetaSeq] = strconv.FormatUint(e.Seq, 10)
	md[MetaID] = e.ID.String()
	md[MetaTime] = e.Time.Format(time.RFC3339Nano)
	md[MetaType] = e.Type
	md[MetaStream] = e.Stream
	md[MetaVersion] = strconv.FormatUint(e.Version, 10)
	md[MetaCompany] = e.Company
	md[MetaActor] = e.Actor
	md[MetaAudience] = strings.Join(e.Audience, ",")
	m := message.NewMessage(uuid, e.Payload)
	m.Metadata = md
	return m
}

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// ConsumerGroup names a durable cursor per topic ("bus/<group>/<topic>").
	// Empty: no cursor, start at From.
	ConsumerGroup string
	// From is the first seq a subscriber without a ConsumerGroup (or a new
	// group) considers; 0 means the beginning of the log.
	From uint64
	// SaveEvery bounds how many acks may pass between cursor saves
	// (default 256); the cursor is also saved whenever the subscriber has
	// caught up with the head, and when it stops.
	SaveEvery int
	Logger    watermill.LoggerAdapter
}

// Subscriber delivers log events as Watermill messages.
type Subscriber struct {
	log     *eventlog.Log
	cfg     SubscriberConfig
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup

	mu sync.Mutex
	// positions holds, per active subscription, the highest seq it has
	// fully handled (acked, or skipped as another topic's).
	positions map[*atomic.Uint64]struct{}
}

var _ message.Subscriber = (*Subscriber)(nil)

// NewSubscriber returns a subscriber on log.
func NewSubscriber(log *eventlog.Log, cfg SubscriberConfig) *Subscriber {
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = watermill.NopLogger{}
	}
	return &Subscriber{log: log, cfg: cfg, closing: make(chan struct{}), positions: map[*atomic.Uint64]struct{}{}}
}

// Position is the highest seq every active subscription of s has handled
// (the lowest of their positions), for lag metrics.
func (s *Subscriber) Position() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var low uint64
	first := true
	for p := range s.positions {
		if v := p.Load(); first || v < low {
			low, first = v, false
		}
	}
	return low
}

// CursorName is the durable cursor of a consumer group on a topic.
func CursorName(group, topic string) string { return "bus/" + group + "/" + topic }

// Subscribe starts delivering the events of topic. The channel closes when
// ctx ends, the subscriber closes or the log closes.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	select {
	case <-s.closing:
		return nil, ErrClosed
	default:
	}
	if topic == "" {
		return nil, errors.New("logbus: empty topic")
	}
	start := max(s.cfg.From, 1)
	cursor := ""
	if s.cfg.ConsumerGroup != "" {
		cursor = CursorName(s.cfg.ConsumerGroup, topic)
		saved, err := s.log.Cursor(cursor)
		if err != nil {
			return nil, fmt.Errorf("logbus: read cursor %s: %w", cursor, err)
		}
		if saved > 0 {
			start = saved + 1
		}
	}
	pos := new(atomic.Uint64)
	pos.Store(start - 1)
	s.mu.Lock()
	s.positions[pos] = struct{}{}
	s.mu.Unlock()
	out := make(chan *message.Message)
	subCtx, cancel := context.WithCancel(ctx)
	s.wg.Add(2)
	go func() { // ends the subscription when the subscriber closes
		defer s.wg.Done()
		select {
		case <-s.closing:
			cancel()
		case <-subCtx.Done():
		}
	}()
	go func() {
		defer s.wg.Done()
		defer cancel()
		defer close(out)
		defer func() {
			s.mu.Lock()
			delete(s.positions, pos)
			s.mu.Unlock()
		}()
		s.deliver(subCtx, topic, cursor, start, pos, out)
	}()
	return out, nil
}

// deliver runs one subscription: tail, filter, hand over, wait for the ack.
func (s *Subscriber) deliver(ctx context.Context, topic, cursor string, start uint64, position *atomic.Uint64, out chan<- *message.Message) {
	tail := s.log.Tail(start)
	var saved = start - 1
	save := func(ctx context.Context) {
		pos := position.Load()
		if cursor == "" || pos == saved {
			return
		}
		if err := s.log.SaveCursor(ctx, cursor, pos); err != nil {
			s.cfg.Logger.Error("logbus: save cursor", err, watermill.LogFields{"cursor": cursor})
			return
		}
		saved = pos
	}
	defer save(context.Background())
	for {
		if tail.Position() > s.log.Head() || position.Load()-saved >= uint64(s.cfg.SaveEvery) {
			save(ctx) // caught up, or enough acks pending
		}
		e, err := tail.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, eventlog.ErrClosed) {
				s.cfg.Logger.Error("logbus: tail stopped", err, watermill.LogFields{"topic": topic})
			}
			return
		}
		if !Matches(topic, e.Type) {
			position.Store(e.Seq)
			continue
		}
		for { // a nack redelivers at once: pacing is the router's Retry middleware's job
			msg := ToMessage(e)
			msgCtx, done := context.WithCancel(ContextWithEvent(ctx, e))
			msg.SetContext(msgCtx)
			select {
			case out <- msg:
			case <-ctx.Done():
				done()
				return
			}
			acked := false
			select {
			case <-msg.Acked():
				acked = true
				position.Store(e.Seq)
			case <-msg.Nacked():
			case <-ctx.Done():
				done()
				return
			}
			done()
			if acked {
				break
			}
		}
	}
}

// Close ends every subscription and waits for them to stop. The log stays
// open.
func (s *Subscriber) Close() error {
	s.once.Do(func() { close(s.closing) })
	s.wg.Wait()
	return nil
}
