// The widget: a launcher and a panel with the channel list and the chat
// view, in an open shadow root on a <bandyer-widget> element, so the host
// page's CSS does not reach in and the widget's does not leak out.

import type { Language, WidgetMode } from '../../index';
import type { Call } from '../call';
import type { Channel, ChannelView, Chat, Message } from '../chat';
import type { Texts } from '../i18n';
import type { SessionState } from '../session';
import type { Users } from '../users';
import { css, windowCss } from './style';

/** What the widget reads from the client. */
export interface WidgetHost {
  chat: Chat;
  users: Users;
  texts: Texts;
  language: Language;
  me(): string;
  online(userId: string): boolean;
  state(): SessionState;
  /** The current or last call. */
  call(): Call | undefined;
  /** Whether the feedback view follows a call's end. */
  feedback: boolean;
  /** embed: the call in the widget; window: in a popup window. */
  mode: WidgetMode;
  /** The screen_sharing tool: a button in the call view. */
  screenSharing: boolean;
}

const pageSize = 20;
const chatIcon =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>';

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function initials(name: string): string {
  const parts = name.trim().split(/[\s._-]+/).filter((p) => p !== '');
  return ((parts[0] || '?')[0] + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
}

export class Widget {
  private element: HTMLElement | null = null;
  private root: ShadowRoot | null = null;
  private shown = false;
  private open = false;
  private current: ChannelView | null = null;
  private callSelected = false;
  private rated: string | null = null; // the call whose feedback was given
  private endedTimer = 0;
  private scheduled = false;
  private listGeneration = 0;
  private rendered: string[] = []; // message ids in the chat view, in order
  private loadingOlder = false;
  private loadingNewest = false;
  private time: Intl.DateTimeFormat;
  private onVisibility = () => this.changed();

  // Parts of the shadow tree, made once in mount.
  private launcher!: HTMLButtonElement;
  private badge!: HTMLElement;
  private panel!: HTMLElement;
  private back!: HTMLButtonElement;
  private titleName!: HTMLElement;
  private titleSub!: HTMLElement;
  private banner!: HTMLElement;
  private list!: HTMLElement;
  private chatView!: HTMLElement;
  private messages!: HTMLElement;
  private older!: HTMLElement;
  private textarea!: HTMLTextAreaElement;
  private send!: HTMLButtonElement;
  private error!: HTMLElement;
  private callBox!: HTMLElement;
  private dial!: HTMLElement;
  private dialName!: HTMLElement;
  private dialStatus!: HTMLElement;
  private answerButton!: HTMLButtonElement;
  private declineButton!: HTMLButtonElement;
  private stage!: HTMLElement;
  private remoteVideo!: HTMLVideoElement;
  private localVideo!: HTMLVideoElement;
  private muteButton!: HTMLButtonElement;
  private cameraButton!: HTMLButtonElement;
  private screenButton!: HTMLButtonElement;
  private screens!: HTMLElement;
  private stageTitle!: HTMLElement;
  private inWindow!: HTMLElement;
  // Window mode: the popup the call view (stage) was moved to.
  private popup: Window | null = null;
  private popupCall: string | null = null;
  private popupRefused: string | null = null;
  private popupTimer = 0;
  private onPageHide = () => this.closeWindow(); // the page leaves: its popup too
  private ended!: HTMLElement;
  private endedText!: HTMLElement;
  private feedback!: HTMLElement;

  constructor(
    private host: WidgetHost,
    private layout: Record<string, string>,
  ) {
    this.time = new Intl.DateTimeFormat(host.language, { hour: '2-digit', minute: '2-digit' });
  }

  get isShown(): boolean {
    return this.shown;
  }

  /** show puts the widget in the page (showWidget). */
  show(): void {
    if (this.shown) return;
    this.shown = true;
    this.mount();
    this.changed();
  }

  /** hide takes it out of the page; its state is kept (hideWidget). */
  hide(): void {
    if (!this.shown) return;
    this.shown = false;
    this.element?.remove();
  }

  openPanel(): void {
    this.open = true;
    this.changed();
  }

  closePanel(): void {
    this.open = false;
    this.changed();
  }

  toggle(): void {
    this.open = !this.open;
    this.changed();
  }

  /**
   * selectCall shows the current call; with show, the widget too (an
   * incoming call, createCall and joinCallURL show a hidden widget).
   */
  selectCall(show = false): void {
    if (show) this.show();
    this.callSelected = true;
    this.open = true;
    this.changed();
  }

  selectList(): void {
    this.callSelected = false;
    this.current = null;
    this.open = true;
    this.changed();
  }

  selectChannel(v: ChannelView): void {
    this.callSelected = false;
    this.open = true;
    if (this.current !== v) {
      this.current = v;
      this.rendered = [];
      if (this.root) {
        this.messages.textContent = '';
        this.textarea.value = v.draft;
        this.error.hidden = true;
      }
    }
    this.changed();
  }

  /** loadNewest fetches the newest page of v's channel, once at a time. */
  private loadNewest(v: ChannelView): void {
    if (this.loadingNewest) return;
    this.loadingNewest = true;
    v.channel
      .loadNewest(pageSize)
      .then(() => this.fill(v))
      .then(
        () => {
          this.loadingNewest = false;
          this.changed();
        },
        (e) => {
          // No render: it would try again at once. The next change does.
          this.loadingNewest = false;
          console.warn('BandyerSDK: loading messages failed', e);
        },
      );
  }

  /** reading reports whether the user sees channel's newest messages now. */
  reading(ch: Channel): boolean {
    return (
      this.shown &&
      this.open &&
      this.current !== null &&
      this.current.channel === ch &&
      ch.loaded &&
      document.visibilityState === 'visible'
    );
  }

  /** destroy removes the widget for good. */
  destroy(): void {
    this.closeWindow();
    this.hide();
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.element = null;
    this.root = null;
  }

  /** changed schedules a render (coalesced). */
  changed(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    Promise.resolve().then(() => {
      this.scheduled = false;
      this.render();
    });
  }

  private mount(): void {
    if (this.element) {
      document.body.appendChild(this.element);
      return;
    }
    const host = document.createElement('bandyer-widget');
    const root = host.attachShadow({ mode: 'open' });
    const style = el('style');
    style.textContent = css;
    const bw = el('div', 'bw');
    for (const k of Object.keys(this.layout)) bw.style.setProperty(k, this.layout[k]);
    const t = this.host.texts;

    this.launcher = el('button', 'bw-launcher');
    this.launcher.type = 'button';
    this.launcher.innerHTML = chatIcon;
    this.launcher.setAttribute('aria-label', t.openChat);
    this.badge = el('span', 'bw-badge');
    this.launcher.appendChild(this.badge);
    this.launcher.addEventListener('click', () => this.toggle());

    this.panel = el('section', 'bw-panel');
    this.panel.setAttribute('role', 'dialog');
    const header = el('header', 'bw-header');
    this.back = el('button', 'bw-header-button bw-back', '‹');
    this.back.type = 'button';
    this.back.setAttribute('aria-label', t.back);
    this.back.addEventListener('click', () => this.selectList());
    const title = el('div', 'bw-title');
    this.titleName = el('div', 'bw-title-name');
    this.titleSub = el('div', 'bw-title-sub');
    title.append(this.titleName, this.titleSub);
    const close = el('button', 'bw-header-button bw-close', '×');
    close.type = 'button';
    close.setAttribute('aria-label', t.close);
    close.addEventListener('click', () => this.closePanel());
    header.append(this.back, title, close);
    this.banner = el('div', 'bw-banner');

    const body = el('div', 'bw-body');
    this.list = el('div', 'bw-list');
    this.chatView = el('div', 'bw-chat');
    this.messages = el('div', 'bw-messages');
    this.older = el('div', 'bw-older', t.loadingOlder);
    this.messages.addEventListener('scroll', () => {
      if (this.messages.scrollTop < 60) this.loadOlder();
    });
    const composer = el('div', 'bw-composer');
    this.textarea = el('textarea', 'bw-textarea');
    this.textarea.placeholder = t.typeMessage;
    this.textarea.setAttribute('aria-label', t.typeMessage);
    this.textarea.addEventListener('input', () => {
      if (this.current) this.current.draft = this.textarea.value;
    });
    this.textarea.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.submit();
      }
    });
    this.send = el('button', 'bw-send', t.send);
    this.send.type = 'button';
    this.send.addEventListener('click', () => this.submit());
    composer.append(this.textarea, this.send);
    this.error = el('div', 'bw-error', t.notSent);
    this.chatView.append(this.messages, this.error, composer);
    this.buildCall(t);
    body.append(this.list, this.chatView, this.callBox);
    this.panel.append(header, this.banner, body);

    bw.append(this.panel, this.launcher);
    root.append(style, bw);
    document.body.appendChild(host);
    document.addEventListener('visibilitychange', this.onVisibility);
    this.element = host;
    this.root = root;
  }

  private buildCall(t: Texts): void {
    const button = (cls: string, text: string, onClick: () => void) => {
      const b = el('button', cls, text);
      b.type = 'button';
      b.addEventListener('click', onClick);
      return b;
    };
    const act = (f: (c: Call) => Promise<void>) => () => {
      const c = this.host.call();
      if (c) f(c).catch((e) => console.warn('BandyerSDK: call action failed', e));
    };
    this.callBox = el('div', 'bw-call-box');
    this.dial = el('div', 'bw-dial');
    this.dialName = el('div', 'bw-dial-name');
    this.dialStatus = el('div', 'bw-dial-status');
    const dialButtons = el('div', 'bw-call-buttons');
    this.answerButton = button('bw-answer', t.answer, act((c) => c.answer()));
    this.declineButton = button('bw-decline', t.decline, act((c) => c.end()));
    dialButtons.append(this.answerButton, this.declineButton);
    this.dial.append(this.dialName, this.dialStatus, dialButtons);

    this.stage = el('div', 'bw-call');
    this.remoteVideo = el('video', 'bw-remote');
    this.localVideo = el('video', 'bw-local');
    for (const v of [this.remoteVideo, this.localVideo]) {
      v.autoplay = true;
      v.setAttribute('playsinline', '');
    }
    this.localVideo.muted = true;
    const controls = el('div', 'bw-call-buttons');
    this.muteButton = button('bw-mute', t.mute, () => {
      const m = this.host.call()?.media;
      if (m) m.setEnabled('audio', !m.enabled('audio'));
    });
    this.cameraButton = button('bw-camera', t.cameraOff, () => {
      const m = this.host.call()?.media;
      if (m) m.setEnabled('video', !m.enabled('video'));
    });
    this.screenButton = button('bw-screen', t.shareScreen, () => {
      const m = this.host.call()?.media;
      if (!m) return;
      if (m.screen) m.stopScreen();
      else m.shareScreen().catch((e) => console.warn('BandyerSDK: screen sharing failed', e));
    });
    controls.append(this.muteButton, this.cameraButton, this.screenButton, button('bw-hangup', t.hangUp, act((c) => c.end())));
    this.stageTitle = el('div', 'bw-stage-title');
    this.screens = el('div', 'bw-screens');
    this.stage.append(this.stageTitle, this.remoteVideo, this.screens, this.localVideo, controls);
    this.inWindow = el('div', 'bw-in-window', t.callInWindow);

    this.ended = el('div', 'bw-ended');
    this.endedText = el('div', 'bw-ended-text');
    this.feedback = el('div', 'bw-feedback');
    const stars = el('div', 'bw-call-buttons');
    for (let i = 1; i <= 5; i++) {
      const b = button('bw-rate', String(i), () => {
        this.rated = this.host.call()?.callId || null;
        this.feedback.dataset.rating = String(i);
        this.changed();
        this.endedTimer = window.setTimeout(() => this.selectList(), 1500);
      });
      b.setAttribute('aria-label', `${i}/5`);
      stars.appendChild(b);
    }
    this.feedback.append(el('div', 'bw-feedback-question', t.feedbackQuestion), stars);
    this.ended.append(this.endedText, this.feedback);
    this.callBox.append(this.dial, this.stage, this.inWindow, this.ended);
  }

  /**
   * openWindow moves the call view into a popup window (window mode). A
   * popup the browser refuses leaves the call in the widget, as in embed
   * mode.
   */
  private openWindow(call: Call): boolean {
    if (this.popup && this.popupCall === call.callId) return true;
    this.closeWindow();
    if (this.popupRefused === call.callId) return false;
    const w = window.open('', `bandyer-call-${call.callId}`, 'popup,width=800,height=600');
    if (!w) {
      this.popupRefused = call.callId;
      console.warn('BandyerSDK: the browser refused the call window; the call stays in the widget');
      return false;
    }
    const d = w.document;
    d.title = this.host.users.name(call.other);
    const style = d.createElement('style');
    style.textContent = css + windowCss;
    d.head.appendChild(style);
    const wrap = d.createElement('div');
    wrap.className = 'bw bw-window';
    for (const k of Object.keys(this.layout)) wrap.style.setProperty(k, this.layout[k]);
    d.body.textContent = '';
    d.body.appendChild(wrap);
    wrap.appendChild(this.stage);
    this.popup = w;
    this.popupCall = call.callId;
    this.replay();
    const gone = () => this.windowClosed(w);
    w.addEventListener('pagehide', gone);
    this.popupTimer = window.setInterval(() => {
      if (w.closed) gone();
    }, 250);
    window.addEventListener('pagehide', this.onPageHide);
    return true;
  }

  /** windowClosed: the user closed the call window, which ends the call. */
  private windowClosed(w: Window): void {
    if (this.popup !== w) return;
    const id = this.popupCall;
    this.popupRefused = id; // not opened again for this call
    this.restoreStage();
    const c = this.host.call();
    if (c && c.callId === id && c.status !== 'ended') c.end().catch((e) => console.warn('BandyerSDK: ending the call failed', e));
    this.changed();
  }

  /** closeWindow brings the call view back and closes the popup. */
  private closeWindow(): void {
    const w = this.popup;
    if (!w) return;
    this.restoreStage();
    w.close();
  }

  private restoreStage(): void {
    window.clearInterval(this.popupTimer);
    window.removeEventListener('pagehide', this.onPageHide);
    this.popup = null;
    this.popupCall = null;
    this.callBox.insertBefore(this.stage, this.inWindow);
    this.replay();
  }

  /** replay restarts the videos moved to another document. */
  private replay(): void {
    for (const v of Array.from(this.stage.querySelectorAll('video'))) {
      const src = v.srcObject;
      v.srcObject = null;
      v.srcObject = src;
      if (src) v.play().catch(() => {});
    }
  }

  /** renderScreens shows the other side's shared screens, one video each. */
  private renderScreens(tracks: MediaStreamTrack[]): void {
    const box = this.screens;
    const ids = tracks.map((t) => t.id);
    for (const v of Array.from(box.children) as HTMLVideoElement[]) {
      if (ids.indexOf(v.dataset.trackId || '') < 0) {
        v.srcObject = null;
        v.remove();
      }
    }
    const have = (Array.from(box.children) as HTMLVideoElement[]).map((v) => v.dataset.trackId);
    for (const t of tracks) {
      if (have.indexOf(t.id) >= 0) continue;
      const v = box.ownerDocument.createElement('video');
      v.className = 'bw-remote-screen';
      v.autoplay = true;
      v.muted = true;
      v.setAttribute('playsinline', '');
      v.dataset.trackId = t.id;
      v.srcObject = new MediaStream([t]);
      box.appendChild(v);
      v.play().catch(() => {});
    }
    box.hidden = tracks.length === 0;
  }

  private renderCall(call: Call): void {
    const t = this.host.texts;
    const name = this.host.users.name(call.other);
    this.titleName.textContent = name;
    const ringing = call.status === 'dialing';
    const active = call.status === 'connecting' || call.status === 'connected';
    // Window mode: the call view goes to a popup from the call's start
    // on this device (an outgoing call ringing, or answered here) to its end.
    const windowed =
      this.host.mode === 'window' && call.media !== null && (active || (ringing && call.direction === 'outgoing')) && this.openWindow(call);
    if (!windowed) this.closeWindow();
    this.dial.hidden = !ringing;
    this.stage.hidden = !active && !windowed;
    this.inWindow.hidden = !windowed;
    this.stageTitle.hidden = !windowed;
    this.ended.hidden = call.status !== 'ended';
    this.dialName.textContent = name;
    this.dialStatus.textContent = call.direction === 'incoming' ? t.incomingCall : t.calling;
    this.answerButton.hidden = call.direction !== 'incoming';
    this.declineButton.textContent = call.direction === 'incoming' ? t.decline : t.cancel;
    this.titleSub.textContent =
      call.status === 'ended' ? t.callEnded : ringing ? this.dialStatus.textContent : call.status === 'connected' ? t.inCall : t.callConnecting;
    this.stageTitle.textContent = `${name} · ${this.titleSub.textContent}`;
    if (this.popup) this.popup.document.title = this.stageTitle.textContent;
    const m = call.media;
    if (m && this.remoteVideo.srcObject !== m.remote) this.remoteVideo.srcObject = m.remote;
    if (m && m.local && this.localVideo.srcObject !== m.local) this.localVideo.srcObject = m.local;
    this.localVideo.hidden = !m || !m.local || m.local.getVideoTracks().length === 0;
    this.muteButton.textContent = m && !m.enabled('audio') ? t.unmute : t.mute;
    this.cameraButton.textContent = m && !m.enabled('video') ? t.cameraOn : t.cameraOff;
    this.cameraButton.hidden = call.options.callType === 'audio_only';
    this.screenButton.hidden = !this.host.screenSharing || !m || call.options.callType === 'audio_only';
    this.screenButton.textContent = m && m.screen ? t.stopSharing : t.shareScreen;
    this.renderScreens(m && call.status !== 'ended' ? m.screens() : []);
    if (call.status === 'ended') {
      this.remoteVideo.srcObject = null;
      this.localVideo.srcObject = null;
      const reason = call.endReason ? t.endReasons[call.endReason] || call.endReason : '';
      this.endedText.textContent = reason ? `${t.callEnded}: ${reason}` : t.callEnded;
      const rated = this.rated === call.callId;
      this.feedback.hidden = !this.host.feedback || call.endReason !== 'hang_up';
      if (rated) this.feedback.firstChild!.textContent = t.thanks;
      if (this.feedback.hidden && !this.endedTimer) {
        this.endedTimer = window.setTimeout(() => {
          this.endedTimer = 0;
          if (this.callSelected && this.host.call() === call) this.selectList();
        }, 3000);
      }
    } else {
      window.clearTimeout(this.endedTimer);
      this.endedTimer = 0;
      this.feedback.firstChild!.textContent = t.feedbackQuestion;
    }
  }

  private render(): void {
    if (!this.root) return;
    const t = this.host.texts;
    const chat = this.host.chat;
    if (this.current && !chat.byId(this.current.channel.channelId)) this.current = null; // removed

    const unread = chat.totalUnread();
    this.badge.hidden = unread === 0;
    this.badge.textContent = unread > 99 ? '99+' : String(unread);
    this.launcher.setAttribute('aria-label', unread > 0 ? `${t.openChat} (${t.unread(unread)})` : t.openChat);
    this.panel.hidden = !this.open;

    const st = this.host.state();
    this.banner.hidden = st === 'connected';
    this.banner.textContent = st === 'connecting' ? t.connecting : st === 'reconnecting' ? t.reconnecting : t.disconnected;

    const last = this.host.call();
    if (this.popup && (!last || last.callId !== this.popupCall || last.status === 'ended')) this.closeWindow();
    const call = this.callSelected ? last : undefined;
    this.callBox.hidden = !call;
    if (call) {
      this.back.hidden = false;
      this.list.hidden = true;
      this.chatView.hidden = true;
      this.renderCall(call);
      return;
    }
    const cur = this.current;
    this.back.hidden = cur === null;
    this.list.hidden = cur !== null;
    this.chatView.hidden = cur === null;
    if (cur === null) {
      this.titleName.textContent = t.chats;
      this.titleSub.textContent = '';
      this.renderList();
      return;
    }
    const other = cur.channel.other;
    this.titleName.textContent = this.host.users.name(other);
    this.titleSub.textContent = this.host.online(other) ? t.online : t.offline;
    if (this.textarea.value !== cur.draft) this.textarea.value = cur.draft;
    if (!cur.channel.loaded) this.loadNewest(cur); // first open, or history dropped by a resync
    this.renderMessages(cur.channel);
    if (this.reading(cur.channel)) chat.markRead(cur.channel);
  }

  private renderList(): void {
    const views = this.host.chat.list();
    const gen = ++this.listGeneration;
    // The integrator's provider is waited for (1200 ms at most) before
    // names show, so rows do not flash user ids.
    this.host.users.ready(views.map((v) => v.channel.other)).then(() => {
      if (gen !== this.listGeneration || !this.root) return;
      this.buildRows(views);
    });
  }

  private buildRows(views: ChannelView[]): void {
    const t = this.host.texts;
    this.list.textContent = '';
    if (views.length === 0) {
      this.list.appendChild(el('div', 'bw-empty', this.host.state() === 'connected' ? t.noChats : t.disconnected));
      return;
    }
    for (const v of views) {
      const ch = v.channel;
      const other = ch.other;
      const name = this.host.users.name(other);
      const row = el('button', 'bw-row');
      row.type = 'button';
      row.dataset.channelId = ch.channelId;
      row.dataset.userId = other;
      const avatar = el('div', 'bw-avatar');
      const img = this.host.users.image(other);
      if (img) {
        const i = el('img');
        i.src = img;
        i.alt = '';
        avatar.appendChild(i);
      } else {
        avatar.textContent = initials(name);
      }
      const online = this.host.online(other);
      const dot = el('span', `bw-presence ${online ? 'bw-online' : 'bw-offline'}`);
      dot.title = online ? t.online : t.offline;
      avatar.appendChild(dot);
      const main = el('div', 'bw-row-main');
      main.append(el('div', 'bw-name', name), el('div', 'bw-preview', ch.last ? ch.last.text : ''));
      const badge = el('span', 'bw-unread', String(ch.unreadMessages));
      badge.hidden = ch.unreadMessages === 0;
      badge.setAttribute('aria-label', t.unread(ch.unreadMessages));
      row.append(avatar, main, badge);
      row.addEventListener('click', () => this.selectChannel(v));
      this.list.appendChild(row);
    }
  }

  private bubble(m: Message): HTMLElement {
    const mine = m.sender === this.host.me();
    const b = el('div', `bw-msg ${mine ? 'bw-sent' : 'bw-received'}`);
    b.dataset.messageId = m.messageId;
    b.appendChild(el('span', 'bw-text', m.text));
    const d = new Date(m.creationDate);
    b.appendChild(el('span', 'bw-time', isNaN(d.getTime()) ? '' : this.time.format(d)));
    return b;
  }

  /** renderMessages brings the chat view up to the channel's messages. */
  private renderMessages(ch: Channel): void {
    const box = this.messages;
    const ids = ch.messages.map((m) => m.messageId);
    const old = this.rendered;
    const same = ids.length === old.length && ids.every((id, i) => id === old[i]);
    this.older.hidden = !this.loadingOlder;
    if (same && old.length > 0) return;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const isPrefix = old.length > 0 && old.every((id, i) => ids[i] === id);
    const isSuffix = old.length > 0 && old.every((id, i) => ids[ids.length - old.length + i] === id);
    if (isPrefix) {
      for (const m of ch.messages.slice(old.length)) box.appendChild(this.bubble(m));
      if (atBottom || ch.messages[ch.messages.length - 1].sender === this.host.me()) box.scrollTop = box.scrollHeight;
    } else if (isSuffix) {
      const before = box.scrollHeight;
      const anchor = box.querySelector('.bw-msg');
      for (const m of ch.messages.slice(0, ids.length - old.length)) box.insertBefore(this.bubble(m), anchor);
      box.scrollTop += box.scrollHeight - before;
    } else {
      box.textContent = '';
      box.appendChild(this.older);
      if (ch.messages.length === 0 && ch.loaded) box.appendChild(el('div', 'bw-empty', this.host.texts.noMessages));
      for (const m of ch.messages) box.appendChild(this.bubble(m));
      box.scrollTop = box.scrollHeight;
    }
    this.rendered = ids;
  }

  /** fill loads older pages until the view can scroll (or the start). */
  private async fill(v: ChannelView): Promise<void> {
    this.render();
    for (let i = 0; i < 10 && this.current === v && v.channel.hasOlder; i++) {
      if (this.messages.scrollHeight > this.messages.clientHeight + 60) return;
      if ((await v.channel.loadOlder(pageSize)) === 0) return;
      this.render();
    }
  }

  private loadOlder(): void {
    const cur = this.current;
    if (!cur || this.loadingOlder || !cur.channel.loaded || !cur.channel.hasOlder) return;
    this.loadingOlder = true;
    this.older.hidden = false;
    cur.channel
      .loadOlder(pageSize)
      .catch((e) => console.warn('BandyerSDK: loading older messages failed', e))
      .then(() => {
        this.loadingOlder = false;
        this.changed();
      });
  }

  private submit(): void {
    const v = this.current;
    const text = this.textarea.value.trim();
    if (!v || text === '' || this.send.disabled) return;
    this.send.disabled = true;
    this.error.hidden = true;
    v.channel
      .sendMessage(text)
      .then(() => {
        v.draft = '';
        if (this.current === v) this.textarea.value = '';
      })
      .catch((e) => {
        console.warn('BandyerSDK: sending failed', e);
        if (this.current === v) this.error.hidden = false;
      })
      .then(() => {
        this.send.disabled = false;
        this.changed();
      });
  }
}
