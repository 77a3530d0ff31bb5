/**
 * Attention without an S×S scores buffer (docs/attention.md).
 *
 * Exporters (torch/diffusers, BFL) write attention as MatMul(q, kᵀ) [· scale] → Softmax(-1) → MatMul(·, v), so the
 * scores [B, H, Sq, Sk] live in one buffer: 1.82 GB at 1024² (24 heads, S = 4096 + 256), over SwiftShader's 1 GiB
 * maxBufferSize and the binding limit of many GPUs. This pass splits the query rows into N chunks: each chunk runs
 * the same ops against the whole kᵀ and v, and the outputs are concatenated, so the largest buffer is 1/N of the
 * scores (plus one row: N zero rows pad the query so no chunk is empty). Softmax is row-wise, so every row is computed exactly as before (same ops, same order per row).
 *
 * Only standard ONNX ops (Shape, Gather, Mul, Div, Slice, Concat) are added, so every execution provider runs it.
 * com.microsoft MultiHeadAttention was measured as the alternative and is not used: on onnxruntime-web 1.30 its
 * WebGPU kernel returns wrong values when the adapter has subgroups of 4 (SwiftShader), and without subgroups it
 * takes the unfused path that allocates the full [B, H, Sq, Sk] probabilities anyway.
 */
import { FluxError } from '../errors.js';
import { useMap, producerMap, type ComponentGraph } from './graph.js';
import { attrInt, DT, getAttr, inlineTensorBytes, node, numel, toNum, type NodeProto } from './onnx.js';
import { constInt64Init } from './passes.js';

export type AttentionMode = 'chunked' | 'unfused';
export const ATTENTION_MODES: readonly AttentionMode[] = ['chunked', 'unfused'];

/** Default query chunks: at 1024² (S = 4096 + 512 at most) a 24-head chunk of scores is ≤ 128 MiB at batch 1. */
export const DEFAULT_ATTENTION_CHUNKS = 16;
export const MAX_ATTENTION_CHUNKS = 256;

export interface AttentionSite {
  /** The Softmax node of the original pattern. */
  softmax: string;
  /** Ops between the scores MatMul and the Softmax (scalar Mul/Div, Cast), kept per chunk. */
  between: string[];
}

export interface AttentionRewrite {
  mode: AttentionMode;
  chunks: number;
  sites: AttentionSite[];
  /** Softmax nodes left as they are, with the reason (not the pattern, e.g. a mask/bias Add before it). */
  skipped: { softmax: string; reason: string }[];
}

/** Bytes of the largest scores buffer of one attention: B·H·Sq·Sk floats, divided over the query chunks. */
export function attentionScoresBytes(p: { batch: number; heads: number; queryTokens: number; keyTokens?: number; chunks?: number; bytesPerElement?: number }): number {
  const rows = Math.ceil(p.queryTokens / Math.max(1, p.chunks ?? 1));
  return p.batch * p.heads * rows * (p.keyTokens ?? p.queryTokens) * (p.bytesPerElement ?? 4);
}

export function checkAttentionChunks(n: number, field = 'attentionChunks'): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_ATTENTION_CHUNKS) {
    throw new FluxError('invalid_input', `${field}: must be an integer between 1 and ${MAX_ATTENTION_CHUNKS}, got ${n}`, { field });
  }
  return n;
}

/** The single numeric value of a scalar-like constant (initializer or Constant node), else undefined. */
function isScalarConst(g: ComponentGraph, producers: Map<string, NodeProto>, name: string): boolean {
  const init = g.inits.get(name);
  if (init) return numel(init.dims) === 1;
  const p = producers.get(name);
  if (p?.opType !== 'Constant') return false;
  const a = p.attribute?.[0];
  if (a?.name === 'value_float') return true;
  if (a?.name === 'value' && a.t) return numel((a.t.dims ?? []).map(toNum)) === 1 && inlineTensorBytes(a.t).length > 0;
  return false;
}

interface Match {
  /** Rank of the scores (from kᵀ's Transpose or the Softmax axis): the query rows are axis rank-2. */
  rank: number;
  q: string;
  kT: string;
  v: string;
  scoresMatMul: NodeProto;
  between: NodeProto[];
  softmax: NodeProto;
  outMatMul: NodeProto;
}

/** MatMul(q, kᵀ) → [scalar Mul/Div, Cast]* → Softmax(last axis) → MatMul(·, v), each link read once. */
function matchAt(g: ComponentGraph, sm: NodeProto, producers: Map<string, NodeProto>, uses: ReturnType<typeof useMap>): Match | string {
  const axis = attrInt(sm, 'axis', -1);
  const opset = g.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 0;
  if (opset < 11) return `default-domain opset ${opset} < 11`;
  const single = (name: string) => (uses.get(name) ?? []).length === 1 && !g.outputs.some((o) => o.name === name);
  const smOut = sm.output?.[0] ?? '';
  const smUses = uses.get(smOut) ?? [];
  if (smUses.length !== 1 || smUses[0]!.node.opType !== 'MatMul' || smUses[0]!.slot !== 0 || !single(smOut)) return 'the probabilities are not read by one MatMul(·, v)';
  const outMatMul = smUses[0]!.node;
  const between: NodeProto[] = [];
  let x = sm.input?.[0] ?? '';
  for (;;) {
    if (!single(x)) return 'an intermediate of the scores is read elsewhere';
    const p = producers.get(x);
    if (!p) return 'the scores come from a graph input';
    if (p.opType === 'MatMul') {
      const [q, kT] = p.input ?? [];
      if (!q || !kT || g.inits.has(q)) return 'the scores MatMul reads a constant query';
      // The last axis must be the key axis: -1, or rank-1 where kᵀ's rank is known from its Transpose.
      const tp = producers.get(kT);
      const rank = tp?.opType === 'Transpose' ? getAttr(tp, 'perm')?.ints?.length : axis > 0 ? axis + 1 : undefined;
      if (rank === undefined || rank < 2) return 'rank of the scores unknown (kᵀ is not a Transpose and the Softmax axis is -1)';
      if (axis !== -1 && axis !== rank - 1) return `Softmax axis ${axis} is not the last axis`;
      const v = outMatMul.input?.[1] ?? '';
      return { rank, q, kT, v, scoresMatMul: p, between: between.reverse(), softmax: sm, outMatMul };
    }
    const [a, b] = p.input ?? [];
    if ((p.opType === 'Mul' || p.opType === 'Div') && a && b) {
      // Scale on the scores: Mul(s, c), Mul(c, s) or Div(s, c) with a scalar constant.
      if (isScalarConst(g, producers, b)) x = a;
      else if (p.opType === 'Mul' && isScalarConst(g, producers, a)) x = b;
      else return `${p.opType} with a non-scalar operand before the Softmax (mask or bias)`;
      between.push(p);
      continue;
    }
    if (p.opType === 'Cast' && attrInt(p, 'to', 0) === DT.FLOAT) {
      between.push(p);
      x = a ?? '';
      continue;
    }
    return `${p.opType} before the Softmax (mask or bias)`;
  }
}

/**
 * Rewrite every attention of the component into `chunks` query chunks (mode 'chunked'); 'unfused' changes nothing
 * and only reports what would have been rewritten.
 */
export function rewriteAttention(g: ComponentGraph, mode: AttentionMode, chunks = DEFAULT_ATTENTION_CHUNKS): AttentionRewrite {
  checkAttentionChunks(chunks);
  const producers = producerMap(g.nodes);
  const uses = useMap(g.nodes);
  const report: AttentionRewrite = { mode, chunks: mode === 'chunked' ? chunks : 1, sites: [], skipped: [] };
  const replaced = new Map<NodeProto, NodeProto[]>();
  const removed = new Set<NodeProto>();
  let k = 0;
  for (const sm of g.nodes) {
    if (sm.opType !== 'Softmax' || (sm.domain && sm.domain !== 'ai.onnx')) continue;
    const smName = sm.name || sm.output?.[0] || '';
    const m = matchAt(g, sm, producers, uses);
    if (typeof m === 'string') {
      report.skipped.push({ softmax: smName, reason: m });
      continue;
    }
    report.sites.push({ softmax: smName, between: m.between.map((n) => n.opType ?? '') });
    if (mode !== 'chunked' || chunks === 1) continue;
    const p = `${smName.replace(/[^A-Za-z0-9_./-]/g, '_')}_chunk`;
    const id = k++;
    const cname = (s: string) => `${p}/${s}`;
    const out: NodeProto[] = [];
    // Row boundaries floor(i·Sq/N) from the query's runtime shape (Sq is dynamic: it follows the image size).
    const axes = `${p}_axes${id}`;
    const axisIdx = `${p}_sq_index${id}`;
    const nInit = `${p}_n${id}`;
    const end = `${p}_end${id}`;
    g.inits.set(axes, constInt64Init(axes, [-2]));
    g.inits.set(axisIdx, constInt64Init(axisIdx, [-2]));
    g.inits.set(nInit, constInt64Init(nInit, [chunks]));
    g.inits.set(end, constInt64Init(end, [Number.MAX_SAFE_INTEGER]));
    const zero = `${p}_zero${id}`;
    g.inits.set(zero, constInt64Init(zero, [0]));
    // N zero query rows are appended so every chunk has at least one row even when Sq < N (an empty chunk fails on
    // WebGPU: "Invalid dispatch group size (0, 1, 1)" in Softmax); their outputs are sliced off after the Concat.
    const pads = `${p}_pads${id}`;
    g.inits.set(pads, constInt64Init(pads, Array.from({ length: 2 * m.rank }, (_, j) => (j === 2 * m.rank - 2 ? chunks : 0))));
    out.push(node('Shape', [m.q], [cname('q_shape')], {}, { name: cname('Shape') }));
    out.push(node('Gather', [cname('q_shape'), axisIdx], [cname('sq')], { axis: 0 }, { name: cname('Gather') }));
    out.push(node('Pad', [m.q, pads], [cname('q_padded')], { mode: 'constant' }, { name: cname('Pad') }));
    out.push(node('Add', [cname('sq'), nInit], [cname('sq_padded')], {}, { name: cname('Add') }));
    const bounds: string[] = [zero];
    for (let i = 1; i < chunks; i++) {
      const ii = `${p}_i${id}_${i}`;
      g.inits.set(ii, constInt64Init(ii, [i]));
      out.push(node('Mul', [cname('sq_padded'), ii], [cname(`sq_x${i}`)], {}, { name: cname(`Mul_${i}`) }));
      out.push(node('Div', [cname(`sq_x${i}`), nInit], [cname(`b${i}`)], {}, { name: cname(`Div_${i}`) }));
      bounds.push(cname(`b${i}`));
    }
    bounds.push(end);
    const parts: string[] = [];
    for (let i = 0; i < chunks; i++) {
      const qi = cname(`q${i}`);
      out.push(node('Slice', [cname('q_padded'), bounds[i]!, bounds[i + 1]!, axes], [qi], {}, { name: cname(`Slice_${i}`) }));
      let s = cname(`s${i}`);
      out.push({ ...m.scoresMatMul, name: cname(`MatMul_qk_${i}`), input: [qi, m.kT], output: [s] });
      for (const [j, b] of m.between.entries()) {
        const y = cname(`s${i}_${j}`);
        out.push({ ...b, name: cname(`${b.opType}_${i}_${j}`), input: (b.input ?? []).map((x) => (x === (m.between[j - 1]?.output?.[0] ?? m.scoresMatMul.output?.[0]) ? s : x)), output: [y] });
        s = y;
      }
      out.push({ ...m.softmax, name: cname(`Softmax_${i}`), input: [s], output: [cname(`p${i}`)] });
      out.push({ ...m.outMatMul, name: cname(`MatMul_pv_${i}`), input: [cname(`p${i}`), m.v], output: [cname(`o${i}`)] });
      parts.push(cname(`o${i}`));
    }
    out.push(node('Concat', parts, [cname('o_padded')], { axis: -2 }, { name: cname('Concat') }));
    out.push(node('Slice', [cname('o_padded'), zero, cname('sq'), axes], [m.outMatMul.output![0]!], {}, { name: cname('Slice_out') }));
    for (const n of [m.scoresMatMul, ...m.between, m.softmax]) removed.add(n);
    replaced.set(m.outMatMul, out);
  }
  if (replaced.size) g.nodes = g.nodes.flatMap((n) => replaced.get(n) ?? (removed.has(n) ? [] : [n]));
  return report;
}
