/**
 * The web worker: onnxruntime-web's native WebGPU EP (asyncify build; JSPI opt-in, see src/worker/load-ort.ts)
 * with IndexedDB packs, exposed over Comlink. The worker's name may force a build: `flux:asyncify`.
 */
import * as Comlink from 'comlink';
import { registerErrorTransfer } from '../src/worker/error-transfer.js';
import { createFluxWorkerApi, type FluxWorkerApi } from '../src/worker/flux-worker-api.js';
import { installReadbackCounter } from '../src/worker/gpu-readback-counter.js';
import { loadOrtWeb, preferredOrtBuild, type OrtBuild } from '../src/worker/load-ort.js';

registerErrorTransfer();
installReadbackCounter();
const forced = /^flux:(jspi|asyncify)$/.exec(self.name)?.[1] as OrtBuild | undefined; // e.g. ?ort=jspi in the app
const build = forced ?? preferredOrtBuild();
const api: Promise<FluxWorkerApi> = loadOrtWeb(build).then((ort) => createFluxWorkerApi({ ort, ortBuild: build }));
// Expose at once (messages sent before the ORT module has loaded must not be lost); calls wait for it.
Comlink.expose(
  new Proxy({} as FluxWorkerApi, {
    get: (_, key) => async (...args: unknown[]) => ((await api)[key as keyof FluxWorkerApi] as (...a: unknown[]) => unknown)(...args),
  }),
);
