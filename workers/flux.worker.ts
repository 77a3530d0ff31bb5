/** The app's web worker: the same lines a library consumer writes (docs/library.md). */
import { exposeFluxWorker } from '../src/worker/index.js';
exposeFluxWorker();
