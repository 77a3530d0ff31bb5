/**
 * Library build (`npm run build:lib` → dist-lib/, run by `npm pack` through prepack): two ES-module entries,
 * `flux-webgpu` (src/index.ts, the page side) and `flux-webgpu/worker` (src/worker/index.ts, exposeFluxWorker).
 *
 * Every runtime dependency stays external — above all onnxruntime-web, whose .wasm (14–28 MB each) Vite's library
 * mode would otherwise inline as base64 into the chunks. The consumer's bundler resolves onnxruntime-web and emits
 * its wasm as assets (or the worker's `wasmPaths` points elsewhere). No worker is emitted either: the page's default
 * worker module is swapped for one that asks for the consumer's own (docs/library.md).
 */
import { readFileSync } from 'node:fs';
import { defineConfig, type Plugin } from 'vite';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { dependencies?: Record<string, string>; peerDependencies?: Record<string, string> };
const runtimeDeps = Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies });
const isExternal = (id: string) => id.startsWith('node:') || runtimeDeps.some((d) => id === d || id.startsWith(`${d}/`));

const DEFAULT_WORKER = /[\\/]src[\\/]client[\\/]default-worker\.ts$/;

/** In the package there is no bundled worker to default to: say what to pass instead. */
function noDefaultWorker(): Plugin {
  return {
    name: 'flux-webgpu:no-default-worker',
    enforce: 'pre',
    load(id) {
      if (!DEFAULT_WORKER.test(id)) return null;
      return `import { FluxError } from '../errors.js';
export function createDefaultWorker() {
  throw new FluxError('invalid_input', 'worker: the flux-webgpu package has no bundled worker; write one (import { exposeFluxWorker } from "flux-webgpu/worker"; exposeFluxWorker();) and pass local: { worker: () => new Worker(new URL("./flux.worker.ts", import.meta.url), { type: "module" }) } (docs/library.md)', { field: 'worker' });
}`;
    },
  };
}

export default defineConfig({
  plugins: [noDefaultWorker()],
  build: {
    target: 'es2022',
    outDir: 'dist-lib',
    emptyOutDir: true,
    copyPublicDir: false,
    // Nothing is inlined: a stray asset would show up as a file the consumer test's size bound catches.
    assetsInlineLimit: 0,
    minify: false,
    lib: { entry: { 'flux-webgpu': 'src/index.ts', worker: 'src/worker/index.ts' }, formats: ['es'] },
    rollupOptions: { external: isExternal },
  },
});
