/**
 * The slice of the onnxruntime API the runtime uses. onnxruntime-web/webgpu (browser) and onnxruntime-node (CLI)
 * both provide it; each entry point injects its own module, so neither bundle contains the other.
 */
import type { Env, InferenceSession, Tensor } from 'onnxruntime-common';

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
