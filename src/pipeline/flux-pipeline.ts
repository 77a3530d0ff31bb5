/**
 * FLUX.1 [schnell] text-to-image as a sequence of named steps (diffusers FluxPipeline.__call__, without the
 * options schnell does not use): encode text → prepare latents → denoise (Euler) → decode → postprocess.
 * Runtime-agnostic: everything device-specific goes through FluxBackend.
 */
import { cancelledError, FluxError } from '../errors.js';
import type { DeviceTensor, FluxBackend } from './backend.js';
import { makeImageIds, makeNoise, makeTextIds, packLatents, unpackLatents, type LatentShape } from './latents.js';
import type { GenerationRequest, HostTensor } from './request.js';
import { eulerDt, schnellSigmas, timestepInput } from './schedule.js';
import { clipPooledIndex, frameClipIds, frameT5Ids } from './tokens.js';
import type { PromptEmbeddingCache } from './embedding-cache.js';
import { safetyPlaceholder, safetyVerdict } from './safety.js';
import { postprocessImages, type RgbaImage } from './vae.js';

export type PipelineStage = 'encode_text' | 'denoise' | 'decode' | 'postprocess';

export interface PipelineProgressEvent {
  stage: PipelineStage;
  /** 1-based step that just finished (denoise only). */
  step?: number;
  totalSteps: number;
  elapsedMs: number;
}

/**
 * Stage and step durations, each measured until the device finished its work (FluxBackend.finish), so GPU time
 * lands in the step that queued it rather than in the next read-back.
 */
export interface PipelineTimings {
  encodeTextMs: number;
  /** Duration of each denoising step, to GPU completion. */
  stepMs: number[];
  /** The part of each step spent queueing it (until the runs returned); stepMs − this is waiting for the GPU. */
  stepQueuedMs: number[];
  denoiseMs: number;
  /** VAE input transform + decoder + read-back. */
  decodeMs: number;
  postprocessMs: number;
  totalMs: number;
}

export interface PipelineOptions {
  signal?: AbortSignal;
  /** Reuse and store prompt embeddings here (skips the text encoders for a repeated prompt). */
  embeddingCache?: PromptEmbeddingCache;
  onProgress?: (e: PipelineProgressEvent) => void;
  /** Also return the final denoised latents, unpacked [B, C, h, w], before VAE scaling (costs one read-back). */
  returnLatents?: boolean;
  now?: () => number;
}

/** Whether the safety checker ran on this generation's images, and what it found. */
export type PipelineSafety =
  | { ran: true; checker: string; threshold: number; scores: number[]; flagged: boolean[] }
  | { ran: false; reason: string };

export const SAFETY_REASON_NO_CHECKER = 'this model pack has no safety checker';
export const SAFETY_REASON_DISABLED = 'disabled by enable_safety_checker: false';

export interface PipelineResult {
  /** Flagged images are already replaced by black placeholders of the same size. */
  images: RgbaImage[];
  safety: PipelineSafety;
  /** True when the prompt embeddings came from the cache (no text encoder ran). */
  textEmbeddingsCached: boolean;
  latents?: HostTensor;
  timings: PipelineTimings;
}

function throwIfCancelled(signal?: AbortSignal): void {
  if (signal?.aborted) throw cancelledError();
}

interface TextConditioning {
  txt: DeviceTensor;
  pooled: DeviceTensor;
  /** False when the tensors belong to the embedding cache and must outlive this generation. */
  owned: boolean;
  cached: boolean;
}

/** Step 1: text → (T5 embeddings [B, L, D], CLIP pooled [B, P]), from the prompt, the cache or the given embeddings. */
async function encodeText(backend: FluxBackend, request: GenerationRequest, cache?: PromptEmbeddingCache): Promise<TextConditioning> {
  let c: TextConditioning;
  if (request.promptEmbeds && request.pooledPromptEmbeds) {
    c = {
      txt: backend.upload(request.promptEmbeds.data, request.promptEmbeds.dims),
      pooled: backend.upload(request.pooledPromptEmbeds.data, request.pooledPromptEmbeds.dims),
      owned: true,
      cached: false,
    };
  } else {
    const hit = cache?.get(request.prompt);
    if (hit) c = { ...hit, owned: false, cached: true };
    else {
      if (!backend.tokenizers) {
        throw new FluxError('invalid_input', 'This pack has no text encoders: pass prompt_embeds and pooled_prompt_embeds.', { field: 'prompt_embeds' });
      }
      const { clip, t5 } = backend.tokenizers;
      const clipRaw = clip.encode(request.prompt);
      const clipLength = backend.config.clipMaxLength;
      const clipIds = frameClipIds(clipRaw, clip.special, clipLength);
      const t5Ids = frameT5Ids(t5.encode(request.prompt), t5.special, backend.config.t5MaxLength);
      // One prompt per request: encode once, repeat on the device for the batch.
      const pooled = await backend.encodeClip(clipIds, 1, [clipPooledIndex(clipRaw.length, clipLength)]);
      let txt: DeviceTensor;
      try {
        txt = await backend.encodeT5(t5Ids, 1);
        await backend.textEncodingDone?.();
      } catch (e) {
        pooled.dispose();
        throw e;
      }
      if (cache) cache.put(request.prompt, { txt, pooled });
      c = { txt, pooled, owned: !cache, cached: false };
    }
  }
  const B = request.numImages;
  if (c.txt.dims[0] === 1 && B > 1) {
    const tiled = { txt: await backend.repeatBatch(c.txt, B), pooled: await backend.repeatBatch(c.pooled, B), owned: true, cached: c.cached };
    if (c.owned) {
      c.txt.dispose();
      c.pooled.dispose();
    }
    return tiled;
  }
  return c;
}

/** Step 2: initial noise [B, C, h, w] (seeded, or the caller's), packed to [B, S, 4C]. */
function prepareLatents(backend: FluxBackend, request: GenerationRequest, shape: LatentShape): DeviceTensor {
  const noise = request.latents?.data ?? makeNoise(request.seed, shape);
  const S = (shape.height / 2) * (shape.width / 2);
  return backend.upload(packLatents(noise, shape), [shape.batch, S, 4 * shape.channels]);
}

/** Run the whole pipeline. Cancellation is honoured at every step boundary. */
export async function runPipeline(backend: FluxBackend, request: GenerationRequest, options: PipelineOptions = {}): Promise<PipelineResult> {
  const now = options.now ?? (() => performance.now());
  const t0 = now();
  const elapsed = () => now() - t0;
  const { signal, onProgress } = options;
  const shape: LatentShape = {
    batch: request.numImages,
    channels: backend.config.latentChannels,
    height: request.latentHeight,
    width: request.latentWidth,
  };
  const live = new Set<DeviceTensor>();
  const own = <T extends DeviceTensor>(t: T): T => (live.add(t), t);
  const release = (t: DeviceTensor) => {
    live.delete(t);
    t.dispose();
  };

  try {
    throwIfCancelled(signal);
    onProgress?.({ stage: 'encode_text', totalSteps: request.steps, elapsedMs: elapsed() });
    const text = await encodeText(backend, request, options.embeddingCache);
    const { txt, pooled } = text;
    if (text.owned) {
      own(txt);
      own(pooled);
    }
    await backend.finish?.(txt);
    const encodeTextMs = elapsed();
    throwIfCancelled(signal);

    let x = own(prepareLatents(backend, request, shape));
    const imgIds = makeImageIds(shape.height, shape.width);
    const txtIds = makeTextIds(txt.dims[1]!);
    const sigmas = schnellSigmas(request.steps, backend.config.schedulerShift);

    const stepMs: number[] = [];
    const stepQueuedMs: number[] = [];
    for (let i = 0; i < request.steps; i++) {
      const ts = now();
      const v = own(
        await backend.transformer({
          hiddenStates: x,
          encoderHiddenStates: txt,
          pooledProjections: pooled,
          timestep: new Float32Array(shape.batch).fill(timestepInput(sigmas[i]!)),
          imgIds,
          txtIds,
        }),
      );
      const next = own(await backend.eulerStep(x, v, eulerDt(sigmas, i)));
      release(v);
      release(x);
      x = next;
      stepQueuedMs.push(now() - ts);
      await backend.finish?.(x);
      stepMs.push(now() - ts);
      onProgress?.({ stage: 'denoise', step: i + 1, totalSteps: request.steps, elapsedMs: elapsed() });
      throwIfCancelled(signal);
    }
    if (text.owned) {
      release(txt);
      release(pooled);
    }
    const denoiseMs = stepMs.reduce((a, b) => a + b, 0);

    let latents: HostTensor | undefined;
    if (options.returnLatents) {
      latents = { data: unpackLatents(await backend.download(x), shape), dims: [shape.batch, shape.channels, shape.height, shape.width] };
    }

    onProgress?.({ stage: 'decode', totalSteps: request.steps, elapsedMs: elapsed() });
    const td = now();
    const checker = request.enableSafetyChecker ? backend.safetyChecker : null;
    const decoded = await backend.decode(x, shape, checker ? { safetyCheck: true } : {});
    release(x);
    const decodeMs = now() - td;

    // The verdict comes before any pixel is turned into an image: flagged images are never postprocessed, and
    // their decoded values (and latents, when asked for) are wiped.
    let safety: PipelineSafety;
    let flagged: boolean[] = [];
    if (checker) {
      if (!decoded.safety) throw new FluxError('safety_checker_failed', `The safety checker (${checker.model}) returned no result, so no images are returned.`);
      let verdict: ReturnType<typeof safetyVerdict>;
      try {
        verdict = safetyVerdict(decoded.safety.data, decoded.safety.dims, checker);
      } catch (e) {
        throw new FluxError('safety_checker_failed', `The safety checker (${checker.model}) failed, so no images are returned: ${(e as Error).message}`, { cause: e });
      }
      flagged = verdict.flagged;
      safety = { ran: true, checker: checker.model, threshold: checker.threshold, scores: verdict.scores, flagged };
    } else {
      safety = { ran: false, reason: request.enableSafetyChecker ? SAFETY_REASON_NO_CHECKER : SAFETY_REASON_DISABLED };
    }
    const [B, , H, W] = decoded.dims as [number, number, number, number];
    const imageValues = 3 * H * W;
    for (const [b, f] of flagged.entries()) {
      if (!f) continue;
      decoded.data.fill(0, b * imageValues, (b + 1) * imageValues);
      if (latents) latents.data.fill(0, (b * latents.data.length) / B, ((b + 1) * latents.data.length) / B);
    }
    throwIfCancelled(signal);

    onProgress?.({ stage: 'postprocess', totalSteps: request.steps, elapsedMs: elapsed() });
    const tp = now();
    const images = flagged.some(Boolean)
      ? Array.from({ length: B }, (_, b) =>
          flagged[b] ? safetyPlaceholder(W, H) : postprocessImages(decoded.data.subarray(b * imageValues, (b + 1) * imageValues), [1, 3, H, W])[0]!,
        )
      : postprocessImages(decoded.data, decoded.dims);
    const postprocessMs = now() - tp;

    const result: PipelineResult = {
      images,
      safety,
      textEmbeddingsCached: text.cached,
      timings: { encodeTextMs, stepMs, stepQueuedMs, denoiseMs, decodeMs, postprocessMs, totalMs: elapsed() },
    };
    if (latents) result.latents = latents;
    return result;
  } finally {
    for (const t of live) t.dispose();
  }
}
