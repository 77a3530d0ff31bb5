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
import { FluxError } from '../errors.js';
import type { OrtApi } from '../runtime/ort-api.js';

export type OrtBuild = 'jspi' | 'asyncify';

/**
 * ORT's `env.wasm.wasmPaths`: a URL prefix for its .wasm/.mjs files (ending in `/`), or the two file URLs. Unset,
 * ORT finds them next to its own module (`new URL('ort-wasm-….wasm', import.meta.url)`), which bundlers such as Vite
 * emit as assets of the consumer's build.
 */
export type WasmPaths = string | { wasm?: string; mjs?: string };

export interface LoadOrtOptions {
  wasmPaths?: WasmPaths;
}

/** Refuse a wasmPaths ORT would misread (it concatenates the prefix with file names), naming what is wrong. */
export function checkWasmPaths(paths: unknown): WasmPaths {
  const isUrl = (v: unknown) => typeof v === 'string' && v.length > 0 && URL.canParse(v, globalThis.location?.href ?? 'http://localhost/');
  if (typeof paths === 'string') {
    if (!isUrl(paths) || !paths.endsWith('/')) {
      throw new FluxError('invalid_input', `wasmPaths: must be a URL prefix ending in "/" (the folder with onnxruntime-web's ort-wasm-*.wasm files), got ${JSON.stringify(paths)}`, { field: 'wasmPaths' });
    }
    return paths;
  }
  if (paths && typeof paths === 'object' && !Array.isArray(paths)) {
    const o = paths as Record<string, unknown>;
    const unknown = Object.keys(o).filter((k) => k !== 'wasm' && k !== 'mjs');
    if (unknown.length) throw new FluxError('invalid_input', `wasmPaths: unknown key ${JSON.stringify(unknown[0])}; allowed: "wasm", "mjs"`, { field: `wasmPaths.${unknown[0]}` });
    for (const k of ['wasm', 'mjs'] as const) {
      if (o[k] !== undefined && !isUrl(o[k])) throw new FluxError('invalid_input', `wasmPaths.${k}: must be a URL, got ${JSON.stringify(o[k])}`, { field: `wasmPaths.${k}` });
    }
    if (o.wasm === undefined && o.mjs === undefined) throw new FluxError('invalid_input', 'wasmPaths: give "wasm" and/or "mjs", or a URL prefix', { field: 'wasmPaths' });
    return o as { wasm?: string; mjs?: string };
  }
  throw new FluxError('invalid_input', `wasmPaths: must be a URL prefix or { wasm, mjs }, got ${JSON.stringify(paths)}`, { field: 'wasmPaths' });
}

export function preferredOrtBuild(): OrtBuild {
  return 'asyncify';
}

/** Whether this browser can run the JSPI build at all. */
export function jspiSupported(): boolean {
  return typeof WebAssembly !== 'undefined' && 'Suspending' in WebAssembly;
}

export async function loadOrtWeb(build: OrtBuild, options: LoadOrtOptions = {}): Promise<OrtApi> {
  if (build === 'jspi' && !jspiSupported()) throw new Error('This browser does not support WebAssembly JSPI; use the asyncify build.');
  const wasmPaths = options.wasmPaths === undefined ? undefined : checkWasmPaths(options.wasmPaths);
  // Kept as bare specifiers in the library build: the consumer's bundler resolves onnxruntime-web and its wasm.
  const ort = (build === 'jspi' ? await import('onnxruntime-web/jspi') : await import('onnxruntime-web/webgpu')) as unknown as OrtApi;
  // Read when the first session initialises the wasm backend, so setting it right after import is in time.
  if (wasmPaths !== undefined && ort.env.wasm) ort.env.wasm.wasmPaths = wasmPaths;
  return ort;
}
