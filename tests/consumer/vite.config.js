// The consumer's Vite config: nothing flux-webgpu-specific is required for a build (docs/library.md).
import { defineConfig } from 'vite';

export default defineConfig({
  worker: { format: 'es' },
  // Only for `vite dev`: pre-bundling would move onnxruntime-web away from its .wasm files.
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  // Cross-origin isolation lets onnxruntime-web use wasm threads (optional).
  preview: { headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } },
});
