/**
 * Installs running in this JS context, by database and pack id. Two installs of one pack would interleave
 * chunk writes (so the second is refused with 'busy'), and deleting a pack while it installs must stop the
 * install first, or its next chunk write would recreate records under the deleted pack.
 */
import { FluxError } from '../errors.js';

interface Running {
  controller: AbortController;
  done: Promise<void>;
}

const running = new Map<string, Running>();
const key = (dbName: string, packId: string): string => `${dbName}\n${packId}`;

export interface InstallLock {
  /** Aborted when the caller's signal aborts or the pack is deleted. */
  signal: AbortSignal;
  release(): void;
}

/** Take the pack's install lock or throw 'busy'. The lock's signal follows `signal` too. */
export function acquireInstall(dbName: string, packId: string, signal?: AbortSignal): InstallLock {
  const k = key(dbName, packId);
  if (running.has(k)) throw new FluxError('busy', `Pack "${packId}" is already being installed.`, { details: { packId } });
  const controller = new AbortController();
  const onAbort = (): void => controller.abort();
  if (signal?.aborted) controller.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  running.set(k, { controller, done });
  return {
    signal: controller.signal,
    release() {
      signal?.removeEventListener('abort', onAbort);
      if (running.get(k)?.controller === controller) running.delete(k);
      resolve();
    },
  };
}

/** Abort a running install of the pack (if any) and wait until it has stopped writing. */
export async function stopInstall(dbName: string, packId: string): Promise<void> {
  const r = running.get(key(dbName, packId));
  if (!r) return;
  r.controller.abort();
  await r.done;
}

export function isInstalling(dbName: string, packId: string): boolean {
  return running.has(key(dbName, packId));
}
