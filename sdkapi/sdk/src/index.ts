// The bundle's entry: window.BandyerSDK.

import type { BandyerSDKStatic, Config } from '../index';
import { version } from '../package.json';
import { Client } from './client';
import { supported, validate } from './config';
import { SDKError, toSDKError } from './errors';

// The kernel that served this script is the default one: the SDK is
// served by the kernel it talks to.
const scriptOrigin = (() => {
  const s = document.currentScript as HTMLScriptElement | null;
  try {
    if (s && s.src) return new URL(s.src, location.href).origin;
  } catch {
    // fall through
  }
  return location.origin;
})();

let client: Client | null = null;
let configuring = false;

/** What GET /sdk/info answers: the region and environment the kernel serves. */
interface KernelInfo {
  version: string;
  region: string;
  environment: string;
}

async function configure(config: Config): Promise<Client> {
  if (!supported()) {
    throw new SDKError('browser_not_supported', 'this browser lacks what the widget needs (WebSocket, fetch, shadow DOM, CSS variables)');
  }
  if (client || configuring) {
    throw new SDKError('client_already_exists', 'a client exists already: call BandyerSDK.destroyClient() first');
  }
  const settings = validate(config, scriptOrigin);
  configuring = true;
  try {
    let info: KernelInfo | null = null;
    try {
      const res = await fetch(`${settings.kernelUrl}/sdk/info`, { credentials: 'omit' });
      if (res.ok) info = await res.json();
    } catch (e) {
      // Unreachable now: connect will say so. Nothing to compare with.
      console.warn('BandyerSDK: cannot reach the kernel at', settings.kernelUrl, e);
    }
    if (info) {
      const bad: string[] = [];
      if (info.region && info.region !== settings.region) bad.push(`region (this kernel serves ${info.region})`);
      if (info.environment && info.environment !== settings.environment) {
        bad.push(`environment (this kernel serves ${info.environment})`);
      }
      if (bad.length > 0) throw new SDKError('invalid_config_error', `invalid config: ${bad.join(', ')}`);
    }
    client = new Client(settings, version);
    return client;
  } finally {
    configuring = false;
  }
}

async function destroyClient(): Promise<void> {
  const c = client;
  client = null;
  if (c) await c.destroy();
}

const sdk: BandyerSDKStatic = {
  version,
  configure: (config: Config) => configure(config).catch((e) => Promise.reject(toSDKError(e, 'invalid_config_error'))),
  destroyClient,
};
Object.freeze(sdk);
window.BandyerSDK = sdk;
