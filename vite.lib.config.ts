/**
 * Library build (`npm run build:lib` → dist-lib/): the public API of src/index.ts as an ES module for apps that
 * embed client-side generation. The worker (with onnxruntime-web and its .wasm) is emitted beside it as assets;
 * the fal client and Comlink stay dependencies of the consuming app.
 */
import { defineConfig } from 'vite';

export default defineConfig({
  worker: { format: 'es' },
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  build: {
    target: 'es2022',
    outDir: 'dist-lib',
    emptyOutDir: true,
    copyPublicDir: false,
    chunkSizeWarningLimit: 4096,
    lib: { entry: 'src/index.ts', formats: ['es'], fileName: 'flux-webgpu' },
    rollupOptions: { external: ['@fal-ai/client', 'comlink', 'idb-keyval', 'onnxruntime-node', /^node:/] },
  },
});
