import { expect } from 'vitest';
import { FluxError, type FluxErrorCode } from '../../src/errors.js';

/** Run `fn`; it must throw a FluxError with this code, field and message. */
export function expectFluxError(fn: () => unknown, code: FluxErrorCode, field: string, message: RegExp): FluxError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FluxError);
    const f = e as FluxError;
    expect(f.code).toBe(code);
    expect(f.field).toBe(field);
    expect(f.message).toMatch(message);
    return f;
  }
  throw new Error(`expected ${field} to be rejected with ${code}`);
}
