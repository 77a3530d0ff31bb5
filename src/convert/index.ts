/**
 * `convertPack`: ONNX exports of FLUX.1 [schnell] (transformer, VAE decoder, optional CLIP/T5) → a model pack
 * (docs/model-pack.md): graphs without weights, external-data shards, manifest with sizes and sha256, tokenizers.
 * Streaming: one tensor in memory at a time. See src/convert/main.ts for the CLI.
 */
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { loadSafetyCheckerConfig } from '../cli/safety-files.js';
import { parseManifest, type ComponentName, type ComponentSpec, type PackManifest } from '../pack/manifest.js';
import { resolvedPreprocess, type SafetyCheckerConfig } from '../pack/safety-checker.js';
import { DEFAULT_ATTENTION_CHUNKS, rewriteAttention, type AttentionMode, type AttentionRewrite } from './attention.js';
import { convertActivationsToFp16, type Fp16ActivationsReport } from './fp16-activations.js';
import { convertToFp16, type Fp16Report } from './fp16.js';
import { inferTypes, topoSort, type ComponentGraph } from './graph.js';
import { readModel } from './model-reader.js';
import { DT, DT_NAME, isFloatType, valueInfoElemType } from './onnx.js';
import { partition } from './partition.js';
import { checkGraphs, checkTokenizers, commitOutput, discardOutput, prepareOutput } from './preflight.js';
import { buildComponentGraph, normalizeFloats, pruneInits, quantizeEmbeddings, quantizeMatMuls, type QuantizedEmbedding, type QuantizedMatMul, type QuantPolicy } from './passes.js';
import { cosine, emptyStats, mergeStats, relError, type QuantParams, type ReconStats } from './quantize.js';
import { verifyComponent, type VerifyResult } from './verify.js';
import { makeJobContext, writeGraph, type WrittenFile, type WrittenGraph } from './writer.js';

export type QuantMode = 'int4' | 'int8' | 'fp16' | 'fp32';
export const QUANT_MODES: readonly QuantMode[] = ['int4', 'int8', 'fp16', 'fp32'];

export interface ConvertOptions {
  transformer: string;
  vaeDecoder: string;
  clip?: string;
  t5?: string;
  /** Folder with `tokenizer/` (CLIP) and `tokenizer_2/` (T5) Hugging Face tokenizer folders. */
  tokenizers?: string;
  /** Optional safety-checker classifier (docs/safety.md), described by HF files beside it and/or `safetyConfigFile`. */
  safetyChecker?: string;
  /** JSON with the classifier fields (docs/model-pack.md), whole or overriding the Hugging Face files. */
  safetyConfigFile?: string;
  /** The classifier config itself (wins over the files). */
  safetyConfig?: SafetyCheckerConfig;
  /** Safety checker weights: int8 unless set. */
  safetyQuant?: QuantMode;
  out: string;
  /** Default for transformer and text encoders. */
  quant: QuantMode;
  transformerQuant?: QuantMode;
  t5Quant?: QuantMode;
  clipQuant?: QuantMode;
  /** VAE decoder: fp32 unless set (fp16 = `--vae-fp16`). */
  vaeQuant?: QuantMode;
  /**
   * Activations of int4/int8 components (transformer, text encoders): fp32 (default, any WebGPU adapter) or fp16
   * with fp32 islands and clamped residuals (src/convert/fp16-activations.ts); fp16 packs need `shader-f16`.
   */
  activations?: 'fp32' | 'fp16';
  /** T5 FFN output projection (`wo`): int8 (default when T5 is int4), fp32, or the T5 mode. */
  t5Wo?: 'int8' | 'fp32' | 'same';
  blockSize?: number;
  /**
   * Transformer/CLIP MatMuls (node or weight name) kept at int8 when the component is int4: the conditioning path
   * (timestep/pooled embedders), input embedders and the output projection — tiny in FLUX (≈0.4% of the weights)
   * but they set every block's modulation. Empty string = none.
   */
  int8Layers?: string;
  /** Default: false for int4 (zero points), true for int8 (keeps int8 ≥ 3.5× smaller than fp32 at block 32). */
  symmetric?: boolean;
  /** Per-block range search for the least squared error (same format; slower). Default off (ORT's RTN). */
  mseSearch?: boolean;
  /** int8 per-row tables for Gather embeddings with at least this many elements (int modes; 0 = off). */
  embeddingMinElements?: number;
  shardMb?: number;
  maxStageMb?: number;
  id?: string;
  name?: string;
  description?: string;
  license?: string;
  testPack?: boolean;
  /** Run the ORT comparison for components whose original weights are ≤ this many MiB. */
  verifyMb?: number;
  /** Random rows of x for the per-MatMul reconstruction error (0 = off). */
  reconRows?: number;
  log?: (line: string) => void;
  /** Transformer and VAE attention: 'chunked' (default; no S×S buffer, src/convert/attention.ts) or 'unfused' (as exported). */
  attention?: AttentionMode;
  /** Query chunks per attention when chunked (default 16). */
  attentionChunks?: number;
}

export interface ComponentReport {
  component: ComponentName;
  source: string;
  mode: QuantMode;
  /** Initializer bytes of the source graph, and of the converted graph(s). */
  bytesBefore: number;
  bytesAfter: number;
  /** All files written for the component (graphs + shards). */
  filesBytes: number;
  matmulBytesBefore: number;
  matmulBytesAfter: number;
  quantized: QuantizedMatMul[];
  /** MatMul/Gemm nodes with constant weights left in float (policy, K not a multiple of the block, transA…). */
  floatMatMuls: number;
  embeddings: QuantizedEmbedding[];
  recon: ReconStats & { relError: number; cosine: number; worst?: { weight: string; relError: number } };
  fp16?: Fp16Report | Fp16ActivationsReport;
  /** Transformer and VAE decoder: what the attention pass did. */
  attention?: AttentionRewrite;
  sourceHadBf16: boolean;
  stages: number;
  stageWeightBytes: number[];
  verify?: VerifyResult | { skipped: string };
  dtype: 'float32' | 'float16';
  files: WrittenFile[];
}

export interface ConvertReport {
  out: string;
  manifest: PackManifest;
  components: ComponentReport[];
  totalBytes: number;
}

export interface ConvertResult {
  report: ConvertReport;
  /** Peak resident set size sampled during the conversion (and the OS's max RSS for the process). */
  peakRssBytes: number;
  maxRssBytes: number;
  /** Source tensor bytes read. */
  bytesIn: number;
  seconds: number;
}

const MIB = 2 ** 20;

function paramsFor(mode: QuantMode, o: ConvertOptions): QuantParams | null {
  if (mode !== 'int4' && mode !== 'int8') return null;
  const bits = mode === 'int4' ? 4 : 8;
  return { bits, block: o.blockSize ?? 32, symmetric: o.symmetric ?? bits === 8, ...(o.mseSearch ? { mseSearch: true } : {}) };
}

const WO_NAME = /(^|[^a-z0-9])wo([^a-z0-9]|$)/i;
/** The output projection, which maps straight to the predicted velocity. */
export const OUTPUT_INT8_LAYERS = '^/?(proj_out|final_layer)[./]';

/** Keep the conditioning layers in int8 only while they cost at most this share of the MatMul weights. */
const INT8_LAYERS_MAX_SHARE = 0.02;

/**
 * Default int8 layers of an int4 transformer: the conditioning and embedding layers plus the output projection
 * (as community int4 FLUX builds do) when they are a small share of the weights — ~0.4% in FLUX.1 — else only the
 * output projection, so a small model still gets int4's size. Shares are by weight elements of constant-weight
 * MatMul/Gemm nodes.
 */
export function defaultInt8Layers(g: ComponentGraph): string {
  const re = new RegExp(DEFAULT_INT8_LAYERS, 'i');
  let total = 0;
  let kept = 0;
  for (const n of g.nodes) {
    if (n.opType !== 'MatMul' && n.opType !== 'Gemm') continue;
    const w = g.inits.get(n.input?.[1] ?? '');
    if (!w) continue;
    const size = w.dims.reduce((a, b) => a * b, 1);
    total += size;
    if (re.test(n.name ?? '') || re.test(w.name)) kept += size;
  }
  return total > 0 && kept / total <= INT8_LAYERS_MAX_SHARE ? DEFAULT_INT8_LAYERS : OUTPUT_INT8_LAYERS;
}

/** Components with more weights than this are split into stages (0 disables). */
export const DEFAULT_MAX_STAGE_MB = 512;

/** diffusers and BFL names of the FLUX conditioning/embedding/output layers. */
export const DEFAULT_INT8_LAYERS = '^/?(time_text_embed|time_in|vector_in|guidance_in|x_embedder|context_embedder|img_in|txt_in|proj_out|norm_out|final_layer)[./]';

function fileSha(path: string): Promise<{ size: number; sha256: string }> {
  return readFile(path).then((b) => ({ size: b.length, sha256: createHash('sha256').update(b).digest('hex') }));
}

/**
 * Convert into a temporary sibling of --out and rename it into place on success, so a failed run (bad input,
 * full disk, Ctrl-C) never destroys the pack already there (see preflight.ts).
 */
export async function convertPack(options: ConvertOptions): Promise<ConvertResult> {
  const output: { work?: string } = {};
  try {
    const result = await convertInto(options, output);
    commitOutput(output.work!, resolve(options.out));
    return result;
  } catch (e) {
    if (output.work) discardOutput(output.work);
    throw e;
  }
}

async function convertInto(options: ConvertOptions, output: { work?: string }): Promise<ConvertResult> {
  const t0 = performance.now();
  const log = options.log ?? (() => {});
  let peakRss = process.memoryUsage.rss();
  const sample = () => {
    const r = process.memoryUsage.rss();
    if (r > peakRss) peakRss = r;
  };
  const timer = setInterval(sample, 50);
  timer.unref();
  const out = resolve(options.out);
  const shardBytes = Math.floor((options.shardMb ?? 512) * MIB);
  if (!(shardBytes >= 4096)) throw new Error('--shard-mb must be at least 4 KiB');
  if ((options.clip === undefined) !== (options.t5 === undefined)) throw new Error('--clip and --t5 go together (the pipeline needs both text encoders)');
  if (options.clip && !options.tokenizers) throw new Error('--clip/--t5 need --tokenizers <dir> with tokenizer/ and tokenizer_2/ folders');
  if (options.safetyConfigFile && !options.safetyChecker) throw new Error('--safety-config goes with --safety-checker <onnx>');
  // Resolve the checker's config before any work, so a bad one fails at once.
  const safetyConfig = options.safetyChecker ? (options.safetyConfig ?? loadSafetyCheckerConfig(options.safetyChecker, options.safetyConfigFile)) : undefined;
  if (options.activations !== undefined && options.activations !== 'fp32' && options.activations !== 'fp16') {
    throw new Error(`--activations must be fp32 or fp16, got "${String(options.activations)}"`);
  }
  const transformerMode = options.transformerQuant ?? options.quant;
  if (options.activations === 'fp16' && transformerMode !== 'int4' && transformerMode !== 'int8') {
    throw new Error(`--activations fp16 goes with an int4/int8 transformer (got ${transformerMode}); for fp16 weights and activations use --quant fp16`);
  }
  const blk = options.blockSize ?? 32;
  if (![16, 32, 64, 128, 256].includes(blk)) throw new Error('--block-size must be 16, 32, 64, 128 or 256');

  const components: [ComponentName, string, QuantMode][] = [
    ['transformer', options.transformer, options.transformerQuant ?? options.quant],
    ['vae_decoder', options.vaeDecoder, options.vaeQuant ?? 'fp32'],
  ];
  if (options.clip) components.push(['clip', options.clip, options.clipQuant ?? options.quant]);
  if (options.t5) components.push(['t5', options.t5, options.t5Quant ?? options.quant]);
  if (options.safetyChecker) components.push(['safety_checker', options.safetyChecker, options.safetyQuant ?? 'int8']);

  // Every input is checked before the first component is converted; the pack is written to `work`.
  const models = checkGraphs(components.map(([name, src]) => [name, src] as const));
  if (options.tokenizers) checkTokenizers(options.tokenizers);
  const work = (output.work = prepareOutput(out));

  const files: WrittenFile[] = [];
  const specs: Partial<Record<ComponentName, ComponentSpec>> = {};
  const reports: ComponentReport[] = [];
  let bytesIn = 0;

  for (const [name, src, mode] of components) {
    log(`${name}: reading ${src}`);
    const model = models.get(name) ?? readModel(src);
    sample();
    const g: ComponentGraph = buildComponentGraph(model);
    const origIo = new Map<string, number>();
    for (const v of [...g.inputs, ...g.outputs]) origIo.set(v.name ?? '', valueInfoElemType(v) ?? 0);
    const { hadBf16 } = normalizeFloats(g);
    const attention = name === 'transformer' || name === 'vae_decoder' ? rewriteAttention(g, options.attention ?? 'chunked', options.attentionChunks ?? DEFAULT_ATTENTION_CHUNKS) : undefined;

    let quantized: QuantizedMatMul[] = [];
    let embeddings: QuantizedEmbedding[] = [];
    let fp16: Fp16Report | Fp16ActivationsReport | undefined;
    const params = paramsFor(mode, options);
    // The safety checker keeps fp32 activations (small; its scores decide what is shown).
    const fp16Act = options.activations === 'fp16' && !!params && name !== 'safety_checker';
    if (params) {
      const woMode = options.t5Wo ?? (params.bits === 4 ? 'int8' : 'same');
      const search = options.mseSearch ? { mseSearch: true } : {};
      const woParams: QuantParams | null = woMode === 'fp32' ? null : woMode === 'int8' ? { bits: 8, block: params.block, symmetric: options.symmetric ?? true, ...search } : params;
      let woFallback = false;
      if (name === 't5') woFallback = !g.nodes.some((n) => (n.opType === 'MatMul' || n.opType === 'Gemm') && (WO_NAME.test(n.name ?? '') || WO_NAME.test(n.input?.[1] ?? '')));
      const int8Src = name === 'transformer' ? (options.int8Layers ?? defaultInt8Layers(g)) : '';
      const int8Re = int8Src ? new RegExp(int8Src, 'i') : null;
      const int8Params: QuantParams = { bits: 8, block: params.block, symmetric: options.symmetric ?? true, ...search };
      const policy: QuantPolicy = ({ node, weight, K, N }) => {
        if (name === 't5' && (WO_NAME.test(node.name ?? '') || WO_NAME.test(weight) || (woFallback && K > N))) return woParams;
        if (params.bits === 4 && int8Re && (int8Re.test(node.name ?? '') || int8Re.test(weight))) return int8Params;
        return params;
      };
      quantized = quantizeMatMuls(g, policy);
      const minEl = options.embeddingMinElements ?? 1 << 20;
      if (minEl > 0) embeddings = quantizeEmbeddings(g, minEl);
      if (fp16Act) fp16 = convertActivationsToFp16(g, { component: name, ioTypes: new Map([...origIo].map(([k, t]) => [k, t === DT.FLOAT16 ? DT.FLOAT16 : DT.FLOAT])) });
    } else if (mode === 'fp16') {
      const ioTypes = new Map<string, number>();
      for (const [k, t] of origIo) ioTypes.set(k, t === DT.FLOAT16 ? DT.FLOAT16 : DT.FLOAT);
      fp16 = convertToFp16(g, { component: name, ioTypes });
    }
    pruneInits(g);
    const floatMatMuls = g.nodes.filter((n) => (n.opType === 'MatMul' || n.opType === 'Gemm') && g.inits.has(n.input?.[1] ?? '')).length;
    g.nodes = topoSort(g.nodes, new Set([...g.inputs.map((i) => i.name ?? ''), ...g.inits.keys()]));

    const dir = join(work, name);
    const maxSource = Math.max(0, ...[...g.inits.values()].map((i) => (i.job.source.source.kind === 'file' ? i.job.source.byteLength : 0)));
    const ctx = makeJobContext(maxSource, options.reconRows ?? 4);
    ctx.onJob = () => sample();
    const written: WrittenGraph[] = [];
    let stageWeights: number[] = [];
    const weightsName = mode === 'int4' ? 'int4' : mode === 'int8' ? 'int8' : mode === 'fp16' ? 'float16' : 'float32';
    const spec: ComponentSpec = { dtype: 'float32', weights: weightsName, requiredFeatures: mode === 'fp16' || fp16Act ? ['shader-f16'] : [] };
    // The capacity check reads this (src/runtime/activation-memory.ts): fused only when no attention was left as is.
    if (attention?.sites.length) Object.assign(spec, attention.mode === 'chunked' && attention.chunks > 1 && !attention.skipped.length ? { attention: 'fused', attentionChunks: attention.chunks } : { attention: 'unfused' });
    const base = { name: g.name, opsetImport: g.opsetImport, irVersion: g.irVersion };
    // Any component over the stage budget is split: a session's external data is read whole by onnxruntime-web's
    // asyncify build, so a stage bounds the JS memory one session load needs (docs/runtime.md).
    const stageMb = options.maxStageMb ?? DEFAULT_MAX_STAGE_MB;
    const stages = stageMb > 0 ? partition(g, stageMb * MIB, inferTypes(g)) : [];
    if (stages.length > 1) {
      stageWeights = stages.map((s) => s.weightBytes);
      log(`${name}: ${stages.length} stages, weights ${stageWeights.map((b) => (b / MIB).toFixed(1)).join(' / ')} MiB`);
      stages.forEach((st, k) => {
        written.push(writeGraph({ ...base, nodes: st.nodes, inputs: st.inputs, outputs: st.outputs, inits: st.inits }, dir, name, `stage${k}.onnx`, shardBytes, ctx));
        sample();
      });
      spec.stages = written.map((w) => ({ graph: w.graph.path, ...(w.externalData.length ? { externalData: w.externalData } : {}) }));
    } else {
      const w = writeGraph({ ...base, nodes: g.nodes, inputs: g.inputs, outputs: g.outputs, inits: [...g.inits.values()] }, dir, name, 'model.onnx', shardBytes, ctx);
      written.push(w);
      stageWeights = [w.weightBytes];
      spec.graph = w.graph.path;
      if (w.externalData.length) spec.externalData = w.externalData;
    }
    bytesIn += ctx.bytesIn;
    const maxTensor = Math.max(0, ...written.map((w) => w.maxTensorBytes));
    if (maxTensor > 0) spec.maxTensorBytes = maxTensor;
    const compFiles = written.flatMap((w) => [w.graph, ...w.data]);
    files.push(...compFiles);

    const floatIo = [...g.inputs, ...g.outputs].map((v) => valueInfoElemType(v)).filter((t) => isFloatType(t));
    spec.dtype = floatIo.includes(DT.FLOAT16) ? 'float16' : 'float32';
    if (name === 'clip' && g.outputs.length > 1) {
      const pooled = ['pooler_output', 'pooled_embeddings', 'pooled_output', 'text_embeds'].find((p) => g.outputs.some((o) => o.name === p));
      if (pooled) spec.outputs = { pooled };
    }
    if (name === 't5' && g.outputs.length > 1) {
      const h = ['last_hidden_state', 'text_embeddings', 'hidden_states'].find((p) => g.outputs.some((o) => o.name === p));
      if (h) spec.outputs = { last_hidden_state: h };
    }
    specs[name] = name === 'safety_checker' ? { ...spec, ...safetyConfig! } : spec;

    // Statistics.
    let recon = emptyStats();
    let worst: { weight: string; relError: number } | undefined;
    const jobStats = new Map<number, ReconStats>();
    for (const job of g.jobs) if (job.stats) jobStats.set(job.id, job.stats);
    for (const q of quantized) {
      const s = jobStats.get(q.job);
      if (!s) continue;
      recon = mergeStats(recon, s);
      const r = relError(s);
      q.relError = r;
      if (!worst || r > worst.relError) worst = { weight: q.weight, relError: r };
    }
    const matmulBefore = quantized.reduce((s, q) => s + q.bytesBefore, 0) + embeddings.reduce((s, e) => s + e.bytesBefore, 0);
    const matmulAfter = quantized.reduce((s, q) => s + q.bytesAfter, 0) + embeddings.reduce((s, e) => s + e.bytesAfter, 0);
    const report: ComponentReport = {
      component: name,
      source: src,
      mode,
      bytesBefore: model.weightBytes,
      bytesAfter: written.reduce((s, w) => s + w.weightBytes, 0),
      filesBytes: compFiles.reduce((s, f) => s + f.size, 0),
      matmulBytesBefore: matmulBefore,
      matmulBytesAfter: matmulAfter,
      quantized,
      floatMatMuls,
      embeddings,
      recon: { ...recon, relError: relError(recon), cosine: cosine(recon), ...(worst ? { worst } : {}) },
      sourceHadBf16: hadBf16,
      stages: written.length,
      stageWeightBytes: stageWeights,
      dtype: spec.dtype,
      files: compFiles,
      ...(fp16 ? { fp16 } : {}),
      ...(attention ? { attention } : {}),
    };
    const verifyMb = options.verifyMb ?? 2048;
    if (model.weightBytes <= verifyMb * MIB) {
      try {
        const vocab = name === 'clip' || name === 't5' ? largestGatherTable(model) : undefined;
        report.verify = await verifyComponent(
          model.path,
          written.map((w) => join(work, w.graph.path)),
          { component: name, ...(vocab ? { vocab } : {}), ...(name === 'safety_checker' ? { pixelShape: pixelShape(safetyConfig!) } : {}) },
        );
      } catch (e) {
        report.verify = { skipped: `ORT comparison failed: ${(e as Error).message.split('\n')[0]}` };
      }
      sample();
    } else {
      report.verify = { skipped: `original weights ${(model.weightBytes / MIB).toFixed(0)} MiB > --verify-mb ${verifyMb}; see the per-MatMul reconstruction error` };
    }
    reports.push(report);
    log(formatComponent(report));
  }

  // Tokenizers.
  const tokenizers: NonNullable<PackManifest['tokenizers']> = {};
  if (options.clip && options.tokenizers) {
    for (const [key, folder] of [['clip', 'tokenizer'], ['t5', 'tokenizer_2']] as const) {
      const srcDir = join(options.tokenizers, folder);
      const tj = join(srcDir, 'tokenizer.json');
      if (!existsSync(tj)) {
        throw new Error(
          `${tj} is missing. ${key === 'clip' ? 'Make it from vocab.json/merges.txt with: python -c "from transformers import CLIPTokenizerFast; CLIPTokenizerFast.from_pretrained(\'' + srcDir + '\').save_pretrained(\'' + srcDir + '\')"' : 'The FLUX.1-schnell repo ships tokenizer_2/tokenizer.json.'}`,
        );
      }
      mkdirSync(join(work, folder), { recursive: true });
      const spec: { tokenizer: string; config?: string } = { tokenizer: `${folder}/tokenizer.json` };
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
        const p = join(srcDir, f);
        if (!existsSync(p)) continue;
        copyFileSync(p, join(work, folder, f));
        files.push({ path: `${folder}/${f}`, ...(await fileSha(p)) });
        if (f === 'tokenizer_config.json') spec.config = `${folder}/${f}`;
      }
      tokenizers[key] = spec;
    }
  }

  const summary = reports.map((r) => `${r.component} ${r.mode === 'fp32' ? 'float32' : r.mode === 'fp16' ? 'float16' : r.mode}`).join(', ');
  const intNote = reports.some((r) => r.mode === 'int4' || r.mode === 'int8')
    ? ` MatMul weights as com.microsoft MatMulNBits (block ${blk}, float32 scales${options.symmetric === undefined ? '' : options.symmetric ? ', symmetric' : ', with zero points'}); all other compute in float32, so int4/int8 components run without shader-f16.`
    : '';
  const manifest: PackManifest = {
    format: 'flux-webgpu-pack',
    formatVersion: 1,
    id: options.id ?? (basename(out).toLowerCase().replace(/[^a-z0-9._-]/g, '-').replace(/^[^a-z0-9]+/, '') || 'flux-pack'),
    name: options.name ?? `FLUX.1 [schnell] (${summary})`,
    description: options.description ?? `FLUX.1 [schnell] converted by flux-webgpu (npm run pack): ${summary}.${intNote}`,
    model: 'flux.1-schnell',
    ...(options.testPack ? { testPack: true } : {}),
    license: options.license ?? 'Apache-2.0',
    files: [...files].sort((a, b) => a.path.localeCompare(b.path)),
    components: specs as PackManifest['components'],
    ...(Object.keys(tokenizers).length ? { tokenizers } : {}),
  };
  parseManifest(JSON.parse(JSON.stringify(manifest)));
  writeFileSync(join(work, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  clearInterval(timer);
  sample();
  const seconds = (performance.now() - t0) / 1000;
  return {
    report: { out, manifest, components: reports, totalBytes: manifest.files.reduce((s, f) => s + f.size, 0) },
    peakRssBytes: peakRss,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    bytesIn,
    seconds,
  };
}

/** The classifier's input shape for one image. */
function pixelShape(c: SafetyCheckerConfig): number[] {
  const p = resolvedPreprocess(c.preprocess);
  return p.layout === 'NCHW' ? [1, 3, p.height, p.width] : [1, p.height, p.width, 3];
}

function largestGatherTable(m: ReturnType<typeof readModel>): number | undefined {
  let best: number | undefined;
  let bestSize = 0;
  for (const n of m.graph.node ?? []) {
    if (n.opType !== 'Gather') continue;
    const t = m.initializers.get(n.input?.[0] ?? '');
    if (t && t.dims.length === 2 && t.byteLength > bestSize) {
      bestSize = t.byteLength;
      best = t.dims[0];
    }
  }
  return best;
}

export function fmtBytes(b: number): string {
  if (b >= 2 ** 30) return `${(b / 2 ** 30).toFixed(2)} GiB`;
  if (b >= MIB) return `${(b / MIB).toFixed(1)} MiB`;
  return `${(b / 1024).toFixed(1)} KiB`;
}

export function formatComponent(r: ComponentReport): string {
  const lines: string[] = [];
  const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}×` : '–');
  lines.push(`${r.component} [${r.mode}${r.sourceHadBf16 ? ', bf16 source → fp32' : ''}${r.stages > 1 ? `, ${r.stages} stages` : ''}]: weights ${fmtBytes(r.bytesBefore)} → ${fmtBytes(r.bytesAfter)} (${ratio(r.bytesBefore, r.bytesAfter)}), ${r.files.length} files ${fmtBytes(r.filesBytes)}`);
  if (r.quantized.length || r.embeddings.length) {
    const bits = [...new Set(r.quantized.map((q) => `int${q.params.bits}/b${q.params.block}${q.params.symmetric ? ' sym' : ' asym'}`))].join(', ');
    lines.push(`  MatMul weights: ${r.quantized.length} matrices (${bits})${r.floatMatMuls ? `, ${r.floatMatMuls} left float` : ''}${r.embeddings.length ? ` + ${r.embeddings.length} int8 embedding table(s)` : ''}: ${fmtBytes(r.matmulBytesBefore)} → ${fmtBytes(r.matmulBytesAfter)} (${ratio(r.matmulBytesBefore, r.matmulBytesAfter)})`);
    if (r.recon.count) {
      lines.push(`  per-MatMul reconstruction ‖xW − xŴ‖/‖xW‖ on random x: ${r.recon.relError.toExponential(3)} overall, cos ${r.recon.cosine.toFixed(6)}`);
      const worst = [...r.quantized].filter((q) => q.relError !== undefined).sort((a, b) => b.relError! - a.relError!).slice(0, 3);
      if (worst.length) lines.push(`  worst: ${worst.map((q) => `${q.node || q.weight} [${q.K}×${q.N}, int${q.params.bits}] ${q.relError!.toExponential(2)}`).join('; ')}`);
    }
  }
  if (r.fp16) lines.push(`  fp16: ${r.fp16.fp16Nodes} nodes fp16, ${r.fp16.fp32Nodes} kept fp32 (${Object.entries(r.fp16.keptReasons).map(([k, v]) => `${k} ${v}`).join(', ')}), ${r.fp16.casts} casts`);
  if (r.fp16 && 'clamps' in r.fp16) lines.push(`  fp16 activations: MatMulNBits ${r.fp16.nbitsFp16} fp16 / ${r.fp16.nbitsFp32} fp32, ${r.fp16.clamps} residual clamps (±65504)`);
  if (r.attention) lines.push(`  attention: ${r.attention.mode}${r.attention.mode === 'chunked' ? ` (${r.attention.chunks} query chunks)` : ''}, ${r.attention.sites.length} site(s)${r.attention.skipped.length ? `, ${r.attention.skipped.length} Softmax left as is (${[...new Set(r.attention.skipped.map((x) => x.reason))].join('; ')})` : ''}`);
  if (r.stages > 1) lines.push(`  stage weights: ${r.stageWeightBytes.map(fmtBytes).join(' / ')}`);
  if (r.verify && 'skipped' in r.verify) lines.push(`  verify: skipped (${r.verify.skipped})`);
  else if (r.verify) {
    const shapes = Object.entries(r.verify.inputs).map(([k, v]) => `${k}[${v.join(',')}]`).join(' ');
    for (const o of r.verify.outputs) {
      lines.push(`  verify ${o.output} vs original (ORT CPU, random ${shapes}): max abs ${o.maxAbs.toExponential(3)}, mean abs ${o.meanAbs.toExponential(3)}, cos ${o.cosine.toFixed(6)}`);
    }
  }
  return lines.join('\n');
}

export function formatResult(r: ConvertResult): string {
  const gb = r.bytesIn / 1e9;
  return [
    ...r.report.components.map(formatComponent),
    `pack: ${r.report.out} (${r.report.manifest.files.length} files, ${fmtBytes(r.report.totalBytes)})`,
    `read ${gb.toFixed(3)} GB of source tensors in ${r.seconds.toFixed(1)} s (${(gb / r.seconds).toFixed(3)} GB/s)`,
    `peak RSS ${fmtBytes(r.peakRssBytes)} sampled, ${fmtBytes(r.maxRssBytes)} max RSS (OS)`,
  ].join('\n');
}

export { DT_NAME };
