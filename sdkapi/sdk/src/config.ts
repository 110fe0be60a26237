import type {
  CallType,
  Environment,
  Language,
  Layout,
  RecordingType,
  Region,
  Tools,
  UserDetailsFormatter,
  UserDetailsProvider,
  WidgetMode,
} from '../index';
import { SDKError } from './errors';

/** The configuration after validation, with every default filled in. */
export interface Settings {
  appId: string;
  region: Region;
  environment: Environment;
  hidden: boolean;
  layout: Layout;
  recordingType: RecordingType;
  isAdmin: boolean;
  callType: CallType;
  mode: WidgetMode;
  language: Language;
  userDetailsProvider?: UserDetailsProvider;
  userDetailsFormatter?: UserDetailsFormatter;
  tools: Tools;
  virtualBackground: false | 'blur' | 'image';
  feedback: boolean;
  /** The kernel's base URL, no trailing slash. */
  kernelUrl: string;
}

const regions: Region[] = ['eu', 'in', 'us', 'me'];
const environments: Environment[] = ['sandbox', 'production'];
const languages: Language[] = ['en', 'it', 'es', 'pt'];
const callTypes: CallType[] = ['audio_only', 'audio_upgradable', 'audio_video'];
const recordingTypes: RecordingType[] = ['none', 'manual', 'automatic'];
const modes: WidgetMode[] = ['embed', 'window'];
const toolKeys = ['chat', 'screen_sharing', 'file_upload', 'whiteboard', 'snapshot', 'live_edit', 'live_pointer'];
const whiteboardKeys = ['wb_add_file', 'wb_cursor', 'wb_text', 'wb_shape', 'wb_pen', 'wb_eraser'];
const colorKeys = ['header', 'headerButton', 'body', 'messageSent', 'messageReceived', 'dial', 'call'];

const optionKeys = [
  'appId', 'region', 'environment', 'hidden', 'layout', 'recordingType', 'isAdmin', 'callType', 'mode',
  'language', 'userDetailsProvider', 'userDetailsFormatter', 'tools', 'virtualBackground', 'feedback', 'kernelUrl',
];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[]): v is T {
  return typeof v === 'string' && (allowed as readonly string[]).indexOf(v) >= 0;
}

/**
 * validate checks every option of the reference and returns the settings,
 * or throws invalid_config_error naming every bad key (dotted paths for
 * nested ones: layout.header.background). Unknown keys are refused too, so
 * a misspelt option is not silently ignored.
 */
export function validate(config: unknown, defaultKernelUrl: string): Settings {
  if (!isObject(config)) {
    throw new SDKError('invalid_config_error', 'invalid config: configure takes an object');
  }
  const bad: string[] = [];
  const c = config as Record<string, unknown>;
  for (const k of Object.keys(c)) {
    if (optionKeys.indexOf(k) < 0) bad.push(k);
  }
  if (typeof c.appId !== 'string' || c.appId.trim() === '') bad.push('appId');
  if (!oneOf(c.region, regions)) bad.push('region');
  if (!oneOf(c.environment, environments)) bad.push('environment');
  const optional = (key: string, ok: (v: unknown) => boolean) => {
    if (c[key] !== undefined && !ok(c[key])) bad.push(key);
  };
  const isBool = (v: unknown) => typeof v === 'boolean';
  const isFn = (v: unknown) => typeof v === 'function';
  optional('hidden', isBool);
  optional('isAdmin', isBool);
  optional('feedback', isBool);
  optional('recordingType', (v) => oneOf(v, recordingTypes));
  optional('callType', (v) => oneOf(v, callTypes));
  optional('mode', (v) => oneOf(v, modes));
  optional('language', (v) => oneOf(v, languages));
  optional('userDetailsProvider', isFn);
  optional('userDetailsFormatter', isFn);
  optional('virtualBackground', (v) => v === false || v === 'blur' || v === 'image');
  optional('kernelUrl', (v) => typeof v === 'string' && /^https?:\/\/[^/]+/.test(v));
  if (c.tools !== undefined) validateTools(c.tools, bad);
  if (c.layout !== undefined) validateLayout(c.layout, bad);
  if (bad.length > 0) {
    throw new SDKError('invalid_config_error', `invalid config: ${bad.join(', ')}`);
  }
  return {
    appId: (c.appId as string).trim(),
    region: c.region as Region,
    environment: c.environment as Environment,
    hidden: (c.hidden as boolean | undefined) ?? false,
    layout: (c.layout as Layout | undefined) ?? {},
    recordingType: (c.recordingType as RecordingType | undefined) ?? 'none',
    isAdmin: (c.isAdmin as boolean | undefined) ?? false,
    callType: (c.callType as CallType | undefined) ?? 'audio_video',
    mode: (c.mode as WidgetMode | undefined) ?? 'embed',
    language: (c.language as Language | undefined) ?? 'en',
    userDetailsProvider: c.userDetailsProvider as UserDetailsProvider | undefined,
    userDetailsFormatter: c.userDetailsFormatter as UserDetailsFormatter | undefined,
    tools: (c.tools as Tools | undefined) ?? {},
    virtualBackground: (c.virtualBackground as false | 'blur' | 'image' | undefined) ?? false,
    feedback: (c.feedback as boolean | undefined) ?? false,
    kernelUrl: ((c.kernelUrl as string | undefined) ?? defaultKernelUrl).replace(/\/+$/, ''),
  };
}

function validateTools(tools: unknown, bad: string[]): void {
  if (!isObject(tools)) {
    bad.push('tools');
    return;
  }
  for (const k of Object.keys(tools)) {
    const v = tools[k];
    if (toolKeys.indexOf(k) < 0) {
      bad.push(`tools.${k}`);
    } else if (k === 'whiteboard' && isObject(v)) {
      for (const w of Object.keys(v)) {
        if (whiteboardKeys.indexOf(w) < 0 || typeof v[w] !== 'boolean') bad.push(`tools.whiteboard.${w}`);
      }
    } else if (typeof v !== 'boolean') {
      bad.push(`tools.${k}`);
    }
  }
}

function validColor(v: unknown): boolean {
  return typeof v === 'string' && v.trim() !== '' && CSS.supports('color', v);
}

function validateColors(v: unknown, path: string, keys: string[], bad: string[]): void {
  if (!isObject(v)) {
    bad.push(path);
    return;
  }
  for (const k of Object.keys(v)) {
    if (keys.indexOf(k) < 0 || !validColor(v[k])) bad.push(`${path}.${k}`);
  }
}

function validateLayout(layout: unknown, bad: string[]): void {
  if (!isObject(layout)) {
    bad.push('layout');
    return;
  }
  for (const k of Object.keys(layout)) {
    const v = layout[k];
    const path = `layout.${k}`;
    if (colorKeys.indexOf(k) >= 0) {
      validateColors(v, path, ['background', 'color'], bad);
    } else if (k === 'launcher') {
      validateColors(v, path, ['background'], bad);
    } else if (k === 'feedback') {
      if (!isObject(v)) {
        bad.push(path);
        continue;
      }
      for (const part of Object.keys(v)) {
        if (part === 'body' || part === 'buttons') validateColors(v[part], `${path}.${part}`, ['background', 'color'], bad);
        else bad.push(`${path}.${part}`);
      }
    } else if (k === 'fontFamily') {
      if (typeof v !== 'string' || v.trim() === '' || !CSS.supports('font-family', v)) bad.push(path);
    } else {
      bad.push(path);
    }
  }
}

/**
 * supported reports whether the browser has what the SDK needs (the
 * reference's table: Chrome 72, Firefox 66, Safari 12, Edge 79 all do).
 */
export function supported(): boolean {
  try {
    return (
      typeof WebSocket === 'function' &&
      typeof Promise === 'function' &&
      typeof fetch === 'function' &&
      typeof Element.prototype.attachShadow === 'function' &&
      typeof CSS !== 'undefined' &&
      CSS.supports('color', 'var(--x)')
    );
  } catch {
    return false;
  }
}
