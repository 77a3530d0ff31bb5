/**
 * What the pipeline needs from a runtime. The pipeline owns the FLUX math and the order of operations; a backend
 * owns sessions, memory and dtypes. Tensors are opaque handles: on WebGPU they stay in GPU buffers and only
 * `download` (and `decode`, for the final image) read them back.
 */
import type { SafetyCheckerConfig } from '../pack/safety-checker.js';
import type { FluxModelConfig } from './config.js';
import type { LatentShape } from './latents.js';
import type { ClipTokenizer, T5Tokenizer } from './tokenizers.js';

export interface DeviceTensor {
  readonly dims: readonly number[];
  dispose(): void;
}

export interface TransformerInputs {
  /** Packed latents, float32 [B, S, 4C]. */
  hiddenStates: DeviceTensor;
  /** T5 embeddings [B, L, D]. */
  encoderHiddenStates: DeviceTensor;
  /** CLIP pooled [B, P]. */
  pooledProjections: DeviceTensor;
  /** σ for every batch item, [B]. */
  timestep: Float32Array;
  /** [S, 3]. */
  imgIds: Float32Array;
  /** [L, 3]. */
  txtIds: Float32Array;
}

/** What `decode` reads back: the image, plus the safety classifier's output when the check was asked for. */
export interface DecodedImages {
  /** VAE output [B, 3, H, W], float32. */
  data: Float32Array;
  dims: number[];
  /** Safety classifier output [B, labels] (float32), present when `safetyCheck` was asked for. */
  safety?: { data: Float32Array; dims: number[] };
}

export interface DecodeOptions {
  /** Run the safety checker on the decoded images before anything is read back (needs `safetyChecker`). */
  safetyCheck?: boolean;
}

export interface FluxBackend {
  readonly config: FluxModelConfig;
  /** The pack's safety checker, or null when it has none. */
  readonly safetyChecker: SafetyCheckerConfig | null;
  /** Present when the pack has text encoders (otherwise callers must pass prompt embeddings). */
  readonly tokenizers: { clip: ClipTokenizer; t5: T5Tokenizer } | null;
  /** CLIP on framed ids [B, clipMaxLength] → pooled [B, P]. `pooledIndex[b]` is the first EOS of row b. */
  encodeClip(inputIds: Int32Array, batch: number, pooledIndex: readonly number[]): Promise<DeviceTensor>;
  /** T5 on framed ids [B, L] → [B, L, D]. */
  encodeT5(inputIds: Int32Array, batch: number): Promise<DeviceTensor>;
  /** Host float32 data → a device tensor. */
  upload(data: Float32Array, dims: readonly number[]): DeviceTensor;
  /** [1, ...] → [batch, ...] on the device. */
  repeatBatch(t: DeviceTensor, batch: number): Promise<DeviceTensor>;
  /** Predicted velocity, float32-equivalent layout [B, S, 4C]. */
  transformer(inputs: TransformerInputs): Promise<DeviceTensor>;
  /** x + dt·v (float32), on the device. */
  eulerStep(x: DeviceTensor, v: DeviceTensor, dt: number): Promise<DeviceTensor>;
  /**
   * Unpack, scale/shift and VAE-decode packed latents, optionally run the safety checker on the device, and read
   * back once: image [B, 3, H, W] (+ the classifier output).
   */
  decode(x: DeviceTensor, shape: LatentShape, options?: DecodeOptions): Promise<DecodedImages>;
  /** Read a tensor back as float32 (for callers that ask for the latents). */
  download(t: DeviceTensor): Promise<Float32Array>;
  /** Called when text encoding is done for this generation (a backend may free encoder memory). */
  textEncodingDone?(): Promise<void>;
  /**
   * Resolve when the device has finished the work queued so far (WebGPU returns from a run once the work is
   * queued). The pipeline awaits it at stage and step boundaries so their times include the GPU work; `t` is a
   * tensor of that work, for backends that can only synchronise by reading something back. Absent: runs are
   * synchronous (CPU).
   */
  finish?(t?: DeviceTensor): Promise<void>;
}
