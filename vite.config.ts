import { defineConfig } from 'vite';
import { falProxyPlugin } from './server/vite-plugin-fal-proxy.js';

// Cross-origin isolation (COOP/COEP) gives SharedArrayBuffer, so onnxruntime-web can use wasm threads.
// `credentialless` rather than `require-corp`: images fal returns (fal.media) need not send CORP headers.
// Same headers as the standalone server (server/static.ts).
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'credentialless',
};

export default defineConfig({
  // Same-origin /api/fal/proxy for the remote (fal.ai) fallback; the key stays on the server (docs/proxy.md).
  plugins: [falProxyPlugin()],
  server: { host: '127.0.0.1', port: 5173, headers: isolation },
  preview: { host: '127.0.0.1', port: 4173, headers: isolation },
  worker: { format: 'es' },
  // ORT resolves its .wasm relative to its own module; pre-bundling would move it away from the file.
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  build: { target: 'es2022', chunkSizeWarningLimit: 2048 },
});
