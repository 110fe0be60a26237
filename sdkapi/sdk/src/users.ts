import type { UserDetails, UserDetailsFormatter, UserDetailsProvider } from '../index';

/** How long the integrator's userDetailsProvider is waited for (reference). */
export const providerTimeout = 1200;

/**
 * Users resolves user ids to what the UI shows, through the
 * integrator's userDetailsProvider (waited at most 1200 ms; a late or
 * failed answer leaves the defaults) and userDetailsFormatter (whose
 * result is used only when it is a string; otherwise the displayName,
 * otherwise the userId).
 */
export class Users {
  private details = new Map<string, UserDetails>();
  private pending = new Map<string, Promise<void>>();

  constructor(
    private provider: UserDetailsProvider | undefined,
    private formatter: UserDetailsFormatter | undefined,
  ) {}

  /**
   * ready asks the provider about the ids it has not seen and resolves
   * when it answered or gave up: at most 1200 ms.
   */
  ready(ids: string[]): Promise<void> {
    const waits: Promise<void>[] = [];
    const missing: string[] = [];
    for (const id of ids) {
      const p = this.pending.get(id);
      if (p) waits.push(p);
      else if (!this.details.has(id) && missing.indexOf(id) < 0) missing.push(id);
    }
    if (missing.length > 0) {
      const p = this.ask(missing);
      for (const id of missing) this.pending.set(id, p);
      waits.push(p);
    }
    return Promise.all(waits).then(() => undefined);
  }

  private ask(ids: string[]): Promise<void> {
    const done = () => {
      for (const id of ids) {
        this.pending.delete(id);
        if (!this.details.has(id)) this.details.set(id, { userId: id });
      }
    };
    const provider = this.provider;
    if (!provider) {
      done();
      return Promise.resolve();
    }
    let call: Promise<UserDetails[]>;
    try {
      call = Promise.resolve(provider(ids.slice()));
    } catch (e) {
      console.warn('BandyerSDK: userDetailsProvider threw', e);
      done();
      return Promise.resolve();
    }
    let timer = 0;
    const timeout = new Promise<null>((resolve) => {
      timer = window.setTimeout(() => resolve(null), providerTimeout);
    });
    return Promise.race([call, timeout]).then(
      (list) => {
        window.clearTimeout(timer);
        if (list === null) {
          console.warn(`BandyerSDK: userDetailsProvider did not answer in ${providerTimeout} ms; showing the defaults`);
        } else if (Array.isArray(list)) {
          for (const u of list) {
            if (u && typeof u === 'object' && typeof u.userId === 'string' && ids.indexOf(u.userId) >= 0) {
              this.details.set(u.userId, u);
            }
          }
        }
        done();
      },
      (e) => {
        window.clearTimeout(timer);
        console.warn('BandyerSDK: userDetailsProvider failed', e);
        done();
      },
    );
  }

  /** name is what the UI shows for a user. */
  name(id: string): string {
    const u = this.details.get(id) || { userId: id };
    if (this.formatter) {
      try {
        const s = this.formatter(u);
        if (typeof s === 'string' && s.trim() !== '') return s;
      } catch (e) {
        console.warn('BandyerSDK: userDetailsFormatter threw', e);
      }
    }
    return typeof u.displayName === 'string' && u.displayName !== '' ? u.displayName : id;
  }

  /** image is the user's avatar URL, when the provider gave one. */
  image(id: string): string | undefined {
    const img = this.details.get(id)?.image;
    return typeof img === 'string' && /^(https?:|data:image\/)/.test(img) ? img : undefined;
  }
}
