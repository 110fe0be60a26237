// Type declarations of the Parley browser SDK: the BandyerSDK widget API of
// the vendor's reference (shared/reference/widget-api.txt), as served at
// /sdk/js/chat/<version>/bandyer-widget.min.js.
//
// The script defines the global `BandyerSDK`; these declarations describe
// it (`declare global`) and export the same types for code that imports
// them from the package.
//
// Where the reference contradicts itself, both spellings work and the
// declarations say which one is primary:
//   - `client:access_token:about_to_expire` is emitted together with its
//     alias `client:access_token:is_about_to_expire`;
//   - `joinCallURL` is also reachable as `joinCallUrl`;
//   - `fetchMessages` and `sendMessage` exist on the Channel and, as the
//     reference's examples call them, on the ChannelView.

export type Region = 'eu' | 'in' | 'us' | 'me';
export type Environment = 'sandbox' | 'production';
export type Language = 'en' | 'it' | 'es' | 'pt';
export type CallType = 'audio_only' | 'audio_upgradable' | 'audio_video';
export type RecordingType = 'none' | 'manual' | 'automatic';
export type WidgetMode = 'embed' | 'window';

/** Colours of one part of the widget: any CSS colour. */
export interface LayoutColors {
  background?: string;
  color?: string;
}

/** The `layout` option: every key is optional. */
export interface Layout {
  header?: LayoutColors;
  headerButton?: LayoutColors;
  body?: LayoutColors;
  launcher?: { background?: string };
  messageSent?: LayoutColors;
  messageReceived?: LayoutColors;
  dial?: LayoutColors;
  call?: LayoutColors;
  feedback?: { body?: LayoutColors; buttons?: LayoutColors };
  /** A CSS font-family list. */
  fontFamily?: string;
}

export interface WhiteboardTools {
  wb_add_file?: boolean;
  wb_cursor?: boolean;
  wb_text?: boolean;
  wb_shape?: boolean;
  wb_pen?: boolean;
  wb_eraser?: boolean;
}

/** In-call tools; missing means all off. */
export interface Tools {
  chat?: boolean;
  /** A Share screen button in the call view; the other side sees a second video. */
  screen_sharing?: boolean;
  file_upload?: boolean;
  whiteboard?: boolean | WhiteboardTools;
  snapshot?: boolean;
  live_edit?: boolean;
  live_pointer?: boolean;
}

/**
 * What a userDetailsProvider returns for one user: `userId` is required
 * (objects without it are ignored); any other key is the integrator's, for
 * its userDetailsFormatter. `displayName` and `image` are used when no
 * formatter is set.
 */
export interface UserDetails {
  userId: string;
  displayName?: string;
  image?: string;
  [key: string]: unknown;
}

/** Waited at most 1200 ms; after that the default details are used. */
export type UserDetailsProvider = (userIds: string[]) => Promise<UserDetails[]>;
/** Must return a string; anything else (or a throw) falls back to displayName, then userId. */
export type UserDetailsFormatter = (user: UserDetails) => string;

/** The options of BandyerSDK.configure. */
export interface Config {
  appId: string;
  region: Region;
  environment: Environment;
  hidden?: boolean;
  layout?: Layout;
  recordingType?: RecordingType;
  isAdmin?: boolean;
  callType?: CallType;
  /** embed (default): the call in the widget; window: in a popup window (closing it hangs up). */
  mode?: WidgetMode;
  language?: Language;
  userDetailsProvider?: UserDetailsProvider;
  userDetailsFormatter?: UserDetailsFormatter;
  tools?: Tools;
  virtualBackground?: false | 'blur' | 'image';
  feedback?: boolean;
  /**
   * Parley's addition: the kernel's base URL (http or https). Default: the
   * origin the SDK script was loaded from.
   */
  kernelUrl?: string;
}

/** Every code an SDK promise can be rejected with. */
export type ErrorCode =
  // configure
  | 'client_already_exists'
  | 'invalid_config_error'
  | 'browser_not_supported'
  // connect, updateAccessToken
  | 'sdk_version_invalid'
  | 'sdk_version_unsupported'
  | 'app_id_invalid'
  | 'access_token_expired'
  | 'access_token_invalid'
  | 'access_token_invalid_signature'
  | 'access_token_invalid_user'
  | 'user_not_found'
  | 'too_many_sessions'
  | 'network_error'
  // chat
  | 'validation_error'
  | 'authentication_error'
  | 'create_channel_oto'
  | 'delete_channel'
  | 'channel_not_found'
  | 'channel_not_exists'
  | 'message_anchor_error'
  | 'message_not_saved'
  // calls
  | 'another_call_in_progress'
  | 'current_user_not_available'
  | 'current_user_busy'
  | 'all_users_busy'
  | 'no_plus_user'
  | 'room_create_error'
  | 'internal_server_error'
  | 'invalid_url'
  | 'invalid_token'
  | 'invalid_access_link'
  | 'user_not_associated_to_link'
  | 'join_url_mtm'
  | 'invalid_call_status'
  | 'callee_not_available'
  | 'dial_answer_error'
  | 'user_not_in_dialing'
  | 'dial_stop_error'
  | 'dial_decline_error';

/** What every SDK promise is rejected with. */
export interface SDKError extends Error {
  name: 'BandyerSDKError';
  code: ErrorCode | string;
  message: string;
}

/** One chat message. */
export interface Message {
  readonly messageId: string;
  readonly channel: Channel;
  /** userId of the sender. */
  readonly sender: string;
  readonly text: string;
  /** ISO 8601. */
  readonly creationDate: string;
}

export interface FetchResult {
  messages: Message[];
  /** Where the next page in the same direction starts; '' when there is none. */
  anchor: string;
}

export type FetchDirection = 'backwards' | 'afterward';

export interface ChannelEvents {
  'channel:message:added': (message: Message) => void;
}

/** The logical 1:1 chat. */
export interface Channel {
  readonly channelId: string;
  readonly participants: string[];
  readonly unreadMessages: number;
  /** The messages loaded so far (fetched or arrived live), oldest first. */
  readonly messages: Message[];
  on<E extends keyof ChannelEvents>(event: E, listener: ChannelEvents[E]): void;
  off<E extends keyof ChannelEvents>(event: E, listener?: ChannelEvents[E]): void;
  /** Rejects with channel_not_exists or message_anchor_error. */
  fetchMessages(messagesToFetch: number, anchor?: string | string[], direction?: FetchDirection): Promise<FetchResult>;
  /** Rejects with channel_not_exists or message_not_saved. */
  sendMessage(text: string): Promise<Message>;
}

/** The UI of a channel. */
export interface ChannelView {
  /** The draft in the channel's text area. */
  textArea: string;
  readonly channel: Channel;
  /** Opens the widget on this channel. */
  select(): void;
  fetchMessages(messagesToFetch: number, anchor?: string | string[], direction?: FetchDirection): Promise<FetchResult>;
  sendMessage(text: string): Promise<Message>;
}

export type CallStatus = 'dialing' | 'connecting' | 'connected' | 'ended';
/**
 * Why a call ended: the reference's five, and Parley's own: connection_lost (a participant's
 * media did not come up, or dropped for too long), duration_expired (a call link's room used
 * its duration up), room_closed (the room was disabled or deleted), user_removed (a
 * participant's account was deactivated or deleted).
 */
export type CallEndReason =
  | 'declined'
  | 'canceled'
  | 'answered_of_another_device'
  | 'hang_up'
  | 'timeout'
  | 'connection_lost'
  | 'duration_expired'
  | 'room_closed'
  | 'user_removed';

export interface CallOptions {
  callType: CallType;
  recordingType: RecordingType;
  live: boolean;
}

export interface CallEvents {
  'status:changed': (status: CallStatus) => void;
  'recording:state:changed': (data: { recordingState: 'started' | 'stopped' }) => void;
}

/** The logical call. */
export interface Call {
  readonly roomId: string;
  readonly options: CallOptions;
  readonly creationDate: string;
  readonly participants: string[];
  readonly direction: 'incoming' | 'outgoing';
  readonly status: CallStatus;
  readonly recordingState: 'started' | 'stopped';
  readonly endReason: CallEndReason | null;
  on<E extends keyof CallEvents>(event: E, listener: CallEvents[E]): void;
  off<E extends keyof CallEvents>(event: E, listener?: CallEvents[E]): void;
  answer(): Promise<void>;
  end(): Promise<void>;
}

/** The UI of the current call; it exists before any call does. */
export interface CallView {
  /** The current (or last) call, undefined before the first one. */
  readonly call: Call | undefined;
  readonly tone: { ring: { play(): void; stop(): void } };
  select(): void;
}

export interface CreateCallOptions {
  callType?: CallType;
  /** The reference example's spelling of callType. */
  call_type?: CallType;
  recording?: boolean;
  recordingType?: RecordingType;
  isAdmin?: boolean;
}

export interface TokenExpiry {
  /** ISO 8601. */
  expiresAt: string;
}

export interface ClientEvents {
  'client:access_token:about_to_expire': (data: TokenExpiry) => void;
  'client:access_token:is_about_to_expire': (data: TokenExpiry) => void;
  'client:access_token:expired': () => void;
  'client:force_disconnect': () => void;
  'channel:message:sent': (data: { message: Message }) => void;
  'channel:message:received': (data: { message: Message }) => void;
  'channel:added': (data: { channel: Channel }) => void;
  'channel:removed': (data: { channelId: string; participants: string[] }) => void;
  'call:incoming': (data: { call: Call }) => void;
  'call:status:changed': (data: { call: Call; status: CallStatus }) => void;
  'user:status:changed': (data: { userId: string; status: 'online' | 'offline' }) => void;
}

/** What BandyerSDK.configure resolves with. */
export interface Client {
  readonly channelsView: ChannelView[];
  readonly callView: CallView;
  readonly region: Region;
  readonly environment: Environment;
  readonly appId: string;
  /** The connected user; '' before connect. */
  readonly userId: string;

  on<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): void;
  off<E extends keyof ClientEvents>(event: E, listener?: ClientEvents[E]): void;

  connect(userId: string, accessToken: string): Promise<void>;
  disconnect(): Promise<void>;
  updateAccessToken(accessToken: string): Promise<TokenExpiry>;
  joinCallURL(url: string): Promise<CallView>;
  joinCallUrl(url: string): Promise<CallView>;
  createCall(userIds: string[], options?: CreateCallOptions): Promise<CallView>;

  addChannel(userId: string): Promise<ChannelView>;
  removeChannel(userId: string): Promise<void>;
  /** Throws an SDKError (validation_error, channel_not_found). */
  getChannelView(userId: string): ChannelView;
  selectChannelsView(): void;

  /** The users of the company online now. */
  getOnlineUsers(): string[];

  showWidget(): void;
  hideWidget(): void;
  openWidget(): void;
  closeWidget(): void;
  toggleWidget(): void;
}

export interface BandyerSDKStatic {
  readonly version: string;
  configure(config: Config): Promise<Client>;
  destroyClient(): Promise<void>;
}

declare global {
  const BandyerSDK: BandyerSDKStatic;
  interface Window {
    BandyerSDK: BandyerSDKStatic;
  }
}
