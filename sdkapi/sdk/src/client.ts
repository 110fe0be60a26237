import type {
  Client as ClientAPI,
  ClientEvents,
  CreateCallOptions,
  Environment,
  Region,
  TokenExpiry,
} from '../index';
import { CallView, Calls, WireCall, checkURL } from './call';
import { Chat, ChannelView, WireChannel } from './chat';
import type { Settings } from './config';
import { Emitter } from './emitter';
import { SDKError, remap, toSDKError } from './errors';
import { texts } from './i18n';
import { ConnectAnswer, EndReason, Push, Requester, Session, SessionState } from './session';
import { variables } from './ui/style';
import { Widget } from './ui/widget';
import { Users } from './users';

/** The codes connect documents; anything else is passed through as is. */
const connectCodes = [
  'sdk_version_invalid',
  'sdk_version_unsupported',
  'app_id_invalid',
  'access_token_expired',
  'access_token_invalid',
  'access_token_invalid_signature',
  'access_token_invalid_user',
  'user_not_found',
];

export class Client implements ClientAPI {
  readonly callView: CallView;
  private events = new Emitter<ClientEvents>();
  private session: Session;
  private chat: Chat;
  private users: Users;
  private widget: Widget;
  private calls: Calls;
  private online = new Set<string>();
  private me = '';
  private device = '';
  private destroyed = false;

  constructor(
    private settings: Settings,
    sdkVersion: string,
  ) {
    this.users = new Users(settings.userDetailsProvider, settings.userDetailsFormatter);
    this.chat = new Chat({
      me: () => this.me,
      request: (m, p) => this.session.request(m, p),
      command: (m, p) => this.session.command(m, p),
      emit: (e, ...args) => this.events.emit(e, ...args),
      select: (v) => this.widget.selectChannel(v),
      reading: (ch) => this.widget.reading(ch),
      changed: () => this.widget.changed(),
    });
    this.widget = new Widget(
      {
        chat: this.chat,
        users: this.users,
        texts: texts(settings.language),
        language: settings.language,
        me: () => this.me,
        online: (u) => this.online.has(u),
        state: () => this.session.state,
        call: () => this.callView.call,
        feedback: settings.feedback,
        mode: settings.mode,
        screenSharing: settings.tools.screen_sharing === true,
      },
      variables(settings.layout),
    );
    this.callView = new CallView(() => this.widget.selectCall());
    this.calls = new Calls(
      {
        me: () => this.me,
        device: () => this.device,
        command: (m, p) => this.session.command(m, p),
        request: (m, p) => this.session.request(m, p),
        emit: (e, ...args) => this.events.emit(e, ...args),
        defaults: () => ({ callType: settings.callType, recordingType: settings.recordingType, isAdmin: settings.isAdmin }),
        show: () => this.widget.selectCall(true),
        changed: () => this.widget.changed(),
      },
      this.callView,
    );
    this.session = new Session(settings.kernelUrl, settings.appId, sdkVersion, {
      push: (p) => this.push(p),
      connected: (a, resumed, req) => this.connected(a, resumed, req),
      state: (s) => this.stateChanged(s),
      ended: (r) => this.ended(r),
    });
    if (!settings.hidden) this.widget.show();
  }

  get channelsView(): ChannelView[] {
    return this.chat.list();
  }

  get region(): Region {
    return this.settings.region;
  }

  get environment(): Environment {
    return this.settings.environment;
  }

  get appId(): string {
    return this.settings.appId;
  }

  get userId(): string {
    return this.me;
  }

  on<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): void {
    this.events.on(event, listener);
  }

  off<E extends keyof ClientEvents>(event: E, listener?: ClientEvents[E]): void {
    this.events.off(event, listener);
  }

  async connect(userId: string, accessToken: string): Promise<void> {
    this.alive();
    const bad = [];
    if (typeof userId !== 'string' || userId === '') bad.push('userId');
    if (typeof accessToken !== 'string' || accessToken === '') bad.push('accessToken');
    if (bad.length > 0) {
      // The reference's code for connect parameters of the wrong type.
      throw new SDKError('sdk_version_invalid', `connect: ${bad.join(', ')} must be a non-empty string`);
    }
    if (this.session.state !== 'idle') {
      throw new SDKError('validation_error', `the client is already connected as ${this.me}: disconnect first`);
    }
    this.me = userId;
    try {
      await this.session.connect(userId, accessToken);
    } catch (e) {
      this.me = '';
      throw remap(e, [...connectCodes, 'too_many_sessions', 'validation_error'], 'network_error');
    }
    await this.session.whenReady();
  }

  async disconnect(): Promise<void> {
    await this.session.disconnect();
    this.reset();
  }

  async updateAccessToken(accessToken: string): Promise<TokenExpiry> {
    this.alive();
    if (typeof accessToken !== 'string' || accessToken === '') {
      throw new SDKError('access_token_invalid', 'updateAccessToken takes the access token string');
    }
    let ans: TokenExpiry;
    try {
      ans = await this.session.request<TokenExpiry>('updateAccessToken', { accessToken });
    } catch (e) {
      throw toSDKError(e);
    }
    this.session.updateToken(accessToken); // a reconnect presents the new one
    return { expiresAt: ans.expiresAt };
  }

  async joinCallURL(url: string): Promise<CallView> {
    this.alive();
    checkURL(url);
    if (this.session.state !== 'idle') {
      throw new SDKError('validation_error', 'the client is connected: disconnect before joining a call link');
    }
    try {
      const a = await this.session.join(url);
      this.me = a.userId;
    } catch (e) {
      this.me = '';
      throw toSDKError(e, 'invalid_access_link');
    }
    await this.session.whenReady();
    this.widget.selectCall(true);
    return this.callView;
  }

  joinCallUrl(url: string): Promise<CallView> {
    return this.joinCallURL(url);
  }

  async createCall(userIds: string[], options?: CreateCallOptions): Promise<CallView> {
    this.alive();
    if (this.session.state === 'idle') throw new SDKError('current_user_not_available', 'the client is not connected');
    return this.calls.create(userIds, options);
  }

  async addChannel(userId: string): Promise<ChannelView> {
    this.chatReady(userId);
    let ans;
    try {
      ans = await this.session.command('chat.channel.add', { userId });
    } catch (e) {
      throw remap(e, ['validation_error', 'authentication_error'], 'create_channel_oto');
    }
    for (const ev of ans.events) {
      const w = ev.data as WireChannel;
      if (ev.event === 'channel.added' && w?.channelId) return this.chat.ensure({ ...w, unreadMessages: 0 });
    }
    // The channel existed already: the plugin decided nothing.
    const existing = this.chat.byUser(userId);
    if (existing) return existing;
    try {
      const w = await this.session.request<WireChannel>('chat.channel.get', { userId, minSeq: ans.seq });
      return this.chat.ensure(w);
    } catch (e) {
      throw remap(e, ['validation_error', 'authentication_error'], 'create_channel_oto');
    }
  }

  async removeChannel(userId: string): Promise<void> {
    this.chatReady(userId);
    const v = this.chat.byUser(userId);
    try {
      await this.session.command('chat.channel.remove', v ? { userId, channelId: v.channel.channelId } : { userId });
    } catch (e) {
      throw remap(e, ['validation_error', 'authentication_error'], 'delete_channel');
    }
  }

  getChannelView(userId: string): ChannelView {
    if (typeof userId !== 'string' || userId === '') throw new SDKError('validation_error', 'getChannelView takes a userId');
    if (this.session.state === 'idle') throw new SDKError('validation_error', 'the chat is not initialized: connect first');
    const v = this.chat.byUser(userId);
    if (!v) throw new SDKError('channel_not_found', `there is no channel with ${userId}`);
    return v;
  }

  selectChannelsView(): void {
    this.widget.selectList();
  }

  /** getOnlineUsers lists the company's users online, the connected one included. */
  getOnlineUsers(): string[] {
    const users = Array.from(this.online);
    if (this.me !== '' && this.session.state !== 'idle') users.push(this.me);
    return users.sort();
  }

  showWidget(): void {
    this.widget.show();
  }

  hideWidget(): void {
    this.widget.hide();
  }

  openWidget(): void {
    this.widget.openPanel();
  }

  closeWidget(): void {
    this.widget.closePanel();
  }

  toggleWidget(): void {
    this.widget.toggle();
  }

  /** destroy ends the session and removes the widget (destroyClient). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await this.session.disconnect();
    this.destroyed = true;
    this.reset();
    this.widget.destroy();
    this.callView.dispose();
    this.events.clear();
  }

  private alive(): void {
    if (this.destroyed) throw new SDKError('validation_error', 'this client was destroyed: configure a new one');
  }

  private chatReady(userId: unknown): void {
    this.alive();
    if (typeof userId !== 'string' || userId === '') throw new SDKError('validation_error', 'a userId is required');
    if (this.session.state === 'idle') throw new SDKError('authentication_error', 'the client is not connected');
  }

  private reset(): void {
    this.calls.clear();
    this.me = '';
    this.device = '';
    this.online.clear();
    this.chat.clear();
    this.widget.selectList();
    this.widget.closePanel();
  }

  /** connected reloads what a (re)connect may have changed. */
  private async connected(a: ConnectAnswer, resumed: boolean, req: Requester): Promise<void> {
    this.device = a.device;
    if (!this.me) this.me = a.userId; // a call link's session: its user
    const calls = this.loadCalls(a, resumed, req);
    const before = new Set(this.online);
    this.online = new Set((a.onlineUsers || []).filter((u) => u !== this.me));
    if (resumed) {
      // Presence changes while away: announce the differences.
      this.online.forEach((u) => {
        if (!before.has(u)) this.events.emit('user:status:changed', { userId: u, status: 'online' });
      });
      before.forEach((u) => {
        if (!this.online.has(u)) this.events.emit('user:status:changed', { userId: u, status: 'offline' });
      });
    }
    try {
      const ans = (await req('chat.channels', { minSeq: a.seq })) as { channels?: WireChannel[] };
      this.chat.load(ans?.channels || [], resumed, a.resync, a.seq);
    } catch (e) {
      // A kernel without the chat plugin (or a call link's session): no channels.
      if (!a.callId) console.warn('BandyerSDK: the chat is not available', e);
      this.widget.changed();
    }
    await calls;
  }

  /**
   * loadCalls takes the call in progress: a call link's, or call.list's.
   * The first connect asks without minSeq: the plugins wait up to 100 ms
   * for a minSeq that is not one of their events (connect's seq rarely
   * is), the session answers one request at a time, and a call created in
   * the instant before connect is all it could miss. A resume, which must
   * not miss an end, waits.
   */
  private async loadCalls(a: ConnectAnswer, resumed: boolean, req: Requester): Promise<void> {
    if (a.call) {
      this.calls.load([a.call as WireCall]);
      for (const ev of a.join?.events || []) this.session.apply(ev);
      return;
    }
    try {
      const ans = (await req('call.list', resumed ? { minSeq: a.seq } : {})) as { calls?: WireCall[] };
      this.calls.load(ans?.calls || []);
      if (resumed) this.calls.resumed();
    } catch {
      // A kernel without the call plugin: no calls.
    }
  }

  private push(p: Push): void {
    if (this.chat.apply(p) || this.calls.apply(p)) return;
    switch (p.event) {
      case 'user:status:changed': {
        const list = Array.isArray(p.data) ? p.data : [p.data];
        for (const d of list as { userId?: string; status?: string }[]) {
          if (!d || typeof d.userId !== 'string' || d.userId === this.me) continue;
          const status = d.status === 'online' ? 'online' : 'offline';
          if (status === 'online') this.online.add(d.userId);
          else this.online.delete(d.userId);
          this.events.emit('user:status:changed', { userId: d.userId, status });
        }
        this.widget.changed();
        return;
      }
      case 'client:access_token:about_to_expire': {
        const data = { expiresAt: String((p.data as TokenExpiry | null)?.expiresAt || '') };
        this.events.emit('client:access_token:about_to_expire', data);
        this.events.emit('client:access_token:is_about_to_expire', { ...data });
        return;
      }
      // client:access_token:expired and client:force_disconnect precede
      // the socket's close, which ends the session: ended() announces them
      // once, whichever arrives.
    }
  }

  private stateChanged(_: SessionState): void {
    this.widget.changed();
  }

  private ended(reason: EndReason): void {
    this.reset();
    if (reason === 'call_ended') return; // a call link's session ends with its call
    if (reason === 'token_expired') this.events.emit('client:access_token:expired');
    else if (reason === 'force_disconnect') this.events.emit('client:force_disconnect');
  }
}

export { toSDKError };
