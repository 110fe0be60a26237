// The chat: channels, messages and channel views, kept from the parley.chat
// plugin's answers and events (see go doc ./plugins/chat).

import type {
  Channel as ChannelAPI,
  ChannelEvents,
  ChannelView as ChannelViewAPI,
  ClientEvents,
  FetchDirection,
  FetchResult,
  Message as MessageAPI,
} from '../index';
import { Emitter } from './emitter';
import { SDKError, remap, toSDKError } from './errors';
import type { CommandAnswer, Push } from './session';

/** A message as the plugin sends it. */
export interface WireMessage {
  messageId: string;
  channelId: string;
  sender: string;
  text: string;
  creationDate: string;
}

/** A channel as one participant sees it (chat.channels, chat.channel.get). */
export interface WireChannel {
  channelId: string;
  participants: string[];
  unreadMessages: number;
  creationDate: string;
  lastMessage?: WireMessage;
}

/** What the chat needs from the client. */
export interface ChatHost {
  me(): string;
  request<T>(method: string, params: unknown): Promise<T>;
  command(method: string, params: unknown): Promise<CommandAnswer>;
  emit<E extends keyof ClientEvents>(event: E, ...args: Parameters<ClientEvents[E]>): void;
  /** The UI shows view. */
  select(view: ChannelView): void;
  /** Whether the user is looking at channel right now (its messages count as read). */
  reading(channel: Channel): boolean;
  /** Something the UI shows changed. */
  changed(): void;
}

export class Message implements MessageAPI {
  constructor(
    readonly messageId: string,
    readonly channel: Channel,
    readonly sender: string,
    readonly text: string,
    readonly creationDate: string,
  ) {}
}

/** Message ids sort in send order within a channel (they hold the stream version). */
function before(a: string, b: string): boolean {
  return a.length === b.length ? a < b : a.length < b.length;
}

export class Channel implements ChannelAPI {
  readonly channelId: string;
  readonly participants: string[];
  readonly creationDate: string;
  unreadMessages = 0;
  messages: Message[] = [];
  /** The newest message known, loaded or not. */
  last: Message | undefined;
  /** The newest page was fetched, so messages end at the newest one. */
  loaded = false;
  /** More messages may exist before messages[0]. */
  hasOlder = true;
  /** The seq of the channel.added push that made it here (0: from a list). */
  addedSeq = 0;
  private events = new Emitter<ChannelEvents>();
  private byId = new Map<string, Message>();

  constructor(private chat: Chat, w: WireChannel) {
    this.channelId = w.channelId;
    this.participants = w.participants.slice();
    this.creationDate = w.creationDate;
    this.unreadMessages = w.unreadMessages || 0;
    if (w.lastMessage) this.last = this.message(w.lastMessage, false);
  }

  /** other is the participant who is not the connected user. */
  get other(): string {
    const me = this.chat.host.me();
    return this.participants.filter((p) => p !== me)[0] || this.participants[0];
  }

  on<E extends keyof ChannelEvents>(event: E, listener: ChannelEvents[E]): void {
    this.events.on(event, listener);
  }

  off<E extends keyof ChannelEvents>(event: E, listener?: ChannelEvents[E]): void {
    this.events.off(event, listener);
  }

  async fetchMessages(messagesToFetch: number, anchor?: string | string[], direction: FetchDirection = 'backwards'): Promise<FetchResult> {
    const a = Array.isArray(anchor) ? anchor[0] || '' : anchor || '';
    let ans: { messages: WireMessage[]; anchor: string };
    try {
      ans = await this.chat.host.request('chat.messages.fetch', {
        channelId: this.channelId,
        messagesToFetch,
        anchor: a,
        direction,
      });
    } catch (e) {
      throw toSDKError(e);
    }
    const messages = (ans.messages || []).map((w) => this.message(w, true));
    return { messages, anchor: ans.anchor || '' };
  }

  async sendMessage(text: string): Promise<Message> {
    if (typeof text !== 'string' || text.trim() === '') {
      throw new SDKError('validation_error', 'sendMessage takes a non-empty string');
    }
    let ans: CommandAnswer;
    try {
      ans = await this.chat.host.command('chat.message.send', { channelId: this.channelId, text });
    } catch (e) {
      // The documented codes; a transport failure, a timeout or a plugin
      // that could not decide in time is message_not_saved: retry.
      throw remap(e, ['channel_not_exists', 'validation_error'], 'message_not_saved');
    }
    for (const ev of ans.events) {
      const w = ev.data as WireMessage;
      if (ev.event === 'channel.message.sent' && w && w.channelId === this.channelId) {
        return this.byId.get(w.messageId) || this.message(w, true);
      }
    }
    throw new SDKError('message_not_saved', 'the kernel did not record the message');
  }

  /** loadNewest fetches the newest page once (the UI opening the channel). */
  async loadNewest(n: number): Promise<void> {
    if (this.loaded) return;
    const res = await this.fetchMessages(n, '', 'backwards');
    this.loaded = true;
    this.hasOlder = res.anchor !== '';
  }

  /** loadOlder fetches the page before the oldest loaded message. */
  async loadOlder(n: number): Promise<number> {
    if (!this.hasOlder || this.messages.length === 0) return 0;
    const res = await this.fetchMessages(n, this.messages[0].messageId, 'backwards');
    this.hasOlder = res.anchor !== '';
    return res.messages.length;
  }

  /**
   * message returns the Message of w, creating it; with insert it joins
   * messages (in id order, once).
   */
  message(w: WireMessage, insert: boolean): Message {
    let m = this.byId.get(w.messageId);
    if (!m) m = new Message(w.messageId, this, w.sender, w.text, w.creationDate);
    if (!this.last || before(this.last.messageId, m.messageId)) this.last = m;
    if (insert && !this.byId.has(m.messageId)) {
      this.byId.set(m.messageId, m);
      let i = this.messages.length;
      while (i > 0 && before(m.messageId, this.messages[i - 1].messageId)) i--;
      this.messages.splice(i, 0, m);
    }
    return m;
  }

  /** added applies a live message; it returns it unless already known. */
  added(w: WireMessage): Message | undefined {
    if (this.byId.has(w.messageId)) return undefined;
    // Live messages arrive in order, all of them: messages stays one run
    // ending at the newest, and the newest page, when fetched, overlaps it.
    const m = this.message(w, true);
    this.events.emit('channel:message:added', m);
    return m;
  }

  /** unreadAfter counts the loaded messages of the other user after id. */
  unreadAfter(id: string): number | undefined {
    if (!this.last || !before(id, this.last.messageId)) return 0;
    const me = this.chat.host.me();
    if (!this.byId.has(id)) return undefined;
    return this.messages.filter((m) => before(id, m.messageId) && m.sender !== me).length;
  }

  dispose(): void {
    this.events.clear();
  }
}

export class ChannelView implements ChannelViewAPI {
  /** The draft; the UI keeps it in sync with its text area. */
  draft = '';

  constructor(
    private chat: Chat,
    readonly channel: Channel,
  ) {}

  get textArea(): string {
    return this.draft;
  }

  set textArea(v: string) {
    this.draft = typeof v === 'string' ? v : String(v ?? '');
    this.chat.host.changed();
  }

  select(): void {
    this.chat.host.select(this);
  }

  fetchMessages(messagesToFetch: number, anchor?: string | string[], direction?: FetchDirection): Promise<FetchResult> {
    return this.channel.fetchMessages(messagesToFetch, anchor, direction);
  }

  sendMessage(text: string): Promise<Message> {
    return this.channel.sendMessage(text);
  }
}

/** Chat keeps the connected user's channels. */
export class Chat {
  private channels = new Map<string, Channel>();
  private views = new Map<string, ChannelView>();
  private removed = new Set<string>(); // channel ids are never reused

  constructor(readonly host: ChatHost) {}

  /** list is every channel view, the most recently active first. */
  list(): ChannelView[] {
    const out: ChannelView[] = [];
    this.channels.forEach((ch) => out.push(this.views.get(ch.channelId) as ChannelView));
    return out.sort((a, b) => {
      const x = a.channel.last?.creationDate || a.channel.creationDate;
      const y = b.channel.last?.creationDate || b.channel.creationDate;
      return x < y ? 1 : x > y ? -1 : 0;
    });
  }

  byUser(userId: string): ChannelView | undefined {
    for (const v of this.list()) {
      if (v.channel.participants.indexOf(userId) >= 0 && v.channel.other === userId) return v;
    }
    return undefined;
  }

  byId(channelId: string): ChannelView | undefined {
    return this.views.get(channelId);
  }

  totalUnread(): number {
    let n = 0;
    this.channels.forEach((ch) => (n += ch.unreadMessages));
    return n;
  }

  clear(): void {
    this.channels.forEach((ch) => ch.dispose());
    this.channels.clear();
    this.views.clear();
    this.removed.clear();
  }

  /**
   * load takes the channel list after a connect. On a resume the events
   * missed were replayed before it; what still differs (a resync, or a
   * replay cut short) is announced as channel:added / channel:removed.
   * upTo is the log position the list reflects at least.
   */
  load(list: WireChannel[], announce: boolean, resync: boolean, upTo: number): void {
    const seen = new Set<string>();
    for (const w of list) {
      seen.add(w.channelId);
      const ch = this.channels.get(w.channelId);
      if (!ch) {
        if (this.removed.has(w.channelId)) continue;
        const created = this.add(w);
        if (announce) this.host.emit('channel:added', { channel: created });
        continue;
      }
      ch.unreadMessages = w.unreadMessages || 0;
      const last = w.lastMessage;
      if (resync && last && ch.last?.messageId !== last.messageId) {
        // Messages were missed: drop the loaded history, the UI fetches again.
        ch.messages = [];
        ch.loaded = false;
        ch.hasOlder = true;
      }
      if (last) ch.message(last, false);
    }
    if (announce) {
      this.channels.forEach((ch) => {
        // A channel pushed after the list's position may be missing from it.
        if (!seen.has(ch.channelId) && ch.addedSeq <= upTo) this.remove(ch.channelId, ch.participants, true);
      });
    }
    this.host.changed();
  }

  private add(w: WireChannel): Channel {
    const ch = new Channel(this, w);
    this.channels.set(ch.channelId, ch);
    this.views.set(ch.channelId, new ChannelView(this, ch));
    return ch;
  }

  private remove(channelId: string, participants: string[], announce: boolean): void {
    const ch = this.channels.get(channelId);
    this.removed.add(channelId);
    if (!ch) return;
    this.channels.delete(channelId);
    this.views.delete(channelId);
    ch.dispose();
    if (announce) this.host.emit('channel:removed', { channelId, participants: participants.slice() });
  }

  /** ensure returns the view of a channel the plugin described. */
  ensure(w: WireChannel): ChannelView {
    let v = this.views.get(w.channelId);
    if (!v) {
      this.removed.delete(w.channelId);
      this.add(w);
      v = this.views.get(w.channelId) as ChannelView;
      this.host.changed();
    }
    return v;
  }

  /** apply handles one chat event; it reports whether it was one. */
  apply(p: Push): boolean {
    switch (p.event) {
      case 'channel.added': {
        const w = p.data as WireChannel;
        if (!w || !w.channelId || this.channels.has(w.channelId) || this.removed.has(w.channelId)) return true;
        const ch = this.add({ ...w, unreadMessages: 0 });
        ch.addedSeq = p.seq || 0;
        this.host.emit('channel:added', { channel: ch });
        this.host.changed();
        return true;
      }
      case 'channel.removed': {
        const w = p.data as { channelId: string; participants: string[] };
        if (!w || !w.channelId) return true;
        if (this.channels.has(w.channelId)) this.remove(w.channelId, w.participants || [], true);
        else this.removed.add(w.channelId);
        this.host.changed();
        return true;
      }
      case 'channel.message.sent': {
        const w = p.data as WireMessage;
        const ch = w && this.channels.get(w.channelId);
        if (!ch) return true;
        const m = ch.added(w);
        if (!m) return true;
        if (m.sender === this.host.me()) {
          this.host.emit('channel:message:sent', { message: m });
        } else {
          ch.unreadMessages++;
          this.host.emit('channel:message:received', { message: m });
          if (this.host.reading(ch)) this.markRead(ch);
        }
        this.host.changed();
        return true;
      }
      case 'channel.read': {
        const w = p.data as { channelId: string; userId: string; messageId: string };
        const ch = w && this.channels.get(w.channelId);
        if (!ch || w.userId !== this.host.me()) return true;
        const n = ch.unreadAfter(w.messageId);
        if (n !== undefined) {
          ch.unreadMessages = n;
          this.host.changed();
        } else {
          this.refresh(ch, p.seq || 0);
        }
        return true;
      }
    }
    return false;
  }

  /** refresh asks the plugin for a channel's unread count. */
  private refresh(ch: Channel, minSeq: number): void {
    this.host
      .request<WireChannel>('chat.channel.get', { channelId: ch.channelId, minSeq })
      .then((w) => {
        ch.unreadMessages = w.unreadMessages || 0;
        this.host.changed();
      })
      .catch(() => {});
  }

  /** markRead moves the read cursor to the channel's newest message. */
  markRead(ch: Channel): void {
    const last = ch.last;
    if (!last || ch.unreadMessages === 0) return;
    ch.unreadMessages = 0;
    this.host.changed();
    this.host.command('chat.channel.read', { channelId: ch.channelId, messageId: last.messageId }).catch((e) => {
      console.warn('BandyerSDK: marking messages read failed', e);
    });
  }
}

export { SDKError };
