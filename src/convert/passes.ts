/**
 * Graph passes that run before writing: float normalization (bf16/fp16 → fp32), MatMul/Gemm → MatMulNBits,
 * int8 embedding tables, and pruning.
 */
import { copyInit, implicitInputs, newJob, producerMap, retypeAttrTensor, useMap, type ComponentGraph, type OutInit } from './graph.js';
import type { LoadedModel } from './model-reader.js';
import { attr, attrFloat, attrInt, DT, getAttr, inlineTensorBytes, isFloatType, node, subgraphs, toNum, valueInfoElemType, type GraphProto, type NodeProto, type ValueInfoProto } from './onnx.js';
import { quantizedBytes, type QuantParams } from './quantize.js';

export const MS_DOMAIN = 'com.microsoft';

/** Constant nodes holding at least this many bytes become initializers (so they can be quantized and sharded). */
const PROMOTE_CONSTANT_BYTES = 1 << 16;

export function buildComponentGraph(m: LoadedModel): ComponentGraph {
  const inits = new Map<string, OutInit>();
  for (const [name, ref] of m.initializers) inits.set(name, copyInit(ref, name));
  const inputNames = new Set(inits.keys());
  const nodes: NodeProto[] = [];
  for (const n of m.graph.node ?? []) {
    const a = n.opType === 'Constant' && n.attribute?.length === 1 && n.attribute[0]!.name === 'value' ? n.attribute[0]!.t : undefined;
    if (a && a.dataType !== DT.STRING && n.output?.[0]) {
      const bytes = inlineTensorBytes(a);
      if (bytes.length >= PROMOTE_CONSTANT_BYTES) {
        const name = n.output[0];
        inits.set(name, copyInit({ name, dims: (a.dims ?? []).map(toNum), dataType: a.dataType ?? 0, byteLength: bytes.length, source: { kind: 'inline', bytes } }, name));
        continue;
      }
    }
    nodes.push(n);
  }
  return {
    nodes,
    // Some exporters list initializers among the inputs (IR < 4 style); those are not real inputs.
    inputs: (m.graph.input ?? []).filter((i) => !inputNames.has(i.name ?? '')),
    outputs: [...(m.graph.output ?? [])],
    inits,
    name: m.graph.name ?? 'graph',
    opsetImport: (m.model.opsetImport ?? []).map((o) => ({ domain: o.domain ?? '', version: toNum(o.version) })),
    irVersion: toNum(m.model.irVersion) || 8,
    jobs: [],
  };
}

const LOW_FLOATS = new Set<number>([DT.BFLOAT16, DT.FLOAT16]);

function retypeValueInfo(v: ValueInfoProto, to: number): void {
  const tt = v.type?.tensorType;
  if (tt && LOW_FLOATS.has(tt.elemType ?? 0)) tt.elemType = to;
}

/** bf16 → fp32 everywhere; fp16 → fp32 too (the fp16 pass, when asked for, converts back where it is safe). */
export function normalizeFloats(g: ComponentGraph): { hadBf16: boolean; hadFp16: boolean } {
  let hadBf16 = false;
  let hadFp16 = false;
  const note = (t: number) => {
    if (t === DT.BFLOAT16) hadBf16 = true;
    if (t === DT.FLOAT16) hadFp16 = true;
  };
  for (const init of g.inits.values()) {
    if (LOW_FLOATS.has(init.dataType)) {
      note(init.dataType);
      const spec = init.job.spec;
      if (spec.kind === 'copy') spec.to = DT.FLOAT;
      init.dataType = DT.FLOAT;
      init.byteLength = init.byteLength * 2;
    }
  }
  const fixNodes = (nodes: NodeProto[]) => {
    for (const n of nodes) {
      for (const a of n.attribute ?? []) {
        if (a.t && LOW_FLOATS.has(a.t.dataType ?? 0)) {
          note(a.t.dataType ?? 0);
          retypeAttrTensor(a.t, inlineTensorBytes(a.t), DT.FLOAT);
        }
        if ((a.name === 'to' || a.name === 'dtype') && a.i !== undefined && a.i !== null && LOW_FLOATS.has(toNum(a.i))) {
          note(toNum(a.i));
          a.i = DT.FLOAT;
        }
      }
      for (const sg of subgraphs(n)) fixGraph(sg);
    }
  };
  const fixGraph = (sg: GraphProto) => {
    for (const t of sg.initializer ?? []) {
      if (LOW_FLOATS.has(t.dataType ?? 0)) {
        note(t.dataType ?? 0);
        retypeAttrTensor(t, inlineTensorBytes(t), DT.FLOAT);
      }
    }
    for (const v of [...(sg.input ?? []), ...(sg.output ?? []), ...(sg.valueInfo ?? [])]) retypeValueInfo(v, DT.FLOAT);
    fixNodes(sg.node ?? []);
  };
  fixNodes(g.nodes);
  for (const v of [...g.inputs, ...g.outputs]) {
    note(valueInfoElemType(v) ?? 0);
    retypeValueInfo(v, DT.FLOAT);
  }
  return { hadBf16, hadFp16 };
}

// ---------------------------------------------------------------------------------------------------------------
// MatMul / Gemm → MatMulNBits
// ---------------------------------------------------------------------------------------------------------------

export interface QuantizedMatMul {
  node: string;
  weight: string;
  K: number;
  N: number;
  params: QuantParams;
  /** Source weight bytes (as stored in the input model). */
  bytesBefore: number;
  bytesAfter: number;
  job: number;
  /** ‖xW − xŴ‖/‖xW‖ on random x, filled after the weights are written. */
  relError?: number;
}

/** Decides per MatMul whether and how to quantize (null: keep float). */
export type QuantPolicy = (info: { node: NodeProto; weight: string; K: number; N: number }) => QuantParams | null;

export function quantizeMatMuls(g: ComponentGraph, policy: QuantPolicy): QuantizedMatMul[] {
  const producers = producerMap(g.nodes);
  const done: QuantizedMatMul[] = [];
  const cache = new Map<string, { B: string; scales: string; zp?: string; K: number; N: number; job: number }>();
  const out: NodeProto[] = [];
  let usesMs = false;

  for (const n of g.nodes) {
    const op = n.opType;
    if (op !== 'MatMul' && op !== 'Gemm') {
      out.push(n);
      continue;
    }
    const inputs = n.input ?? [];
    let wName = inputs[1] ?? '';
    let layout: 'KN' | 'NK' = 'KN';
    if (op === 'Gemm') {
      if (attrInt(n, 'transA', 0) !== 0) {
        out.push(n);
        continue;
      }
      if (attrInt(n, 'transB', 0) === 1) layout = 'NK';
    }
    // Look through Identity and float Casts (mixed-precision exports: W_bf16 → Cast(float) → MatMul) and, for MatMul,
    // a 2-D Transpose (MatMul(x, Transpose(W)) as some exporters leave it).
    for (let hop = 0; hop < 3 && !g.inits.has(wName); hop++) {
      const p = producers.get(wName);
      if (!p) break;
      if (p.opType === 'Identity' || (p.opType === 'Cast' && attrInt(p, 'to', 0) === DT.FLOAT)) {
        wName = p.input?.[0] ?? '';
        continue;
      }
      const perm = p.opType === 'Transpose' && op === 'MatMul' && layout === 'KN' ? getAttr(p, 'perm')?.ints?.map(toNum) : undefined;
      if (perm && perm.length === 2 && perm[0] === 1 && perm[1] === 0) {
        wName = p.input?.[0] ?? '';
        layout = 'NK';
        continue;
      }
      break;
    }
    const w = g.inits.get(wName);
    if (!w || w.dims.length !== 2 || !isFloatType(w.dataType) || w.job.spec.kind !== 'copy') {
      out.push(n);
      continue;
    }
    const [d0, d1] = w.dims as [number, number];
    const K = layout === 'KN' ? d0 : d1;
    const N = layout === 'KN' ? d1 : d0;
    const params = policy({ node: n, weight: wName, K, N });
    if (!params || K % params.block !== 0 || K < params.block) {
      out.push(n);
      continue;
    }
    const alpha = op === 'Gemm' ? attrFloat(n, 'alpha', 1) : 1;
    const key = `${wName}|${layout}|${alpha}|${params.bits}|${params.block}|${params.symmetric}|${params.mseSearch ?? false}`;
    let q = cache.get(key);
    if (!q) {
      const base = `${wName}_q${params.bits}${cache.size ? `_${cache.size}` : ''}`;
      const sizes = quantizedBytes(K, N, params);
      const nb = K / params.block;
      const outs = [
        { name: `${base}_B`, dims: [N, nb, (params.block * params.bits) / 8], dataType: DT.UINT8, byteLength: sizes.B },
        { name: `${base}_scales`, dims: [N * nb], dataType: DT.FLOAT, byteLength: sizes.scales },
      ];
      if (!params.symmetric) outs.push({ name: `${base}_zp`, dims: [sizes.zeroPoints], dataType: DT.UINT8, byteLength: sizes.zeroPoints });
      const job = newJob(w.job.source, { kind: 'quant', K, N, layout, params, alpha }, outs);
      g.jobs.push(job);
      for (const o of job.outputs) g.inits.set(o.name, o);
      q = { B: outs[0]!.name, scales: outs[1]!.name, K, N, job: job.id, ...(outs[2] ? { zp: outs[2].name } : {}) };
      cache.set(key, q);
      done.push({
        node: n.name ?? '',
        weight: wName,
        K,
        N,
        params,
        bytesBefore: w.job.source.byteLength,
        bytesAfter: sizes.B + sizes.scales + sizes.zeroPoints,
        job: job.id,
      });
    }
    usesMs = true;
    const y = n.output![0]!;
    const mmOut = op === 'Gemm' && inputs[2] ? `${y}_nbits` : y;
    const qInputs = [inputs[0]!, q.B, q.scales, ...(q.zp ? [q.zp] : [])];
    out.push(
      node('MatMulNBits', qInputs, [mmOut], { K: q.K, N: q.N, bits: params.bits, block_size: params.block, accuracy_level: 0 }, { name: `${n.name ?? y}_nbits`, domain: MS_DOMAIN }),
    );
    if (op === 'Gemm' && inputs[2]) {
      const beta = attrFloat(n, 'beta', 1);
      let c = inputs[2];
      if (beta !== 1) {
        const ci = g.inits.get(c);
        if (ci && ci.job.spec.kind === 'copy') {
          const scaled = copyInit(ci.job.source, `${c}_beta`, ci.dataType, beta);
          g.inits.set(scaled.name, scaled);
          c = scaled.name;
        } else {
          const bname = `${c}_beta_value`;
          g.inits.set(bname, constScalarInit(bname, beta));
          out.push(node('Mul', [c, bname], [`${c}_beta`]));
          c = `${c}_beta`;
        }
      }
      out.push(node('Add', [mmOut, c], [y], {}, { name: `${n.name ?? y}_bias` }));
    }
  }
  g.nodes = out;
  if (usesMs && !g.opsetImport.some((o) => o.domain === MS_DOMAIN)) g.opsetImport.push({ domain: MS_DOMAIN, version: 1 });
  return done;
}

/** A float32 scalar initializer with an inline value. */
export function constScalarInit(name: string, value: number): OutInit {
  const bytes = new Uint8Array(new Float32Array([value]).buffer);
  return copyInit({ name, dims: [], dataType: DT.FLOAT, byteLength: 4, source: { kind: 'inline', bytes } }, name);
}

export function constInt64Init(name: string, values: number[]): OutInit {
  const bytes = new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer);
  return copyInit({ name, dims: [values.length], dataType: DT.INT64, byteLength: bytes.length, source: { kind: 'inline', bytes } }, name);
}

// ---------------------------------------------------------------------------------------------------------------
// Embedding tables: Gather(E[V, D] float, ids) → Gather(int8) · per-row scale
// ---------------------------------------------------------------------------------------------------------------

export interface QuantizedEmbedding {
  weight: string;
  V: number;
  D: number;
  bytesBefore: number;
  bytesAfter: number;
}

/** int8 per-row tables for large Gather embeddings (standard ONNX ops only, so any EP runs them). */
export function quantizeEmbeddings(g: ComponentGraph, minElements: number): QuantizedEmbedding[] {
  const uses = useMap(g.nodes);
  const done: QuantizedEmbedding[] = [];
  const out: NodeProto[] = [];
  const made = new Map<string, { q: string; s: string }>();
  for (const n of g.nodes) {
    const wName = n.input?.[0] ?? '';
    const w = g.inits.get(wName);
    const ok =
      n.opType === 'Gather' &&
      attrInt(n, 'axis', 0) === 0 &&
      w &&
      w.dims.length === 2 &&
      w.dataType === DT.FLOAT &&
      w.job.spec.kind === 'copy' &&
      w.dims[0]! * w.dims[1]! >= minElements &&
      (uses.get(wName) ?? []).every((u) => u.node.opType === 'Gather' && u.slot === 0);
    if (!ok || !w) {
      out.push(n);
      continue;
    }
    const [V, D] = w.dims as [number, number];
    let m = made.get(wName);
    if (!m) {
      const job = newJob(w.job.source, { kind: 'embed8', V, D }, [
        { name: `${wName}_int8`, dims: [V, D], dataType: DT.INT8 },
        { name: `${wName}_rowscale`, dims: [V, 1], dataType: DT.FLOAT },
      ]);
      g.jobs.push(job);
      for (const o of job.outputs) g.inits.set(o.name, o);
      m = { q: job.outputs[0]!.name, s: job.outputs[1]!.name };
      made.set(wName, m);
      done.push({ weight: wName, V, D, bytesBefore: w.job.source.byteLength, bytesAfter: V * D + V * 4 });
    }
    const ids = n.input![1]!;
    const y = n.output![0]!;
    const base = n.name || y;
    out.push(node('Gather', [m.q, ids], [`${y}_q`], { axis: 0 }, { name: `${base}_q` }));
    out.push(node('Cast', [`${y}_q`], [`${y}_qf`], { to: DT.FLOAT }, { name: `${base}_cast` }));
    out.push(node('Gather', [m.s, ids], [`${y}_s`], { axis: 0 }, { name: `${base}_scale` }));
    out.push(node('Mul', [`${y}_qf`, `${y}_s`], [y], {}, { name: `${base}_dequant` }));
  }
  g.nodes = out;
  return done;
}

/** Drop nodes whose outputs nothing reads (e.g. a weight's Cast left behind by quantization), then unread initializers. */
export function pruneInits(g: ComponentGraph): void {
  for (;;) {
    const read = new Set<string>(g.outputs.map((o) => o.name ?? ''));
    for (const n of g.nodes) {
      for (const x of n.input ?? []) read.add(x);
      for (const x of implicitInputs(n)) read.add(x);
    }
    const before = g.nodes.length;
    g.nodes = g.nodes.filter((n) => (n.output ?? []).some((o) => o && read.has(o)));
    if (g.nodes.length === before) break;
  }
  const used = new Set<string>();
  for (const n of g.nodes) {
    for (const x of n.input ?? []) used.add(x);
    for (const x of implicitInputs(n)) used.add(x);
  }
  for (const o of g.outputs) used.add(o.name ?? '');
  for (const name of [...g.inits.keys()]) if (!used.has(name)) g.inits.delete(name);
}

export { attr };
