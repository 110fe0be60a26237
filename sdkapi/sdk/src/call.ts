// Calls, with the kernel's call plugin (go doc ./plugins/call): call.create,
// call.answer and call.end commands, the call.* events of the log (the
// call's transitions) and, for the media, one RTCPeerConnection per call
// with the kernel's SFU, negotiated over the session (call.media.offer /
// answer / candidate; the SFU's answers, offers and candidates come back as
// ephemeral call.media.sdp and call.media.ice pushes to this device alone).
//
// The CallView exists from configure on (Client.callView is never
// undefined, so the reference's `Client.callView.tone.ring.stop()` works in
// any handler); its `call` is the current or last call.

import type {
  Call as CallAPI,
  CallEndReason,
  CallEvents,
  CallOptions,
  CallStatus,
  CallView as CallViewAPI,
  CallType,
  ClientEvents,
  CreateCallOptions,
  RecordingType,
} from '../index';
import { Emitter } from './emitter';
import { SDKError, remap } from './errors';
import type { CommandAnswer, Push } from './session';

/** A call as the plugin describes it (call.created, call.get). */
export interface WireCall {
  callId: string;
  roomId: string;
  creationDate: string;
  participants: string[];
  caller: string;
  callee: string;
  callerDevice?: string;
  status: CallStatus;
  endReason?: string | null;
  options: { callType: CallType; recording?: boolean; recordingType: RecordingType; live: boolean };
  recordingState?: 'started' | 'stopped';
  devices?: Record<string, string>;
  link?: boolean;
}

/** What calls need from the client. */
export interface CallHost {
  me(): string;
  device(): string;
  command(method: string, params: unknown): Promise<CommandAnswer>;
  request<T>(method: string, params: unknown): Promise<T>;
  emit<E extends keyof ClientEvents>(event: E, ...args: Parameters<ClientEvents[E]>): void;
  defaults(): { callType: CallType; recordingType: RecordingType; isAdmin: boolean };
  /** The UI: a call to show (incoming, outgoing, changed). */
  show(call: Call): void;
  changed(): void;
}

/** A ring tone made with WebAudio: no file to fetch. */
class Ring {
  private ctx: AudioContext | null = null;
  private timer = 0;
  playing = false;

  play(): void {
    if (this.playing) return;
    this.playing = true;
    const beep = () => {
      try {
        const AC = window.AudioContext || (window as unknown as { webkitAudioContext: typeof AudioContext }).webkitAudioContext;
        if (!AC) return;
        this.ctx = this.ctx || new AC();
        const ctx = this.ctx;
        const gain = ctx.createGain();
        gain.gain.value = 0.08;
        gain.connect(ctx.destination);
        for (const f of [440, 480]) {
          const o = ctx.createOscillator();
          o.frequency.value = f;
          o.connect(gain);
          o.start(ctx.currentTime);
          o.stop(ctx.currentTime + 1.2);
        }
      } catch {
        // Autoplay policies may refuse sound before a user gesture.
      }
    };
    beep();
    this.timer = window.setInterval(beep, 3000);
  }

  stop(): void {
    this.playing = false;
    window.clearInterval(this.timer);
    if (this.ctx) {
      this.ctx.close().catch(() => {});
      this.ctx = null;
    }
  }
}

/**
 * The media of a call on this device: one PeerConnection with the SFU.
 *
 * remote holds the other side's audio and first video (the camera); a
 * further remote video (a shared screen, on an m-line the SFU added by
 * renegotiating) goes to extras. The SFU keeps an m-line whose source
 * stopped (it never removes one), so a shared screen counts as shown only
 * while its packets flow: getStats is polled once a second, and an extra
 * video that received nothing for two polls is left out (screens()).
 */
export class Media {
  readonly remote = new MediaStream();
  local: MediaStream | null = null;
  /** The screen this device shares, if it does. */
  screen: MediaStream | null = null;
  private screenSender: RTCRtpSender | null = null;
  private extras: MediaStreamTrack[] = [];
  private flowing = new Set<string>(); // extra track ids receiving packets
  private packets = new Map<string, { n: number; idle: number }>();
  private statsTimer = 0;
  private pc: RTCPeerConnection | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** crossings counts our offers in a row that gave way to the SFU's (glare). */
  private crossings = 0;
  /** resets counts the peer connections made again after media_reset, since the last one connected. */
  private resets = 0;
  /** answered is the session (id, version) of the SFU's last offer answered. */
  private answered: SessionVersion | null = null;
  /** iceRestarts counts the ICE restarts since ICE was last connected. */
  private iceRestarts = 0;
  /** iceTimer restarts ICE again if the connection is still down. */
  private iceTimer = 0;
  onChange: () => void = () => {};

  constructor(
    private call: Call,
    private host: CallHost,
  ) {}

  /** start gets the camera and microphone and offers them to the SFU. */
  async start(): Promise<void> {
    const video = this.call.options.callType === 'audio_video';
    try {
      this.local = await navigator.mediaDevices.getUserMedia({ audio: true, video });
    } catch (e) {
      console.warn('BandyerSDK: no camera or microphone; receiving only', e);
      this.local = new MediaStream();
    }
    if (this.closed) {
      this.stopLocal();
      return;
    }
    await this.connect();
  }

  /**
   * connect makes the peer connection with the local tracks (and the
   * screen being shared) and offers it to the SFU: at the start, and again
   * if the SFU closed its side of the first (media_reset).
   */
  private connect(): Promise<unknown> {
    const local = this.local || new MediaStream();
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    this.pc = pc;
    window.clearTimeout(this.iceTimer);
    this.iceTimer = 0;
    this.iceRestarts = 0;
    for (const t of local.getTracks()) pc.addTrack(t, local);
    if (local.getAudioTracks().length === 0) pc.addTransceiver('audio', { direction: 'recvonly' });
    if (local.getVideoTracks().length === 0 && this.call.options.callType !== 'audio_only') {
      pc.addTransceiver('video', { direction: 'recvonly' });
    }
    pc.ontrack = (ev) => {
      const t = ev.track;
      if (this.remote.getTracks().indexOf(t) >= 0 || this.extras.indexOf(t) >= 0) return;
      if (t.kind === 'video' && this.remote.getVideoTracks().length > 0) {
        this.extras.push(t);
        if (!this.statsTimer) this.statsTimer = window.setInterval(() => this.poll(), 1000);
      } else {
        this.remote.addTrack(t);
      }
      t.addEventListener('ended', () => {
        this.remote.removeTrack(t);
        this.extras = this.extras.filter((x) => x !== t);
        this.flowing.delete(t.id);
        this.onChange();
      });
      this.onChange();
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'connected' && this.pc === pc) this.resets = 0;
    };
    pc.oniceconnectionstatechange = () => this.iceChanged(pc);
    pc.onicecandidate = (ev) => {
      if (!ev.candidate || this.closed) return;
      this.host
        .command('call.media.candidate', { callId: this.call.callId, candidate: ev.candidate.toJSON() })
        .catch((e) => console.warn('BandyerSDK: sending an ICE candidate failed', e));
    };
    const screen = this.screen?.getVideoTracks()[0];
    if (this.screen && screen) this.screenSender = pc.addTransceiver(screen, { direction: 'sendonly', streams: [this.screen] }).sender;
    this.onChange();
    return this.offer();
  }

  /**
   * offer sends the SFU an offer (the first, or a renegotiation) and
   * applies its answer, which the command's answer carries. If the SFU's
   * own offer crossed ours (glare), the command's answer carries that offer
   * instead: the SFU cannot roll its offer back, so ours gives way; we
   * answer theirs, then offer again.
   */
  private offer(again = false): Promise<unknown> {
    if (!again) this.crossings = 0; // an offer of the app's own, not one going again after glare
    return this.serial(async () => {
      const pc = this.pc;
      if (!pc || this.closed) return;
      // While ICE is down (the device's network changed or dropped), the
      // offer restarts it: new credentials, candidates gathered again
      // (after restartIce, the browser's offers do until one is answered).
      const offer = await pc.createOffer({ iceRestart: iceDown(pc) });
      await pc.setLocalDescription(offer);
      let ans: CommandAnswer;
      try {
        ans = await this.host.command('call.media.offer', { callId: this.call.callId, sdp: pc.localDescription?.sdp || offer.sdp });
      } catch (e) {
        if (this.resetOn(e, pc)) return;
        throw e;
      }
      for (const ev of ans.events) {
        const d = (ev.data || {}) as { type?: string; sdp?: string };
        if (ev.event === 'call.media.sdp' && d.type && d.sdp) await this.applySDP(pc, d.type, d.sdp);
      }
    });
  }

  /**
   * applySDP applies the SFU's answer to our offer (it may come twice: in
   * the command's answer and pushed), or answers its offer. It runs inside
   * a serial step.
   */
  private async applySDP(pc: RTCPeerConnection, type: string, sdp: string): Promise<void> {
    if (type === 'answer') {
      if (pc.signalingState === 'have-local-offer') await pc.setRemoteDescription({ type: 'answer', sdp });
    } else if (type === 'offer') {
      await this.answerOffer(pc, sdp);
    }
  }

  /** renegotiate offers again what this side has (after a resume). */
  renegotiate(): void {
    void this.offer();
  }

  /**
   * iceChanged follows pc's ICE connection. ICE down (the network changed
   * or dropped) for iceRestartAfter, or failed, is restarted: an offer with
   * new ICE credentials, which the SFU answers with its own. Until ICE is
   * connected again the restart goes again every iceRestartEvery,
   * maxICERestarts times at most; the call plugin ends the call if the
   * media stays down past its grace period.
   */
  private iceChanged(pc: RTCPeerConnection): void {
    if (this.pc !== pc || this.closed) return;
    const st = pc.iceConnectionState;
    if (st === 'connected' || st === 'completed') {
      window.clearTimeout(this.iceTimer);
      this.iceTimer = 0;
      this.iceRestarts = 0;
      return;
    }
    if (st === 'failed') {
      window.clearTimeout(this.iceTimer);
      this.restartICE(pc);
    } else if (st === 'disconnected' && !this.iceTimer) {
      this.iceTimer = window.setTimeout(() => this.restartICE(pc), iceRestartAfter);
    }
    // checking (a restart under way): its retry timer stands.
  }

  private restartICE(pc: RTCPeerConnection): void {
    this.iceTimer = 0;
    const st = pc.iceConnectionState;
    if (this.pc !== pc || this.closed || st === 'connected' || st === 'completed') return;
    if (this.iceRestarts >= maxICERestarts) return;
    this.iceRestarts++;
    pc.restartIce();
    void this.offer();
    this.iceTimer = window.setTimeout(() => this.restartICE(pc), iceRestartEvery);
  }

  /**
   * answerOffer answers an offer of the SFU's; an offer of ours still out
   * gives way to it (rolled back), and goes again once this one is
   * answered. An offer already answered (one comes both in a glare answer
   * and pushed) is not answered again: the SFU would take the second
   * answer for one to a newer offer. It runs inside a serial step.
   */
  private async answerOffer(pc: RTCPeerConnection, sdp: string): Promise<void> {
    const v = sessionVersion(sdp);
    if (v && this.answered && v.id === this.answered.id && !newer(v.version, this.answered.version)) return;
    let again = false;
    if (pc.signalingState === 'have-local-offer') {
      await pc.setLocalDescription({ type: 'rollback' });
      again = true;
    }
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      try {
        await this.host.command('call.media.answer', { callId: this.call.callId, sdp: pc.localDescription?.sdp || answer.sdp });
      } catch (e) {
        if (this.resetOn(e, pc)) {
          again = false; // the new peer connection offers what this one had
          return;
        }
        throw e;
      }
      if (v) this.answered = v;
    } finally {
      // Queued behind this step, whether this answer went or not; a few
      // times in a row at most (each crossing gives way again).
      if (again && this.crossings++ < maxCrossings) void this.offer(true);
    }
  }

  /**
   * resetOn starts a new peer connection if e is media_reset for pc: the
   * SFU closed its side of pc (a negotiation it could not finish).
   */
  private resetOn(e: unknown, pc: RTCPeerConnection): boolean {
    if (!(e instanceof SDKError) || e.code !== 'media_reset' || this.pc !== pc || this.closed || this.resets >= maxResets) return false;
    this.resets++;
    this.reconnect();
    return true;
  }

  /**
   * reconnect replaces the peer connection with a new one offering the
   * same local tracks and screen: after media_reset, or when the kernel
   * moved the call's media back to this device (call.rejoined). Closing
   * the old one ends its remote tracks without an ended event. Before
   * start() made one, it does nothing: start connects.
   */
  reconnect(): void {
    const pc = this.pc;
    if (!pc || this.closed) return;
    pc.close();
    for (const t of this.remote.getTracks()) this.remote.removeTrack(t);
    this.extras = [];
    this.flowing.clear();
    this.answered = null;
    void this.connect();
  }

  /**
   * shareScreen captures a screen (getDisplayMedia) and sends it as a
   * second video track, renegotiating with the SFU; the other side gets it
   * on an m-line of its own. Stopping the capture from the browser's own
   * bar stops the sharing too.
   */
  async shareScreen(): Promise<void> {
    if (this.screen || this.closed) return;
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const pc = this.pc;
    const track = stream.getVideoTracks()[0];
    if (!pc || this.closed || !track) {
      for (const t of stream.getTracks()) t.stop();
      return;
    }
    this.screen = stream;
    track.addEventListener('ended', () => this.stopScreen());
    // An m-line of its own, send only: addTrack could reuse the m-line of
    // the other side's screen, which the SFU sends on and does not read.
    this.screenSender = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] }).sender;
    this.onChange();
    await this.offer();
  }

  /** stopScreen stops the sharing: the track stops and leaves the offer. */
  stopScreen(): void {
    const stream = this.screen;
    if (!stream) return;
    this.screen = null;
    for (const t of stream.getTracks()) t.stop();
    const sender = this.screenSender;
    this.screenSender = null;
    if (sender && this.pc && !this.closed) {
      try {
        this.pc.removeTrack(sender);
      } catch (e) {
        console.warn('BandyerSDK: removing the screen track failed', e);
      }
      this.offer();
    }
    this.onChange();
  }

  /** screens are the other side's shared screens that are flowing now. */
  screens(): MediaStreamTrack[] {
    return this.extras.filter((t) => this.flowing.has(t.id) && t.readyState === 'live');
  }

  /** poll counts the packets of the extra videos (see Media). */
  private async poll(): Promise<void> {
    const pc = this.pc;
    if (!pc || this.closed) return;
    let changed = false;
    try {
      const stats = await pc.getStats();
      stats.forEach((r: { type: string; kind?: string; trackIdentifier?: string; packetsReceived?: number }) => {
        if (r.type !== 'inbound-rtp' || r.kind !== 'video' || !r.trackIdentifier) return;
        const id = r.trackIdentifier;
        if (!this.extras.some((t) => t.id === id)) return;
        const n = r.packetsReceived || 0;
        const last = this.packets.get(id) || { n: 0, idle: 0 };
        const idle = n > last.n ? 0 : last.idle + 1;
        this.packets.set(id, { n, idle });
        const on = n > 0 && idle < 2;
        if (on !== this.flowing.has(id)) {
          if (on) this.flowing.add(id);
          else this.flowing.delete(id);
          changed = true;
        }
      });
    } catch {
      return;
    }
    if (changed) this.onChange();
  }

  /** sdp applies the SFU's answer to our offer, or answers its offer. */
  sdp(type: string, sdp: string): void {
    this.serial(async () => {
      const pc = this.pc;
      if (!pc || this.closed) return;
      await this.applySDP(pc, type, sdp);
    });
  }

  candidate(c: unknown): void {
    this.serial(async () => {
      if (!this.pc || this.closed) return;
      const init = typeof c === 'string' ? JSON.parse(c) : c;
      await this.pc.addIceCandidate(init as RTCIceCandidateInit);
    });
  }

  /** setMuted turns the microphone (audio) or the camera (video) off or on. */
  setEnabled(kind: 'audio' | 'video', on: boolean): void {
    for (const t of this.local?.getTracks() || []) if (t.kind === kind) t.enabled = on;
    this.onChange();
  }

  enabled(kind: 'audio' | 'video'): boolean {
    const tracks = (this.local?.getTracks() || []).filter((t) => t.kind === kind);
    return tracks.length > 0 && tracks.every((t) => t.enabled);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    window.clearInterval(this.statsTimer);
    window.clearTimeout(this.iceTimer);
    for (const t of this.screen?.getTracks() || []) t.stop();
    this.screen = null;
    this.flowing.clear();
    this.stopLocal();
    this.pc?.close();
    this.pc = null;
    this.onChange();
  }

  private stopLocal(): void {
    for (const t of this.local?.getTracks() || []) t.stop();
  }

  /** serial runs signaling steps one at a time, in order. */
  private serial(f: () => Promise<void>): Promise<unknown> {
    this.chain = this.chain.then(f).catch((e) => console.warn('BandyerSDK: media negotiation failed', e));
    return this.chain;
  }
}

/** iceDown reports whether pc's ICE has lost its path: disconnected or failed. */
function iceDown(pc: RTCPeerConnection): boolean {
  return pc.iceConnectionState === 'disconnected' || pc.iceConnectionState === 'failed';
}

/**
 * ICE disconnected this long is restarted (failed, at once); a restart
 * that has not connected goes again after iceRestartEvery, maxICERestarts
 * times in a row at most. The call plugin ends a call whose media stays
 * down past its grace (10 s by default, from the SFU's "disconnected", 5 s
 * after it last heard the device).
 */
const iceRestartAfter = 2000;
const iceRestartEvery = 4000;
const maxICERestarts = 4;

/** maxCrossings bounds how often in a row an offer of ours goes again after giving way. */
const maxCrossings = 3;

/** maxResets bounds how often in a row a call's peer connection is made again after media_reset. */
const maxResets = 2;

/** SessionVersion is an SDP's session id and version (its o= line), decimal digits. */
interface SessionVersion {
  id: string;
  version: string;
}

/** sessionVersion reads an SDP's o= line: "o=<user> <id> <version> ...". */
function sessionVersion(sdp: string): SessionVersion | null {
  const m = /^o=\S+ (\d+) (\d+) /m.exec(sdp);
  return m ? { id: m[1], version: m[2] } : null;
}

/** newer compares two decimal versions of any length: is a greater than b? */
function newer(a: string, b: string): boolean {
  const x = a.replace(/^0+/, ''), y = b.replace(/^0+/, '');
  return x.length !== y.length ? x.length > y.length : x > y;
}

const answerCodes = ['invalid_call_status', 'callee_not_available', 'dial_answer_error'];
const endCodes = ['invalid_call_status', 'user_not_in_dialing', 'dial_stop_error', 'dial_decline_error'];

export class Call implements CallAPI {
  readonly callId: string;
  readonly roomId: string;
  readonly options: CallOptions;
  readonly creationDate: string;
  readonly participants: string[];
  readonly direction: 'incoming' | 'outgoing';
  readonly caller: string;
  readonly callee: string;
  status: CallStatus;
  recordingState: 'started' | 'stopped';
  endReason: CallEndReason | null = null;
  media: Media | null = null;
  private events = new Emitter<CallEvents>();

  constructor(
    private calls: Calls,
    w: WireCall,
  ) {
    this.callId = w.callId;
    this.roomId = w.roomId;
    this.options = { callType: w.options.callType, recordingType: w.options.recordingType, live: w.options.live };
    this.creationDate = w.creationDate;
    this.participants = w.participants.slice();
    this.caller = w.caller;
    this.callee = w.callee;
    this.direction = w.caller === calls.host.me() ? 'outgoing' : 'incoming';
    this.status = w.status;
    this.recordingState = w.recordingState || 'stopped';
    if (w.endReason) this.endReason = w.endReason as CallEndReason;
  }

  /** other is the participant who is not the connected user. */
  get other(): string {
    return this.direction === 'outgoing' ? this.callee : this.caller;
  }

  on<E extends keyof CallEvents>(event: E, listener: CallEvents[E]): void {
    this.events.on(event, listener);
  }

  off<E extends keyof CallEvents>(event: E, listener?: CallEvents[E]): void {
    this.events.off(event, listener);
  }

  async answer(): Promise<void> {
    if (this.direction !== 'incoming' || this.status !== 'dialing') {
      throw new SDKError('invalid_call_status', 'only an incoming call that is ringing can be answered');
    }
    try {
      await this.calls.host.command('call.answer', { callId: this.callId });
    } catch (e) {
      throw remap(e, answerCodes, 'internal_server_error');
    }
  }

  async end(): Promise<void> {
    if (this.status === 'ended') throw new SDKError('invalid_call_status', 'the call has ended already');
    try {
      await this.calls.host.command('call.end', { callId: this.callId });
    } catch (e) {
      throw remap(e, endCodes, 'internal_server_error');
    }
  }

  /** setStatus moves the call on; ended is final (the first end wins). */
  setStatus(status: CallStatus, reason?: string | null): void {
    if (this.status === 'ended' || this.status === status) return;
    this.status = status;
    if (status === 'ended') {
      this.endReason = (reason || 'hang_up') as CallEndReason;
      this.media?.close();
    }
    this.events.emit('status:changed', status);
    this.calls.host.emit('call:status:changed', { call: this, status });
    this.calls.statusChanged(this);
  }

  /** restartMedia connects this device's media again (a new peer connection with the same local tracks), or starts it. */
  restartMedia(): void {
    if (this.media) this.media.reconnect();
    else this.startMedia();
  }

  startMedia(): void {
    if (this.media || this.status === 'ended') return;
    this.media = new Media(this, this.calls.host);
    this.media.onChange = () => this.calls.host.changed();
    this.media.start().catch((e) => console.warn('BandyerSDK: starting the call media failed', e));
  }

  dispose(): void {
    this.media?.close();
    this.events.clear();
  }
}

export class CallView implements CallViewAPI {
  call: Call | undefined;
  readonly tone = { ring: new Ring() };

  constructor(private onSelect: () => void) {}

  select(): void {
    this.onSelect();
  }

  dispose(): void {
    this.tone.ring.stop();
    this.call?.dispose();
  }
}

const callTypes = ['audio_only', 'audio_upgradable', 'audio_video'];
const recordingTypes = ['none', 'manual', 'automatic'];

/** checkCreate validates createCall's arguments (validation_error). */
export function checkCreate(userIds: unknown, options: unknown): void {
  if (!Array.isArray(userIds) || userIds.length !== 1 || typeof userIds[0] !== 'string' || userIds[0] === '') {
    throw new SDKError('validation_error', 'createCall takes an array of exactly one userId');
  }
  if (options === undefined) return;
  const o = options as CreateCallOptions & Record<string, unknown>;
  if (typeof o !== 'object' || o === null) throw new SDKError('validation_error', 'createCall options must be an object');
  const bad: string[] = [];
  const callType = o.callType ?? o.call_type;
  if (callType !== undefined && callTypes.indexOf(callType as string) < 0) bad.push('callType');
  if (o.recordingType !== undefined && recordingTypes.indexOf(o.recordingType) < 0) bad.push('recordingType');
  if (o.recording !== undefined && typeof o.recording !== 'boolean') bad.push('recording');
  if (o.isAdmin !== undefined && typeof o.isAdmin !== 'boolean') bad.push('isAdmin');
  if (bad.length > 0) throw new SDKError('validation_error', `createCall options: ${bad.join(', ')}`);
}

/** checkURL validates joinCallURL's argument (invalid_url). */
export function checkURL(url: unknown): void {
  if (typeof url !== 'string') throw new SDKError('validation_error', 'joinCallURL takes a URL string');
  try {
    const u = new URL(url);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('not http');
  } catch {
    throw new SDKError('invalid_url', `${url} is not a valid URL`);
  }
}

const createCodes = [
  'validation_error',
  'another_call_in_progress',
  'current_user_not_available',
  'current_user_busy',
  'all_users_busy',
  'no_plus_user',
  'room_create_error',
];

/** Calls keeps the connected user's call. */
export class Calls {
  constructor(
    readonly host: CallHost,
    readonly view: CallView,
  ) {}

  get current(): Call | undefined {
    return this.view.call;
  }

  /** create starts a call with one user (createCall). */
  async create(userIds: string[], options: CreateCallOptions = {}): Promise<CallView> {
    checkCreate(userIds, options);
    const d = this.host.defaults();
    const o = options as CreateCallOptions & { call_type?: CallType };
    const recordingType = o.recordingType ?? d.recordingType;
    const params = {
      users: userIds,
      options: {
        callType: o.callType ?? o.call_type ?? d.callType,
        recordingType,
        recording: o.recording ?? recordingType !== 'none',
        isAdmin: o.isAdmin ?? d.isAdmin,
      },
    };
    let ans: CommandAnswer;
    try {
      ans = await this.host.command('call.create', params);
    } catch (e) {
      throw remap(e, createCodes, 'internal_server_error');
    }
    for (const ev of ans.events) {
      const w = ev.data as WireCall;
      if (ev.event === 'call.created' && w && this.current?.callId === w.callId) return this.view;
    }
    throw new SDKError('room_create_error', 'the kernel did not create the call');
  }

  /** apply handles a call event; it reports whether it was one. */
  apply(p: Push): boolean {
    if (p.event.indexOf('call.') !== 0) return false;
    const d = (p.data || {}) as Record<string, unknown>;
    const cur = this.current;
    const mine = cur !== undefined && cur.callId === d.callId;
    switch (p.event) {
      case 'call.created': {
        const w = d as unknown as WireCall;
        const me = this.host.me();
        if (w.caller === me && w.callerDevice !== this.host.device()) return true; // called from another device
        if (w.callee === me && w.options && !w.options.live) return true; // a link's call that does not ring
        if (cur && cur.status !== 'ended') return true; // busy here: the plugin refuses such calls anyway
        this.adopt(w);
        return true;
      }
      case 'call.answered':
        if (!mine || !cur) return true;
        if (d.userId === this.host.me() && d.device !== this.host.device()) {
          this.elsewhere(cur);
          return true;
        }
        this.view.tone.ring.stop();
        cur.setStatus('connecting');
        if (d.userId === this.host.me()) cur.startMedia(); // this device answered
        return true;
      case 'call.rejoined':
        if (!mine || !cur || d.userId !== this.host.me()) return true;
        if (d.device === this.host.device()) {
          // This device carries the user's media again (a call link opened
          // again, after a reconnect): a new peer connection.
          cur.restartMedia();
        } else {
          this.elsewhere(cur); // the user's media moved to another device: it goes on there
        }
        return true;
      case 'call.connected':
        if (mine && cur) cur.setStatus('connected');
        return true;
      case 'call.ended':
        if (mine && cur) {
          this.view.tone.ring.stop();
          cur.setStatus('ended', (d.endReason as string) || 'hang_up');
        }
        return true;
      case 'call.media.sdp':
        if (mine && cur?.media) cur.media.sdp(String(d.type), String(d.sdp));
        return true;
      case 'call.media.ice':
        if (mine && cur?.media) cur.media.candidate(d.candidate);
        return true;
    }
    return true; // call.media.state, call.room.expiring, call.room.*: nothing to do
  }

  /** load takes the calls in progress after a (re)connect. */
  load(calls: WireCall[]): void {
    const cur = this.current;
    const w = calls.filter((c) => c.status !== 'ended')[0];
    if (cur && cur.status !== 'ended' && (!w || w.callId !== cur.callId)) {
      this.view.tone.ring.stop();
      cur.setStatus('ended', 'hang_up'); // it ended while we were away
    }
    if (w && (!cur || cur.callId !== w.callId)) this.adopt(w);
  }

  private adopt(w: WireCall): void {
    this.view.call?.dispose();
    const call = new Call(this, w);
    this.view.call = call;
    if (call.direction === 'incoming') {
      if (call.status === 'dialing') {
        this.view.tone.ring.play();
        this.host.emit('call:incoming', { call });
      }
    } else if (call.status === 'dialing') {
      call.startMedia(); // the caller's media is set up while it rings
    }
    // A call in progress whose media this device carries (a call link
    // joined again): its media starts here.
    if (call.status !== 'dialing' && call.status !== 'ended' && w.devices?.[this.host.me()] === this.host.device()) call.startMedia();
    this.host.show(call);
  }

  /** elsewhere ends the call here: the user's other device carries it. */
  private elsewhere(cur: Call): void {
    this.view.tone.ring.stop();
    cur.setStatus('ended', 'answered_of_another_device');
  }

  /**
   * resumed: the session is back after a drop, with its device. Signalling
   * pushed meanwhile is lost (it is not logged): offer again, and an offer
   * of the SFU's still waiting comes back in the answer (glare).
   */
  resumed(): void {
    const cur = this.current;
    if (cur && cur.status !== 'ended' && cur.media) cur.media.renegotiate();
  }

  statusChanged(_: Call): void {
    this.host.changed();
  }

  /** clear ends what is left locally (disconnect, destroy). */
  clear(): void {
    this.view.tone.ring.stop();
    this.current?.media?.close();
  }
}
