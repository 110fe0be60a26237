// Package call is the built-in plugin "parley.call": the 1:1 calls of the
// widget API (createCall, Call.answer, Call.end, call:incoming,
// call:status:changed), the routing of their media signaling to the media
// plane, and call links (the REST API's rooms, joinCallURL). It speaks
// only the plugin contract, so it behaves the same in process and out of
// process (`kernel plugin serve parley.call`). The media plane itself is
// plugins/call/sfu, behind the Media interface.
//
// # Streams and events
//
// call/<company>/rooms serialises the creation of every call and room of
// a company: the busy checks of createCall and of a link's join read the
// projection at this stream's version, so two users calling each other at
// once get exactly one call (the one decided first); the other caller is
// refused with another_call_in_progress, being already in that call (it
// rings on their devices). It carries
//
//	call.created       CallCreated                     audience: caller and callee (a link's call without live: the caller)
//	call.room.created  RoomCreated (REST field names)  audience: none
//	call.room.disabled {room_id}                       audience: none
//	call.room.deleted  {room_id}                       audience: none
//
// call/<company>/<callId> carries one call's transitions, each to both
// participants, each with the status it leads to:
//
//	call.answered  {callId, roomId, status: connecting, userId, device}
//	call.rejoined  {callId, roomId, status, userId, device}    a link opened again on a new device (its first offer closes the old device's media)
//	call.connected {callId, roomId, status: connected}
//	call.ended     {callId, roomId, status: ended, endReason, userId?, device?}
//
// Statuses go dialing → connecting (answered) → connected (media of both
// flows) → ended; ended is final, and of two call.ended the first wins
// (the SDK must apply the same rule: a status event for an ended call is
// ignored). End reasons: declined, canceled, hang_up, timeout (the
// reference's), connection_lost (a participant's media did not come up
// within ConnectTimeout, or stayed down longer than MediaGrace; userId
// names whose), duration_expired (a call link's room used its duration up),
// room_closed (the REST API disabled or deleted the room) and user_removed
// (a participant was deactivated or deleted; userId names them: their
// account no longer reaches the call, nor its media).
// answered_of_another_device is never logged: call.answered names the
// device that answered, and the SDK on the callee's other devices ends
// the call for itself with that reason.
//
// call.created carries {callId, roomId, status: dialing, caller, callee,
// participants: [caller, callee], callerDevice, options: {callType,
// recording, recordingType, live}, admins, creationDate, dialDeadline?,
// link}. Direction is per viewer: outgoing for the caller, incoming for
// the callee (call.get computes it; the SDK compares caller with its user).
//
// Ephemeral events (never logged), each published with the call's
// company:
//
//	call.media.sdp      {callId, type: answer|offer, sdp}  to one device
//	call.media.ice      {callId, candidate}                to one device
//	call.media.state    {callId, userId, state}            to both participants
//	call.room.expiring  {callId, roomId, remaining}        to both, 30 s before a room's duration runs out
//
// The plugin also reads the kernel's user events (user.created,
// user.updated, user.deactivated, user.deleted) for each user's role
// (plus), can_video and active flag.
//
// # Commands and queries
//
// Every one is a client method (Manifest.Client) with the connected user
// as actor and the session's device as Command.Device:
//
//	call.create      {users: [userId], options: {callType|call_type, recording, recordingType, isAdmin}}  on call/{company}/rooms
//	call.answer      {callId}                         on call/{company}/{params.callId}
//	call.end         {callId}                         on call/{company}/{params.callId}
//	call.room.join   {roomId}                         on call/{company}/rooms
//	call.media.offer     {callId, sdp}                on call/{company}/{params.callId}/media/{actor}
//	call.media.answer    {callId, sdp}                idem (the answer to a call.media.sdp offer)
//	call.media.candidate {callId, candidate}          idem (an RTCIceCandidateInit, object or JSON text)
//	call.media.leave     {callId}                     idem
//	call.get         {callId, minSeq?}  → CallView (the widget's Call, for the viewer)
//	call.list        {minSeq?}          → {calls: [CallView]}, the viewer's call in progress
//
// and, for the company's REST API alone (actor "apikey:<company>"; a user
// gets permission_denied):
//
//	call.room.create  {participants, recording, duration, call_type, live}  on call/{company}/rooms
//	call.room.disable {room_id}                                              on call/{company}/rooms
//	call.room.delete  {room_id}                                              on call/{company}/rooms
//	call.room.get     {room_id} → RoomView     call.rooms {} → {rooms: [RoomView]}
//
// call.stats {} → Stats answers the kernel (and the operator) only; the
// metrics (NewCollector) read it.
//
// Options absent from createCall take the widget configuration's
// defaults: audio_video, recordingType none, isAdmin false (the SDK sends
// its configured values for the others). recording defaults to
// recordingType != none; recording true with recordingType none is
// refused; recording false records nothing (recordingType none).
//
// Signaling is routed, not logged: each device negotiates its own
// PeerConnection with the media plane. A device may signal only for its
// user's bound device in a call that has not ended: the caller's is the
// device that called (from the start: media may be set up while the call
// rings), the callee's the device that answered; a link's join binds the
// joining device, and a join again rebinds it. The SDP answer comes back
// as call.media.sdp to the offering device alone (NewEvent.Device =
// Command.Device); the plane's own candidates and renegotiation offers
// are published the same way. An offer that crossed one of the plane's
// to the device (glare) is not taken: the command's call.media.sdp is
// then that offer of the plane's (type offer), which the device answers
// after rolling its own back, and then offers again. Video is allowed unless the call is
// audio_only or the user has can_video false; audio_upgradable allows it
// from the start, so that video added later is a renegotiation.
//
// # Error codes
//
// Codes are the widget reference's, verbatim, where it has one:
//
//	validation_error            a malformed argument: users not exactly one user id, oneself, a callee that is not an
//	                            active user of the company, an unknown callType/recordingType, no device, a request on
//	                            the wrong stream; a room request out of bounds
//	current_user_not_available  createCall or a join by an actor who is not an active user of the company
//	another_call_in_progress    the caller (or a user joining a room's call) takes part in a call on this device, or
//	                            one ringing on all their devices (what the second of two users calling each other gets)
//	current_user_busy           the caller (or a user joining a room's call) takes part in a call bound to another of
//	                            their devices
//	all_users_busy              the callee is in another call (a live room's other participant, for a join)
//	no_plus_user                neither participant has the plus role (rooms: none of them)
//	room_create_error           no media plane is running (it failed to start); a room's other participant is gone
//	internal_server_error       the projection could not catch up with the log within 5 s; a media plane failure
//	invalid_call_status         answer: the caller answering, or a call not dialing; end: a call already ended;
//	                            signaling: an ended call, or a device that is not the user's bound one
//	callee_not_available        answer: the caller is no longer an active user (deactivated or deleted while it rang)
//	dial_answer_error           answer: no such call of the user's, no device, the callee is no longer active, or a
//	                            link's call that never rang (live false): they join instead
//	user_not_in_dialing         end of an answered call from a device of the user's that is not in it (the callee's
//	                            other device, which the SDK shows answered_of_another_device)
//	dial_stop_error             end: no such call of the user's (an outsider cannot tell it exists), or a cancel from
//	                            another device of the caller's than the one calling
//	dial_decline_error          end: the callee declining a link's call that never rang (live false): they join instead
//	invalid_token               join: the room is disabled, deleted or unknown, or has less than 30 s of its
//	                            duration left
//	user_not_associated_to_link join: the user is not a participant of the room
//	join_url_mtm                join: the room has more than two participants (many-to-many is not supported)
//
// and the plugin's own: call_not_found (signaling or call.get for a call
// that is not the actor's), room_not_found (REST), permission_denied (a
// user calling a REST-only command or query), media_reset (the media
// plane closed the device's peer connection after an offer it took in and
// could not answer: the device makes a new one and offers again). end() picks the outcome by
// the state: dialing and the caller → canceled; dialing and the callee →
// declined (from any of their ringing devices); connecting or connected →
// hang_up (from the user's bound device).
//
// # Timers
//
// The plugin cannot execute commands; what nobody commands it appends
// itself through the Kernel API (PermAppend), to the call's stream, as
// actor "plugin:parley.call". One goroutine (the scheduler) looks at a call
// whenever an event about it is applied, its media changes state or its
// next deadline comes, and is the only appender, so the plugin never races
// itself:
//
//   - dialing past dialDeadline (creationDate + DialTimeout, default 45 s,
//     PARLEY_CALL_DIAL_TIMEOUT) → call.ended timeout. The deadline is in
//     the log, so a restart honours it: at Start every call not ended is
//     looked at, and those past their deadline time out at once.
//   - connecting, and both bound devices' media connected → call.connected.
//   - a bound device's media not connected within ConnectTimeout (default
//     30 s) of the call needing it (from the answer; from the start in a
//     link's room waiting without live), or down for longer than
//     MediaGrace (default 10 s) once it was up → call.ended connection_lost.
//     Down counts from the SFU's "disconnected" (nothing heard for 5 s); a
//     device that restarts ICE within the grace (the SDK does, 2 s after
//     its own ICE went down) keeps the call. After the plugin restarts,
//     media states are unknown: every device gets ConnectTimeout to
//     (re)connect.
//   - a link room's duration used up (time with the call connected, over
//     the room's calls) → call.ended duration_expired, with
//     call.room.expiring 30 s before.
//
// The scheduler appends with the call stream's version it decided on, and
// commands on a call are appended only if its stream is still at the
// version they were decided on: of an answer at the 45th second and the
// timeout, whichever is appended second is refused (the scheduler then
// looks at the call again). The scheduler also appends no call.ended
// within Settle (1 s) of a command deciding events on the call, as a
// backstop; should two call.ended still land, the first wins, for the
// plugin and the SDK alike. (call.connected is not held back: landing
// after an end, it is void.)
//
// A call that ends has its media closed (Media.EndCall) under the call's
// signaling lock, so no PeerConnection outlives it. Start closes the media
// of any call that ended while its media stayed open (Media.Devices: an
// activation aborted between logging the end and closing the media), and
// of devices that no longer carry their user's media.
//
// A link's call without live rings nobody: its other participant is not
// busy until they open their link (call.answered), and opening it while in
// another call is refused (current_user_busy, another_call_in_progress).
//
// # State
//
// The state is a projection of the log, in memory. Start rebuilds it by
// reading the whole log (ReadLog from seq 1). Before deciding a command
// the plugin waits until it has applied the command's stream up to
// cmd.Version (5 s at most, else internal_server_error); a refusal that
// may come from lag alone (a user created, a call ended an instant ago on
// another stream) is retried once after catching up.
//
// # Configuration
//
// New reads PARLEY_CALL_DIAL_TIMEOUT, PARLEY_CALL_CONNECT_TIMEOUT,
// PARLEY_CALL_MEDIA_GRACE (durations, "45s" or seconds),
// PARLEY_CALL_UDP_PORT (the media plane's one UDP port, default 3478) and
// PARLEY_CALL_PUBLIC_IP (the address advertised in ICE candidates behind
// NAT). The kernel passes PARLEY_CALL_* on to the plugin's process. The
// media plane is made once per process, at the first New, and kept
// across activations of an in-process plugin: one the host kills (after
// a panic, or a command that hung) is aborted (plugins.Aborter), which
// leaves the media plane open, so the calls' media flows on and the next
// activation takes it over. An activation aborted (or stopped) while its
// Start still runs (past the host's start timeout) attaches nothing when
// that Start gets there, and the Start fails. Stop closes it, and the next New makes
// another. NewWith takes any Media instead (SFUMedia wraps an SFU
// the caller configured; tests use fakes).
//
// # Caveats
//
//   - Rebuilding reads the whole log at every start, and every call and
//     room stays in memory.
//   - Calls are one-to-one; rooms of more than two participants exist (the
//     REST API accepts 2–25) but cannot be joined (join_url_mtm).
//   - Media states live in memory: a restart of the kernel (or of the
//     plugin's process) gives every connected call ConnectTimeout for its
//     devices to negotiate again. An in-process activation the host
//     killed hands its media plane, with the states, to the next
//     (Media.Devices); the signalling the plane makes between the two
//     (a renegotiation offer, a candidate) waits for the next one (at most
//     1,024; beyond, the oldest is dropped). If no next activation
//     comes (the host marks the plugin failed), the host stops the
//     aborted one, which closes the plane.
//   - recordingState is always "stopped" here: recording is another
//     plugin's.
//   - The SFU allows video per room (per call), not per participant: once
//     one participant may offer video, the SFU forwards any participant's,
//     so can_video false is only enforced in the flag passed with that
//     user's own offers.
package call
