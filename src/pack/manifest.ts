/**
 * The model-pack manifest (`manifest.json`): the single description of a pack that storage, runtime,
 * worker and CLI all read. Format documented in docs/model-pack.md; this file is its validator.
 */
import { FluxError } from '../errors.js';
import { configValueProblem, FLUX_SCHNELL_CONFIG, type FluxModelConfig, type NumericConfigKey } from '../pipeline/config.js';
import { parseSafetyCheckerConfig, SAFETY_CONFIG_KEYS, type SafetyCheckerConfig } from './safety-checker.js';

export const MANIFEST_FORMAT = 'flux-webgpu-pack';
export const MANIFEST_FORMAT_VERSION = 1;

export type ComponentName = 'clip' | 't5' | 'transformer' | 'vae_decoder' | 'safety_checker';
export const COMPONENT_NAMES: readonly ComponentName[] = ['clip', 't5', 'transformer', 'vae_decoder', 'safety_checker'];

/** A file in the pack, addressed by its path relative to the manifest. */
export interface PackFile {
  path: string;
  /** Exact byte length. */
  size: number;
  /** Lowercase hex SHA-256 of the whole file. */
  sha256: string;
}

/** One external-data file of a graph. */
export interface ExternalDataRef {
  /** The `location` string recorded in the graph's initializers (what ORT will ask for). */
  path: string;
  /** The pack file holding those bytes. */
  file: string;
}

/** Float type of a component's floating-point inputs/outputs. */
export type ComponentDtype = 'float32' | 'float16';

/** One ONNX graph and its external data. */
export interface GraphFiles {
  /** Pack file holding the ONNX graph. */
  graph: string;
  externalData?: ExternalDataRef[];
}

/**
 * A component is one graph (`graph`) or several run in sequence (`stages`), for models too large for one session
 * (or whose load should be bounded: onnxruntime-web's asyncify build reads a session's external data whole).
 * Stage graphs exchange tensors by name: stage k may take any of the component's inputs and any output of stages
 * before it; the last stage produces the component's output. Intermediate tensors stay on the device.
 */
export interface ComponentSpec extends Partial<GraphFiles> {
  stages?: GraphFiles[];
  /** Activation float type; 'float16' implies the `shader-f16` WebGPU feature. */
  dtype: ComponentDtype;
  /** Weight storage, informational (shown in the model manager, used by the capacity probe). */
  weights?: 'float32' | 'float16' | 'int8' | 'int4';
  /** Bytes of the largest single tensor (initializer), if known: it must fit one GPU storage binding. */
  maxTensorBytes?: number;
  /** WebGPU features the graph needs beyond the baseline, e.g. ['shader-f16']. */
  requiredFeatures?: string[];
  /**
   * Written by the converter's attention pass (docs/attention.md): 'fused' = no buffer holds a full S×S scores
   * tensor (every attention is split into `attentionChunks` query chunks, or is a fused kernel); 'unfused' = as
   * exported. Absent: the capacity check inspects the graphs.
   */
  attention?: 'fused' | 'unfused';
  /** Query chunks per attention when fused by chunking: the largest scores buffer is 1/attentionChunks of S×S. */
  attentionChunks?: number;
  /** Pipeline role → graph input name. Missing roles use the role name itself (FLUX names). */
  inputs?: Record<string, string>;
  /** Pipeline role → graph output name. Missing: the graph's single output, whatever it is called. */
  outputs?: Record<string, string>;
}

/**
 * The optional safety checker: an image classifier graph (pixel_values → logits) plus how to feed it and read it
 * (src/pack/safety-checker.ts, docs/safety.md).
 */
export type SafetyCheckerSpec = ComponentSpec & SafetyCheckerConfig;

export interface TokenizerSpec {
  /** HF `tokenizer.json` (pack file). */
  tokenizer: string;
  /** HF `tokenizer_config.json` (pack file), optional. */
  config?: string;
}

export interface PackManifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: typeof MANIFEST_FORMAT_VERSION;
  /** Stable id, used as the storage key. [a-z0-9._-]. */
  id: string;
  /** Human-readable name. */
  name: string;
  description?: string;
  /** The model the pack implements. */
  model: 'flux.1-schnell';
  /** True for tiny random-weight packs used by tests and the offline demo: images are not meaningful. */
  testPack?: boolean;
  license?: string;
  /** Overrides of the FLUX.1 [schnell] defaults (src/pipeline/config.ts). */
  config?: Partial<FluxModelConfig>;
  files: PackFile[];
  components: Partial<Record<ComponentName, ComponentSpec>> & {
    transformer: ComponentSpec;
    vae_decoder: ComponentSpec;
    safety_checker?: SafetyCheckerSpec;
  };
  tokenizers?: { clip?: TokenizerSpec; t5?: TokenizerSpec };
}

/** The graphs of a component, in execution order (one for an unsplit component). */
export function componentGraphs(spec: ComponentSpec): GraphFiles[] {
  if (spec.stages) return spec.stages;
  return [{ graph: spec.graph!, ...(spec.externalData ? { externalData: spec.externalData } : {}) }];
}

/** Inputs and outputs each component's graph is bound by (roles). */
export const COMPONENT_ROLES: Record<ComponentName, { inputs: readonly string[]; outputs: readonly string[] }> = {
  clip: { inputs: ['input_ids'], outputs: ['pooled'] },
  t5: { inputs: ['input_ids'], outputs: ['last_hidden_state'] },
  transformer: {
    inputs: ['hidden_states', 'encoder_hidden_states', 'pooled_projections', 'timestep', 'img_ids', 'txt_ids'],
    outputs: ['velocity'],
  },
  vae_decoder: { inputs: ['latent'], outputs: ['image'] },
  safety_checker: { inputs: ['pixel_values'], outputs: ['logits'] },
};

const CONFIG_KEYS: readonly NumericConfigKey[] = [
  'latentChannels',
  'vaeScaleFactor',
  'vaeScalingFactor',
  'vaeShiftFactor',
  'clipMaxLength',
  't5MaxLength',
  'schedulerShift',
  'maxSteps',
  'defaultSteps',
];

function bad(message: string, field: string): FluxError {
  return new FluxError('invalid_manifest', `manifest.json: ${field}: ${message}`, { field });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkPath(p: unknown, field: string): string {
  if (typeof p !== 'string' || p.length === 0) throw bad('must be a non-empty string', field);
  // Paths are relative and may not escape the pack folder (they become URLs and IndexedDB keys).
  if (p.startsWith('/') || p.includes('\\') || p.split('/').some((s) => s === '..' || s === '' || s === '.')) {
    throw bad(`"${p}" must be a relative path inside the pack (no leading /, no . or .. segments)`, field);
  }
  return p;
}

function checkStringMap(v: unknown, field: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw bad('must be an object of role → name', field);
  for (const [k, s] of Object.entries(v)) {
    if (typeof s !== 'string' || !s) throw bad('must be a non-empty string', `${field}.${k}`);
  }
  return v as Record<string, string>;
}

/**
 * Validate untrusted JSON as a manifest. Every reference (graph, external data, tokenizer) must be listed
 * in `files`, so storage can fetch and verify exactly the set of files the runtime will open.
 */
export function parseManifest(json: unknown): PackManifest {
  if (!isObject(json)) throw bad('must be a JSON object', '(root)');
  if (json.format !== MANIFEST_FORMAT) throw bad(`must be "${MANIFEST_FORMAT}"`, 'format');
  if (json.formatVersion !== MANIFEST_FORMAT_VERSION) {
    throw bad(`unsupported version ${String(json.formatVersion)}; this app reads version ${MANIFEST_FORMAT_VERSION}`, 'formatVersion');
  }
  if (typeof json.id !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,127}$/.test(json.id)) {
    throw bad('must match [a-z0-9][a-z0-9._-]*', 'id');
  }
  if (typeof json.name !== 'string' || !json.name) throw bad('must be a non-empty string', 'name');
  if (json.model !== 'flux.1-schnell') throw bad('only "flux.1-schnell" packs run locally', 'model');

  if (!Array.isArray(json.files) || json.files.length === 0) throw bad('must be a non-empty array', 'files');
  const filePaths = new Set<string>();
  json.files.forEach((f, i) => {
    const field = `files[${i}]`;
    if (!isObject(f)) throw bad('must be an object', field);
    const p = checkPath(f.path, `${field}.path`);
    if (filePaths.has(p)) throw bad(`duplicate path "${p}"`, `${field}.path`);
    filePaths.add(p);
    if (typeof f.size !== 'number' || !Number.isSafeInteger(f.size) || f.size < 0) {
      throw bad('must be a non-negative integer', `${field}.size`);
    }
    if (typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256)) {
      throw bad('must be 64 lowercase hex characters', `${field}.sha256`);
    }
  });
  const listedPath = (p: string, field: string): string => {
    if (!filePaths.has(p)) throw bad(`"${p}" is not listed in files`, field);
    return p;
  };
  const listed = (p: string, field: string): void => void listedPath(p, field);
  const checkGraphFiles = (g: Record<string, unknown>, field: string): void => {
    const graph = checkPath(g.graph, `${field}.graph`);
    listed(graph, `${field}.graph`);
    if (g.externalData === undefined) return;
    if (!Array.isArray(g.externalData)) throw bad('must be an array', `${field}.externalData`);
    const graphDir = graph.includes('/') ? graph.slice(0, graph.lastIndexOf('/') + 1) : '';
    g.externalData.forEach((x, i) => {
      const xf = `${field}.externalData[${i}]`;
      if (!isObject(x)) throw bad('must be an object', xf);
      if (typeof x.path !== 'string' || !x.path) throw bad('must be a non-empty string', `${xf}.path`);
      const file = listedPath(checkPath(x.file, `${xf}.file`), `${xf}.file`);
      // The data must sit where the graph says it is, so the folder also loads in any ONNX tool
      // (and in onnxruntime-node, which resolves external data relative to the graph file).
      const expected = graphDir + x.path.replace(/^\.\//, '');
      if (file !== expected) throw bad(`"${file}" must be "${expected}" (the graph records location "${x.path}")`, `${xf}.file`);
    });
  };

  if (!isObject(json.components)) throw bad('must be an object', 'components');
  for (const name of Object.keys(json.components)) {
    if (!(COMPONENT_NAMES as readonly string[]).includes(name)) {
      throw bad(`unknown component; expected one of ${COMPONENT_NAMES.join(', ')}`, `components.${name}`);
    }
  }
  for (const name of COMPONENT_NAMES) {
    const c = json.components[name];
    const field = `components.${name}`;
    if (c === undefined) {
      if (name === 'transformer' || name === 'vae_decoder') throw bad('is required', field);
      continue;
    }
    if (!isObject(c)) throw bad('must be an object', field);
    if ((c.graph === undefined) === (c.stages === undefined)) throw bad('needs exactly one of "graph" or "stages"', field);
    if (c.stages !== undefined) {
      if (!Array.isArray(c.stages) || c.stages.length === 0) throw bad('must be a non-empty array', `${field}.stages`);
      c.stages.forEach((st, i) => {
        if (!isObject(st)) throw bad('must be an object', `${field}.stages[${i}]`);
        checkGraphFiles(st, `${field}.stages[${i}]`);
      });
    } else {
      checkGraphFiles(c, field);
    }
    if (c.dtype !== 'float32' && c.dtype !== 'float16') throw bad('must be "float32" or "float16"', `${field}.dtype`);
    if (c.maxTensorBytes !== undefined && (typeof c.maxTensorBytes !== 'number' || !Number.isSafeInteger(c.maxTensorBytes) || c.maxTensorBytes <= 0)) {
      throw bad('must be a positive integer', `${field}.maxTensorBytes`);
    }
    if (c.requiredFeatures !== undefined && (!Array.isArray(c.requiredFeatures) || c.requiredFeatures.some((s) => typeof s !== 'string'))) {
      throw bad('must be an array of strings', `${field}.requiredFeatures`);
    }
    if (c.attention !== undefined && c.attention !== 'fused' && c.attention !== 'unfused') throw bad('must be "fused" or "unfused"', `${field}.attention`);
    if (c.attentionChunks !== undefined && (typeof c.attentionChunks !== 'number' || !Number.isInteger(c.attentionChunks) || c.attentionChunks < 1 || c.attentionChunks > 256)) {
      throw bad('must be an integer between 1 and 256', `${field}.attentionChunks`);
    }
    if (name === 'safety_checker') parseSafetyCheckerConfig(c, field);
    else {
      const stray = SAFETY_CONFIG_KEYS.find((k) => k in c);
      if (stray) throw bad('is a classifier field; it belongs to components.safety_checker only', `${field}.${stray}`);
    }
    const roles = COMPONENT_ROLES[name];
    for (const [kind, allowed] of [['inputs', roles.inputs], ['outputs', roles.outputs]] as const) {
      const map = checkStringMap(c[kind], `${field}.${kind}`);
      for (const role of Object.keys(map ?? {})) {
        if (!allowed.includes(role)) throw bad(`unknown role; expected one of ${allowed.join(', ')}`, `${field}.${kind}.${role}`);
      }
    }
  }

  if (json.tokenizers !== undefined) {
    if (!isObject(json.tokenizers)) throw bad('must be an object', 'tokenizers');
    for (const [k, t] of Object.entries(json.tokenizers)) {
      const field = `tokenizers.${k}`;
      if (k !== 'clip' && k !== 't5') throw bad('unknown tokenizer; expected clip or t5', field);
      if (!isObject(t)) throw bad('must be an object', field);
      listed(checkPath(t.tokenizer, `${field}.tokenizer`), `${field}.tokenizer`);
      if (t.config !== undefined) listed(checkPath(t.config, `${field}.config`), `${field}.config`);
    }
  }
  for (const enc of ['clip', 't5'] as const) {
    const hasModel = json.components[enc] !== undefined;
    const hasTok = isObject(json.tokenizers) && json.tokenizers[enc] !== undefined;
    if (hasModel !== hasTok) {
      throw bad(`a ${enc} text encoder and its tokenizer come together (found only the ${hasModel ? 'model' : 'tokenizer'})`, `tokenizers.${enc}`);
    }
  }

  if (json.config !== undefined) {
    if (!isObject(json.config)) throw bad('must be an object', 'config');
    for (const [k, v] of Object.entries(json.config)) {
      if (k === 'maxStepsReason') {
        if (typeof v !== 'string' || v.trim() === '') throw bad('must be a non-empty string', 'config.maxStepsReason');
        continue;
      }
      if (!(CONFIG_KEYS as readonly string[]).includes(k)) throw bad(`unknown key; expected one of ${CONFIG_KEYS.join(', ')}, maxStepsReason`, `config.${k}`);
      const problem = configValueProblem(k as NumericConfigKey, v);
      if (problem) throw bad(problem, `config.${k}`);
    }
    const { maxSteps, defaultSteps, maxStepsReason } = json.config as Partial<FluxModelConfig>;
    // fal's schnell takes 1–12 steps; a pack that runs fewer must say why (the request error quotes it).
    if (maxSteps !== undefined && maxSteps < FLUX_SCHNELL_CONFIG.maxSteps && maxStepsReason === undefined) {
      throw bad(`${maxSteps} narrows fal's 1–${FLUX_SCHNELL_CONFIG.maxSteps} steps: add config.maxStepsReason saying why`, 'config.maxSteps');
    }
    if (defaultSteps !== undefined && defaultSteps > (maxSteps ?? FLUX_SCHNELL_CONFIG.maxSteps)) {
      throw bad(`${defaultSteps} is above maxSteps ${maxSteps ?? FLUX_SCHNELL_CONFIG.maxSteps}`, 'config.defaultSteps');
    }
  }
  return json as unknown as PackManifest;
}

/** Total bytes of all files in a pack. */
export function packSizeBytes(m: PackManifest): number {
  return m.files.reduce((s, f) => s + f.size, 0);
}

export function findFile(m: PackManifest, path: string): PackFile {
  const f = m.files.find((x) => x.path === path);
  if (!f) throw new FluxError('pack_file_missing', `Pack "${m.id}" lists no file "${path}".`);
  return f;
}
