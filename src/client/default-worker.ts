/**
 * The app's own worker (workers/flux.worker.ts), emitted by its Vite build. The library build (vite.lib.config.ts)
 * replaces this module: a package cannot name a worker file that a consumer's bundler will emit, so a consumer
 * writes the three-line worker and passes it as `worker` (docs/library.md).
 */
export function createDefaultWorker(name: string): Worker {
  return new Worker(new URL('../../workers/flux.worker.ts', import.meta.url), { type: 'module', name });
}
