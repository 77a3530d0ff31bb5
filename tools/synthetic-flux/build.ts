/**
 * A synthetic FLUX.1 [schnell] transformer with real dimensions (hidden 3072, 24 heads × 128, MLP 12288,
 * joint_attention_dim 4096, pooled 768, in/out 64, RoPE axes [16, 56, 56]) and N double-stream + M single-stream
 * blocks, following docs/flux-pipeline.md §3.3 (diffusers FluxTransformer2DModel layout and node names).
 * Random weights are written one tensor at a time, in chunks, to `model.onnx.data` beside the graph, so a
 * multi-GB model is generated in constant memory. The graph is a runnable ONNX (opset 17) with the schnell I/O:
 * hidden_states [B,S,64], encoder_hidden_states [B,L,4096], pooled_projections [B,768], timestep [B] (σ),
 * img_ids [S,3], txt_ids [L,3] → latent [B,S,64].
 *
 * `buildSyntheticSet` writes the whole FLUX.1 [schnell] set beside it (encoders.ts: T5-XXL, CLIP-L, the FLUX VAE
 * decoder; the toy tokenizers with the real tokenizer.json structures), at `--depth slice` (1 double + 1 single
 * block, 1 T5 layer; everything else full size) or `--depth full` (19 + 38 blocks, 24 T5 layers: ~12 B params,
 * 24 GB as bf16 — meant for GPU machines). It checks the free disk space first and records every weight's
 * (name, dims, std, mean) in `weights.json` for bench/device/flux_torch.py.
 *
 *   npx tsx tools/synthetic-flux/build.ts --set --depth slice|full --out <dir> [--fp32] [--small] [--seed S]
 *   npx tsx tools/synthetic-flux/build.ts --out /tmp/synth/model.onnx [--double 1] [--single 1] [--small] [--bf16]
 */
import { cpSync, mkdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DT, valueInfo } from '../../src/convert/onnx.js';
import { buildClip, buildT5, buildVaeDecoder, CLIP_L, CLIP_SMALL, FLUX_VAE, T5_SMALL, T5_XXL, VAE_SMALL, type ClipDims, type ComponentResult, type T5Dims, type VaeDims } from './encoders.js';
import { GraphBuilder, type WeightSpec } from './graph.js';

export interface SyntheticFluxConfig {
  hidden: number;
  heads: number;
  headDim: number;
  mlp: number;
  jointDim: number;
  pooledDim: number;
  inChannels: number;
  axes: [number, number, number];
  double: number;
  single: number;
  seed: number;
  /** Weight, constant and I/O float type; bfloat16 mimics the official BFL export (transformer.opt/bf16). */
  dtype?: 'float32' | 'bfloat16';
}

export const REAL_FLUX_DIMS: SyntheticFluxConfig = {
  hidden: 3072, heads: 24, headDim: 128, mlp: 12288, jointDim: 4096, pooledDim: 768, inChannels: 64, axes: [16, 56, 56], double: 1, single: 1, seed: 1,
};

/** The same structure at test size (runs in milliseconds on ORT CPU). */
export const SMALL_FLUX_DIMS: SyntheticFluxConfig = {
  hidden: 64, heads: 2, headDim: 32, mlp: 256, jointDim: 128, pooledDim: 64, inChannels: 64, axes: [8, 12, 12], double: 1, single: 1, seed: 1,
};

export interface BuildResult {
  modelPath: string;
  dataPath: string;
  weightBytes: number;
  params: number;
  weights: WeightSpec[];
}

/** Write `<out>` (graph) and `<out>.data` (weights); `dryRun` only counts. */
export function buildSyntheticFlux(out: string, cfg: SyntheticFluxConfig = REAL_FLUX_DIMS, dryRun = false): BuildResult {
  const FT = cfg.dtype === 'bfloat16' ? DT.BFLOAT16 : DT.FLOAT;
  const b = new GraphBuilder(out, cfg.seed, FT, dryRun);
  const D = cfg.hidden;
  const H = cfg.heads;
  const d = cfg.headDim;
  if (H * d !== D || cfg.axes.reduce((x, y) => x + y, 0) !== d) throw new Error('hidden = heads × headDim and sum(axes) = headDim');
  const std = (fanIn: number, gain = 1) => gain / Math.sqrt(fanIn);

  // Shared constants.
  const one = b.constF('const_one', [1], []);
  const half = b.constF('const_half', [0.5], []);
  const eps = b.constF('const_eps', [1e-6], []);
  const two = b.constF('const_two', [2], []);
  const three = b.constF('const_three', [3], []);
  const geluC = b.constF('const_gelu_c', [Math.sqrt(2 / Math.PI)], []);
  const geluK = b.constF('const_gelu_k', [0.044715], []);
  const attnScale = b.constF('const_attn_scale', [1 / Math.sqrt(d)], []);
  const lnOnes = b.constF('ln_scale', new Float32Array(D).fill(1), [D]);
  const lnZeros = b.constF('ln_bias', new Float32Array(D), [D]);
  const ax1 = b.constI('axes_1', [1]);
  const shapeHeads = b.constI('shape_heads', [0, 0, H, d]);
  const shapeMerge = b.constI('shape_merge', [0, 0, D]);
  const shapePairs = b.constI('shape_pairs', [0, 0, 0, d / 2, 2]);
  const shapeHeadDim = b.constI('shape_head_dim', [0, 0, 0, d]);
  const i0 = b.constI('idx_0', [0]);
  const i1 = b.constI('idx_1', [1]);
  const i2 = b.constI('idx_2', [2]);
  const i4 = b.constI('idx_4', [4]);
  const iMax = b.constI('idx_max', [Number.MAX_SAFE_INTEGER]);

  const linear3 = (x: string, name: string, K: number, N: number, gain = 1) => {
    const w = b.weight(`${name}.weight_t`, [K, N], std(K, gain));
    const bias = b.weight(`${name}.bias`, [N], 0.02);
    return b.op1('Add', [b.op1('MatMul', [x, w], {}, `/${name}/MatMul`), bias], {}, `/${name}/Add`);
  };
  const linear2 = (x: string, name: string, K: number, N: number, gain = 1) => {
    const w = b.weight(`${name}.weight`, [N, K], std(K, gain));
    const bias = b.weight(`${name}.bias`, [N], 0.02);
    return b.op1('Gemm', [x, w, bias], { alpha: { f: 1 }, beta: { f: 1 }, transB: 1 }, `/${name}/Gemm`);
  };
  const silu = (x: string) => b.op1('Mul', [x, b.op1('Sigmoid', [x])]);
  const gelu = (x: string) => {
    const x3 = b.op1('Mul', [geluK, b.op1('Pow', [x, three])]);
    const t = b.op1('Tanh', [b.op1('Mul', [geluC, b.op1('Add', [x, x3])])]);
    return b.op1('Mul', [b.op1('Mul', [half, x]), b.op1('Add', [one, t])]);
  };
  const ln = (x: string) => b.op1('LayerNormalization', [x, lnOnes, lnZeros], { axis: -1, epsilon: { f: 1e-6 } });
  const modulate = (x: string, shift: string, scale: string) => b.op1('Add', [b.op1('Mul', [ln(x), b.op1('Add', [one, scale])]), shift]);
  const chunks = (svec: string, name: string, k: number) => {
    const m = b.op1('Unsqueeze', [linear2(svec, name, D, k * D, 0.5), ax1]);
    return b.op('Split', [m, b.constI(`${name}.split`, new Array(k).fill(D))], { axis: 2 }, `/${name}/Split`, k);
  };
  const heads = (x: string) => b.op1('Transpose', [b.op1('Reshape', [x, shapeHeads])], { perm: [0, 2, 1, 3] });
  const rms = (x: string, name: string) => {
    const w = b.weight(`${name}.weight`, [d], 0.05, 1);
    const v = b.op1('ReduceMean', [b.op1('Pow', [x, two])], { axes: [-1], keepdims: 1 });
    return b.op1('Mul', [b.op1('Div', [x, b.op1('Sqrt', [b.op1('Add', [v, eps])])]), w]);
  };

  // 1. embed inputs
  const img0 = linear3('hidden_states', 'x_embedder', cfg.inChannels, D);
  const txt0 = linear3('encoder_hidden_states', 'context_embedder', cfg.jointDim, D);
  // 2. conditioning vector
  const freqs = Float32Array.from({ length: 128 }, (_, k) => Math.exp((-Math.log(10000) * k) / 128));
  const t = b.op1('Unsqueeze', [b.op1('Mul', ['timestep', b.constF('const_1000', [1000], [])]), ax1]);
  const args = b.op1('Mul', [t, b.constF('time_freqs', freqs, [1, 128])]);
  const tEmb = b.op1('Concat', [b.op1('Cos', [args]), b.op1('Sin', [args])], { axis: 1 });
  const temb = linear2(silu(linear2(tEmb, 'time_text_embed.timestep_embedder.linear_1', 256, D)), 'time_text_embed.timestep_embedder.linear_2', D, D);
  const pemb = linear2(silu(linear2('pooled_projections', 'time_text_embed.text_embedder.linear_1', cfg.pooledDim, D)), 'time_text_embed.text_embedder.linear_2', D, D);
  const svec = silu(b.op1('Add', [temb, pemb]));
  // 3. RoPE tables [1, 1, N, d/2, 1]
  const ids = b.op1('Concat', ['txt_ids', 'img_ids'], { axis: 0 });
  const angles = cfg.axes.map((da, a) => {
    const omega = Float32Array.from({ length: da / 2 }, (_, k) => Math.pow(10000, (-2 * k) / da));
    const col = b.op1('Unsqueeze', [b.op1('Gather', [ids, b.constI(`rope_axis_${a}`, [a], [])], { axis: 1 }), ax1]);
    return b.op1('Mul', [col, b.constF(`rope_omega_${a}`, omega, [1, da / 2])]);
  });
  const ang = b.op1('Concat', angles, { axis: 1 });
  const ropeShape = b.constI('rope_shape', [1, 1, -1, d / 2, 1]);
  const cos = b.op1('Reshape', [b.op1('Cos', [ang]), ropeShape]);
  const sin = b.op1('Reshape', [b.op1('Sin', [ang]), ropeShape]);
  const rope = (x: string) => {
    const xr = b.op1('Reshape', [x, shapePairs]);
    const x0 = b.op1('Slice', [xr, i0, i1, i4]);
    const x1 = b.op1('Slice', [xr, i1, i2, i4]);
    const o0 = b.op1('Sub', [b.op1('Mul', [x0, cos]), b.op1('Mul', [x1, sin])]);
    const o1 = b.op1('Add', [b.op1('Mul', [x0, sin]), b.op1('Mul', [x1, cos])]);
    return b.op1('Reshape', [b.op1('Concat', [o0, o1], { axis: 4 }), shapeHeadDim]);
  };
  const attention = (q: string, k: string, v: string) => {
    const s = b.op1('Mul', [b.op1('MatMul', [q, b.op1('Transpose', [k], { perm: [0, 1, 3, 2] })]), attnScale]);
    const o = b.op1('MatMul', [b.op1('Softmax', [s], { axis: -1 }), v]);
    return b.op1('Reshape', [b.op1('Transpose', [o], { perm: [0, 2, 1, 3] }), shapeMerge]);
  };
  const txtLen = b.op1('Gather', [b.op1('Shape', ['encoder_hidden_states']), i1], { axis: 0 });

  let img = img0;
  let txt = txt0;
  for (let i = 0; i < cfg.double; i++) {
    const p = `transformer_blocks.${i}`;
    const [sh1, sc1, g1, sh2, sc2, g2] = chunks(svec, `${p}.norm1.linear`, 6) as [string, string, string, string, string, string];
    const [csh1, csc1, cg1, csh2, csc2, cg2] = chunks(svec, `${p}.norm1_context.linear`, 6) as [string, string, string, string, string, string];
    const hi = modulate(img, sh1, sc1);
    const ht = modulate(txt, csh1, csc1);
    const qi = rms(heads(linear3(hi, `${p}.attn.to_q`, D, D)), `${p}.attn.norm_q`);
    const ki = rms(heads(linear3(hi, `${p}.attn.to_k`, D, D)), `${p}.attn.norm_k`);
    const vi = heads(linear3(hi, `${p}.attn.to_v`, D, D));
    const qt = rms(heads(linear3(ht, `${p}.attn.add_q_proj`, D, D)), `${p}.attn.norm_added_q`);
    const kt = rms(heads(linear3(ht, `${p}.attn.add_k_proj`, D, D)), `${p}.attn.norm_added_k`);
    const vt = heads(linear3(ht, `${p}.attn.add_v_proj`, D, D));
    const q = rope(b.op1('Concat', [qt, qi], { axis: 2 }));
    const k = rope(b.op1('Concat', [kt, ki], { axis: 2 }));
    const v = b.op1('Concat', [vt, vi], { axis: 2 });
    const a = attention(q, k, v);
    const at = b.op1('Slice', [a, i0, txtLen, i1]);
    const ai = b.op1('Slice', [a, txtLen, iMax, i1]);
    img = b.op1('Add', [img, b.op1('Mul', [g1, linear3(ai, `${p}.attn.to_out.0`, D, D)])]);
    txt = b.op1('Add', [txt, b.op1('Mul', [cg1, linear3(at, `${p}.attn.to_add_out`, D, D)])]);
    img = b.op1('Add', [img, b.op1('Mul', [g2, linear3(gelu(linear3(modulate(img, sh2, sc2), `${p}.ff.net.0.proj`, D, cfg.mlp)), `${p}.ff.net.2`, cfg.mlp, D)])]);
    txt = b.op1('Add', [txt, b.op1('Mul', [cg2, linear3(gelu(linear3(modulate(txt, csh2, csc2), `${p}.ff_context.net.0.proj`, D, cfg.mlp)), `${p}.ff_context.net.2`, cfg.mlp, D)])]);
  }
  let x = b.op1('Concat', [txt, img], { axis: 1 });
  for (let i = 0; i < cfg.single; i++) {
    const p = `single_transformer_blocks.${i}`;
    const [sh, sc, g] = chunks(svec, `${p}.norm.linear`, 3) as [string, string, string];
    const h = modulate(x, sh, sc);
    const q = rope(rms(heads(linear3(h, `${p}.attn.to_q`, D, D)), `${p}.attn.norm_q`));
    const k = rope(rms(heads(linear3(h, `${p}.attn.to_k`, D, D)), `${p}.attn.norm_k`));
    const v = heads(linear3(h, `${p}.attn.to_v`, D, D));
    const a = attention(q, k, v);
    const m = gelu(linear3(h, `${p}.proj_mlp`, D, cfg.mlp));
    x = b.op1('Add', [x, b.op1('Mul', [g, linear3(b.op1('Concat', [a, m], { axis: 2 }), `${p}.proj_out`, D + cfg.mlp, D)])]);
  }
  img = b.op1('Slice', [x, txtLen, iMax, i1]);
  const [scale, shift] = chunks(svec, 'norm_out.linear', 2) as [string, string];
  const y = modulate(img, shift, scale);
  const out0 = linear3(y, 'proj_out', D, cfg.inChannels, 0.5);
  b.nodes.push({ opType: 'Identity', name: '/output', input: [out0], output: ['latent'] });
  b.finish(
    'synthetic_flux_transformer',
    [
      valueInfo('hidden_states', FT, ['B', 'S', cfg.inChannels]),
      valueInfo('encoder_hidden_states', FT, ['B', 'L', cfg.jointDim]),
      valueInfo('pooled_projections', FT, ['B', cfg.pooledDim]),
      valueInfo('timestep', FT, ['B']),
      valueInfo('img_ids', FT, ['S', 3]),
      valueInfo('txt_ids', FT, ['L', 3]),
    ],
    [valueInfo('latent', FT, ['B', 'S', cfg.inChannels])],
  );
  return { modelPath: b.modelPath, dataPath: b.dataPath, weightBytes: b.weightBytes, params: b.params, weights: b.weights };
}


export type SyntheticDepth = 'slice' | 'full';
export const DEPTHS: Record<SyntheticDepth, { double: number; single: number; t5Layers: number }> = {
  slice: { double: 1, single: 1, t5Layers: 1 },
  full: { double: 19, single: 38, t5Layers: 24 },
};

export interface SetOptions {
  depth: SyntheticDepth;
  /** Test-size dimensions of every component (same structure). */
  small?: boolean;
  /** bfloat16 like BFL's export (default), or float32. */
  dtype?: 'float32' | 'bfloat16';
  seed?: number;
  /** Only count (for the disk check and reports). */
  dryRun?: boolean;
  /** Free bytes to leave on the disk beyond the set (default 2 GiB). */
  reserveBytes?: number;
  /** Folder holding the toy tokenizer/ and tokenizer_2/ (default: the test pack's, tools/testpack/tokenizers_toy.py). */
  toyTokenizers?: string;
  /** Block counts other than the depth's (bench/device: a partial depth that converts within one call). */
  blocks?: { double: number; single: number; t5Layers: number };
}

export interface SyntheticSet {
  dir: string;
  transformer: ComponentResult;
  t5: ComponentResult;
  clip: ComponentResult;
  vae_decoder: ComponentResult;
  /** Folder with tokenizer/ (CLIP BPE) and tokenizer_2/ (T5 Unigram). */
  tokenizers: string;
  weightBytes: number;
  params: number;
  config: { depth: SyntheticDepth; dtype: string; seed: number; transformer: SyntheticFluxConfig; t5: T5Dims; clip: ClipDims; vae: VaeDims };
}

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const TOY_TOKENIZERS = join(ROOT, 'public/packs/flux-test-tiny');

/**
 * The four FLUX.1 [schnell] components with seeded random weights, streamed to `<dir>/<component>/model.onnx(.data)`,
 * plus `<dir>/tokenizers/` and `<dir>/weights.json`. Refuses to start when the disk has too little space.
 */
export function buildSyntheticSet(dir: string, o: SetOptions): SyntheticSet {
  const seed = o.seed ?? 1;
  const dtype = o.dtype ?? 'bfloat16';
  const FT = dtype === 'bfloat16' ? DT.BFLOAT16 : DT.FLOAT;
  const d = o.blocks ?? DEPTHS[o.depth];
  if (!d) throw new Error(`--depth must be slice or full, got ${String(o.depth)}`);
  for (const [k, v] of Object.entries(d)) if (!Number.isInteger(v) || v < 0) throw new Error(`synthetic-flux: ${k} must be a non-negative integer, got ${v}`);
  const transformer: SyntheticFluxConfig = { ...(o.small ? SMALL_FLUX_DIMS : REAL_FLUX_DIMS), double: d.double, single: d.single, seed, dtype };
  const t5: T5Dims = { ...(o.small ? T5_SMALL : T5_XXL), layers: d.t5Layers };
  const clip = o.small ? CLIP_SMALL : CLIP_L;
  const vae = o.small ? VAE_SMALL : FLUX_VAE;
  const config = { depth: o.depth, dtype, seed, transformer, t5, clip, vae };
  // Each component gets its own seed stream (weights differ even where names coincide).
  const make = (dry: boolean) => ({
    transformer: buildSyntheticFlux(join(dir, 'transformer/model.onnx'), { ...transformer, seed }, dry),
    t5: buildT5(join(dir, 't5/model.onnx'), t5, seed + 1, FT, dry),
    clip: buildClip(join(dir, 'clip/model.onnx'), clip, seed + 2, FT, dry),
    vae_decoder: buildVaeDecoder(join(dir, 'vae_decoder/model.onnx'), vae, seed + 3, FT, dry),
  });
  const sizes = make(true);
  const weightBytes = Object.values(sizes).reduce((s, c) => s + c.weightBytes, 0);
  const params = Object.values(sizes).reduce((s, c) => s + c.params, 0);
  if (o.dryRun) return { dir, ...sizes, tokenizers: join(dir, 'tokenizers'), weightBytes, params, config };

  mkdirSync(dir, { recursive: true });
  const fs = statfsSync(dir);
  const free = fs.bavail * fs.bsize;
  const reserve = o.reserveBytes ?? 2 * 2 ** 30;
  if (free < weightBytes + reserve)
    throw new Error(`synthetic-flux: ${dir} has ${(free / 2 ** 30).toFixed(1)} GiB free; the ${o.depth} set needs ${(weightBytes / 2 ** 30).toFixed(1)} GiB + ${(reserve / 2 ** 30).toFixed(0)} GiB reserve`);
  const built = make(false);
  const tokenizers = join(dir, 'tokenizers');
  for (const t of ['tokenizer', 'tokenizer_2']) cpSync(join(o.toyTokenizers ?? TOY_TOKENIZERS, t), join(tokenizers, t), { recursive: true });
  writeFileSync(
    join(dir, 'weights.json'),
    JSON.stringify({
      generator: 'flux-webgpu synthetic-flux',
      rng: 'u = fmix32(i·0x9E3779B9 + fmix32(fnv1a(name) ^ fmix32(componentSeed))) / 2^32; w = mean + std·√3·(2u − 1), float32, then bf16 RNE',
      config,
      seeds: { transformer: seed, t5: seed + 1, clip: seed + 2, vae_decoder: seed + 3 },
      components: Object.fromEntries(Object.entries(built).map(([k, c]) => [k, c.weights])),
    }),
  );
  return { dir, ...built, tokenizers, weightBytes, params, config };
}

// Run as a script (not when imported, nor inside a bundle such as bench/device's, whose import.meta.url is the bundle's).
if (process.argv[1] && /build\.[cm]?[tj]s$/.test(process.argv[1]) && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' }, set: { type: 'boolean' }, depth: { type: 'string', default: 'slice' }, fp32: { type: 'boolean' }, 'dry-run': { type: 'boolean' },
      double: { type: 'string' }, single: { type: 'string' }, small: { type: 'boolean' }, seed: { type: 'string' }, bf16: { type: 'boolean' },
    },
  });
  if (!values.out) {
    process.stderr.write(
      'usage: npx tsx tools/synthetic-flux/build.ts --set --depth slice|full --out <dir> [--fp32] [--small] [--seed S] [--dry-run]\n' +
        '       npx tsx tools/synthetic-flux/build.ts --out <model.onnx> [--double N] [--single M] [--small] [--seed S] [--bf16]   (transformer only)\n',
    );
    process.exit(2);
  }
  const seed = values.seed ? Number(values.seed) : 1;
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer, got ${values.seed}`);
  const t0 = performance.now();
  if (values.set) {
    const depth = values.depth as SyntheticDepth;
    if (!(depth in DEPTHS)) throw new Error(`--depth must be slice or full, got ${values.depth}`);
    const r = buildSyntheticSet(values.out, { depth, small: values.small ?? false, dtype: values.fp32 ? 'float32' : 'bfloat16', seed, dryRun: values['dry-run'] ?? false });
    for (const c of ['transformer', 't5', 'clip', 'vae_decoder'] as const)
      process.stdout.write(`${c.padEnd(12)} ${(r[c].params / 1e6).toFixed(1).padStart(8)} M params  ${(r[c].weightBytes / 2 ** 30).toFixed(2).padStart(6)} GiB\n`);
    process.stdout.write(`${values['dry-run'] ? 'would write' : 'wrote'} ${r.dir}: ${(r.params / 1e9).toFixed(2)} B params, ${(r.weightBytes / 2 ** 30).toFixed(2)} GiB (${r.config.dtype}) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  } else {
    const cfg = { ...(values.small ? SMALL_FLUX_DIMS : REAL_FLUX_DIMS) };
    if (values.double) cfg.double = Number(values.double);
    if (values.single) cfg.single = Number(values.single);
    cfg.seed = seed;
    if (values.bf16) cfg.dtype = 'bfloat16';
    const r = buildSyntheticFlux(values.out, cfg);
    process.stdout.write(`wrote ${r.modelPath} + ${r.dataPath}: ${(r.params / 1e6).toFixed(1)} M params, ${(r.weightBytes / 2 ** 30).toFixed(2)} GiB in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  }
}
