/**
 * Wait for a FluxClient's worker to start (the handshake in src/worker/handshake.ts). A worker whose script 404s or
 * throws while loading fires only an `error` event; Comlink calls to it would stay pending forever, so every call
 * waits for this first and a worker that fails to start rejects with what went wrong, within a bound.
 */
import { FluxError } from '../errors.js';
import { WORKER_PING, WORKER_PONG, WORKER_PROTOCOL } from '../worker/handshake.js';

/** Module fetch and evaluation only (ORT loads later, lazily): seconds even on a slow, busy machine. */
export const DEFAULT_WORKER_START_TIMEOUT_MS = 30_000;

const HOW = "a flux-webgpu worker is a module worker whose script calls exposeFluxWorker() from 'flux-webgpu/worker' (docs/library.md)";

export function waitForWorkerStart(worker: Worker, timeoutMs: number = DEFAULT_WORKER_START_TIMEOUT_MS): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const finish = (error?: FluxError) => {
      clearTimeout(timer);
      worker.removeEventListener('message', onMessage);
      worker.removeEventListener('error', onError);
      if (error) reject(error);
      else resolve();
    };
    const onMessage = (e: MessageEvent) => {
      const data = e.data as { type?: unknown; protocol?: unknown } | null;
      if (data?.type !== WORKER_PONG) return;
      if (data.protocol !== WORKER_PROTOCOL) {
        finish(new FluxError('runtime_error', `The flux-webgpu worker speaks protocol ${String(data.protocol)}, this client ${WORKER_PROTOCOL}: the worker was built from a different flux-webgpu version; rebuild both from one.`, { details: { phase: 'worker_start' } }));
      } else finish();
    };
    const onError = (e: Event) => {
      // A script error inside the worker has a message; a failed fetch of the script (404, wrong MIME type) has none.
      const detail = typeof (e as ErrorEvent).message === 'string' && (e as ErrorEvent).message ? `it threw while loading: ${(e as ErrorEvent).message}` : 'its script could not be loaded (a 404, a wrong URL, or not served as JavaScript)';
      finish(new FluxError('runtime_error', `The flux-webgpu worker failed to start: ${detail}. ${HOW}.`, { details: { phase: 'worker_start' } }));
    };
    const timer = setTimeout(() => {
      finish(new FluxError('runtime_error', `The flux-webgpu worker did not answer within ${timeoutMs} ms: ${HOW}.`, { details: { phase: 'worker_start', timeoutMs } }));
    }, timeoutMs);
    worker.addEventListener('message', onMessage);
    worker.addEventListener('error', onError);
    // Messages posted before the worker's script has run are queued for it, so this cannot be missed.
    worker.postMessage({ type: WORKER_PING });
  });
}
