/** The web worker: onnxruntime-web's native WebGPU EP + IndexedDB packs, exposed over Comlink. */
import * as Comlink from 'comlink';
import * as ort from 'onnxruntime-web/webgpu';
import type { OrtApi } from '../src/runtime/ort-api.js';
import { registerErrorTransfer } from '../src/worker/error-transfer.js';
import { createFluxWorkerApi } from '../src/worker/flux-worker-api.js';
import { installReadbackCounter } from '../src/worker/gpu-readback-counter.js';

registerErrorTransfer();
installReadbackCounter();
Comlink.expose(createFluxWorkerApi({ ort: ort as unknown as OrtApi }));
