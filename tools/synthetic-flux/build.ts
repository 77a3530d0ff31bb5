/**
 * A synthetic FLUX.1 [schnell] transformer with real dimensions (hidden 3072, 24 heads × 128, MLP 12288,
 * joint_attention_dim 4096, pooled 768, in/out 64, RoPE axes [16, 56, 56]) and N double-stream + M single-stream
 * blocks, following docs/flux-pipeline.md §3.3 (diffusers FluxTransformer2DModel layout and node names).
 * Random weights are written one tensor at a time, in chunks, to `model.onnx.data` beside the graph, so a
 * multi-GB model is generated in constant memory. The graph is a runnable ONNX (opset 17) with the schnell I/O:
 * hidden_states [B,S,64], encoder_hidden_states [B,L,4096], pooled_projections [B,768], timestep [B] (σ),
 * img_ids [S,3], txt_ids [L,3] → latent [B,S,64].
 *
 *   npx tsx tools/synthetic-flux/build.ts --out /tmp/synth/model.onnx [--double 1] [--single 1] [--small] [--bf16]
 */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { attr, DT, onnx, valueInfo, type AttrValue, type NodeProto, type TensorProto } from '../../src/convert/onnx.js';

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

class GraphBuilder {
  nodes: NodeProto[] = [];
  inits: TensorProto[] = [];
  private n = 0;
  private fd: number;
  private offset = 0;
  private rng: number;
  weightBytes = 0;
  private readonly chunk = new Float32Array(1 << 22);

  constructor(
    private readonly dataPath: string,
    private readonly location: string,
    seed: number,
    readonly floatType: number = DT.FLOAT,
  ) {
    this.fd = openSync(dataPath, 'w');
    this.rng = (seed * 2654435761) >>> 0 || 1;
  }

  op(type: string, inputs: string[], attrs: Record<string, AttrValue> = {}, name?: string, outputs = 1): string[] {
    const id = ++this.n;
    const base = name ?? `/${type}_${id}`;
    const outs = Array.from({ length: outputs }, (_, i) => `${base}_output_${i}`);
    this.nodes.push({ opType: type, name: base, input: inputs, output: outs, attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)) });
    return outs;
  }
  op1(type: string, inputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): string {
    return this.op(type, inputs, attrs, name)[0]!;
  }

  /** Random uniform weights with the given std, written in chunks to the external-data file. */
  weight(name: string, dims: number[], std: number, mean = 0): string {
    const count = dims.reduce((a, b) => a * b, 1);
    const a = std * Math.sqrt(3);
    let s = this.rng;
    const c = this.chunk;
    for (let done = 0; done < count; ) {
      const n = Math.min(c.length, count - done);
      for (let i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        c[i] = mean + a * ((s >>> 0) / 2147483648 - 1);
      }
      const bytes = this.encode(c.subarray(0, n));
      let w = 0;
      while (w < bytes.length) w += writeSync(this.fd, bytes, w, bytes.length - w, this.offset + w);
      this.offset += bytes.length;
      done += n;
    }
    this.rng = s >>> 0 || 1;
    const size = this.floatType === DT.BFLOAT16 ? 2 : 4;
    this.inits.push({
      name, dims, dataType: this.floatType, dataLocation: 1,
      externalData: [
        { key: 'location', value: this.location },
        { key: 'offset', value: String(this.offset - count * size) },
        { key: 'length', value: String(count * size) },
      ],
    });
    this.weightBytes += count * size;
    return name;
  }

  /** fp32 values as the model's float type (bf16: round to nearest even). */
  encode(values: Float32Array): Uint8Array {
    if (this.floatType === DT.FLOAT) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
    const out = new Uint16Array(values.length);
    for (let i = 0; i < u.length; i++) {
      const x = u[i]!;
      out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
    return new Uint8Array(out.buffer);
  }

  constF(name: string, values: number[] | Float32Array, dims: number[]): string {
    this.inits.push({ name, dims, dataType: this.floatType, rawData: new Uint8Array(this.encode(Float32Array.from(values))) });
    return name;
  }
  constI(name: string, values: number[], dims: number[] = [values.length]): string {
    this.inits.push({ name, dims, dataType: DT.INT64, rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) });
    return name;
  }

  close(): void {
    closeSync(this.fd);
  }
}

export interface BuildResult {
  modelPath: string;
  dataPath: string;
  weightBytes: number;
  params: number;
}

/** Write `<out>` (graph) and `<out>.data` (weights). */
export function buildSyntheticFlux(out: string, cfg: SyntheticFluxConfig = REAL_FLUX_DIMS): BuildResult {
  const modelPath = resolve(out);
  mkdirSync(dirname(modelPath), { recursive: true });
  const location = `${basename(modelPath)}.data`;
  const FT = cfg.dtype === 'bfloat16' ? DT.BFLOAT16 : DT.FLOAT;
  const b = new GraphBuilder(`${modelPath}.data`, location, cfg.seed, FT);
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
  b.close();

  const model = {
    irVersion: 8,
    producerName: 'flux-webgpu synthetic-flux',
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'synthetic_flux_transformer',
      node: b.nodes,
      initializer: b.inits,
      input: [
        valueInfo('hidden_states', FT, ['B', 'S', cfg.inChannels]),
        valueInfo('encoder_hidden_states', FT, ['B', 'L', cfg.jointDim]),
        valueInfo('pooled_projections', FT, ['B', cfg.pooledDim]),
        valueInfo('timestep', FT, ['B']),
        valueInfo('img_ids', FT, ['S', 3]),
        valueInfo('txt_ids', FT, ['L', 3]),
      ],
      output: [valueInfo('latent', FT, ['B', 'S', cfg.inChannels])],
    },
  };
  writeFileSync(modelPath, onnx.ModelProto.encode(onnx.ModelProto.fromObject(model)).finish());
  return { modelPath, dataPath: `${modelPath}.data`, weightBytes: b.weightBytes, params: b.weightBytes / 4 };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, double: { type: 'string' }, single: { type: 'string' }, small: { type: 'boolean' }, seed: { type: 'string' }, bf16: { type: 'boolean' } },
  });
  if (!values.out) {
    process.stderr.write('usage: npx tsx tools/synthetic-flux/build.ts --out <model.onnx> [--double N] [--single M] [--small] [--seed S] [--bf16]\n');
    process.exit(2);
  }
  const cfg = { ...(values.small ? SMALL_FLUX_DIMS : REAL_FLUX_DIMS) };
  if (values.double) cfg.double = Number(values.double);
  if (values.single) cfg.single = Number(values.single);
  if (values.seed) cfg.seed = Number(values.seed);
  if (values.bf16) cfg.dtype = 'bfloat16';
  const t0 = performance.now();
  const r = buildSyntheticFlux(values.out, cfg);
  process.stdout.write(`wrote ${r.modelPath} + ${r.dataPath}: ${(r.params / 1e6).toFixed(1)} M params, ${(r.weightBytes / 2 ** 30).toFixed(2)} GiB in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}
