/**
 * flux-webgpu public API. Only what is exported here is public; everything else may change.
 *
 * Browser: `createFluxClient()` routes every FLUX request — FLUX.1 [schnell] in a web worker on WebGPU when the
 * device can, the rest to fal through a same-origin proxy — with `@fal-ai/client`'s `subscribe`/`queue` shape.
 * `FluxClient` is the local runtime alone (packs, GPU). Any runtime (worker, Node): `FluxEngine` + a RuntimeEnv.
 */
export { createFluxClient, fal, FluxApiClient } from './client/flux-api.js';
export type { CreateFluxClientOptions, FluxProgressEvent, FluxResult, FluxResultData, RunCallOptions, SubscribeOptions } from './client/flux-api.js';
export { decideRoute, ROUTE_PREFERENCES } from './client/routing.js';
export type { LocalAvailability, PreferenceStore, RouteDecision, RoutePreference } from './client/routing.js';
export { ENDPOINT_SCHEMAS, FLUX_ENDPOINTS, validateRemoteInput } from './remote/endpoints.js';
export type { FluxEndpointId, FluxRemoteInput } from './remote/endpoints.js';
export { DEFAULT_PROXY_URL, FalRemote } from './remote/fal-remote.js';
export type { FalRemoteOptions, RemoteOutput, RemoteProgressEvent } from './remote/fal-remote.js';
export { FluxClient } from './client/flux-client.js';
export { canvasThumbnailer, HistoryStore } from './history/history-store.js';
export type { HistoryEntry, HistoryImage, NewHistoryEntry, Thumbnailer } from './history/history-store.js';
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
export type { FieldErrorInfo, FluxErrorCode } from './errors.js';
export { FLUX_SCHNELL_CONFIG, resolveModelConfig } from './pipeline/config.js';
export type { FluxModelConfig } from './pipeline/config.js';
export { IMAGE_SIZE_PRESETS } from './pipeline/image-size.js';
export type { ImageSize, ImageSizePreset } from './pipeline/image-size.js';
export { validateRequest } from './pipeline/request.js';
export type { FluxSchnellInput, GenerationRequest, HostTensor, OutputFormat } from './pipeline/request.js';
export { parseManifest } from './pack/manifest.js';
export type { PackManifest, ComponentSpec, ComponentName } from './pack/manifest.js';
export type { SafetyCheckerConfig, SafetyPreprocess } from './pack/safety-checker.js';
export type { PackSource } from './storage/pack-source.js';
export type { RuntimeEnv } from './runtime/ort-backend.js';
export type { PackInfo } from './storage/indexeddb-pack-store.js';
export type { InstallProgress } from './storage/pack-installer.js';
export type { RuntimeInfo } from './worker/flux-worker-api.js';
