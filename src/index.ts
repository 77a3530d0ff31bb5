/**
 * flux-webgpu public API. Only what is exported here is public; everything else may change.
 *
 * Browser: `FluxClient` runs generation in a web worker on WebGPU and returns fal-shaped results.
 * Any runtime (worker, Node): `FluxEngine` + a RuntimeEnv (onnxruntime-web/webgpu or onnxruntime-node).
 */
export { FluxClient } from './client/flux-client.js';
export type { FluxImage, FluxOutput, GenerateCallOptions } from './client/flux-client.js';
export { FluxEngine } from './engine/flux-engine.js';
export type {
  EngineEnv,
  FluxEngineResult,
  FluxTimings,
  GenerateOptions,
  GenerateProgressEvent,
  LoadedModelInfo,
  LoadProgressEvent,
  SafetyReport,
} from './engine/flux-engine.js';
export { FluxError, isFluxError } from './errors.js';
export type { FluxErrorCode } from './errors.js';
export { FLUX_SCHNELL_CONFIG, resolveModelConfig } from './pipeline/config.js';
export type { FluxModelConfig } from './pipeline/config.js';
export { IMAGE_SIZE_PRESETS } from './pipeline/image-size.js';
export type { ImageSize, ImageSizePreset } from './pipeline/image-size.js';
export { validateRequest } from './pipeline/request.js';
export type { FluxSchnellInput, GenerationRequest, HostTensor, OutputFormat } from './pipeline/request.js';
export { parseManifest } from './pack/manifest.js';
export type { PackManifest, ComponentSpec, ComponentName } from './pack/manifest.js';
export type { PackSource } from './storage/pack-source.js';
export type { RuntimeEnv } from './runtime/ort-backend.js';
export type { PackInfo } from './storage/indexeddb-pack-store.js';
export type { InstallProgress } from './storage/pack-installer.js';
export type { RuntimeInfo } from './worker/flux-worker-api.js';
