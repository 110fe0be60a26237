// Package logbus is a Watermill Publisher and Subscriber backed by the
// Parley event log: publishing appends, and subscribing tails the log.
//
// # Guarantees
//
//   - Persistence: a published message is durable before Publish returns.
//   - Order: a subscription delivers the messages of its topic in seq order,
//     one at a time; the next message waits for the previous Ack. A Nack
//     redelivers the same message.
//   - At-least-once: a subscriber with a ConsumerGroup resumes from a durable
//     cursor (saved in the log's file) after a restart; messages acked but not
//     yet covered by a saved cursor are delivered again.
//   - A subscriber without a ConsumerGroup starts at SubscriberConfig.From
//     (the beginning of the log by default) and keeps no cursor.
//   - Back-pressure: a slow subscriber only delays itself; appends never wait
//     for subscribers, and a subscriber that falls behind reads from disk.
//
// # Topics and metadata
//
// An event belongs to topic T when its type is T or starts with "T."; the
// topic "*" matches every event. Publish(T, msg) appends an event of type T.
// The message metadata keys stream, company, actor and audience (comma
// separated) fill the envelope; seq, id, time, type and version are assigned
// by the log and ignored; every other key is kept in the event's Meta. A
// message UUID that is a ULID becomes the event ID, any other is kept in
// Meta under watermill_uuid.
//
// Delivered messages carry the envelope as metadata and the decoded event
// in their context (EventFromMessage), so Go subscribers need not parse.
//
// # Caveats
//
// Run one active subscription per consumer group and topic: two would each
// deliver every message and race on the cursor. The kernel's bus enforces
// this.
package logbus
