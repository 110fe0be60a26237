package logbus_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/parleyhq/parley/eventlog"
	"github.com/parleyhq/parley/kernel/logbus"
)

// TestUniversalPubSub runs Watermill's universal Pub/Sub suite with
// ordering, persistence and consumer groups on.
func TestUniversalPubSub(t *testing.T) {
	l, err := eventlog.Open(t.TempDir(), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	features := tests.Features{
		ConsumerGroups:                      true,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
		NewSubscriberReceivesOldMessages:    true,
	}
	constructor := func(group string) func(t *testing.T) (message.Publisher, message.Subscriber) {
		return func(t *testing.T) (message.Publisher, message.Subscriber) {
			return logbus.NewPublisher(l), logbus.NewSubscriber(l, logbus.SubscriberConfig{ConsumerGroup: group})
		}
	}
	tests.TestPubSub(t, features, constructor(""),
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) { return constructor(group)(t) })
}
