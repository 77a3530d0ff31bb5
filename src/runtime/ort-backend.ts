/**
 * FluxBackend on onnxruntime: a session (or stage sessions) per component plus tiny helper graphs
 * (device-graphs.ts) for the math between them. With `gpu-buffer` outputs (WebGPU) every intermediate tensor
 * stays in GPU memory; the only read-back of a generation is the decoded image.
 *
 * Residency: components in `resident` are created at load and kept; the others are created for their stage and
 * released right after (text encoders after encoding, the transformer before the VAE), in pipeline order, so a
 * device that cannot hold the whole model at once holds one stage at a time (docs/runtime.md).
 */
import { FluxError, toFluxError } from '../errors.js';
import type { ComponentName } from '../pack/manifest.js';
import type { SafetyCheckerConfig } from '../pack/safety-checker.js';
import type { DecodedImages, DecodeOptions, DeviceTensor, FluxBackend, TransformerInputs } from '../pipeline/backend.js';
import type { FluxModelConfig } from '../pipeline/config.js';
import { castGraph, eulerStepGraph, gatherRowsGraph, packForReadbackGraph, tileGraph, vaeInputGraph, type FloatDtype } from '../pipeline/device-graphs.js';
import type { LatentShape } from '../pipeline/latents.js';
import { safetyPreprocessModel } from '../pipeline/safety.js';
import type { ClipTokenizer, T5Tokenizer } from '../pipeline/tokenizers.js';
import type { ComponentIo, TensorSlot } from './component-io.js';
import { ComponentSession, checkDeclaredFeatures, sessionOptionsFor } from './component-session.js';
import { checkTextEncoders, type BackendSources } from './component-source.js';
import { float16ToFloat32, float32ToFloat16 } from './float16.js';
import type { ExecutionTarget, OrtApi, OrtSession, OrtSessionOptions, OrtTensor, RuntimeEnv } from './ort-api.js';

export type { RuntimeEnv } from './ort-api.js';

export interface BackendLoadProgressEvent {
  status: 'load';
  component: ComponentName;
  /** 1-based index of the component being created, of `total` (the components loaded in this step). */
  index: number;
  total: number;
}

/** Counters the benchmark reads: time inside session.run and host read-backs. */
export interface BackendStats {
  sessionRuns: number;
  /** Wall time inside session.run (on WebGPU it returns before the GPU finishes; see readbackMs). */
  sessionRunMs: number;
  readbacks: number;
  readbackBytes: number;
  /** Wall time waiting for read-backs (the queued GPU work is finished before, by finish()). */
  readbackMs: number;
  /** finish() calls and the wall time spent in them: waiting for the GPU to complete queued work. */
  gpuWaits: number;
  gpuWaitMs: number;
  /** GPU map-for-read operations inside session.run, by component/helper (needs RuntimeEnv.gpuReadCounter). */
  gpuReadsInRun: Record<string, number>;
  /** Sessions created during this generation (transient components), by component. */
  componentLoads: Record<string, number>;
  /** session.run calls by component (stages as `name[k]`) and helper graph. */
  runsByLabel: Record<string, number>;
  /** Components released during this generation (staged or evicted), by component. */
  componentEvictions: Record<string, number>;
}

export interface BackendOptions {
  /** Components kept loaded between generations. Default: all of them. */
  resident?: ReadonlySet<ComponentName>;
  /**
   * GPU memory the components may use together, with their sizes and the activation reserve. When given,
   * transient components stay loaded after use and are evicted only when another one needs the room (so the
   * transformer survives generations that reuse cached prompt embeddings); without it they are released after use.
   */
  memory?: { budgetBytes: number; componentBytes: Partial<Record<ComponentName, number>>; reserveBytes: number };
  onProgress?: (e: BackendLoadProgressEvent) => void;
}

/**
 * How finish() waits for the GPU. `submitted` (default): queue.onSubmittedWorkDone, no read-back. `readback`
 * (tests only): read the tensor back, a wait that certainly includes the GPU work, at the cost of a read-back per
 * call. `none`: do not wait, so step times are queueing times only (the old behaviour, for comparison).
 */
export type GpuTimingSync = 'submitted' | 'readback' | 'none';

export interface ComponentReport {
  loaded: boolean;
  resident: boolean;
  floatType?: FloatDtype;
  inputs?: string[];
  outputs?: string[];
  stages?: number;
}

const PIPELINE_ORDER: readonly ComponentName[] = ['clip', 't5', 'transformer', 'vae_decoder', 'safety_checker'];
/** Evicted first → last: cheap to reload and rarely needed → expensive to reload. */
const EVICTION_ORDER: readonly ComponentName[] = ['clip', 't5', 'safety_checker', 'vae_decoder', 'transformer'];
/** Preprocessing graphs kept per image size (each holds its resampling matrices). */
const SAFETY_PRE_SESSIONS = 4;
/** Failures that are not the checker's own: the caller handles them as usual (recovery, cancel). */
const NOT_CHECKER_FAILURES = new Set(['cancelled', 'device_lost', 'out_of_memory', 'gpu_error', 'not_loaded']);

export class OrtFluxBackend implements FluxBackend {
  config: FluxModelConfig;
  readonly tokenizers: { clip: ClipTokenizer; t5: T5Tokenizer } | null;
  readonly safetyChecker: SafetyCheckerConfig | null;
  readonly stats: BackendStats = emptyStats();
  private readonly loaded = new Map<ComponentName, ComponentSession>();
  private readonly helpers = new Map<string, Promise<OrtSession>>();
  private readonly resident: ReadonlySet<ComponentName>;
  private readonly memory: BackendOptions['memory'];
  private loadListener: ((e: BackendLoadProgressEvent) => void) | undefined;
  private disposed = false;
  /** See GpuTimingSync. */
  timingSync: GpuTimingSync = 'submitted';

  private constructor(
    private readonly env: RuntimeEnv,
    private readonly sources: BackendSources,
    resident: ReadonlySet<ComponentName>,
    memory: BackendOptions['memory'],
  ) {
    this.config = sources.config;
    this.resident = resident;
    this.memory = memory;
    this.tokenizers = sources.components.clip && sources.components.t5 ? sources.tokenizers : null;
    this.safetyChecker = sources.components.safety_checker ? (sources.safetyChecker ?? null) : null;
  }

  /** Check the sources and create the resident components' sessions. */
  static async load(env: RuntimeEnv, sources: BackendSources, options: BackendOptions = {}): Promise<OrtFluxBackend> {
    checkTextEncoders(sources);
    for (const required of ['transformer', 'vae_decoder'] as const) {
      if (!sources.components[required]) throw new FluxError('invalid_input', `A ${required} graph is required.`, { field: required });
    }
    if (sources.components.safety_checker && !sources.safetyChecker) {
      throw new FluxError('invalid_input', 'A safety_checker graph needs its classifier config (preprocessing, labels, threshold).', { field: 'safety_checker' });
    }
    const present = PIPELINE_ORDER.filter((n) => sources.components[n]);
    for (const n of present) checkDeclaredFeatures(env, n, sources.components[n]!);
    const resident = new Set(options.resident ? present.filter((n) => options.resident!.has(n)) : present);
    const backend = new OrtFluxBackend(env, sources, resident, options.memory);
    backend.loadListener = options.onProgress;
    try {
      const eager = present.filter((n) => resident.has(n));
      for (const [i, name] of eager.entries()) await backend.acquire(name, { index: i + 1, total: eager.length });
    } catch (e) {
      await backend.release();
      throw e;
    } finally {
      backend.loadListener = undefined;
    }
    return backend;
  }

  /** Components of the pack: loaded or not, resident or transient, and their bound I/O. */
  describeComponents(): Record<string, ComponentReport> {
    const out: Record<string, ComponentReport> = {};
    for (const name of PIPELINE_ORDER) {
      if (!this.sources.components[name]) continue;
      const c = this.loaded.get(name);
      out[name] = { loaded: Boolean(c), resident: this.resident.has(name), ...(c ? c.describe() : {}) };
    }
    return out;
  }

  /** Report (transient) component loads that happen during generation. */
  setLoadListener(listener: ((e: BackendLoadProgressEvent) => void) | undefined): void {
    this.loadListener = listener;
  }

  resetStats(): void {
    Object.assign(this.stats, emptyStats());
  }

  // ---- FluxBackend -------------------------------------------------------------------------------------------

  async encodeClip(inputIds: Int32Array, batch: number, pooledIndex: readonly number[]): Promise<DeviceTensor> {
    const c = await this.acquire('clip');
    const slot = c.io.inputs.input_ids!;
    const out = await c.run(this.runner, { [slot.name]: this.idsTensor(slot, inputIds, [batch, inputIds.length / batch]) }, c.io.outputs.pooled!.name);
    let pooled = out;
    if (out.dims.length === 3) {
      // The graph returns hidden states [B, 77, D]: take each row's first EOS on the device (docs/flux-pipeline.md §2.1).
      const [B, N, D] = out.dims as [number, number, number];
      const flat = BigInt64Array.from(pooledIndex.map((p, b) => BigInt(b * N + p)));
      pooled = (
        await this.runHelper(`gather:${c.floatType}`, () => gatherRowsGraph(c.floatType), {
          h: out,
          flat_index: new this.env.ort.Tensor('int64', flat, [B]),
          shape2: this.shape([B * N, D]),
        })
      )[0]!;
      out.dispose();
    } else if (out.dims.length !== 2) {
      out.dispose();
      throw new FluxError('model_io_mismatch', `clip: pooled output must be [B, P] or hidden states [B, N, D], got [${out.dims.join(', ')}]`);
    }
    return this.toFloat32(pooled);
  }

  async encodeT5(inputIds: Int32Array, batch: number): Promise<DeviceTensor> {
    const c = await this.acquire('t5');
    const slot = c.io.inputs.input_ids!;
    const out = await c.run(this.runner, { [slot.name]: this.idsTensor(slot, inputIds, [batch, inputIds.length / batch]) }, c.io.outputs.last_hidden_state!.name);
    if (out.dims.length !== 3) {
      out.dispose();
      throw new FluxError('model_io_mismatch', `t5: output must be [B, L, D], got [${out.dims.join(', ')}]`);
    }
    return this.toFloat32(out);
  }

  async textEncodingDone(): Promise<void> {
    // Text encoders are staged: once the embeddings exist they are dead weight during denoising.
    await this.releaseTransient(['clip', 't5'], true);
  }

  upload(data: Float32Array, dims: readonly number[]): DeviceTensor {
    return new this.env.ort.Tensor('float32', data, dims);
  }

  async repeatBatch(t: DeviceTensor, batch: number): Promise<DeviceTensor> {
    const x = t as OrtTensor;
    const repeats = BigInt64Array.from(x.dims.map((_, i) => (i === 0 ? BigInt(batch) : 1n)));
    return (
      await this.runHelper(`tile:${x.dims.length}:${x.type}`, () => tileGraph(x.dims.length, x.type as FloatDtype), {
        x,
        repeats: new this.env.ort.Tensor('int64', repeats, [repeats.length]),
      })
    )[0]!;
  }

  async transformer(inputs: TransformerInputs): Promise<DeviceTensor> {
    const c = await this.acquire('transformer');
    const slot = c.io.inputs;
    const B = inputs.hiddenStates.dims[0]!;
    const temps: OrtTensor[] = [];
    const cast = async (t: DeviceTensor, s: TensorSlot) => {
      const r = await this.castTo(t as OrtTensor, s.type === 'float16' ? 'float16' : 'float32');
      if (r !== t) temps.push(r);
      return r;
    };
    try {
      const feeds: Record<string, OrtTensor> = {
        [slot.hidden_states!.name]: await cast(inputs.hiddenStates, slot.hidden_states!),
        [slot.encoder_hidden_states!.name]: await cast(inputs.encoderHiddenStates, slot.encoder_hidden_states!),
        [slot.pooled_projections!.name]: await cast(inputs.pooledProjections, slot.pooled_projections!),
        [slot.timestep!.name]: this.hostFloat(slot.timestep!, inputs.timestep, [B]),
        [slot.img_ids!.name]: this.idsInput(slot.img_ids!, inputs.imgIds, B),
        [slot.txt_ids!.name]: this.idsInput(slot.txt_ids!, inputs.txtIds, B),
      };
      const out = await c.run(this.runner, feeds, c.io.outputs.velocity!.name);
      const expected = inputs.hiddenStates.dims;
      if (out.dims.length !== 3 || out.dims.some((d, i) => d !== expected[i])) {
        out.dispose();
        throw new FluxError('model_io_mismatch', `transformer: output is [${out.dims.join(', ')}], expected [${expected.join(', ')}] like hidden_states`);
      }
      return out;
    } finally {
      for (const t of temps) t.dispose();
    }
  }

  async eulerStep(x: DeviceTensor, v: DeviceTensor, dt: number): Promise<DeviceTensor> {
    const vt = v as OrtTensor;
    const vType = vt.type as FloatDtype;
    return (
      await this.runHelper(`euler:${vType}`, () => eulerStepGraph(vType, 'float32'), {
        x: x as OrtTensor,
        v: vt,
        dt: new this.env.ort.Tensor('float32', new Float32Array([dt]), [1]),
      })
    )[0]!;
  }

  async decode(x: DeviceTensor, shape: LatentShape, options: DecodeOptions = {}): Promise<DecodedImages> {
    await this.releaseTransient(['transformer']);
    const c = await this.acquire('vae_decoder');
    const { batch: B, channels: C, height: h, width: w } = shape;
    const { vaeScalingFactor, vaeShiftFactor } = this.config;
    const [z] = await this.runHelper(
      `vae_input:${vaeScalingFactor}:${vaeShiftFactor}:${c.floatType}`,
      () => vaeInputGraph(vaeScalingFactor, vaeShiftFactor, c.floatType),
      { x: x as OrtTensor, shape6: this.shape([B, h / 2, w / 2, C, 2, 2]), shape4: this.shape([B, C, h, w]) },
    );
    let image: OrtTensor;
    try {
      image = await c.run(this.runner, { [c.io.inputs.latent!.name]: z! }, c.io.outputs.image!.name);
    } finally {
      z!.dispose();
    }
    try {
      if (image.dims.length !== 4 || image.dims[0] !== B || image.dims[1] !== 3) {
        throw new FluxError('model_io_mismatch', `vae_decoder: output is [${image.dims.join(', ')}], expected [${B}, 3, H, W]`);
      }
      if (!options.safetyCheck) return { data: await this.readBack(image), dims: [...image.dims] };
      await this.releaseTransient(['vae_decoder']);
      return await this.checkAndReadBack(image);
    } finally {
      image.dispose();
      await this.releaseTransient(['vae_decoder']);
    }
  }

  /**
   * The safety checker on the decoded image, on the device: preprocess (device-graphs.ts), classify, then pack image
   * and classifier output into one buffer, so the generation still has a single read-back and no pixels reach the
   * host before the check has run. Any failure of the checker itself becomes `safety_checker_failed`.
   */
  private async checkAndReadBack(image: OrtTensor): Promise<DecodedImages> {
    const cfg = this.safetyChecker;
    if (!cfg) throw new FluxError('not_loaded', 'This pack has no safety checker.');
    const [B, , H, W] = image.dims as [number, number, number, number];
    let packed: OrtTensor;
    try {
      const s = await this.acquire('safety_checker');
      const slot = s.io.inputs.pixel_values!;
      const imageType = image.type as FloatDtype;
      const inputType: FloatDtype = slot.type === 'float16' ? 'float16' : 'float32';
      const [pixelValues] = await this.runHelper(`safety_pre:${H}x${W}:${imageType}:${inputType}`, () => this.safetyPreprocess(cfg, H, W, imageType, inputType), { image });
      let logits: OrtTensor;
      try {
        logits = await s.run(this.runner, { [slot.name]: pixelValues! }, s.io.outputs.logits!.name);
      } finally {
        pixelValues!.dispose();
      }
      try {
        if (logits.dims.length !== 2 || logits.dims[0] !== B || logits.dims[1] !== cfg.labels.length) {
          throw new FluxError(
            'model_io_mismatch',
            `safety_checker: output is [${logits.dims.join(', ')}], expected [${B}, ${cfg.labels.length}] (one column per label: ${cfg.labels.join(', ')})`,
          );
        }
        const logitsType = logits.type as FloatDtype;
        [packed] = (await this.runHelper(`safety_pack:${imageType}:${logitsType}`, () => packForReadbackGraph(imageType, logitsType), { image, logits })) as [OrtTensor];
      } finally {
        logits.dispose();
      }
    } catch (e) {
      throw safetyCheckerFailure(cfg, e);
    } finally {
      await this.releaseTransient(['safety_checker']);
    }
    try {
      const all = await this.readBack(packed);
      const n = B * 3 * H * W;
      return { data: all.subarray(0, n), dims: [B, 3, H, W], safety: { data: all.subarray(n), dims: [B, cfg.labels.length] } };
    } finally {
      packed.dispose();
    }
  }

  private safetyPreprocess(cfg: SafetyCheckerConfig, H: number, W: number, imageDtype: FloatDtype, outDtype: FloatDtype): Uint8Array {
    // Keep a few sizes: each graph carries its resampling matrices.
    const sizes = [...this.helpers.keys()].filter((k) => k.startsWith('safety_pre:'));
    for (const k of sizes.slice(0, Math.max(0, sizes.length - (SAFETY_PRE_SESSIONS - 1)))) {
      const old = this.helpers.get(k)!;
      this.helpers.delete(k);
      void old.then((s) => s.release()).catch(() => undefined);
    }
    return safetyPreprocessModel(cfg.preprocess, H, W, imageDtype, outDtype);
  }

  async finish(t?: DeviceTensor): Promise<void> {
    if (this.timingSync === 'none' || (this.timingSync === 'submitted' && !this.env.gpuWorkDone)) return;
    const t0 = performance.now();
    if (this.timingSync === 'readback' && t) await this.readBack(t as OrtTensor);
    else await this.env.gpuWorkDone?.();
    this.stats.gpuWaits++;
    this.stats.gpuWaitMs += performance.now() - t0;
  }

  async download(t: DeviceTensor): Promise<Float32Array> {
    return this.readBack(t as OrtTensor);
  }

  /** Release every session (components and helpers). The backend is unusable afterwards. */
  async release(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const all = [...this.loaded.values()];
    this.loaded.clear();
    await Promise.all(all.map((c) => c.release()));
    for (const h of this.helpers.values()) await (await h.catch(() => null))?.release().catch(() => undefined);
    this.helpers.clear();
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  /** The loaded component, creating its session(s) now if it is transient (or not loaded yet). */
  private async acquire(name: ComponentName, progress?: { index: number; total: number }): Promise<ComponentSession> {
    if (this.disposed) throw new FluxError('not_loaded', 'The model was released.');
    const have = this.loaded.get(name);
    if (have) return have;
    const source = this.sources.components[name];
    if (!source) throw new FluxError('not_loaded', `This pack has no ${name} component.`);
    await this.makeRoom(name);
    this.loadListener?.({ status: 'load', component: name, index: progress?.index ?? 1, total: progress?.total ?? 1 });
    const c = await ComponentSession.create(this.env, name, source, this.config);
    if (this.disposed) {
      await c.release();
      throw new FluxError('not_loaded', 'The model was released.');
    }
    if (name === 'transformer') this.config = configFromGraphs(this.sources, c.io, this.config);
    this.loaded.set(name, c);
    this.stats.componentLoads[name] = (this.stats.componentLoads[name] ?? 0) + 1;
    return c;
  }

  /**
   * Release transient components after their stage. With a memory budget, the transformer and VAE stay loaded
   * (eviction frees them when needed); `always` releases regardless (text encoders).
   */
  private async releaseTransient(names: readonly ComponentName[], always = false): Promise<void> {
    for (const n of names) {
      if (this.resident.has(n) || (this.memory && !always)) continue;
      await this.unloadComponent(n);
    }
  }

  /** Evict loaded components (never `name`) until `name` fits the memory budget. */
  private async makeRoom(name: ComponentName): Promise<void> {
    if (!this.memory) return;
    const { budgetBytes, componentBytes, reserveBytes } = this.memory;
    const bytes = (n: ComponentName) => componentBytes[n] ?? 0;
    let used = [...this.loaded.keys()].reduce((s, n) => s + bytes(n), 0);
    for (const n of EVICTION_ORDER) {
      if (used + bytes(name) + reserveBytes <= budgetBytes) return;
      if (n === name || !this.loaded.has(n)) continue;
      await this.unloadComponent(n);
      used -= bytes(n);
    }
  }

  private async unloadComponent(n: ComponentName): Promise<void> {
    const c = this.loaded.get(n);
    if (!c) return;
    this.loaded.delete(n);
    this.stats.componentEvictions[n] = (this.stats.componentEvictions[n] ?? 0) + 1;
    await c.release();
  }

  private readonly runner = async (label: string, session: OrtSession, feeds: Record<string, OrtTensor>, fetches: string[]): Promise<OrtTensor[]> => {
    const t0 = performance.now();
    const reads0 = this.env.gpuReadCounter?.();
    let out: Record<string, OrtTensor>;
    try {
      out = (await session.run(feeds, fetches)) as Record<string, OrtTensor>;
    } catch (e) {
      throw toFluxError(e);
    } finally {
      this.stats.sessionRuns++;
      this.stats.runsByLabel[label] = (this.stats.runsByLabel[label] ?? 0) + 1;
      this.stats.sessionRunMs += performance.now() - t0;
      if (reads0 !== undefined) {
        const d = this.env.gpuReadCounter!() - reads0;
        if (d) this.stats.gpuReadsInRun[label] = (this.stats.gpuReadsInRun[label] ?? 0) + d;
      }
    }
    return fetches.map((f) => out[f]!);
  };

  private async runHelper(key: string, build: () => Uint8Array, feeds: Record<string, OrtTensor>): Promise<OrtTensor[]> {
    if (this.disposed) throw new FluxError('not_loaded', 'The model was released.');
    let session = this.helpers.get(key);
    if (!session) {
      session = this.env.ort.InferenceSession.create(build(), sessionOptionsFor(this.env));
      this.helpers.set(key, session);
    }
    const s = await session;
    return this.runner(key.split(':')[0]!, s, feeds, [...s.outputNames]);
  }

  private shape(dims: number[]): OrtTensor {
    return new this.env.ort.Tensor('int64', BigInt64Array.from(dims.map(BigInt)), [dims.length]);
  }

  private idsTensor(slot: TensorSlot, ids: Int32Array, dims: number[]): OrtTensor {
    if (slot.type === 'int64') return new this.env.ort.Tensor('int64', BigInt64Array.from(ids, (v) => BigInt(v)), dims);
    return new this.env.ort.Tensor('int32', ids, dims);
  }

  /** img_ids/txt_ids: [N, 3] as diffusers exports them; [B, N, 3] for graphs from the older 3-D convention. */
  private idsInput(slot: TensorSlot, ids: Float32Array, batch: number): OrtTensor {
    const n = ids.length / 3;
    if (slot.rank === 3) {
      const rep = new Float32Array(ids.length * batch);
      for (let b = 0; b < batch; b++) rep.set(ids, b * ids.length);
      return this.hostFloat(slot, rep, [batch, n, 3]);
    }
    return this.hostFloat(slot, ids, [n, 3]);
  }

  private hostFloat(slot: TensorSlot, data: Float32Array, dims: number[]): OrtTensor {
    if (slot.type === 'float16') return new this.env.ort.Tensor('float16', float32ToFloat16(data), dims);
    return new this.env.ort.Tensor('float32', data, dims);
  }

  /** Convert a float tensor to another float type on the device (no-op when it already matches). */
  private async castTo(t: OrtTensor, to: FloatDtype): Promise<OrtTensor> {
    if (t.type === to) return t;
    const from = t.type as FloatDtype;
    return (await this.runHelper(`cast:${t.dims.length}:${from}:${to}`, () => castGraph(t.dims.length, from, to), { x: t }))[0]!;
  }

  /** Component outputs in fp16 become float32 right away, so everything between components is float32. */
  private async toFloat32(t: OrtTensor): Promise<OrtTensor> {
    if (t.type === 'float32') return t;
    const r = await this.castTo(t, 'float32');
    t.dispose();
    return r;
  }

  private async readBack(t: OrtTensor): Promise<Float32Array> {
    const t0 = performance.now();
    const data = t.location === 'cpu' ? t.data : await t.getData();
    this.stats.readbackMs += performance.now() - t0;
    this.stats.readbacks++;
    this.stats.readbackBytes += (data as ArrayBufferView).byteLength;
    if (t.type === 'float16') return float16ToFloat32(data as Uint16Array);
    if (t.type !== 'float32') throw new FluxError('model_io_mismatch', `expected a float tensor, got ${t.type}`);
    return data as Float32Array;
  }
}

function safetyCheckerFailure(cfg: SafetyCheckerConfig, e: unknown): FluxError {
  const f = toFluxError(e);
  if (NOT_CHECKER_FAILURES.has(f.code) || f.code === 'safety_checker_failed') return f;
  return new FluxError(
    'safety_checker_failed',
    `The safety checker (${cfg.model}) failed, so no images are returned: they could not be checked. ${f.message}`,
    { cause: e, details: { checker: cfg.model, code: f.code } },
  );
}

function emptyStats(): BackendStats {
  return {
    sessionRuns: 0,
    sessionRunMs: 0,
    readbacks: 0,
    readbackBytes: 0,
    readbackMs: 0,
    gpuWaits: 0,
    gpuWaitMs: 0,
    gpuReadsInRun: {},
    componentLoads: {},
    runsByLabel: {},
    componentEvictions: {},
  };
}

/**
 * The transformer's packed width is 4·latentChannels. A graph with a fixed width is the truth: it refines the
 * FLUX default (e.g. diffusers' tiny test model: 4 → 1 channel), and contradicts a stated config only with an error.
 */
function configFromGraphs(sources: BackendSources, transformer: ComponentIo, config: FluxModelConfig): FluxModelConfig {
  const width = transformer.inputs.hidden_states!.dims[2];
  if (typeof width !== 'number' || width === 4 * config.latentChannels) return config;
  if (sources.explicitConfig.latentChannels !== undefined || width % 4 !== 0) {
    throw new FluxError(
      'model_io_mismatch',
      `transformer: hidden_states has ${width} features per token, but the config's ${config.latentChannels} latent channels need ${4 * config.latentChannels}`,
    );
  }
  return { ...config, latentChannels: width / 4 };
}
