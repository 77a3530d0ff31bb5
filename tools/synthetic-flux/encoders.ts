/**
 * Synthetic FLUX.1 [schnell] text encoders and VAE decoder with the real architectures (random weights):
 * - T5-XXL encoder v1.1 (transformers T5EncoderModel): 24 layers, d_model 4096, 64 heads × 64, gated-GELU FFN
 *   d_ff 10240, relative-position buckets (32, max distance 128, bidirectional) computed in the graph from L,
 *   no attention scale, RMS layer norms; input_ids int32 [B, L] → last_hidden_state [B, L, 4096].
 * - CLIP-L text model (transformers CLIPTextModel): 12 layers, hidden 768, 12 heads, MLP 3072 quick-GELU, causal
 *   mask, 77 positions; input_ids int64 [B, 77] → last_hidden_state, pooler_output (final-LN state at the
 *   argmax id = EOS).
 * - VAE decoder (diffusers AutoencoderKL.decoder of FLUX.1: latent 16 channels, block_out_channels 128/256/512/512,
 *   3 resnets per up block, GroupNorm 32 as torch exports it (Reshape + InstanceNormalization), single-head
 *   mid-block attention over h·w tokens, nearest ×2 upsampling, no post_quant_conv); latent [B,16,h,w] → images
 *   [B,3,8h,8w].
 * Node and weight names follow the PyTorch modules, so the converter's rules (T5 `wo`, embedding tables) apply.
 */
import { DT, valueInfo } from '../../src/convert/onnx.js';
import { GraphBuilder, type WeightSpec } from './graph.js';

export interface T5Dims { vocab: number; dModel: number; dKv: number; heads: number; dFF: number; layers: number; buckets: number; maxDistance: number; eps: number }
export interface ClipDims { vocab: number; hidden: number; layers: number; heads: number; intermediate: number; positions: number; eps: number }
export interface VaeDims { latentChannels: number; blockOut: number[]; layersPerBlock: number; groups: number }

export const T5_XXL: T5Dims = { vocab: 32128, dModel: 4096, dKv: 64, heads: 64, dFF: 10240, layers: 24, buckets: 32, maxDistance: 128, eps: 1e-6 };
export const CLIP_L: ClipDims = { vocab: 49408, hidden: 768, layers: 12, heads: 12, intermediate: 3072, positions: 77, eps: 1e-5 };
export const FLUX_VAE: VaeDims = { latentChannels: 16, blockOut: [128, 256, 512, 512], layersPerBlock: 2, groups: 32 };
/** Test-size twins: vocabularies cover the toy tokenizers, widths match SMALL_FLUX_DIMS (joint 128, pooled 64). */
export const T5_SMALL: T5Dims = { ...T5_XXL, vocab: 1500, dModel: 128, dKv: 32, heads: 4, dFF: 256, layers: 2 };
export const CLIP_SMALL: ClipDims = { ...CLIP_L, vocab: 2014, hidden: 64, layers: 2, heads: 2, intermediate: 128 };
export const VAE_SMALL: VaeDims = { latentChannels: 16, blockOut: [16, 16, 32, 32], layersPerBlock: 1, groups: 8 };

export interface ComponentResult {
  modelPath: string;
  dataPath: string;
  weightBytes: number;
  params: number;
  weights: WeightSpec[];
}

const result = (b: GraphBuilder): ComponentResult => ({ modelPath: b.modelPath, dataPath: b.dataPath, weightBytes: b.weightBytes, params: b.params, weights: b.weights });

export function buildT5(out: string, c: T5Dims, seed: number, floatType: number = DT.FLOAT, dryRun = false): ComponentResult {
  const b = new GraphBuilder(out, seed, floatType, dryRun);
  const D = c.dModel;
  const inner = c.heads * c.dKv;
  const eps = b.constF('t5_eps', [c.eps], []);
  const two = b.constF('t5_two', [2], []);
  const half = b.constF('t5_half', [0.5], []);
  const one = b.constF('t5_one', [1], []);
  const geluC = b.constF('t5_gelu_c', [Math.sqrt(2 / Math.PI)], []);
  const geluK = b.constF('t5_gelu_k', [0.044715], []);
  const three = b.constF('t5_three', [3], []);
  const shapeHeads = b.constI('t5_shape_heads', [0, 0, c.heads, c.dKv]);
  const shapeMerge = b.constI('t5_shape_merge', [0, 0, inner]);
  const rms = (x: string, name: string) => {
    const w = b.weight(name, [D], 0.05, 1);
    const v = b.op1('ReduceMean', [b.op1('Pow', [x, two])], { axes: [-1], keepdims: 1 });
    return b.op1('Mul', [w, b.op1('Div', [x, b.op1('Sqrt', [b.op1('Add', [v, eps])])])]);
  };
  const lin = (x: string, name: string, K: number, N: number, std: number) =>
    b.op1('MatMul', [x, b.weight(`${name}.weight_t`, [K, N], std)], {}, `/${name.replaceAll('.', '/')}/MatMul`);
  const heads = (x: string) => b.op1('Transpose', [b.op1('Reshape', [x, shapeHeads])], { perm: [0, 2, 1, 3] });
  const gelu = (x: string) => {
    const t = b.op1('Tanh', [b.op1('Mul', [geluC, b.op1('Add', [x, b.op1('Mul', [geluK, b.op1('Pow', [x, three])])])])]);
    return b.op1('Mul', [b.op1('Mul', [half, x]), b.op1('Add', [one, t])]);
  };

  const ids = b.op1('Cast', ['input_ids'], { to: DT.INT64 });
  let x = b.op1('Gather', [b.weight('shared.weight', [c.vocab, D], 1), ids], { axis: 0 }, '/shared/Gather');

  // Relative position bias [1, H, L, L] (transformers T5Attention._relative_position_bucket, bidirectional).
  const L = b.op1('Gather', [b.op1('Shape', ['input_ids']), b.constI('t5_i1', [1], [])], { axis: 0 });
  const pos = b.op1('Range', [b.constI('t5_zero', [0], []), L, b.constI('t5_step', [1], [])]);
  const rel = b.op1('Sub', [b.op1('Unsqueeze', [pos, b.constI('t5_ax0', [0])]), b.op1('Unsqueeze', [pos, b.constI('t5_ax1', [1])])]); // memory − context
  const nb = c.buckets / 2;
  const maxExact = nb / 2;
  const rb = b.op1('Mul', [b.op1('Cast', [b.op1('Greater', [rel, b.constI('t5_zero_i', [0], [])])], { to: DT.INT64 }), b.constI('t5_nb', [nb], [])]);
  const a = b.op1('Abs', [rel]);
  const isSmall = b.op1('Less', [a, b.constI('t5_max_exact', [maxExact], [])]);
  // log(0) never reaches Cast: the distance is clamped to ≥ 1 (Where picks the exact branch below max_exact anyway).
  const af = b.op1('Cast', [b.op1('Max', [a, b.constI('t5_one_i', [1], [])])], { to: DT.FLOAT });
  const logRatio = b.op1('Div', [b.op1('Log', [b.op1('Div', [af, b.constF32('t5_max_exact_f', [maxExact], [])])]), b.constF32('t5_log_span', [Math.log(c.maxDistance / maxExact)], [])]);
  const large0 = b.op1('Add', [b.constI('t5_max_exact_i', [maxExact], []), b.op1('Cast', [b.op1('Mul', [logRatio, b.constF32('t5_span', [nb - maxExact], [])])], { to: DT.INT64 })]);
  const large = b.op1('Min', [large0, b.constI('t5_nb_1', [nb - 1], [])]);
  const bucket = b.op1('Add', [rb, b.op1('Where', [isSmall, a, large])]);
  const relBias = b.weight('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', [c.buckets, c.heads], 0.5);
  const bias = b.op1('Unsqueeze', [b.op1('Transpose', [b.op1('Gather', [relBias, bucket], { axis: 0 })], { perm: [2, 0, 1] }), b.constI('t5_ax0b', [0])]);

  for (let i = 0; i < c.layers; i++) {
    const p = `encoder.block.${i}.layer`;
    const h = rms(x, `${p}.0.layer_norm.weight`);
    // T5's init scales (transformers T5PreTrainedModel._init_weights): q by (d_model·d_kv)^-½, no attention scale.
    const q = heads(lin(h, `${p}.0.SelfAttention.q`, D, inner, 1 / Math.sqrt(D * c.dKv)));
    const k = heads(lin(h, `${p}.0.SelfAttention.k`, D, inner, 1 / Math.sqrt(D)));
    const v = heads(lin(h, `${p}.0.SelfAttention.v`, D, inner, 1 / Math.sqrt(D)));
    const s = b.op1('Add', [b.op1('MatMul', [q, b.op1('Transpose', [k], { perm: [0, 1, 3, 2] })]), bias]);
    const o = b.op1('Reshape', [b.op1('Transpose', [b.op1('MatMul', [b.op1('Softmax', [s], { axis: -1 }), v])], { perm: [0, 2, 1, 3] }), shapeMerge]);
    x = b.op1('Add', [x, lin(o, `${p}.0.SelfAttention.o`, inner, D, 1 / Math.sqrt(inner))]);
    const f = rms(x, `${p}.1.layer_norm.weight`);
    const g = b.op1('Mul', [gelu(lin(f, `${p}.1.DenseReluDense.wi_0`, D, c.dFF, 1 / Math.sqrt(D))), lin(f, `${p}.1.DenseReluDense.wi_1`, D, c.dFF, 1 / Math.sqrt(D))]);
    x = b.op1('Add', [x, lin(g, `${p}.1.DenseReluDense.wo`, c.dFF, D, 1 / Math.sqrt(c.dFF))]);
  }
  const y = rms(x, 'encoder.final_layer_norm.weight');
  b.nodes.push({ opType: 'Identity', name: '/output', input: [y], output: ['last_hidden_state'] });
  b.finish('synthetic_t5_encoder', [valueInfo('input_ids', DT.INT32, ['B', 'L'])], [valueInfo('last_hidden_state', floatType, ['B', 'L', D])]);
  return result(b);
}

export function buildClip(out: string, c: ClipDims, seed: number, floatType: number = DT.FLOAT, dryRun = false): ComponentResult {
  const b = new GraphBuilder(out, seed, floatType, dryRun);
  const D = c.hidden;
  const hd = D / c.heads;
  const N = c.positions;
  const shapeHeads = b.constI('clip_shape_heads', [0, 0, c.heads, hd]);
  const shapeMerge = b.constI('clip_shape_merge', [0, 0, D]);
  const qScale = b.constF('clip_q_scale', [1 / Math.sqrt(hd)], []);
  const quick = b.constF('clip_quick_gelu', [1.702], []);
  const mask = new Float32Array(N * N);
  for (let i = 0; i < N; i++) for (let j = i + 1; j < N; j++) mask[i * N + j] = -1e9;
  const causal = b.constF('clip_causal_mask', mask, [1, 1, N, N]);
  const lin = (x: string, name: string, K: number, N2: number) => {
    const path = `/text_model/${name.replaceAll('.', '/')}`;
    const m = b.op1('MatMul', [x, b.weight(`text_model.${name}.weight_t`, [K, N2], 1 / Math.sqrt(K))], {}, `${path}/MatMul`);
    return b.op1('Add', [m, b.weight(`text_model.${name}.bias`, [N2], 0.02)], {}, `${path}/Add`);
  };
  const ln = (x: string, name: string) =>
    b.op1('LayerNormalization', [x, b.weight(`text_model.${name}.weight`, [D], 0.05, 1), b.weight(`text_model.${name}.bias`, [D], 0.02)], { axis: -1, epsilon: { f: c.eps } });
  const heads = (x: string) => b.op1('Transpose', [b.op1('Reshape', [x, shapeHeads])], { perm: [0, 2, 1, 3] });

  const tok = b.op1('Gather', [b.weight('text_model.embeddings.token_embedding.weight', [c.vocab, D], 0.02), 'input_ids'], { axis: 0 });
  let x = b.op1('Add', [tok, b.weight('text_model.embeddings.position_embedding.weight', [N, D], 0.01)]);
  for (let i = 0; i < c.layers; i++) {
    const p = `encoder.layers.${i}`;
    const h = ln(x, `${p}.layer_norm1`);
    const q = heads(b.op1('Mul', [lin(h, `${p}.self_attn.q_proj`, D, D), qScale]));
    const k = heads(lin(h, `${p}.self_attn.k_proj`, D, D));
    const v = heads(lin(h, `${p}.self_attn.v_proj`, D, D));
    const s = b.op1('Add', [b.op1('MatMul', [q, b.op1('Transpose', [k], { perm: [0, 1, 3, 2] })]), causal]);
    const o = b.op1('Reshape', [b.op1('Transpose', [b.op1('MatMul', [b.op1('Softmax', [s], { axis: -1 }), v])], { perm: [0, 2, 1, 3] }), shapeMerge]);
    x = b.op1('Add', [x, lin(o, `${p}.self_attn.out_proj`, D, D)]);
    const m = lin(ln(x, `${p}.layer_norm2`), `${p}.mlp.fc1`, D, c.intermediate);
    x = b.op1('Add', [x, lin(b.op1('Mul', [m, b.op1('Sigmoid', [b.op1('Mul', [m, quick])])]), `${p}.mlp.fc2`, c.intermediate, D)]);
  }
  const hidden = ln(x, 'final_layer_norm');
  b.nodes.push({ opType: 'Identity', name: '/output_hidden', input: [hidden], output: ['last_hidden_state'] });
  // Pooled: the row at argmax(ids) (transformers casts to int32 first; EOS has the largest id).
  const at = b.op1('ArgMax', [b.op1('Cast', ['input_ids'], { to: DT.INT32 })], { axis: -1, keepdims: 0 });
  const idx = b.op1('Expand', [b.op1('Reshape', [at, b.constI('clip_shape_b11', [-1, 1, 1])]), b.constI('clip_shape_11d', [1, 1, D])]);
  const row = b.op1('GatherElements', [hidden, idx], { axis: 1 });
  b.nodes.push({ opType: 'Reshape', name: '/output_pooled', input: [row, b.constI('clip_shape_bd', [-1, D])], output: ['pooler_output'] });
  b.finish('synthetic_clip_text', [valueInfo('input_ids', DT.INT64, ['B', N])], [valueInfo('last_hidden_state', floatType, ['B', N, D]), valueInfo('pooler_output', floatType, ['B', D])]);
  return result(b);
}

export function buildVaeDecoder(out: string, c: VaeDims, seed: number, floatType: number = DT.FLOAT, dryRun = false): ComponentResult {
  const b = new GraphBuilder(out, seed, floatType, dryRun);
  const G = c.groups;
  const gnOnes = b.constF('vae_gn_ones', new Float32Array(G).fill(1), [G]);
  const gnZeros = b.constF('vae_gn_zeros', new Float32Array(G), [G]);
  const gnShape = b.constI('vae_gn_shape', [0, G, -1]);
  const up2 = b.constF32('vae_up_scales', [1, 1, 2, 2], [4]);
  const groupNorm = (x: string, name: string, C: number) => {
    const n = b.op1('InstanceNormalization', [b.op1('Reshape', [x, gnShape]), gnOnes, gnZeros], { epsilon: { f: 1e-6 } });
    const y = b.op1('Reshape', [n, b.op1('Shape', [x])]);
    return b.op1('Add', [b.op1('Mul', [y, b.weight(`${name}.weight`, [C, 1, 1], 0.05, 1)]), b.weight(`${name}.bias`, [C, 1, 1], 0.02)]);
  };
  const silu = (x: string) => b.op1('Mul', [x, b.op1('Sigmoid', [x])]);
  const conv = (x: string, name: string, cin: number, cout: number, k: number, gain = 1) =>
    b.op1('Conv', [x, b.weight(`${name}.weight`, [cout, cin, k, k], gain / Math.sqrt(cin * k * k)), b.weight(`${name}.bias`, [cout], 0.02)],
      { kernel_shape: [k, k], pads: k === 3 ? [1, 1, 1, 1] : [0, 0, 0, 0], strides: [1, 1] }, `/${name.replaceAll('.', '/')}/Conv`);
  const resnet = (x: string, name: string, cin: number, cout: number) => {
    let h = conv(silu(groupNorm(x, `${name}.norm1`, cin)), `${name}.conv1`, cin, cout, 3);
    h = conv(silu(groupNorm(h, `${name}.norm2`, cout)), `${name}.conv2`, cout, cout, 3, 0.5);
    return b.op1('Add', [cin !== cout ? conv(x, `${name}.conv_shortcut`, cin, cout, 1) : x, h]);
  };
  const attention = (x: string, name: string, C: number) => {
    const t = b.op1('Transpose', [b.op1('Reshape', [groupNorm(x, `${name}.group_norm`, C), b.constI(`${name}.flat`, [0, C, -1])])], { perm: [0, 2, 1] }); // [B, hw, C]
    const lin = (y: string, n: string) =>
      b.op1('Add', [b.op1('MatMul', [y, b.weight(`${name}.${n}.weight_t`, [C, C], 1 / Math.sqrt(C))], {}, `/${name.replaceAll('.', '/')}/${n}/MatMul`), b.weight(`${name}.${n}.bias`, [C], 0.02)]);
    const s = b.op1('Mul', [b.op1('MatMul', [lin(t, 'to_q'), b.op1('Transpose', [lin(t, 'to_k')], { perm: [0, 2, 1] })]), b.constF(`${name}.scale`, [1 / Math.sqrt(C)], [])]);
    const o = lin(b.op1('MatMul', [b.op1('Softmax', [s], { axis: -1 }), lin(t, 'to_v')]), 'to_out.0');
    return b.op1('Add', [b.op1('Reshape', [b.op1('Transpose', [o], { perm: [0, 2, 1] }), b.op1('Shape', [x])]), x]);
  };

  const boc = c.blockOut;
  const top = boc[boc.length - 1]!;
  let x = conv('latent', 'decoder.conv_in', c.latentChannels, top, 3);
  x = resnet(x, 'decoder.mid_block.resnets.0', top, top);
  x = attention(x, 'decoder.mid_block.attentions.0', top);
  x = resnet(x, 'decoder.mid_block.resnets.1', top, top);
  const rev = [...boc].reverse();
  let prev = rev[0]!;
  rev.forEach((ch, i) => {
    for (let r = 0; r <= c.layersPerBlock; r++) x = resnet(x, `decoder.up_blocks.${i}.resnets.${r}`, r === 0 ? prev : ch, ch);
    if (i !== rev.length - 1) {
      x = b.op1('Resize', [x, '', up2], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
      x = conv(x, `decoder.up_blocks.${i}.upsamplers.0.conv`, ch, ch, 3);
    }
    prev = ch;
  });
  const y = conv(silu(groupNorm(x, 'decoder.conv_norm_out', boc[0]!)), 'decoder.conv_out', boc[0]!, 3, 3, 0.5);
  b.nodes.push({ opType: 'Identity', name: '/output', input: [y], output: ['images'] });
  b.finish('synthetic_vae_decoder', [valueInfo('latent', floatType, ['B', c.latentChannels, 'h', 'w'])], [valueInfo('images', floatType, ['B', 3, 'H', 'W'])]);
  return result(b);
}
