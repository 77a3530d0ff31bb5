import { defineConfig } from 'vite';
import { VitePWA } from 'vite-plugin-pwa';
import { falProxyPlugin } from './server/vite-plugin-fal-proxy.js';

// Cross-origin isolation (COOP/COEP) gives SharedArrayBuffer, so onnxruntime-web can use wasm threads.
// `credentialless` rather than `require-corp`: images fal returns (fal.media) need not send CORP headers.
// Same headers as the standalone server (server/static.ts).
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'credentialless',
};

const MiB = 1024 * 1024;

export default defineConfig({
  plugins: [
    // Same-origin /api/fal/proxy for the remote (fal.ai) fallback; the key stays on the server (docs/proxy.md).
    falProxyPlugin(),
    // Offline PWA: the service worker precaches the app shell and onnxruntime-web (JS + the default build's wasm),
    // so after one visit the app starts and generates with no network; models come from IndexedDB, which a new
    // version never touches. Updates wait for the user ("Reload to update"), never interrupting a generation.
    VitePWA({
      registerType: 'prompt',
      injectRegister: false,
      includeAssets: ['favicon.svg', 'icons/apple-touch-icon.png'],
      manifest: {
        name: 'flux-webgpu — FLUX.1 [schnell] in your browser',
        short_name: 'flux-webgpu',
        description: 'Text-to-image with FLUX.1 [schnell] on your own GPU, in the browser. Works offline once a model is installed.',
        start_url: '/',
        scope: '/',
        display: 'standalone',
        background_color: '#111318',
        theme_color: '#4f46e5',
        icons: [
          { src: '/icons/icon-192.png', sizes: '192x192', type: 'image/png' },
          { src: '/icons/icon-512.png', sizes: '512x512', type: 'image/png' },
          { src: '/icons/maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        ],
      },
      workbox: {
        globPatterns: ['**/*.{js,css,html,svg,png,webmanifest}', 'assets/ort-wasm-simd-threaded.asyncify-*.wasm'],
        // Model packs live in IndexedDB; the embedded test pack is fetched only to install it.
        globIgnores: ['packs/**'],
        maximumFileSizeToCacheInBytes: 64 * MiB,
        navigateFallback: 'index.html',
        navigateFallbackDenylist: [/^\/api\//, /^\/packs\//],
        clientsClaim: true,
        cleanupOutdatedCaches: true,
        // The opt-in JSPI build's wasm is cached when first used rather than precached for everyone.
        runtimeCaching: [{ urlPattern: /\/assets\/ort-wasm-simd-threaded\.jspi-.*\.wasm$/, handler: 'CacheFirst', options: { cacheName: 'ort-jspi' } }],
      },
    }),
  ],
  server: { host: '127.0.0.1', port: 5173, headers: isolation },
  preview: { host: '127.0.0.1', port: 4173, headers: isolation },
  worker: { format: 'es' },
  // ORT resolves its .wasm relative to its own module; pre-bundling would move it away from the file.
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  build: { target: 'es2022', chunkSizeWarningLimit: 2048 },
});
