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

/** Await `p`; it must reject with a FluxError, which is returned for further checks. */
export async function rejection(p: Promise<unknown>): Promise<FluxError> {
  const e = await p.then(
    () => new Error('expected a rejection'),
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FluxError);
  return e as FluxError;
}
