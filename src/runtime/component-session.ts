/**
 * One loaded component: its ONNX session, or the sessions of its stages (a transformer split into several
 * graphs), bound to pipeline roles as a unit. Stage graphs exchange tensors by name; intermediates stay on the
 * device and are disposed right after the last stage that needs them.
 */
import { FluxError } from '../errors.js';
import type { ComponentName } from '../pack/manifest.js';
import type { FluxModelConfig } from '../pipeline/config.js';
import type { FloatDtype } from '../pipeline/device-graphs.js';
import { bindComponentIo, componentFloatType, type ComponentIo, type SessionShape } from './component-io.js';
import type { ComponentSource, GraphTuner } from './component-source.js';
import { placementOptions } from './graph-placement.js';
import type { OrtSession, OrtSessionOptions, OrtTensor } from './ort-api.js';
import type { RuntimeEnv } from './ort-api.js';

/** Runs one session and accounts for it (time, read-backs); provided by the backend. */
export type SessionRunner = (label: string, session: OrtSession, feeds: Record<string, OrtTensor>, fetches: string[]) => Promise<OrtTensor[]>;

export class ComponentSession {
  private constructor(
    readonly name: ComponentName,
    private readonly sessions: OrtSession[],
    readonly io: ComponentIo,
    readonly floatType: FloatDtype,
    /** For each intermediate tensor, the last stage index that reads it. */
    private readonly lastUse: Map<string, number>,
  ) {}

  /**
   * Create every stage's session and bind the whole chain's I/O. Declared features were checked for every
   * component when the pack loaded (checkDeclaredFeatures); the graph's own float type is checked here.
   */
  static async create(env: RuntimeEnv, name: ComponentName, source: ComponentSource, config: FluxModelConfig): Promise<ComponentSession> {
    const sessions: OrtSession[] = [];
    try {
      for (const [k, graph] of source.graphs.entries()) {
        try {
          sessions.push(await graph.create(env.ort, sessionOptionsFor(env), env.target === 'webgpu' ? webgpuTuner(name, config) : undefined, env.externalDataStaging));
        } catch (e) {
          if (e instanceof FluxError) throw e;
          const what = source.graphs.length > 1 ? `stage ${k + 1}/${source.graphs.length} of ${name}` : name;
          throw new FluxError('runtime_error', `Could not create the ${what} session from ${graph.label}: ${e instanceof Error ? e.message : String(e)}`, {
            cause: e,
          });
        }
      }
      const { shape, lastUse } = chainShape(name, sessions);
      const io = bindComponentIo(name, shape, source.io);
      const floatType = componentFloatType(io);
      // A graph whose manifest says float32 but whose I/O is float16 still needs the feature.
      const late = missingFeatures(env, source, floatType);
      if (late.length) throw featureError(name, source, late);
      return new ComponentSession(name, sessions, io, floatType, lastUse);
    } catch (e) {
      await Promise.all(sessions.map((s) => s.release().catch(() => undefined)));
      throw e;
    }
  }

  get stageCount(): number {
    return this.sessions.length;
  }

  describe(): { floatType: FloatDtype; inputs: string[]; outputs: string[]; stages: number } {
    return {
      floatType: this.floatType,
      inputs: Object.values(this.io.inputs).map((s) => s.name),
      outputs: Object.values(this.io.outputs).map((s) => s.name),
      stages: this.sessions.length,
    };
  }

  /** Run the component (all stages) and return the one requested output. */
  async run(runner: SessionRunner, feeds: Record<string, OrtTensor>, fetch: string): Promise<OrtTensor> {
    if (this.sessions.length === 1) return (await runner(this.name, this.sessions[0]!, feeds, [fetch]))[0]!;
    const values = new Map<string, OrtTensor>(Object.entries(feeds));
    const created = new Map<string, OrtTensor>();
    try {
      for (const [k, s] of this.sessions.entries()) {
        const stageFeeds: Record<string, OrtTensor> = {};
        for (const n of s.inputNames) {
          const t = values.get(n);
          if (!t) throw new FluxError('model_io_mismatch', `${this.name} stage ${k + 1}: input "${n}" is neither a component input nor an earlier stage's output`);
          stageFeeds[n] = t;
        }
        const last = k === this.sessions.length - 1;
        const fetches = last ? [fetch] : s.outputNames.filter((n) => (this.lastUse.get(n) ?? -1) > k);
        const outs = await runner(`${this.name}[${k}]`, s, stageFeeds, fetches);
        fetches.forEach((n, i) => {
          values.set(n, outs[i]!);
          created.set(n, outs[i]!);
        });
        for (const [n, t] of created) {
          if (n !== fetch && (this.lastUse.get(n) ?? -1) <= k) {
            t.dispose();
            created.delete(n);
            values.delete(n);
          }
        }
      }
      const out = created.get(fetch)!;
      created.delete(fetch);
      return out;
    } finally {
      for (const t of created.values()) t.dispose();
    }
  }

  async release(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.release().catch(() => undefined)));
  }
}

/**
 * The chain seen as one graph: its inputs are the stage inputs no earlier stage produces, its outputs the last
 * stage's. Also records, for every tensor passed between stages, the last stage that reads it.
 */
function chainShape(name: ComponentName, sessions: OrtSession[]): { shape: SessionShape; lastUse: Map<string, number> } {
  const produced = new Set<string>();
  const inputNames: string[] = [];
  const inputMetadata: NonNullable<SessionShape['inputMetadata']>[number][] = [];
  const lastUse = new Map<string, number>();
  sessions.forEach((s, k) => {
    for (const n of s.inputNames) {
      if (produced.has(n)) lastUse.set(n, k);
      else if (!inputNames.includes(n)) {
        inputNames.push(n);
        const m = s.inputMetadata?.find((x) => x.name === n);
        if (m) inputMetadata.push(m);
      }
    }
    for (const n of s.outputNames) produced.add(n);
  });
  const last = sessions[sessions.length - 1]!;
  if (sessions.length > 1 && last.outputNames.length === 0) throw new FluxError('model_io_mismatch', `${name}: the last stage has no outputs`);
  return {
    shape: { inputNames, outputNames: [...last.outputNames], inputMetadata, ...(last.outputMetadata ? { outputMetadata: last.outputMetadata } : {}) },
    lastUse,
  };
}

export function sessionOptionsFor(env: RuntimeEnv): OrtSessionOptions {
  return {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    ...env.sessionOptions,
    executionProviders: [env.target === 'webgpu' && env.gpuDevice ? { name: 'webgpu', device: env.gpuDevice } : env.target],
    ...(env.target === 'webgpu' ? { preferredOutputLocation: 'gpu-buffer' as const } : {}),
  };
}

/** The WebGPU EP entry of `options` (with its device), as an object. */
function webgpuEp(options: OrtSessionOptions): Record<string, unknown> & { name: string } {
  const ep = options.executionProviders?.[0];
  return typeof ep === 'object' && ep !== null ? { ...(ep as unknown as Record<string, unknown>), name: 'webgpu' } : { name: 'webgpu' };
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
      ...(forceCpuNodeNames?.length ? { executionProviders: [{ ...webgpuEp(options), forceCpuNodeNames }] } : {}),
    };
  };
}

/**
 * Fail at load, before any session exists, when a component's declared features are missing: some builds fail
 * late or (JSEP) silently compute garbage in fp16, and components that are not resident are only created when
 * their stage runs.
 */
export function checkDeclaredFeatures(env: RuntimeEnv, name: ComponentName, source: ComponentSource): void {
  const missing = missingFeatures(env, source, source.dtype);
  if (missing.length) throw featureError(name, source, missing);
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
