/**
 * `exposeFluxWorker()`: everything a flux-webgpu web worker does, so the worker file is three lines — the app's own
 * (workers/flux.worker.ts) and a consumer's alike:
 *
 * ```ts
 * // flux.worker.ts
 * import { exposeFluxWorker } from 'flux-webgpu/worker';
 * exposeFluxWorker();
 * ```
 *
 * It loads onnxruntime-web (asyncify build; JSPI opt-in, see load-ort.ts) and serves the FluxWorkerApi over Comlink,
 * plus the start-up handshake FluxClient waits for (see WORKER_PING). The worker's name may force a build:
 * `flux:asyncify` / `flux:jspi` (FluxClientOptions.ortBuild names the app's bundled worker so).
 */
import * as Comlink from 'comlink';
import { registerErrorTransfer } from './error-transfer.js';
import { createFluxWorkerApi, type FluxWorkerApi } from './flux-worker-api.js';
import { installReadbackCounter } from './gpu-readback-counter.js';
import { loadOrtWeb, preferredOrtBuild, type OrtBuild, type WasmPaths } from './load-ort.js';
import { WORKER_PING, WORKER_PONG, WORKER_PROTOCOL } from './handshake.js';

export interface ExposeFluxWorkerOptions {
  /**
   * Where onnxruntime-web fetches its .wasm/.mjs files (ORT's `env.wasm.wasmPaths`): a URL prefix ending in `/`
   * (e.g. a CDN folder of the same onnxruntime-web version), or `{ wasm, mjs }` file URLs.
   * @defaultValue unset: ORT resolves them next to its own module, which the app's bundler emits as assets
   */
  wasmPaths?: WasmPaths;
  /** Force an onnxruntime-web build. @defaultValue the worker's name (`flux:jspi`), else asyncify */
  ortBuild?: OrtBuild;
}

/** Call once, at the top level of a module worker. */
export function exposeFluxWorker(options: ExposeFluxWorkerOptions = {}): void {
  if (typeof WorkerGlobalScope === 'undefined' || !(self instanceof WorkerGlobalScope)) {
    throw new Error('exposeFluxWorker() must run inside a web worker: new Worker(new URL("./flux.worker.ts", import.meta.url), { type: "module" })');
  }
  registerErrorTransfer();
  installReadbackCounter();
  const named = /^flux:(jspi|asyncify)$/.exec(self.name)?.[1] as OrtBuild | undefined; // e.g. ?ort=jspi in the app
  const build = options.ortBuild ?? named ?? preferredOrtBuild();
  const ortOptions = options.wasmPaths === undefined ? {} : { wasmPaths: options.wasmPaths };
  const api: Promise<FluxWorkerApi> = loadOrtWeb(build, ortOptions).then((ort) => createFluxWorkerApi({ ort, ortBuild: build }));
  // Answer the client's handshake at once (ORT may still be loading): it tells "worker running" from "worker never
  // started" (a 404 or a script error), which otherwise leaves every call pending forever.
  self.addEventListener('message', (e: MessageEvent) => {
    if ((e.data as { type?: unknown } | null)?.type === WORKER_PING) self.postMessage({ type: WORKER_PONG, protocol: WORKER_PROTOCOL });
  });
  // Expose at once (messages sent before the ORT module has loaded must not be lost); calls wait for it.
  Comlink.expose(
    new Proxy({} as FluxWorkerApi, {
      get: (_, key) => async (...args: unknown[]) => ((await api)[key as keyof FluxWorkerApi] as (...a: unknown[]) => unknown)(...args),
    }),
  );
}
