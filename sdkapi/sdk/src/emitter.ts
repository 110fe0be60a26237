// A small typed event emitter: listeners run in registration order; one
// that throws is reported on the console and does not stop the others.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (...args: any[]) => void;

export class Emitter<Events extends { [K in keyof Events]: Listener }> {
  private listeners = new Map<keyof Events, Listener[]>();

  on<E extends keyof Events>(event: E, listener: Events[E]): void {
    if (typeof listener !== 'function') return;
    const list = this.listeners.get(event) || [];
    list.push(listener);
    this.listeners.set(event, list);
  }

  /** off removes one listener, or all of the event's without one. */
  off<E extends keyof Events>(event: E, listener?: Events[E]): void {
    if (!listener) {
      this.listeners.delete(event);
      return;
    }
    const list = this.listeners.get(event);
    if (!list) return;
    const i = list.indexOf(listener);
    if (i >= 0) list.splice(i, 1);
  }

  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    const list = this.listeners.get(event);
    if (!list) return;
    for (const l of list.slice()) {
      try {
        l(...args);
      } catch (err) {
        console.error(`BandyerSDK: a listener of ${String(event)} threw`, err);
      }
    }
  }

  clear(): void {
    this.listeners.clear();
  }
}
