/**
 * flux-webgpu/worker: the web worker side of the library. A consumer's worker file is:
 *
 * ```ts
 * import { exposeFluxWorker } from 'flux-webgpu/worker';
 * exposeFluxWorker();
 * ```
 *
 * and the page passes it to the client (docs/library.md):
 * `createFluxClient({ local: { worker: () => new Worker(new URL('./flux.worker.ts', import.meta.url), { type: 'module' }) } })`.
 */
export { exposeFluxWorker } from './expose.js';
export type { ExposeFluxWorkerOptions } from './expose.js';
export type { OrtBuild, WasmPaths } from './load-ort.js';
