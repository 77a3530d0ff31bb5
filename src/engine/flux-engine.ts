/**
 * FluxEngine: a loaded model plus `generate(input)` returning fal-shaped results with encoded image bytes.
 * It runs wherever the runtime runs — inside the web worker (onnxruntime-web/webgpu + IndexedDB) and in the
 * Node CLI (onnxruntime-node + files) — so both share every line from validation to image encoding.
 */
import { FluxError, toFluxError } from '../errors.js';
import { encodeImage, type EncodedImage, type JpegEncoder } from '../image/encode.js';
import type { FluxModelConfig } from '../pipeline/config.js';
import { PromptEmbeddingCache } from '../pipeline/embedding-cache.js';
import { runPipeline, type PipelineProgressEvent } from '../pipeline/flux-pipeline.js';
import { validateRequest, type HostTensor } from '../pipeline/request.js';
import { sourcesFromPack, type BackendSources } from '../runtime/component-source.js';
import { OrtFluxBackend, type BackendLoadProgressEvent, type BackendOptions, type BackendStats, type GpuTimingSync, type RuntimeEnv } from '../runtime/ort-backend.js';
import type { PackSource } from '../storage/pack-source.js';
import type { ComponentName } from '../pack/manifest.js';

export type GenerateStage = 'load' | PipelineProgressEvent['stage'] | 'encode_image';

/**
 * Progress of one generation: stage, denoising step (1-based, after it finished), elapsed time. `load` means a
 * component that is not kept resident is being created (`component` says which).
 */
export interface GenerateProgressEvent {
  stage: GenerateStage;
  component?: string;
  step?: number;
  totalSteps: number;
  elapsedMs: number;
}

export type LoadProgressEvent = BackendLoadProgressEvent | { status: 'tokenizers' } | { status: 'ready'; packId: string | null };

/**
 * Per-stage durations, each to GPU completion. `inference` (seconds) is fal's field and means what it means on fal:
 * the model call from the prompt to the finished images (text encoders, denoising, VAE, safety check,
 * postprocessing), without the image encoding and upload that follow it. The rest are ours, in milliseconds.
 */
export interface FluxTimings {
  inference: number;
  encode_text_ms: number;
  /** Each denoising step until the GPU finished it. */
  step_ms: number[];
  /** The part of each step spent queueing its GPU work (the rest of step_ms is waiting for the GPU). */
  step_queued_ms: number[];
  denoise_ms: number;
  decode_ms: number;
  postprocess_ms: number;
  encode_image_ms: number;
  total_ms: number;
}

/**
 * Whether a safety check ran on the images, and with which checker (docs/safety.md). `ran: false` always comes
 * with a reason, and then `has_nsfw_concepts` is all false only because nothing was checked.
 */
export interface SafetyReport {
  ran: boolean;
  /** The checker that ran: the pack's classifier (its `model` name), or 'fal' for remote results; null if none ran. */
  checker: string | null;
  /** Why no check ran ('this model pack has no safety checker', 'disabled by enable_safety_checker: false'). */
  reason?: string;
  /** Local checker: unsafe score per image in [0, 1], in image order. */
  scores?: number[];
  /** Local checker: images with a score ≥ this were flagged and replaced by black placeholders. */
  threshold?: number;
}

/** fal's output shape, images as bytes (the client turns them into URLs). */
export interface FluxEngineResult {
  images: EncodedImage[];
  seed: number;
  timings: FluxTimings;
  has_nsfw_concepts: boolean[];
  prompt: string;
  safety: SafetyReport;
  /** Final denoised latents [B, C, h, w] before VAE scaling, when asked for. */
  latents?: HostTensor;
}

export interface LoadedModelInfo {
  packId: string | null;
  name: string;
  testPack: boolean;
  config: FluxModelConfig;
  hasTextEncoders: boolean;
  /** The pack's safety checker (null: it has none, so local results say `safety.ran: false`). */
  safetyChecker: { model: string; labels: string[]; unsafeLabels: string[]; threshold: number } | null;
  components: ReturnType<OrtFluxBackend['describeComponents']>;
}

export interface LoadOptions {
  onProgress?: (e: LoadProgressEvent) => void;
  configOverrides?: Partial<FluxModelConfig>;
  /** Components kept loaded between generations (the others load per generation). Default: all. */
  resident?: ReadonlySet<ComponentName>;
  /** GPU memory budget for components that are not resident (see BackendOptions.memory). */
  memory?: BackendOptions['memory'];
}

/** What a request asks of the device, for a capacity check before anything runs. */
export interface GenerationShape {
  batch: number;
  width: number;
  height: number;
  /** Text tokens the transformer attends to. */
  textLength: number;
  config: FluxModelConfig;
}

export interface GenerateOptions {
  onProgress?: (e: GenerateProgressEvent) => void;
  signal?: AbortSignal;
  returnLatents?: boolean;
  /** Called with the validated request before any GPU work; throw to refuse it (the worker's capacity check). */
  admit?: (shape: GenerationShape) => void | Promise<void>;
}

export interface EngineEnv {
  runtime: RuntimeEnv;
  jpeg: JpegEncoder;
}

function checkerInfo(backend: OrtFluxBackend): LoadedModelInfo['safetyChecker'] {
  const c = backend.safetyChecker;
  return c ? { model: c.model, labels: [...c.labels], unsafeLabels: [...c.unsafeLabels], threshold: c.threshold } : null;
}

export class FluxEngine {
  private backend: OrtFluxBackend | null = null;
  private model: Omit<LoadedModelInfo, 'components' | 'hasTextEncoders' | 'config' | 'safetyChecker'> | null = null;
  /** Generations and loads run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly embeddings = new PromptEmbeddingCache();
  private timingSync: GpuTimingSync = 'submitted';

  constructor(private readonly env: EngineEnv) {}

  /** How step and stage times wait for the GPU (ort-backend.ts GpuTimingSync; `readback`/`none` for tests). */
  setTimingSync(mode: GpuTimingSync): void {
    this.timingSync = mode;
  }

  /** Load (or replace) the model from a pack. */
  loadPack(source: PackSource, options: LoadOptions = {}): Promise<LoadedModelInfo> {
    return this.serial(async () => {
      options.onProgress?.({ status: 'tokenizers' });
      const sources = await sourcesFromPack(source, options.configOverrides);
      const m = source.manifest;
      return this.install(sources, { packId: m.id, name: m.name, testPack: m.testPack ?? false }, options);
    });
  }

  /** Load (or replace) the model from loose component sources (CLI overrides). */
  loadSources(sources: BackendSources, name: string, options: LoadOptions = {}): Promise<LoadedModelInfo> {
    return this.serial(() => this.install(sources, { packId: null, name, testPack: false }, options));
  }

  get info(): LoadedModelInfo | null {
    if (!this.backend || !this.model) return null;
    return {
      ...this.model,
      config: this.backend.config,
      hasTextEncoders: this.backend.tokenizers !== null,
      safetyChecker: checkerInfo(this.backend),
      components: this.backend.describeComponents(),
    };
  }

  /** Counters of the last generation (session.run time, read-backs). */
  get stats(): Readonly<BackendStats> | null {
    return this.backend ? { ...this.backend.stats } : null;
  }

  /** Validate a fal-style input, run the pipeline and encode the images. */
  generate(input: unknown, options: GenerateOptions = {}): Promise<FluxEngineResult> {
    const backend = this.backend;
    if (!backend) return Promise.reject(new FluxError('not_loaded', 'No model is loaded: load a pack first.'));
    // Validate before queueing so bad input fails at once, even while another generation runs.
    let request: ReturnType<typeof validateRequest>;
    try {
      request = validateRequest(input, backend.config);
    } catch (e) {
      return Promise.reject(toFluxError(e));
    }
    return this.serial(async () => {
      if (this.backend !== backend) throw new FluxError('not_loaded', 'The model was replaced while this request waited.');
      backend.resetStats();
      backend.timingSync = this.timingSync;
      await options.admit?.({
        batch: request.numImages,
        width: request.width,
        height: request.height,
        textLength: request.promptEmbeds?.dims[1] ?? backend.config.t5MaxLength,
        config: backend.config,
      });
      const t0 = performance.now();
      const { onProgress, signal } = options;
      backend.setLoadListener(onProgress && ((e) => onProgress({ stage: 'load', component: e.component, totalSteps: request.steps, elapsedMs: performance.now() - t0 })));
      let result: Awaited<ReturnType<typeof runPipeline>>;
      try {
        result = await runPipeline(backend, request, {
          embeddingCache: this.embeddings,
          ...(signal ? { signal } : {}),
          ...(onProgress ? { onProgress } : {}),
          ...(options.returnLatents ? { returnLatents: true } : {}),
        });
      } finally {
        backend.setLoadListener(undefined);
      }
      onProgress?.({ stage: 'encode_image', totalSteps: request.steps, elapsedMs: performance.now() - t0 });
      const te = performance.now();
      const images: EncodedImage[] = [];
      for (const img of result.images) images.push(await encodeImage(img, request.outputFormat, this.env.jpeg));
      const encodeImageMs = performance.now() - te;
      const totalMs = performance.now() - t0;
      const t = result.timings;
      const out: FluxEngineResult = {
        images,
        seed: request.seed,
        timings: {
          inference: t.totalMs / 1000,
          encode_text_ms: t.encodeTextMs,
          step_ms: t.stepMs,
          step_queued_ms: t.stepQueuedMs,
          denoise_ms: t.denoiseMs,
          decode_ms: t.decodeMs,
          postprocess_ms: t.postprocessMs,
          encode_image_ms: encodeImageMs,
          total_ms: totalMs,
        },
        has_nsfw_concepts: result.safety.ran ? [...result.safety.flagged] : images.map(() => false),
        prompt: request.prompt,
        safety: result.safety.ran
          ? { ran: true, checker: result.safety.checker, scores: result.safety.scores, threshold: result.safety.threshold }
          : { ran: false, checker: null, reason: result.safety.reason },
      };
      if (result.latents) out.latents = result.latents;
      return out;
    });
  }

  /** Free every session and cached embedding. */
  unload(): Promise<void> {
    return this.serial(() => this.drop());
  }

  private async drop(): Promise<void> {
    const b = this.backend;
    this.backend = null;
    this.model = null;
    this.embeddings.clear();
    await b?.release();
  }

  private async install(sources: BackendSources, model: NonNullable<FluxEngine['model']>, options: LoadOptions): Promise<LoadedModelInfo> {
    // Free the old model first: two real packs do not fit in GPU memory together.
    await this.drop();
    this.backend = await OrtFluxBackend.load(this.env.runtime, sources, {
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.resident ? { resident: options.resident } : {}),
      ...(options.memory ? { memory: options.memory } : {}),
    });
    this.model = model;
    options.onProgress?.({ status: 'ready', packId: model.packId });
    return this.info!;
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task);
    this.queue = run.catch(() => undefined);
    return run.then(undefined, (e: unknown) => Promise.reject(toFluxError(e)));
  }
}
