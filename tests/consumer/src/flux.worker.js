// The whole worker a consumer writes (docs/library.md).
import { exposeFluxWorker } from 'flux-webgpu/worker';
exposeFluxWorker();
