/**
 * Which onnxruntime-web build the worker runs. Both are ORT's native WebGPU EP; they differ in how wasm waits for
 * async JS, and so in how external data reaches it:
 * - `asyncify` (default; every WebGPU browser): ORT reads each external-data file of a session whole before
 *   creating it, so a session's load peak in JS memory is its weights. Packs bound it by splitting large components
 *   into stages (`npm run pack --max-stage-mb`, default 512 MiB): sessions are created one after another.
 * - `jspi` (opt-in; Chrome 137+): Blob external data is read on demand, tensor by tensor, so loading never holds the
 *   weights in JS memory (measured: 2.2 GiB pack, ~0.05 GiB peak per GiB). Not the default because in ORT 1.30 its
 *   session creation hung in 1 of 3–5 loads of a 2.2 GiB pack here (never with asyncify; 5/5), and with wasm
 *   threads it always stalls (microsoft/onnxruntime#26858), so it runs single-threaded.
 */
import type { OrtApi } from '../runtime/ort-api.js';

export type OrtBuild = 'jspi' | 'asyncify';

export function preferredOrtBuild(): OrtBuild {
  return 'asyncify';
}

/** Whether this browser can run the JSPI build at all. */
export function jspiSupported(): boolean {
  return typeof WebAssembly !== 'undefined' && 'Suspending' in WebAssembly;
}

export async function loadOrtWeb(build: OrtBuild): Promise<OrtApi> {
  if (build === 'jspi' && !jspiSupported()) throw new Error('This browser does not support WebAssembly JSPI; use the asyncify build.');
  const ort = build === 'jspi' ? await import('onnxruntime-web/jspi') : await import('onnxruntime-web/webgpu');
  return ort as unknown as OrtApi;
}
