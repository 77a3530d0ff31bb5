/**
 * FluxBackend on onnxruntime: one session per component plus tiny helper graphs (device-graphs.ts) for the math
 * between them. With `outputLocation: 'gpu-buffer'` (WebGPU) every intermediate tensor stays in GPU memory;
 * the only read-back of a generation is the decoded image.
 */
import { FluxError, toFluxError } from '../errors.js';
import type { ComponentName } from '../pack/manifest.js';
import type { DeviceTensor, FluxBackend, TransformerInputs } from '../pipeline/backend.js';
import type { FluxModelConfig } from '../pipeline/config.js';
import {
  castGraph,
  eulerStepGraph,
  gatherRowsGraph,
  tileGraph,
  vaeInputGraph,
  type FloatDtype,
} from '../pipeline/device-graphs.js';
import type { LatentShape } from '../pipeline/latents.js';
import type { ClipTokenizer, T5Tokenizer } from '../pipeline/tokenizers.js';
import { bindComponentIo, componentFloatType, type ComponentIo, type TensorSlot } from './component-io.js';
import { checkTextEncoders, type BackendSources, type ComponentSource, type GraphTuner } from './component-source.js';
import { placementOptions } from './graph-placement.js';
import { float16ToFloat32, float32ToFloat16 } from './float16.js';
import type { ExecutionTarget, OrtApi, OrtSession, OrtSessionOptions, OrtTensor } from './ort-api.js';

export interface RuntimeEnv {
  ort: OrtApi;
  target: ExecutionTarget;
  /** Features of the WebGPU adapter (checked before loading graphs that need them). Undefined off-GPU. */
  gpuFeatures?: ReadonlySet<string>;
  /** Extra session options (merged under the runtime's own). */
  sessionOptions?: OrtSessionOptions;
  /** Total GPU map-for-read operations so far in this realm (gpu-readback-counter.ts), for per-session stats. */
  gpuReadCounter?: () => number;
}

export interface BackendLoadProgressEvent {
  status: 'load';
  component: ComponentName;
  /** 1-based index of the component being created, of `total`. */
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
  /** Wall time waiting for read-backs, which includes finishing the queued GPU work. */
  readbackMs: number;
  /** GPU map-for-read operations inside session.run, by component/helper (needs RuntimeEnv.gpuReadCounter). */
  gpuReadsInRun: Record<string, number>;
}

interface LoadedComponent {
  session: OrtSession;
  io: ComponentIo;
  floatType: FloatDtype;
}

const LOAD_ORDER: readonly ComponentName[] = ['clip', 't5', 'transformer', 'vae_decoder'];

export class OrtFluxBackend implements FluxBackend {
  readonly config: FluxModelConfig;
  readonly tokenizers: { clip: ClipTokenizer; t5: T5Tokenizer } | null;
  readonly stats: BackendStats = { sessionRuns: 0, sessionRunMs: 0, readbacks: 0, readbackBytes: 0, readbackMs: 0, gpuReadsInRun: {} };
  private readonly helpers = new Map<string, Promise<OrtSession>>();
  private disposed = false;

  private constructor(
    private readonly env: RuntimeEnv,
    private readonly components: Partial<Record<ComponentName, LoadedComponent>>,
    sources: BackendSources,
  ) {
    this.config = configFromGraphs(sources, components.transformer!.io);
    this.tokenizers = components.clip && components.t5 ? sources.tokenizers : null;
  }

  /** Create every component's session, checking GPU features first and binding I/O by role. */
  static async load(env: RuntimeEnv, sources: BackendSources, onProgress?: (e: BackendLoadProgressEvent) => void): Promise<OrtFluxBackend> {
    checkTextEncoders(sources);
    for (const required of ['transformer', 'vae_decoder'] as const) {
      if (!sources.components[required]) throw new FluxError('invalid_input', `A ${required} graph is required.`, { field: required });
    }
    const names = LOAD_ORDER.filter((n) => sources.components[n]);
    const loaded: Partial<Record<ComponentName, LoadedComponent>> = {};
    try {
      for (const [i, name] of names.entries()) {
        onProgress?.({ status: 'load', component: name, index: i + 1, total: names.length });
        loaded[name] = await loadComponent(env, name, sources.components[name]!, sources.config);
      }
    } catch (e) {
      await Promise.all(Object.values(loaded).map((c) => c.session.release().catch(() => undefined)));
      throw e;
    }
    return new OrtFluxBackend(env, loaded, sources);
  }

  /** Names of the loaded components and their float types (for info()). */
  describeComponents(): Record<string, { floatType: FloatDtype; inputs: string[]; outputs: string[] }> {
    const out: Record<string, { floatType: FloatDtype; inputs: string[]; outputs: string[] }> = {};
    for (const [name, c] of Object.entries(this.components)) {
      out[name] = { floatType: c.floatType, inputs: [...c.session.inputNames], outputs: [...c.session.outputNames] };
    }
    return out;
  }

  resetStats(): void {
    Object.assign(this.stats, { sessionRuns: 0, sessionRunMs: 0, readbacks: 0, readbackBytes: 0, readbackMs: 0, gpuReadsInRun: {} });
  }

  // ---- FluxBackend -------------------------------------------------------------------------------------------

  async encodeClip(inputIds: Int32Array, batch: number, pooledIndex: readonly number[]): Promise<DeviceTensor> {
    const c = this.component('clip');
    const ids = this.idsTensor(c.io.inputs.input_ids!, inputIds, [batch, inputIds.length / batch]);
    const out = (await this.run('clip', c.session, { [c.io.inputs.input_ids!.name]: ids }, [c.io.outputs.pooled!.name]))[0]!;
    let pooled = out;
    if (out.dims.length === 3) {
      // The graph returns hidden states [B, 77, D]: take each row's first EOS on the device (docs §2.1).
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
    const c = this.component('t5');
    const ids = this.idsTensor(c.io.inputs.input_ids!, inputIds, [batch, inputIds.length / batch]);
    const out = (await this.run('t5', c.session, { [c.io.inputs.input_ids!.name]: ids }, [c.io.outputs.last_hidden_state!.name]))[0]!;
    if (out.dims.length !== 3) {
      out.dispose();
      throw new FluxError('model_io_mismatch', `t5: output must be [B, L, D], got [${out.dims.join(', ')}]`);
    }
    return this.toFloat32(out);
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
    const c = this.component('transformer');
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
      const out = (await this.run('transformer', c.session, feeds, [c.io.outputs.velocity!.name]))[0]!;
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

  async decode(x: DeviceTensor, shape: LatentShape): Promise<{ data: Float32Array; dims: number[] }> {
    const c = this.component('vae_decoder');
    const { batch: B, channels: C, height: h, width: w } = shape;
    const { vaeScalingFactor, vaeShiftFactor } = this.config;
    const [z] = await this.runHelper(
      `vae_input:${vaeScalingFactor}:${vaeShiftFactor}:${c.floatType}`,
      () => vaeInputGraph(vaeScalingFactor, vaeShiftFactor, c.floatType),
      { x: x as OrtTensor, shape6: this.shape([B, h / 2, w / 2, C, 2, 2]), shape4: this.shape([B, C, h, w]) },
    );
    let image: OrtTensor;
    try {
      image = (await this.run('vae_decoder', c.session, { [c.io.inputs.latent!.name]: z! }, [c.io.outputs.image!.name]))[0]!;
    } finally {
      z!.dispose();
    }
    try {
      if (image.dims.length !== 4 || image.dims[0] !== B || image.dims[1] !== 3) {
        throw new FluxError('model_io_mismatch', `vae_decoder: output is [${image.dims.join(', ')}], expected [${B}, 3, H, W]`);
      }
      return { data: await this.readBack(image), dims: [...image.dims] };
    } finally {
      image.dispose();
    }
  }

  async download(t: DeviceTensor): Promise<Float32Array> {
    return this.readBack(t as OrtTensor);
  }

  async release(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const sessions = [...Object.values(this.components).map((c) => c.session)];
    for (const h of this.helpers.values()) sessions.push(await h.catch(() => null as unknown as OrtSession));
    await Promise.all(sessions.filter(Boolean).map((s) => s.release().catch(() => undefined)));
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  private component(name: ComponentName): LoadedComponent {
    if (this.disposed) throw new FluxError('not_loaded', 'The model was released.');
    const c = this.components[name];
    if (!c) throw new FluxError('not_loaded', `The ${name} component is not loaded.`);
    return c;
  }

  private async run(label: string, session: OrtSession, feeds: Record<string, OrtTensor>, fetches: string[]): Promise<OrtTensor[]> {
    const t0 = performance.now();
    const reads0 = this.env.gpuReadCounter?.();
    let out: Record<string, OrtTensor>;
    try {
      out = (await session.run(feeds, fetches)) as Record<string, OrtTensor>;
    } catch (e) {
      throw toFluxError(e);
    } finally {
      this.stats.sessionRuns++;
      this.stats.sessionRunMs += performance.now() - t0;
      if (reads0 !== undefined) {
        const d = this.env.gpuReadCounter!() - reads0;
        if (d) this.stats.gpuReadsInRun[label] = (this.stats.gpuReadsInRun[label] ?? 0) + d;
      }
    }
    return fetches.map((f) => out[f]!);
  }

  private async runHelper(key: string, build: () => Uint8Array, feeds: Record<string, OrtTensor>): Promise<OrtTensor[]> {
    let session = this.helpers.get(key);
    if (!session) {
      session = this.env.ort.InferenceSession.create(build(), sessionOptionsFor(this.env));
      this.helpers.set(key, session);
    }
    const s = await session;
    return this.run(key.split(':')[0]!, s, feeds, [...s.outputNames]);
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

function sessionOptionsFor(env: RuntimeEnv): OrtSessionOptions {
  return {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    ...env.sessionOptions,
    executionProviders: [env.target],
    ...(env.target === 'webgpu' ? { preferredOutputLocation: 'gpu-buffer' as const } : {}),
  };
}

/**
 * The transformer's packed width is 4·latentChannels. A graph with a fixed width is the truth: it refines the
 * FLUX default (e.g. diffusers' tiny test model: 4 → 1 channel), and contradicts a stated config only with an error.
 */
function configFromGraphs(sources: BackendSources, transformer: ComponentIo): FluxModelConfig {
  const width = transformer.inputs.hidden_states!.dims[2];
  const config = sources.config;
  if (typeof width !== 'number' || width === 4 * config.latentChannels) return config;
  if (sources.explicitConfig.latentChannels !== undefined || width % 4 !== 0) {
    throw new FluxError(
      'model_io_mismatch',
      `transformer: hidden_states has ${width} features per token, but the config's ${config.latentChannels} latent channels need ${4 * config.latentChannels}`,
    );
  }
  return { ...config, latentChannels: width / 4 };
}

function missingFeatures(env: RuntimeEnv, source: ComponentSource, floatType?: FloatDtype): string[] {
  if (env.target !== 'webgpu' || !env.gpuFeatures) return [];
  const needed = new Set(source.requiredFeatures);
  if (floatType === 'float16') needed.add('shader-f16');
  return [...needed].filter((f) => !env.gpuFeatures!.has(f));
}

function featureError(name: ComponentName, source: ComponentSource, missing: string[]): FluxError {
  const f16 = missing.includes('shader-f16');
  return new FluxError(
    'missing_gpu_feature',
    `${name}: this GPU lacks WebGPU feature(s) ${missing.join(', ')}` +
      (f16 ? ' needed for float16 graphs. Use a pack with float32 activations, or a GPU/browser with shader-f16.' : '.'),
    { details: { component: name, missing, source: source.label } },
  );
}

/**
 * On WebGPU, keep ids-derived integer work off the GPU so no run reads anything back (graph-placement.ts):
 * T5's position buckets depend on its length only, so it gets its fixed [1, length] shape and ORT folds them;
 * other graphs (CLIP's ArgMax pooling on the ids) get their ids chains pinned to the CPU.
 */
function webgpuTuner(name: ComponentName, config: FluxModelConfig): GraphTuner {
  return (graph, options) => {
    const placement = placementOptions(graph, name === 't5' ? { fixedInputShape: [1, config.t5MaxLength] } : {});
    const { forceCpuNodeNames, freeDimensionOverrides } = placement;
    return {
      ...options,
      ...(freeDimensionOverrides ? { freeDimensionOverrides } : {}),
      ...(forceCpuNodeNames?.length ? { executionProviders: [{ name: 'webgpu', forceCpuNodeNames }] } : {}),
    };
  };
}

async function loadComponent(env: RuntimeEnv, name: ComponentName, source: ComponentSource, config: FluxModelConfig): Promise<LoadedComponent> {
  // Check before creating the session: some builds fail late or (JSEP) silently compute garbage in fp16.
  const early = missingFeatures(env, source, source.dtype);
  if (early.length) throw featureError(name, source, early);
  let session: OrtSession;
  try {
    session = await source.create(env.ort, sessionOptionsFor(env), env.target === 'webgpu' ? webgpuTuner(name, config) : undefined);
  } catch (e) {
    if (e instanceof FluxError) throw e;
    throw new FluxError('runtime_error', `Could not create the ${name} session from ${source.label}: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
  try {
    const io = bindComponentIo(name, session, source.io);
    const floatType = componentFloatType(io);
    // A graph whose manifest says float32 but whose I/O is float16 still needs the feature.
    const late = missingFeatures(env, source, floatType);
    if (late.length) throw featureError(name, source, late);
    return { session, io, floatType };
  } catch (e) {
    await session.release().catch(() => undefined);
    throw e;
  }
}
