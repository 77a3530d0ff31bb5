// The same worker with onnxruntime-web's wasm fetched from elsewhere (a CDN in real use; the test serves it).
import { exposeFluxWorker } from 'flux-webgpu/worker';
exposeFluxWorker({ wasmPaths: new URL('/ort-elsewhere/', self.location.href).href });
