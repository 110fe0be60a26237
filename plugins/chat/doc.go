// Package chat is the built-in plugin "parley.chat": the 1:1 channels and
// messages of the widget API (addChannel, removeChannel, getChannelView,
// channelsView, Channel.sendMessage, fetchMessages, unreadMessages). It
// speaks only the plugin contract, so it behaves the same in process and
// out of process (`kernel plugin serve parley.chat`).
//
// # Streams and events
//
// chat/<company>/channels serialises the creation and removal of a
// company's channels, so two users adding each other at once get one
// channel. It carries
//
//	channel.added   {channelId, participants (sorted), creationDate}   audience: both
//	channel.removed {channelId, participants}                          audience: both
//
// chat/<company>/ch/<channelId> carries one channel's messages and read
// cursors:
//
//	channel.message.sent {messageId, channelId, sender, text, creationDate}  audience: both, sealed
//	channel.read         {channelId, userId, messageId}                      audience: userId
//
// A message id sorts in send order within its channel (it holds the
// stream's version) and is unique (it holds the channel id). channel.read
// goes to the reader alone, so their other devices update their unread
// counts; a read cursor never moves backwards.
//
// The plugin also reads the kernel's user events (user.created,
// user.updated, user.deactivated, user.deleted) to know who exists and is
// active in each company.
//
// # Commands and queries
//
// Every one is exposed to connected users through the manifest's Client
// list, the actor being the user; the company's REST API (actor
// "apikey:<company>") names the user it acts for in the payload field
// "asUser", which must be a user of the company.
//
//	chat.channel.add     {userId}              on chat/{company}/channels
//	chat.channel.remove  {userId, channelId?}  on chat/{company}/channels
//	chat.message.send    {channelId, text}     on chat/{company}/ch/{params.channelId}
//	chat.channel.read    {channelId, messageId} on chat/{company}/ch/{params.channelId}
//	chat.channels        {}                    → {channels: [Channel]}, most recently active first
//	chat.channel.get     {userId | channelId}  → Channel
//	chat.messages.fetch  {channelId, messagesToFetch, anchor, direction} → {messages, anchor}
//
// where Channel is {channelId, participants, unreadMessages, creationDate,
// lastMessage?} and a message is {messageId, channelId, sender, text,
// creationDate}. chat.channel.get by channelId answers a participant, and
// the REST API even without asUser (unreadMessages is then 0): that is how
// the API finds a channel's participants to act on it by id. A channelId
// in chat.channel.remove must name the channel between the two users, so
// a removal decided on an old lookup never takes a newer channel with it.
// Adding a channel that exists decides nothing; so does
// marking read a message at or before the cursor. Errors carry the widget
// reference's codes (see the Code constants); a channel the actor does not
// take part in is channel_not_exists, exactly like one that never existed.
//
// Every query takes an optional "minSeq": the answer then reflects the log
// at least up to that seq (a client reads its own writes by passing the seq
// of its command's events).
//
// # State
//
// The state is a projection of the log, in memory. Start rebuilds it by
// reading the whole log (ReadLog, from seq 1 to the head): the kernel's
// delivery cursor resumes where the previous activation left off, so older
// events would not come again. Delivered events at or below the last
// applied seq are skipped (delivery is at least once).
//
// Before deciding a command the plugin waits until it has applied the
// command's stream up to cmd.Version; before answering a query with minSeq,
// until it has applied that seq. Waiting means catching up from the log
// itself rather than waiting for delivery, for at most 5 s. A refusal that
// may come from lag alone (a user created or a channel added an instant
// ago, on another stream) is retried once after catching up.
//
// # Erasure
//
// Message payloads are sealed (NewEvent.Seal) under the company key
// "chat/<channelId>". When the plugin applies channel.removed it erases
// that key (Kernel.EraseKey) before counting the event applied, so a crash
// between the removal and the erasure is repaired when the event is
// delivered again, or met again by the rebuild; the messages leave memory
// at the same moment. From then on the log keeps only the envelopes
// (Event.Erased). A message that reaches the log after its channel's
// removal (a send racing the removal, on another stream) has its key erased
// again when it is applied.
//
// # Caveats
//
//   - Rebuilding reads the whole log at every start, and the whole chat
//     history stays in memory. Both grow with the log; snapshots are later
//     work. The rebuild counts against the kernel's start timeout
//     (plugin_start_timeout, 1 min): at 80,000 – 120,000 messages a
//     second (bench, BenchmarkChatRebuild), some 5 million messages.
//   - A removed channel without messages has its (unused) key erased again
//     at every rebuild: the plugin cannot tell from the log that it is gone.
//   - A key erased by someone else while the channel lives takes effect in
//     memory at the next rebuild.
//   - The REST API (actor "apikey:<company>") must name asUser, but for
//     chat.channel.get by channelId; other non-user actors (the operator,
//     the kernel, plugins) are refused with authentication_error. asUser
//     must be a user of the company, or, for chat.messages.fetch and
//     chat.channel.remove naming the channel, a participant of it the
//     company has deleted since: a channel of two deleted users can still
//     be read and removed (its messages erased).
package chat
