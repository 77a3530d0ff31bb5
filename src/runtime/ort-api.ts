/**
 * The slice of the onnxruntime API the runtime uses. onnxruntime-web/webgpu (browser) and onnxruntime-node (CLI)
 * both provide it; each entry point injects its own module, so neither bundle contains the other.
 */
import type { Env, InferenceSession, Tensor } from 'onnxruntime-common';
import type { ExternalDataStaging } from './external-data-staging.js';

export interface OrtApi {
  InferenceSession: typeof InferenceSession;
  Tensor: typeof Tensor;
  env: Env;
}
export type OrtSession = InferenceSession;
export type OrtTensor = Tensor;
export type OrtSessionOptions = InferenceSession.SessionOptions;

/** Where the runtime executes. */
export type ExecutionTarget = 'webgpu' | 'cpu' | 'wasm';

/** What a backend needs from its host (worker or CLI): the ORT module, the execution target and GPU facts. */
export interface RuntimeEnv {
  ort: OrtApi;
  target: ExecutionTarget;
  /** Features of the WebGPU adapter (checked before loading graphs that need them). Undefined off-GPU. */
  gpuFeatures?: ReadonlySet<string>;
  /**
   * The GPUDevice every WebGPU session runs on. onnxruntime-web's WebGPU EP takes it only as an EP option (setting
   * `env.webgpu.device` is ignored: the EP then creates a device of its own, and waits, limits, loss and memory
   * probes on ours would say nothing about it).
   */
  gpuDevice?: GPUDevice;
  /** Extra session options (merged under the runtime's own). */
  sessionOptions?: OrtSessionOptions;
  /** Total GPU map-for-read operations so far in this realm (gpu-readback-counter.ts), for per-session stats. */
  gpuReadCounter?: () => number;
  /**
   * Resolves when the GPU has finished all submitted work (gpuDevice's queue.onSubmittedWorkDone; ORT's WebGPU EP
   * submits everything at the end of each run). Absent off-GPU, where runs are synchronous.
   */
  gpuWorkDone?: () => Promise<void>;
  /** Reusable buffer for Blob external data (onnxruntime-web's asyncify build); absent: Blobs go to ORT as is. */
  externalDataStaging?: ExternalDataStaging;
}
