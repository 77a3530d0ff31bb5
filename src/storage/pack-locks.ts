/**
 * One lock per stored pack, shared by every tab and worker of the origin: install, verify and delete of a pack
 * each run while holding it, so two of them never interleave their IndexedDB writes (docs/storage.md, "Tabs").
 *
 * The lock is `navigator.locks` (Web Locks: shared by all same-origin tabs and workers, released when the
 * holder's callback settles or its tab closes). Where that API is missing (Node, or a page that is not a
 * secure context) `LocalLockManager` stands in; it is kept on globalThis, so separate copies of this module
 * in one JS context share it, but it cannot reach other tabs.
 *
 * Locks only order the operations; a delete must also stop an install running elsewhere, or it would wait for
 * the whole download. It asks over a BroadcastChannel: every context aborts its own operation on that pack.
 */
import { FluxError } from '../errors.js';

export interface LockInfo {
  name: string;
  mode: 'exclusive' | 'shared';
}

export interface LockOptions {
  /** Call back with null instead of waiting when the lock is held. */
  ifAvailable?: boolean;
  /** Give up waiting (rejects with an AbortError DOMException). */
  signal?: AbortSignal;
}

/** The part of the Web Locks API used here (exclusive locks). */
export interface LockManagerLike {
  request<T>(name: string, callback: (lock: LockInfo | null) => Promise<T> | T): Promise<T>;
  request<T>(name: string, options: LockOptions, callback: (lock: LockInfo | null) => Promise<T> | T): Promise<T>;
}

interface Waiter {
  grant(): void;
}

/**
 * Exclusive Web Locks semantics in one JS context: one holder per name, waiters granted in request order,
 * `ifAvailable` answers null at once when held, an aborted waiter rejects with AbortError and never runs, and
 * the lock is released when the callback's promise settles (either way).
 */
export class LocalLockManager implements LockManagerLike {
  private readonly held = new Set<string>();
  private readonly queues = new Map<string, Waiter[]>();

  request<T>(name: string, a: LockOptions | ((lock: LockInfo | null) => Promise<T> | T), b?: (lock: LockInfo | null) => Promise<T> | T): Promise<T> {
    const options: LockOptions = typeof a === 'function' ? {} : a;
    const callback = (typeof a === 'function' ? a : b)!;
    if (options.signal?.aborted) return Promise.reject(abortError());
    if (this.held.has(name)) {
      if (options.ifAvailable) return Promise.resolve().then(() => callback(null));
      return new Promise<T>((resolve, reject) => {
        const waiter: Waiter = {
          grant: () => {
            options.signal?.removeEventListener('abort', onAbort);
            this.run(name, callback).then(resolve, reject);
          },
        };
        const onAbort = (): void => {
          const q = this.queues.get(name);
          const i = q?.indexOf(waiter) ?? -1;
          if (i >= 0) q!.splice(i, 1);
          reject(abortError());
        };
        options.signal?.addEventListener('abort', onAbort, { once: true });
        const q = this.queues.get(name) ?? [];
        q.push(waiter);
        this.queues.set(name, q);
      });
    }
    return this.run(name, callback);
  }

  private run<T>(name: string, callback: (lock: LockInfo | null) => Promise<T> | T): Promise<T> {
    this.held.add(name);
    const release = (): void => {
      const next = this.queues.get(name)?.shift();
      if (this.queues.get(name)?.length === 0) this.queues.delete(name);
      if (next) next.grant();
      else this.held.delete(name);
    };
    const p = Promise.resolve().then(() => callback({ name, mode: 'exclusive' }));
    p.then(release, release);
    return p;
  }
}

function abortError(): Error {
  return typeof DOMException === 'function' ? new DOMException('The lock request was aborted.', 'AbortError') : Object.assign(new Error('The lock request was aborted.'), { name: 'AbortError' });
}

const LOCAL_LOCKS = Symbol.for('flux-webgpu.storage.localLocks');

/** navigator.locks where it exists (Window or Worker in a secure context), else the shared LocalLockManager. */
export function lockManager(): LockManagerLike {
  const nav = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator;
  if (nav?.locks && typeof nav.locks.request === 'function') return nav.locks;
  const g = globalThis as unknown as Record<symbol, LockManagerLike | undefined>;
  return (g[LOCAL_LOCKS] ??= new LocalLockManager());
}

export const packLockName = (dbName: string, packId: string): string => `flux-webgpu/pack/${encodeURIComponent(dbName)}/${encodeURIComponent(packId)}`;

interface Running {
  controller: AbortController;
}

// Operations holding a pack lock in this JS context, by lock name.
const running = new Map<string, Running>();
const CHANNEL = 'flux-webgpu-pack-ops';
let channel: BroadcastChannel | null = null;

/** Listen for stop requests from other contexts while this one holds a pack lock. */
function listen(): void {
  if (channel || typeof BroadcastChannel !== 'function') return;
  channel = new BroadcastChannel(CHANNEL);
  (channel as { unref?: () => void }).unref?.(); // Node: do not keep the process alive for it
  channel.onmessage = (e: MessageEvent) => {
    const m = e.data as { type?: unknown; lock?: unknown } | null;
    if (m?.type === 'stop' && typeof m.lock === 'string') running.get(m.lock)?.controller.abort();
  };
}

function unlistenIfIdle(): void {
  if (running.size === 0 && channel) {
    channel.close();
    channel = null;
  }
}

function busy(packId: string): FluxError {
  return new FluxError('busy', `Pack "${packId}" is already being installed, verified or deleted (in this tab or another one); wait until that finishes, then try again.`, {
    details: { packId },
  });
}

/**
 * Run `fn` holding the pack's lock, or throw 'busy' when an install, verify or delete of the pack holds it
 * anywhere in the origin. `fn`'s signal aborts when `signal` does or when the pack is deleted (from any tab).
 */
export async function withPackLock<T>(dbName: string, packId: string, signal: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const name = packLockName(dbName, packId);
  return lockManager().request(name, { ifAvailable: true }, async (lock) => {
    if (!lock) throw busy(packId);
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    if (signal?.aborted) controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    running.set(name, { controller });
    listen();
    try {
      return await fn(controller.signal);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      running.delete(name);
      unlistenIfIdle();
    }
  });
}

/**
 * Stop the pack's install or verify wherever it runs (this context directly, others by broadcast), wait for
 * the lock, and run `fn` holding it: nothing else writes the pack meanwhile. Waits for an operation that does
 * not stop (a tab that cannot receive the broadcast) to finish.
 */
export async function withPackStopped<T>(dbName: string, packId: string, fn: () => Promise<T>): Promise<T> {
  const name = packLockName(dbName, packId);
  running.get(name)?.controller.abort();
  if (typeof BroadcastChannel === 'function') {
    const bc = new BroadcastChannel(CHANNEL);
    bc.postMessage({ type: 'stop', lock: name });
    bc.close();
  }
  return lockManager().request(name, () => fn());
}
