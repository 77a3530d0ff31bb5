/**
 * Which onnxruntime-web build the worker runs. Both are ORT's native WebGPU EP; they differ in how wasm waits for
 * async JS:
 * - `jspi` (JS Promise Integration, Chrome 137+): external data given as Blobs is read on demand, tensor by
 *   tensor, so loading a multi-GB pack from IndexedDB never holds the weights in JS memory (measured: 2.2 GiB pack,
 *   ~0.1 GiB peak). It must run single-threaded: with wasm threads the external-data loader stalls (measured,
 *   ORT 1.30).
 * - `asyncify` (every WebGPU browser): reads each external-data file whole before creating a session, so a
 *   component's peak JS memory is its size; split large transformers into stages to bound it.
 */
import type { OrtApi } from '../runtime/ort-api.js';

export type OrtBuild = 'jspi' | 'asyncify';

export function preferredOrtBuild(): OrtBuild {
  return typeof WebAssembly !== 'undefined' && 'Suspending' in WebAssembly ? 'jspi' : 'asyncify';
}

export async function loadOrtWeb(build: OrtBuild): Promise<OrtApi> {
  const ort = build === 'jspi' ? await import('onnxruntime-web/jspi') : await import('onnxruntime-web/webgpu');
  return ort as unknown as OrtApi;
}
