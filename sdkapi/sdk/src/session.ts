// The WebSocket session with the kernel (/v2/ws, see go doc
// ./sdkapi/session): requests {id, method, params} answered by {id,
// result} or {id, error: {code, message}}; pushes {event, data, seq}.
//
// The Session owns one socket at a time. When a socket drops for any
// reason but a refusal, an expired token, a forced disconnection or our
// own disconnect, it reconnects with backoff and resumes: connect carries
// lastSeq, the kernel pushes what was missed, and every event is applied
// once (seqs already seen, in pushes or in command answers, are skipped).

import { SDKError, isWireError } from './errors';

/** A push frame. seq is absent for presence and token warnings. */
export interface Push {
  event: string;
  data: unknown;
  seq?: number;
}

/** connect's answer. */
export interface ConnectAnswer {
  userId: string;
  device: string;
  /** deviceKey, given back with device when the session resumes, keeps the device (and the calls bound to it). */
  deviceKey?: string;
  expiresAt?: string;
  seq: number;
  onlineUsers: string[];
  resync: boolean;
  /** joinCallURL's answer adds the link's call and the join's events. */
  roomId?: string;
  callId?: string;
  call?: unknown;
  join?: CommandAnswer;
}

/** A command's answer: the events it appended, as pushes. */
export interface CommandAnswer {
  seq: number;
  events: Push[];
}

export type SessionState = 'idle' | 'connecting' | 'connected' | 'reconnecting';

/** Why a session ended for good (not a drop it recovers from). */
export type EndReason = 'disconnected' | 'token_expired' | 'force_disconnect' | 'refused' | 'call_ended';

/** Sends a request on the socket that just connected. */
export type Requester = (method: string, params: unknown) => Promise<unknown>;

export interface SessionHooks {
  /** A push to apply (already deduplicated). */
  push(p: Push): void;
  /**
   * After every successful connect, the first included; the session's
   * requests wait until it resolves, so state can be reloaded first.
   * resumed is false for the first connect.
   */
  connected(answer: ConnectAnswer, resumed: boolean, request: Requester): Promise<void>;
  /** The state changed (for the UI). */
  state(s: SessionState): void;
  /** The session ended for good after having connected. */
  ended(reason: EndReason): void;
}

const requestTimeout = 15000;
const connectTimeout = 10000;
const heartbeatEvery = 25000;
const seenLimit = 4096;

/** Close codes of the kernel (sdkapi/session). */
const closeRefused = 4001;
const closeTokenExpired = 4002;
const closeForced = 4003;
const closeCallEnded = 4005; // a call link's session, when its call ends

interface Pending {
  resolve(v: unknown): void;
  reject(e: SDKError): void;
  timer: number;
}

/** One WebSocket: requests and their answers, pushes to a callback. */
class Socket {
  private ws: WebSocket;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private closedWith: { code: number; reason: string } | null = null;
  onPush: (p: Push) => void = () => {};
  onClose: (code: number, reason: string) => void = () => {};

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.onmessage = (ev) => this.message(ev.data);
    ws.onclose = (ev) => this.closed(ev.code, ev.reason);
  }

  static open(url: string): Promise<Socket> {
    return new Promise((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(url);
      } catch (e) {
        reject(new SDKError('network_error', `cannot open ${url}: ${e}`));
        return;
      }
      const timer = window.setTimeout(() => {
        ws.close();
        reject(new SDKError('network_error', `no answer from ${url}`));
      }, connectTimeout);
      ws.onopen = () => {
        window.clearTimeout(timer);
        resolve(new Socket(ws));
      };
      ws.onclose = (ev) => {
        window.clearTimeout(timer);
        reject(new SDKError('network_error', `cannot reach the kernel at ${url} (close ${ev.code})`));
      };
    });
  }

  get open(): boolean {
    return this.closedWith === null;
  }

  request(method: string, params: unknown, timeout = requestTimeout): Promise<unknown> {
    if (!this.open) return Promise.reject(new SDKError('network_error', 'the connection is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new SDKError('network_error', `${method}: no answer in ${timeout} ms`));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close(code = 1000, reason = 'client_disconnect'): void {
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.close();
    }
    this.closed(code, reason);
  }

  private message(raw: unknown): void {
    if (typeof raw !== 'string') return;
    let f: { id?: number; result?: unknown; error?: unknown; event?: string; data?: unknown; seq?: number };
    try {
      f = JSON.parse(raw);
    } catch {
      return;
    }
    if (typeof f.event === 'string') {
      this.onPush({ event: f.event, data: f.data, seq: f.seq });
      return;
    }
    const p = typeof f.id === 'number' ? this.pending.get(f.id) : undefined;
    if (!p) return;
    this.pending.delete(f.id as number);
    window.clearTimeout(p.timer);
    if (f.error !== undefined) {
      const e = isWireError(f.error) ? f.error : { code: 'internal_server_error', message: 'malformed error' };
      p.reject(new SDKError(e.code, e.message));
    } else {
      p.resolve(f.result);
    }
  }

  private closed(code: number, reason: string): void {
    if (this.closedWith) return;
    this.closedWith = { code, reason };
    this.ws.onmessage = null;
    this.ws.onclose = null;
    for (const p of Array.from(this.pending.values())) {
      window.clearTimeout(p.timer);
      p.reject(new SDKError('network_error', `the connection closed (${code} ${reason})`));
    }
    this.pending.clear();
    this.onClose(code, reason);
  }
}

/** The client's session: connect, requests, resume. */
export class Session {
  state: SessionState = 'idle';
  private socket: Socket | null = null;
  private userId = '';
  private token = '';
  private link = ''; // a call link's URL: the session is joinCallURL's
  /** The resume position: the newest pushed seq, or connect's seq once replay is done. */
  private cursor = 0;
  private device = ''; // the session's device and its key, kept across resumes
  private deviceKey = '';
  private seen = new Set<number>();
  private ready: Promise<void> = Promise.resolve();
  private retry = 0;
  private retryTimer = 0;
  private heartbeat = 0;
  private generation = 0; // bumped by disconnect: stale reconnects stop
  private onOnline = () => this.reconnectNow();

  constructor(
    private url: string,
    private appId: string,
    private sdkVersion: string,
    private hooks: SessionHooks,
  ) {}

  /** connect opens the session; it rejects with the kernel's code. */
  async connect(userId: string, token: string): Promise<ConnectAnswer> {
    if (this.state !== 'idle') throw new SDKError('validation_error', `the client is already ${this.state}`);
    this.userId = userId;
    this.token = token;
    this.link = '';
    return this.start();
  }

  /** join opens a call link's session (joinCallURL). */
  async join(url: string): Promise<ConnectAnswer> {
    if (this.state !== 'idle') throw new SDKError('validation_error', `the client is already ${this.state}`);
    this.userId = '';
    this.token = '';
    this.link = url;
    return this.start();
  }

  private async start(): Promise<ConnectAnswer> {
    this.cursor = 0;
    this.seen.clear();
    this.setState('connecting');
    const gen = this.generation;
    try {
      const answer = await this.open(false);
      window.addEventListener('online', this.onOnline);
      return answer;
    } catch (e) {
      if (gen === this.generation) this.setState('idle');
      throw e;
    }
  }

  /** request sends a method once connected (waiting through a reconnect). */
  async request<T>(method: string, params: unknown = {}): Promise<T> {
    if (this.state === 'idle') throw new SDKError('authentication_error', 'the client is not connected');
    await this.waitReady();
    const s = this.socket;
    if (!s || !s.open) throw new SDKError('network_error', 'the connection is closed');
    return (await s.request(method, params)) as T;
  }

  /**
   * command runs a plugin command; the events of its answer are applied
   * through the push hook (once) before it resolves, and returned.
   */
  async command(method: string, params: unknown): Promise<CommandAnswer> {
    const ans = await this.request<CommandAnswer>(method, params);
    const events = Array.isArray(ans?.events) ? ans.events : [];
    for (const ev of events) this.deliver(ev, false);
    return { seq: ans?.seq || 0, events };
  }

  /** apply delivers events that came in an answer (once, like pushes). */
  apply(p: Push): void {
    this.deliver(p, false);
  }

  /** whenReady resolves once the state reload after the latest connect is done. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  updateToken(token: string): void {
    this.token = token;
  }

  /** disconnect ends the session for good. */
  async disconnect(): Promise<void> {
    const s = this.socket;
    this.stop();
    if (s && s.open) {
      try {
        await s.request('disconnect', {}, 2000);
      } catch {
        // closing anyway
      }
      s.close();
    }
  }

  /** accept reports whether an event with seq is new, and remembers it. */
  private accept(seq: number | undefined): boolean {
    if (!seq) return true;
    if (this.seen.has(seq)) return false;
    this.seen.add(seq);
    if (this.seen.size > seenLimit) {
      // Sets iterate in insertion order: forget the oldest half.
      let n = this.seen.size / 2;
      for (const q of this.seen) {
        if (n-- <= 0) break;
        this.seen.delete(q);
      }
    }
    return true;
  }

  private deliver(p: Push, pushed: boolean): void {
    // Pushes arrive in seq order, so the newest one is where a resume
    // starts; command answers can run ahead of them and do not move it.
    if (pushed && p.seq && p.seq > this.cursor) this.cursor = p.seq;
    if (!this.accept(p.seq)) return;
    this.hooks.push(p);
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + requestTimeout;
    for (;;) {
      if (this.state === 'idle') throw new SDKError('authentication_error', 'the client is not connected');
      if (this.state === 'connected') {
        await this.ready;
        if (this.state === 'connected') return;
      }
      if (Date.now() > deadline) throw new SDKError('network_error', 'the kernel cannot be reached');
      await new Promise((r) => window.setTimeout(r, 100));
    }
  }

  private wsURL(): string {
    return this.url.replace(/^http/, 'ws') + '/v2/ws';
  }

  /** open connects one socket and runs the hooks; it throws on refusal. */
  private async open(resumed: boolean): Promise<ConnectAnswer> {
    const gen = this.generation;
    const s = await Socket.open(this.wsURL());
    if (gen !== this.generation) {
      s.close();
      throw new SDKError('network_error', 'disconnected');
    }
    s.onPush = (p) => this.deliver(p, true);
    let answer: ConnectAnswer;
    const params: Record<string, unknown> = this.link
      ? { url: this.link, appId: this.appId, sdkVersion: this.sdkVersion }
      : { appId: this.appId, userId: this.userId, accessToken: this.token, sdkVersion: this.sdkVersion };
    if (resumed) {
      params.lastSeq = this.cursor;
      if (!this.link && this.deviceKey) {
        params.device = this.device;
        params.deviceKey = this.deviceKey;
      }
    }
    try {
      answer = (await s.request(this.link ? 'joinCallURL' : 'connect', params, connectTimeout)) as ConnectAnswer;
    } catch (e) {
      s.close();
      throw e;
    }
    if (gen !== this.generation) {
      s.close();
      throw new SDKError('network_error', 'disconnected');
    }
    this.socket = s;
    s.onClose = (code, reason) => this.dropped(s, code, reason);
    if (!resumed) this.cursor = answer.seq;
    this.device = answer.device;
    this.deviceKey = answer.deviceKey || '';
    if (this.link) this.userId = answer.userId;
    this.retry = 0;
    // Requests wait for the hook (state reloaded); the kernel answers them
    // only after the replay, so when the hook's first request is answered
    // every missed event has arrived: the cursor may move to connect's seq.
    this.ready = this.hooks.connected(answer, resumed, (m, p) => s.request(m, p)).then(
      () => {
        if (answer.seq > this.cursor) this.cursor = answer.seq;
      },
      (e) => console.warn('BandyerSDK: reloading after connect failed', e),
    );
    this.setState('connected');
    this.startHeartbeat(s);
    return answer;
  }

  private dropped(s: Socket, code: number, reason: string): void {
    if (s !== this.socket) return;
    this.socket = null;
    this.stopHeartbeat();
    if (this.state === 'idle') return;
    switch (code) {
      case closeTokenExpired:
        this.end('token_expired');
        return;
      case closeForced:
        this.end('force_disconnect');
        return;
      case closeCallEnded:
        this.end('call_ended');
        return;
      case closeRefused:
        this.end(reason === 'access_token_expired' ? 'token_expired' : 'refused');
        return;
    }
    this.setState('reconnecting');
    this.scheduleReconnect();
  }

  private end(reason: EndReason): void {
    this.stop();
    this.hooks.ended(reason);
  }

  private stop(): void {
    this.generation++;
    window.clearTimeout(this.retryTimer);
    window.removeEventListener('online', this.onOnline);
    this.stopHeartbeat();
    const s = this.socket;
    this.socket = null;
    if (s) s.onClose = () => {};
    this.setState('idle');
  }

  private scheduleReconnect(): void {
    window.clearTimeout(this.retryTimer);
    const delay = Math.min(5000, 250 * Math.pow(2, this.retry)) * (0.75 + Math.random() * 0.5);
    this.retry++;
    this.retryTimer = window.setTimeout(() => this.reconnect(), delay);
  }

  private reconnectNow(): void {
    if (this.state === 'reconnecting') {
      this.retry = 0;
      window.clearTimeout(this.retryTimer);
      this.reconnect();
    }
  }

  private async reconnect(): Promise<void> {
    const gen = this.generation;
    try {
      await this.open(true);
    } catch (e) {
      if (gen !== this.generation || this.state === 'idle') return;
      const code = e instanceof SDKError ? e.code : '';
      if (code === 'network_error' || code === 'too_many_sessions' || code === 'unavailable' || code === 'rate_limited') {
        this.scheduleReconnect();
        return;
      }
      // Refused: a token that expired meanwhile, a user deleted, a secret
      // rotated. The integrator must connect again.
      this.end(code === 'user_not_found' ? 'force_disconnect' : 'token_expired');
    }
  }

  /**
   * A socket can die without a close (a network that went away): a request
   * every 25 s that is not answered in time closes it, and the drop
   * reconnects.
   */
  private startHeartbeat(s: Socket): void {
    this.stopHeartbeat();
    this.heartbeat = window.setInterval(() => {
      s.request('getOnlineUsers', {}, 10000).catch(() => {
        if (s.open) s.close(4000, 'heartbeat_timeout');
        this.dropped(s, 4000, 'heartbeat_timeout');
      });
    }, heartbeatEvery);
  }

  private stopHeartbeat(): void {
    window.clearInterval(this.heartbeat);
  }

  private setState(st: SessionState): void {
    if (this.state === st) return;
    this.state = st;
    this.hooks.state(st);
  }
}
