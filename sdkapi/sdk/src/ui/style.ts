import type { Layout, LayoutColors } from '../../index';

// Every colour of the widget is a custom property on the root element, set
// from the `layout` option (or the default below): the stylesheet reads
// them, so a layout key changes exactly the parts the reference names.

const defaults: Record<string, string> = {
  '--bw-font': '-apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif',
  '--bw-header-bg': '#12355b',
  '--bw-header-color': '#ffffff',
  '--bw-header-button-bg': 'transparent',
  '--bw-header-button-color': '#ffffff',
  '--bw-body-bg': '#ffffff',
  '--bw-body-color': '#1c2430',
  '--bw-launcher-bg': '#1565c0',
  '--bw-sent-bg': '#1565c0',
  '--bw-sent-color': '#ffffff',
  '--bw-received-bg': '#eef1f5',
  '--bw-received-color': '#1c2430',
  '--bw-dial-bg': '#12355b',
  '--bw-dial-color': '#ffffff',
  '--bw-call-bg': '#0b1726',
  '--bw-call-color': '#ffffff',
  '--bw-feedback-body-bg': '#ffffff',
  '--bw-feedback-body-color': '#1c2430',
  '--bw-feedback-buttons-bg': '#1565c0',
  '--bw-feedback-buttons-color': '#ffffff',
};

/** variables maps the layout option onto the custom properties. */
export function variables(layout: Layout): Record<string, string> {
  const v: Record<string, string> = { ...defaults };
  const pair = (c: LayoutColors | undefined, prefix: string) => {
    if (c?.background) v[`${prefix}-bg`] = c.background;
    if (c?.color) v[`${prefix}-color`] = c.color;
  };
  pair(layout.header, '--bw-header');
  pair(layout.headerButton, '--bw-header-button');
  pair(layout.body, '--bw-body');
  if (layout.launcher?.background) v['--bw-launcher-bg'] = layout.launcher.background;
  pair(layout.messageSent, '--bw-sent');
  pair(layout.messageReceived, '--bw-received');
  pair(layout.dial, '--bw-dial');
  pair(layout.call, '--bw-call');
  pair(layout.feedback?.body, '--bw-feedback-body');
  pair(layout.feedback?.buttons, '--bw-feedback-buttons');
  if (layout.fontFamily) v['--bw-font'] = layout.fontFamily;
  return v;
}

export const css = `
:host { all: initial; }
* { box-sizing: border-box; }
.bw { font-family: var(--bw-font); font-size: 14px; line-height: 1.4; color: var(--bw-body-color); }
button { font: inherit; cursor: pointer; border: 0; }
.bw-launcher { position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border-radius: 50%;
  background: var(--bw-launcher-bg); color: #fff; box-shadow: 0 4px 14px rgba(0,0,0,.25); z-index: 2147483000;
  display: flex; align-items: center; justify-content: center; }
.bw-launcher svg { width: 26px; height: 26px; fill: currentColor; }
.bw-badge { position: absolute; top: -4px; right: -4px; min-width: 20px; height: 20px; padding: 0 6px; border-radius: 10px;
  background: #d93025; color: #fff; font-size: 12px; font-weight: 600; line-height: 20px; text-align: center; }
.bw-badge[hidden] { display: none; }
.bw-panel { position: fixed; right: 20px; bottom: 88px; width: 360px; height: 540px; max-width: calc(100vw - 24px);
  max-height: calc(100vh - 110px); display: flex; flex-direction: column; border-radius: 12px; overflow: hidden;
  background: var(--bw-body-bg); color: var(--bw-body-color); box-shadow: 0 8px 32px rgba(0,0,0,.28); z-index: 2147483000; }
.bw-panel[hidden] { display: none; }
.bw-header { display: flex; align-items: center; gap: 8px; min-height: 56px; padding: 8px 10px;
  background: var(--bw-header-bg); color: var(--bw-header-color); }
.bw-header-button { width: 34px; height: 34px; border-radius: 8px; background: var(--bw-header-button-bg);
  color: var(--bw-header-button-color); font-size: 18px; line-height: 34px; text-align: center; flex: none; }
.bw-header-button[hidden] { display: none; }
.bw-title { flex: 1; min-width: 0; }
.bw-title-name { font-weight: 600; font-size: 15px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.bw-title-sub { font-size: 12px; opacity: .8; }
.bw-banner { padding: 4px 12px; background: #fff4ce; color: #5c4400; font-size: 12px; }
.bw-banner[hidden] { display: none; }
.bw-body { flex: 1; min-height: 0; display: flex; flex-direction: column; background: var(--bw-body-bg); color: var(--bw-body-color); }
.bw-list { flex: 1; overflow-y: auto; }
.bw-empty { padding: 32px 16px; text-align: center; opacity: .7; }
.bw-row { display: flex; align-items: center; gap: 10px; width: 100%; padding: 10px 12px; background: transparent;
  color: inherit; text-align: left; border-bottom: 1px solid rgba(127,127,127,.15); }
.bw-row:hover { background: rgba(127,127,127,.08); }
.bw-avatar { position: relative; width: 40px; height: 40px; border-radius: 50%; flex: none; background: #8fa3bf; color: #fff;
  display: flex; align-items: center; justify-content: center; font-weight: 600; }
.bw-avatar img { width: 100%; height: 100%; border-radius: 50%; object-fit: cover; }
.bw-presence { position: absolute; right: -1px; bottom: -1px; width: 12px; height: 12px; border-radius: 50%;
  border: 2px solid var(--bw-body-bg); background: #9aa4b2; }
.bw-presence.bw-online { background: #1e8e3e; }
.bw-row-main { flex: 1; min-width: 0; }
.bw-name { font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.bw-preview { font-size: 12px; opacity: .7; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.bw-unread { min-width: 20px; height: 20px; padding: 0 6px; border-radius: 10px; background: #d93025; color: #fff;
  font-size: 12px; font-weight: 600; line-height: 20px; text-align: center; }
.bw-unread[hidden] { display: none; }
.bw-chat { flex: 1; min-height: 0; display: flex; flex-direction: column; }
.bw-chat[hidden], .bw-list[hidden] { display: none; }
.bw-messages { flex: 1; overflow-y: auto; padding: 10px 12px; display: flex; flex-direction: column; gap: 6px; }
.bw-older { font-size: 12px; opacity: .7; text-align: center; padding: 4px; }
.bw-older[hidden] { display: none; }
.bw-msg { max-width: 78%; padding: 7px 10px 5px; border-radius: 12px; white-space: pre-wrap; word-wrap: break-word; }
.bw-msg.bw-sent { align-self: flex-end; background: var(--bw-sent-bg); color: var(--bw-sent-color); border-bottom-right-radius: 4px; }
.bw-msg.bw-received { align-self: flex-start; background: var(--bw-received-bg); color: var(--bw-received-color); border-bottom-left-radius: 4px; }
.bw-time { display: block; font-size: 10px; opacity: .7; text-align: right; margin-top: 2px; }
.bw-composer { display: flex; gap: 8px; padding: 8px 10px; border-top: 1px solid rgba(127,127,127,.2); background: var(--bw-body-bg); }
.bw-textarea { flex: 1; resize: none; height: 40px; max-height: 120px; padding: 9px 10px; border-radius: 8px; font: inherit;
  border: 1px solid rgba(127,127,127,.35); background: transparent; color: inherit; }
.bw-send { padding: 0 14px; border-radius: 8px; background: var(--bw-sent-bg); color: var(--bw-sent-color); }
.bw-send:disabled { opacity: .5; cursor: default; }
.bw-error { padding: 2px 12px 6px; color: #d93025; font-size: 12px; }
.bw-error[hidden] { display: none; }
.bw-call-box { flex: 1; min-height: 0; display: flex; flex-direction: column; }
.bw-call-box[hidden], .bw-dial[hidden], .bw-call[hidden], .bw-ended[hidden], .bw-feedback[hidden] { display: none; }
.bw-call-box video[hidden], .bw-call-box button[hidden] { display: none; }
.bw-dial { flex: 1; display: flex; flex-direction: column; align-items: center; justify-content: center; gap: 10px;
  background: var(--bw-dial-bg); color: var(--bw-dial-color); }
.bw-dial-name { font-size: 20px; font-weight: 600; }
.bw-dial-status { opacity: .8; }
.bw-call-buttons { display: flex; gap: 10px; justify-content: center; padding: 12px; }
.bw-call-buttons button { padding: 9px 16px; border-radius: 20px; background: rgba(255,255,255,.16); color: inherit; }
.bw-call-buttons .bw-answer { background: #1e8e3e; color: #fff; }
.bw-call-buttons .bw-decline, .bw-call-buttons .bw-hangup { background: #d93025; color: #fff; }
.bw-call { position: relative; flex: 1; min-height: 0; display: flex; flex-direction: column; background: var(--bw-call-bg); color: var(--bw-call-color); }
.bw-remote { flex: 1; min-height: 0; width: 100%; object-fit: cover; background: #000; }
.bw-local { position: absolute; right: 10px; top: 10px; width: 96px; height: 72px; object-fit: cover; border-radius: 6px;
  border: 2px solid rgba(255,255,255,.6); background: #222; }
.bw-screens { display: flex; gap: 6px; padding: 6px; max-height: 45%; background: #000; }
.bw-screens[hidden], .bw-in-window[hidden], .bw-stage-title[hidden] { display: none; }
.bw-remote-screen { flex: 1; min-width: 0; max-height: 100%; object-fit: contain; background: #000; }
.bw-stage-title { padding: 10px 14px; font-weight: 600; }
.bw-in-window { flex: 1; display: flex; align-items: center; justify-content: center; padding: 16px; text-align: center;
  background: var(--bw-call-bg); color: var(--bw-call-color); }
.bw-ended { flex: 1; display: flex; flex-direction: column; align-items: center; justify-content: center; gap: 12px; padding: 16px; }
.bw-ended-text { font-weight: 600; }
.bw-feedback { border-radius: 10px; padding: 12px 16px; text-align: center;
  background: var(--bw-feedback-body-bg); color: var(--bw-feedback-body-color); }
.bw-feedback .bw-call-buttons button { background: var(--bw-feedback-buttons-bg); color: var(--bw-feedback-buttons-color); border-radius: 8px; }
`;

/** windowCss completes css in the call's popup window (window mode). */
export const windowCss = `
html, body { margin: 0; height: 100%; background: #000; }
.bw-window { height: 100%; display: flex; flex-direction: column; }
.bw-window [hidden] { display: none !important; }
`;
