import type { ErrorCode, SDKError as SDKErrorShape } from '../index';

/**
 * The error every SDK promise is rejected with: a stable code from the
 * widget reference and a message for people.
 */
export class SDKError extends Error implements SDKErrorShape {
  name = 'BandyerSDKError' as const;
  code: ErrorCode | string;

  constructor(code: ErrorCode | string, message: string) {
    super(message);
    this.code = code;
    // ES2018 target: keep instanceof working for subclasses of Error.
    Object.setPrototypeOf(this, SDKError.prototype);
  }
}

/** An error frame of the session protocol. */
export interface WireError {
  code: string;
  message: string;
}

export function isWireError(v: unknown): v is WireError {
  return typeof v === 'object' && v !== null && typeof (v as WireError).code === 'string';
}

/** toSDKError turns anything thrown into an SDKError, keeping codes. */
export function toSDKError(e: unknown, fallback: ErrorCode = 'internal_server_error'): SDKError {
  if (e instanceof SDKError) return e;
  if (isWireError(e)) return new SDKError(e.code, e.message || e.code);
  return new SDKError(fallback, e instanceof Error ? e.message : String(e));
}

/**
 * remap keeps the codes a method documents and turns every other failure
 * (transport, timeouts, unexpected server codes) into the method's
 * catch-all code.
 */
export function remap(e: unknown, keep: readonly string[], other: ErrorCode): SDKError {
  const err = toSDKError(e, other);
  if (keep.indexOf(err.code) >= 0) return err;
  return new SDKError(other, `${err.code}: ${err.message}`);
}
