/**
 * How each component's ONNX session gets created: from a pack (PackSource + manifest) or, for the CLI's
 * overrides, from loose files. The backend only sees ComponentSource.
 */
import { FluxError } from '../errors.js';
import { COMPONENT_NAMES, componentGraphs, type ComponentName, type ComponentSpec, type GraphFiles, type PackManifest } from '../pack/manifest.js';
import { parseSafetyCheckerConfig, pickSafetyConfig, type SafetyCheckerConfig } from '../pack/safety-checker.js';
import { resolveModelConfig, type FluxModelConfig } from '../pipeline/config.js';
import { loadClipTokenizer, loadT5Tokenizer, type ClipTokenizer, type T5Tokenizer } from '../pipeline/tokenizers.js';
import { readJsonFile, toBytes, type PackFileData, type PackSource } from '../storage/pack-source.js';
import type { ExternalDataStaging } from './external-data-staging.js';
import type { OrtApi, OrtSession, OrtSessionOptions } from './ort-api.js';

export interface ComponentSource {
  /** For messages. */
  readonly label: string;
  /** I/O names declared for the graph, if any. */
  readonly io: Pick<ComponentSpec, 'inputs' | 'outputs'>;
  /** Float type the manifest declares ('float16' needs shader-f16 on WebGPU); undefined = inspect the graph. */
  readonly dtype: ComponentSpec['dtype'] | undefined;
  readonly requiredFeatures: readonly string[];
  /** The component's graphs in execution order: one, or the stages of a split transformer. */
  readonly graphs: readonly GraphSource[];
}

export interface GraphSource {
  readonly label: string;
  /**
   * Create the session. `tune`, when given, sees the graph bytes and returns options to merge (graph-dependent
   * placement on WebGPU); it forces the graph to be read into memory, so the CPU path passes none. `staging`,
   * when given, receives Blob external data (onnxruntime-web builds that read external data whole).
   */
  create(ort: OrtApi, options: OrtSessionOptions, tune?: GraphTuner, staging?: ExternalDataStaging): Promise<OrtSession>;
}

export type GraphTuner = (graph: Uint8Array, options: OrtSessionOptions) => OrtSessionOptions;

export interface BackendSources {
  config: FluxModelConfig;
  /** The config values someone stated (manifest, CLI flags); the rest are FLUX defaults the graphs may refine. */
  explicitConfig: Partial<FluxModelConfig>;
  components: Partial<Record<ComponentName, ComponentSource>>;
  tokenizers: { clip: ClipTokenizer; t5: T5Tokenizer } | null;
  /** How to feed and read the safety_checker component (required with it). */
  safetyChecker?: SafetyCheckerConfig;
}

function packGraph(source: PackSource, name: ComponentName, files: GraphFiles): GraphSource {
  return {
    label: `${name} (${files.graph} from ${source.description})`,
    async create(ort, options, tune, staging) {
      // onnxruntime-node reads the graph and its external data from disk itself (mmap, no JS copies).
      if (!tune && source.localPath && ort.env.versions.node) {
        return ort.InferenceSession.create(source.localPath(files.graph), options);
      }
      const graph = await toBytes(await source.getFile(files.graph));
      if (tune) options = tune(graph, options);
      // External data goes to ORT as Blobs/bytes we fetched ourselves (ORT's own URL fetching poisons the
      // WebGPU EP for the realm when it fails; see docs/webgpu-testing.md).
      // onnxruntime-node takes bytes only; onnxruntime-web also takes Blobs (no copy into the JS heap).
      const asBytes = Boolean(ort.env.versions.node);
      const externalData: { path: string; data: PackFileData }[] = [];
      for (const x of files.externalData ?? []) {
        const data = await source.getFile(x.file);
        externalData.push({ path: x.path, data: asBytes ? await toBytes(data) : data });
      }
      const create = (ext: { path: string; data: PackFileData }[]) =>
        ort.InferenceSession.create(graph, { ...options, ...(ext.length ? { externalData: ext } : {}) });
      const blobs = externalData.filter((x): x is { path: string; data: Blob } => x.data instanceof Blob);
      if (!staging || blobs.length === 0 || blobs.length !== externalData.length) return create(externalData);
      return staging.use(
        blobs.map((x) => x.data),
        (views) => create(blobs.map((x, i) => ({ path: x.path, data: views[i]! }))),
      );
    },
  };
}

function packComponent(source: PackSource, name: ComponentName, spec: ComponentSpec): ComponentSource {
  const requiredFeatures = [...(spec.requiredFeatures ?? [])];
  if (spec.dtype === 'float16' && !requiredFeatures.includes('shader-f16')) requiredFeatures.push('shader-f16');
  const graphs = componentGraphs(spec).map((g) => packGraph(source, name, g));
  return {
    label: graphs.length === 1 ? graphs[0]!.label : `${name} (${graphs.length} stages from ${source.description})`,
    io: { ...(spec.inputs ? { inputs: spec.inputs } : {}), ...(spec.outputs ? { outputs: spec.outputs } : {}) },
    dtype: spec.dtype,
    requiredFeatures,
    graphs,
  };
}

/** Tokenizers and sessions of an installed or served pack. */
export async function sourcesFromPack(source: PackSource, configOverrides?: Partial<FluxModelConfig>): Promise<BackendSources> {
  const m: PackManifest = source.manifest;
  const components: Partial<Record<ComponentName, ComponentSource>> = {};
  for (const name of COMPONENT_NAMES) {
    const spec = m.components[name];
    if (spec) components[name] = packComponent(source, name, spec);
  }
  let tokenizers: BackendSources['tokenizers'] = null;
  if (m.tokenizers?.clip && m.tokenizers.t5) {
    const load = async (t: { tokenizer: string; config?: string }) => ({
      json: await readJsonFile(source, t.tokenizer),
      config: t.config ? ((await readJsonFile(source, t.config)) as Record<string, unknown>) : undefined,
    });
    const [clip, t5] = [await load(m.tokenizers.clip), await load(m.tokenizers.t5)];
    // Name the pack's file in a parse error, so a broken tokenizer.json says which one (the CLI does the same).
    tokenizers = { clip: loadClipTokenizer(clip.json, clip.config, m.tokenizers.clip.tokenizer), t5: loadT5Tokenizer(t5.json, t5.config, m.tokenizers.t5.tokenizer) };
  }
  const sources: BackendSources = { config: resolveModelConfig(m.config, configOverrides), explicitConfig: { ...m.config, ...configOverrides }, components, tokenizers };
  const checker = m.components.safety_checker;
  if (checker) sources.safetyChecker = parseSafetyCheckerConfig(pickSafetyConfig(checker as unknown as Record<string, unknown>), 'components.safety_checker');
  return sources;
}

/** Throw unless both text encoders or neither are present (with their tokenizers). */
export function checkTextEncoders(sources: BackendSources): void {
  const { clip, t5 } = sources.components;
  if (Boolean(clip) !== Boolean(t5)) {
    throw new FluxError('invalid_input', `Both text encoders are needed to encode prompts; only ${clip ? 'CLIP' : 'T5'} was given.`, {
      field: clip ? 't5' : 'clip',
    });
  }
  if (clip && !sources.tokenizers) {
    throw new FluxError('invalid_input', 'Text encoders were given without tokenizer files.', { field: 'tokenizers' });
  }
}
