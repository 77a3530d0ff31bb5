/**
 * How much GPU memory a generation's activations need, per component, as a function of batch and image size:
 * the largest single buffer (it must fit `maxBufferSize` and one storage binding) and the total that is live at
 * that moment (it must fit the memory budget next to the weights). Weights are capacity.ts's business.
 *
 * The figures are a model of the exported graphs, not a measurement: the tensors that must coexist at each
 * component's worst point, in the activation dtype. Unfused attention materialises the scores [B, heads, S, S]
 * and the softmax of them; a fused kernel (com.microsoft MultiHeadAttention and kin, flash attention on WebGPU)
 * never does. ORT's allocator may hold more than this (it pools freed buffers), so the total is a lower bound of
 * what the run needs, while the peak buffer is exact for the exported ops.
 */
import { readOnnxGraph, type OnnxGraphInfo } from '../onnx/proto-reader.js';
import { componentGraphs, type ComponentName, type ComponentSpec } from '../pack/manifest.js';
import { toBytes, type PackSource } from '../storage/pack-source.js';

export type AttentionKind = 'fused' | 'unfused';

export interface TransformerArch {
  hidden: number;
  heads: number;
  /** MLP width of the double blocks (FLUX: 4 × hidden). */
  mlpHidden: number;
  attention: AttentionKind;
}

export interface VaeDecoderArch {
  /** Channels of each decoder up block, lowest resolution first (FLUX: 512, 512, 256, 128). */
  blockChannels: number[];
  /** Up blocks that end with a 2× upsampler (FLUX: all but the last). */
  upsamples: boolean[];
  /** Channels at the mid block (its attention runs over every latent pixel). */
  midChannels: number;
  attention: AttentionKind;
}

export interface TextEncoderArch {
  hidden: number;
  heads: number;
  mlpHidden: number;
  attention: AttentionKind;
}

/** The safety checker runs at a fixed input size (ViT: 224² → 197 tokens), independent of the image size. */
export interface SafetyCheckerArch extends TextEncoderArch {
  tokens: number;
}

export interface ActivationArchs {
  transformer: TransformerArch;
  vae_decoder: VaeDecoderArch;
  clip?: TextEncoderArch;
  t5?: TextEncoderArch;
  safety_checker?: SafetyCheckerArch;
}

/** FLUX.1 [schnell] (docs/flux-pipeline.md §9): what a graph that does not tell us is assumed to be. */
export const FLUX_SCHNELL_ARCHS: Required<ActivationArchs> = {
  transformer: { hidden: 3072, heads: 24, mlpHidden: 12288, attention: 'unfused' },
  vae_decoder: { blockChannels: [512, 512, 256, 128], upsamples: [true, true, true, false], midChannels: 512, attention: 'unfused' },
  clip: { hidden: 768, heads: 12, mlpHidden: 3072, attention: 'unfused' },
  t5: { hidden: 4096, heads: 64, mlpHidden: 10240, attention: 'unfused' },
  safety_checker: { hidden: 768, heads: 12, mlpHidden: 3072, attention: 'unfused', tokens: 197 },
};

export interface ActivationShape {
  batch: number;
  /** Image size in pixels. */
  width: number;
  height: number;
  /** Text tokens the transformer attends to (T5 length), and CLIP's fixed length. */
  t5Length: number;
  clipLength: number;
  /** Pixels per latent pixel (FLUX VAE: 8). */
  vaeScaleFactor: number;
  /** Bytes per activation value (fp32: 4, fp16: 2). */
  bytesPerValue?: number;
}

export interface ComponentActivations {
  component: ComponentName;
  /** The largest single tensor, in bytes, and what it is (for messages). */
  peakBufferBytes: number;
  peakTensor: string;
  /** Activations live together at the component's worst point, in bytes. */
  totalBytes: number;
}

const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

function tensor(name: string, dims: number[], bpv: number): { name: string; bytes: number } {
  return { name: `${name} [${dims.join(', ')}]`, bytes: prod(dims) * bpv };
}

function largest(ts: { name: string; bytes: number }[]): { name: string; bytes: number } {
  return ts.reduce((a, b) => (b.bytes > a.bytes ? b : a));
}

/**
 * FLUX transformer. Joint attention runs over S = image tokens + text tokens; a single block's fused input
 * projection produces [B, S, 3·hidden + mlpHidden] (q, k, v and the MLP at once).
 */
export function transformerActivations(a: TransformerArch, s: ActivationShape): ComponentActivations {
  const bpv = s.bytesPerValue ?? 4;
  const B = s.batch;
  const img = (s.height / (2 * s.vaeScaleFactor)) * (s.width / (2 * s.vaeScaleFactor));
  const S = img + s.t5Length;
  const residual = tensor('hidden states', [B, S, a.hidden], bpv);
  const qkvMlp = tensor('single-block projection', [B, S, 3 * a.hidden + a.mlpHidden], bpv);
  const mlp = tensor('MLP intermediate', [B, img, a.mlpHidden], bpv);
  const candidates = [residual, qkvMlp, mlp];
  // At the attention of a single block: its input, the projection, q/k/v split out and roped, and the scores
  // with their softmax (unfused), or the attention output (fused).
  let total = 2 * residual.bytes + qkvMlp.bytes + 3 * residual.bytes;
  if (a.attention === 'unfused') {
    const scores = tensor('attention scores', [B, a.heads, S, S], bpv);
    candidates.push(scores);
    total += 2 * scores.bytes;
  } else total += residual.bytes;
  const peak = largest(candidates);
  return { component: 'transformer', peakBufferBytes: peak.bytes, peakTensor: `transformer ${peak.name}`, totalBytes: Math.max(total, peak.bytes) };
}

/**
 * VAE decoder: the mid block (one attention over every latent pixel) at the latent size, then up blocks that double
 * the resolution. A block's first convolution still sees the previous block's channels at the new resolution, so
 * the largest feature map is often the last upsampler's output (FLUX at 1024²: 256 ch × 1024² fp32 = 1 GiB).
 */
export function vaeDecoderActivations(a: VaeDecoderArch, s: ActivationShape): ComponentActivations {
  const bpv = s.bytesPerValue ?? 4;
  const B = s.batch;
  let h = s.height / s.vaeScaleFactor;
  let w = s.width / s.vaeScaleFactor;
  const maps: { name: string; bytes: number }[] = [tensor('mid-block feature map', [B, a.midChannels, h, w], bpv)];
  let prev = a.midChannels;
  a.blockChannels.forEach((c, i) => {
    maps.push(tensor(`up block ${i} input`, [B, prev, h, w], bpv), tensor(`up block ${i} feature map`, [B, c, h, w], bpv));
    if (a.upsamples[i]) {
      h *= 2;
      w *= 2;
      maps.push(tensor(`up block ${i} upsampled`, [B, c, h, w], bpv));
    }
    prev = c;
  });
  maps.push(tensor('image', [B, 3, s.height, s.width], bpv));
  const biggestMap = largest(maps);
  // A resnet at the largest map holds its input, the normalised copy and the convolution's output.
  let total = 3 * biggestMap.bytes;
  const candidates = [...maps];
  const tokens = (s.height / s.vaeScaleFactor) * (s.width / s.vaeScaleFactor);
  if (a.attention === 'unfused') {
    const scores = tensor('mid-block attention scores', [B, 1, tokens, tokens], bpv);
    candidates.push(scores);
    total = Math.max(total, 2 * scores.bytes + 4 * maps[0]!.bytes);
  }
  const peak = largest(candidates);
  return { component: 'vae_decoder', peakBufferBytes: peak.bytes, peakTensor: `VAE decoder ${peak.name}`, totalBytes: total };
}

/** A transformer encoder over a fixed number of tokens (text encoders at batch 1, the ViT safety checker at B). */
function encoderActivations(component: ComponentName, label: string, a: TextEncoderArch, batch: number, tokens: number, bpv: number): ComponentActivations {
  const residual = tensor('hidden states', [batch, tokens, a.hidden], bpv);
  const mlp = tensor('MLP intermediate', [batch, tokens, a.mlpHidden], bpv);
  const candidates = [residual, mlp];
  let total = 5 * residual.bytes + mlp.bytes;
  if (a.attention === 'unfused') {
    const scores = tensor('attention scores', [batch, a.heads, tokens, tokens], bpv);
    candidates.push(scores);
    total += 2 * scores.bytes;
  }
  const peak = largest(candidates);
  return { component, peakBufferBytes: peak.bytes, peakTensor: `${label} ${peak.name}`, totalBytes: total };
}

/** Every component's activations for one request. Text encoders always run at batch 1 (one prompt per request). */
export function activationsFor(archs: ActivationArchs, s: ActivationShape): ComponentActivations[] {
  const bpv = s.bytesPerValue ?? 4;
  const out: ComponentActivations[] = [];
  if (archs.clip) out.push(encoderActivations('clip', 'CLIP', archs.clip, 1, s.clipLength, bpv));
  if (archs.t5) out.push(encoderActivations('t5', 'T5', archs.t5, 1, s.t5Length, bpv));
  out.push(transformerActivations(archs.transformer, s), vaeDecoderActivations(archs.vae_decoder, s));
  if (archs.safety_checker) out.push(encoderActivations('safety_checker', 'safety checker', archs.safety_checker, s.batch, archs.safety_checker.tokens, bpv));
  return out;
}

// ---- architecture from the graphs ----------------------------------------------------------------------------

/** Ops whose WebGPU kernels compute attention without materialising the scores. */
const FUSED_ATTENTION_OPS = new Set(['MultiHeadAttention', 'Attention', 'GroupQueryAttention', 'PackedMultiHeadAttention']);

/** The first initializer whose name matches, as its first dimension (biases and norm scales survive quantization). */
function dim0(graphs: readonly OnnxGraphInfo[], pattern: RegExp): number | null {
  for (const g of graphs) for (const t of g.initializers) if (pattern.test(t.name) && t.dims.length >= 1) return t.dims[0]!;
  return null;
}

/**
 * Fused when the manifest says so (`components.<name>.attention: 'fused'`, written by the converter's attention
 * pass), or when the graphs contain a fused attention op and no Softmax; unfused otherwise.
 */
export function attentionKind(graphs: readonly OnnxGraphInfo[], declared?: unknown): AttentionKind {
  if (declared === 'fused' || declared === 'unfused') return declared;
  const ops = new Set(graphs.flatMap((g) => g.nodes.map((n) => n.opType)));
  return [...FUSED_ATTENTION_OPS].some((o) => ops.has(o)) && !ops.has('Softmax') ? 'fused' : 'unfused';
}

/**
 * Read the dimensions that decide activation sizes from a component's graphs (all its stages), by the parameter
 * names of diffusers' and BFL's exports; whatever cannot be read falls back to FLUX.1 [schnell]'s value, so an
 * unrecognised graph is judged as the full-size model (the safe side).
 */
export function inferTransformerArch(graphs: readonly OnnxGraphInfo[], declaredAttention?: unknown): TransformerArch {
  const d = FLUX_SCHNELL_ARCHS.transformer;
  const hidden = dim0(graphs, /(^|\.)(x_embedder|img_in)\.bias$/) ?? d.hidden;
  const headDim = dim0(graphs, /\.(norm_q\.weight|query_norm\.scale)$/);
  const mlpHidden = dim0(graphs, /\.(ff\.net\.0\.proj|img_mlp\.0)\.bias$/) ?? 4 * hidden;
  return { hidden, heads: headDim ? Math.max(1, Math.round(hidden / headDim)) : d.heads, mlpHidden, attention: attentionKind(graphs, declaredAttention) };
}

export function inferVaeDecoderArch(graphs: readonly OnnxGraphInfo[], declaredAttention?: unknown): VaeDecoderArch {
  const d = FLUX_SCHNELL_ARCHS.vae_decoder;
  const names = graphs.flatMap((g) => g.initializers);
  // diffusers: up_blocks.0 is the lowest resolution; BFL/original: decoder.up.0 is the highest.
  const diffusers = new Map<number, number>();
  const diffusersUp = new Set<number>();
  const bfl = new Map<number, number>();
  const bflUp = new Set<number>();
  for (const t of names) {
    let m = /(?:^|\.)up_blocks\.(\d+)\.resnets\.0\.conv2\.bias$/.exec(t.name);
    if (m) diffusers.set(Number(m[1]), t.dims[0]!);
    m = /(?:^|\.)up_blocks\.(\d+)\.upsamplers\.0\.conv\.(weight|bias)$/.exec(t.name);
    if (m) diffusersUp.add(Number(m[1]));
    m = /(?:^|\.)decoder\.up\.(\d+)\.block\.0\.conv2\.bias$/.exec(t.name);
    if (m) bfl.set(Number(m[1]), t.dims[0]!);
    m = /(?:^|\.)decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)$/.exec(t.name);
    if (m) bflUp.add(Number(m[1]));
  }
  const midChannels = dim0(graphs, /(mid_block\.attentions\.0\.to_q|decoder\.mid\.attn_1\.q)\.bias$/) ?? d.midChannels;
  const attention = attentionKind(graphs, declaredAttention);
  if (diffusers.size) {
    const idx = [...diffusers.keys()].sort((a, b) => a - b);
    return { blockChannels: idx.map((i) => diffusers.get(i)!), upsamples: idx.map((i) => diffusersUp.has(i)), midChannels, attention };
  }
  if (bfl.size) {
    const idx = [...bfl.keys()].sort((a, b) => b - a);
    return { blockChannels: idx.map((i) => bfl.get(i)!), upsamples: idx.map((i) => bflUp.has(i)), midChannels, attention };
  }
  return { ...d, midChannels, attention };
}

export function inferEncoderArch(component: 'clip' | 't5', graphs: readonly OnnxGraphInfo[], declaredAttention?: unknown): TextEncoderArch {
  const d = FLUX_SCHNELL_ARCHS[component];
  const hidden =
    component === 'clip'
      ? dim0(graphs, /(^|\.)(final_layer_norm|layer_norm1)\.weight$/)
      : dim0(graphs, /(^|\.)final_layer_norm\.weight$/);
  const mlpHidden = component === 'clip' ? dim0(graphs, /\.mlp\.fc1\.bias$/) : null;
  const h = hidden ?? d.hidden;
  // T5 stores one relative-position bias per head ([buckets, heads]); CLIP's heads are not a parameter, so keep
  // the real model's head width (64).
  const t5Heads = component === 't5' ? graphs.flatMap((g) => g.initializers).find((t) => /relative_attention_bias\.weight$/.test(t.name) && t.dims.length === 2)?.dims[1] : undefined;
  return { hidden: h, heads: t5Heads ?? Math.max(1, Math.round(h / 64)), mlpHidden: mlpHidden ?? Math.round((h * d.mlpHidden) / d.hidden), attention: attentionKind(graphs, declaredAttention) };
}

export function inferSafetyCheckerArch(graphs: readonly OnnxGraphInfo[], declaredAttention?: unknown): SafetyCheckerArch {
  const d = FLUX_SCHNELL_ARCHS.safety_checker;
  const hidden = dim0(graphs, /(^|\.)(layernorm|layer_norm|final_layer_norm)\.weight$/) ?? d.hidden;
  const tokens = dim0(graphs.map((g) => ({ ...g, initializers: g.initializers.filter((t) => t.dims.length === 3).map((t) => ({ ...t, dims: [t.dims[1]!] })) })), /position_embeddings$/) ?? d.tokens;
  return { hidden, heads: Math.max(1, Math.round(hidden / 64)), mlpHidden: dim0(graphs, /\.intermediate\.dense\.bias$/) ?? 4 * hidden, attention: attentionKind(graphs, declaredAttention), tokens };
}

/**
 * The pack's activation architectures, read from its graph files (never the external data). A component's
 * manifest entry may declare `attention: 'fused' | 'unfused'`; absent, the graphs decide (attentionKind).
 */
export async function packActivationArchs(source: PackSource): Promise<ActivationArchs> {
  const { components } = source.manifest;
  const graphsOf = async (spec: ComponentSpec) => Promise.all(componentGraphs(spec).map(async (g) => readOnnxGraph(await toBytes(await source.getFile(g.graph)))));
  const declared = (spec: ComponentSpec) => (spec as { attention?: unknown }).attention;
  const archs: ActivationArchs = {
    transformer: inferTransformerArch(await graphsOf(components.transformer), declared(components.transformer)),
    vae_decoder: inferVaeDecoderArch(await graphsOf(components.vae_decoder), declared(components.vae_decoder)),
  };
  for (const n of ['clip', 't5'] as const) {
    const spec = components[n];
    if (spec) archs[n] = inferEncoderArch(n, await graphsOf(spec), declared(spec));
  }
  if (components.safety_checker) archs.safety_checker = inferSafetyCheckerArch(await graphsOf(components.safety_checker), declared(components.safety_checker));
  return archs;
}
