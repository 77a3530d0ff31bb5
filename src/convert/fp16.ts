/**
 * fp32 → fp16 compute conversion with fp32 islands. Every node computes in fp16 except the numerically sensitive
 * ones, which keep fp32 with Casts around them:
 *  - normalizations and reductions: LayerNormalization, Softmax/LogSoftmax, Instance/GroupNormalization,
 *    ReduceMean, Pow, Sqrt, Reciprocal, Exp, Erf, and RMSNorm chains (Pow/Mul → ReduceMean → Add → Sqrt →
 *    Reciprocal/Div → the Mul/Div that applies it);
 *  - the timestep/RoPE computations: Cos, Sin and everything they are computed from;
 *  - T5: the FFN output projection `wo` (weights stay fp32, or its MatMulNBits computes in fp32) and the residual
 *    stream Adds;
 *  - control flow (If/Loop/Scan) as a whole.
 * Initializers and Constant values take the precision of their consumers (MatMulNBits scales included, which is how
 * `--activations fp16` runs int4/int8 weights with fp16 activations). Graph inputs/outputs keep the types
 * given in `ioTypes`.
 */
import { implicitInputs, inferTypes, producerMap, renameInSubgraphs, retypeAttrTensor, useMap, type ComponentGraph } from './graph.js';
import { attrInt, DT, getAttr, inlineTensorBytes, isFloatType, node, setAttrInt, valueInfoElemType, type NodeProto } from './onnx.js';

const KEEP_OPS = new Set([
  'LayerNormalization', 'Softmax', 'LogSoftmax', 'InstanceNormalization', 'GroupNormalization', 'ReduceMean', 'ReduceSumSquare',
  'ReduceL2', 'Pow', 'Sqrt', 'Reciprocal', 'Exp', 'Erf', 'Cos', 'Sin', 'If', 'Loop', 'Scan', 'RandomNormal', 'RandomUniform',
  'RandomNormalLike', 'RandomUniformLike', 'Range',
]);

/** Node inputs that accept any type (no cast needed). */
function anySlot(op: string, slot: number): boolean {
  if (slot === 0 && (op === 'Cast' || op === 'CastLike' || op === 'Shape' || op === 'Size' || op === 'EyeLike')) return true;
  return false;
}
/** Node inputs fixed to float32 whatever the node computes in. */
function fixedSlot(op: string, slot: number): number | undefined {
  if (op === 'Resize' && (slot === 1 || slot === 2)) return DT.FLOAT;
  return undefined;
}

const WO_NAME = /(^|[^a-z0-9])wo([^a-z0-9]|$)/i;

export interface Fp16Options {
  component: string;
  /** Desired element type of each graph input/output by name (fp32 where not listed). */
  ioTypes: Map<string, number>;
}

export interface Fp16Report {
  fp32Nodes: number;
  fp16Nodes: number;
  casts: number;
  keptReasons: Record<string, number>;
  woNodes: string[];
}

/** Nodes that stay fp32, with the reason. */
export function markKeepFp32(g: ComponentGraph, types: Map<string, number>, component: string): Map<NodeProto, string> {
  const keep = new Map<NodeProto, string>();
  const producers = producerMap(g.nodes);
  const uses = useMap(g.nodes);
  const consumers = (t: string) => (uses.get(t) ?? []).map((u) => u.node);

  for (const n of g.nodes) if (KEEP_OPS.has(n.opType ?? '')) keep.set(n, n.opType ?? '');

  // RMSNorm chains: ReduceMean(Pow(x, 2) | Mul(x, x)) → … → Mul/Div with x.
  for (const n of g.nodes) {
    if (n.opType !== 'ReduceMean') continue;
    const sq = producers.get(n.input?.[0] ?? '');
    if (!sq) continue;
    const isSquare = (sq.opType === 'Pow') || (sq.opType === 'Mul' && sq.input?.[0] === sq.input?.[1]);
    if (!isSquare) continue;
    const x = sq.input?.[0] ?? '';
    keep.set(sq, 'rmsnorm');
    keep.set(n, 'rmsnorm');
    let frontier = [n];
    for (let depth = 0; depth < 6 && frontier.length; depth++) {
      const next: NodeProto[] = [];
      for (const f of frontier) {
        for (const c of consumers(f.output?.[0] ?? '')) {
          const op = c.opType ?? '';
          if (!['Add', 'Sqrt', 'Reciprocal', 'Div', 'Mul', 'Max', 'Clip'].includes(op)) continue;
          keep.set(c, 'rmsnorm');
          const appliesToX = (op === 'Mul' || op === 'Div') && (c.input ?? []).includes(x);
          if (!appliesToX) next.push(c);
        }
      }
      frontier = next;
    }
  }

  // Timestep / RoPE: Cos, Sin and all float computations feeding them.
  const trig = g.nodes.filter((n) => n.opType === 'Cos' || n.opType === 'Sin');
  if (trig.length) {
    const anc = new Set<NodeProto>();
    const stack = [...trig];
    while (stack.length) {
      const n = stack.pop()!;
      for (const x of n.input ?? []) {
        const p = producers.get(x);
        if (p && !anc.has(p) && isFloatType(types.get(x))) {
          anc.add(p);
          stack.push(p);
        }
      }
    }
    // Bail out if the trig inputs depend on the main activations (not a pure timestep/position computation).
    if (anc.size <= Math.max(64, g.nodes.length * 0.2)) for (const n of anc) if (!keep.has(n)) keep.set(n, 'timestep/rope');
  }

  // T5 FFN output projection and the residual stream.
  if (component === 't5') {
    // After --quant int4/int8 (fp16 activations) the projections are MatMulNBits: K and N are attributes.
    const isMm = (n: NodeProto) => n.opType === 'MatMul' || n.opType === 'Gemm' || n.opType === 'MatMulNBits';
    let wo = g.nodes.filter((n) => isMm(n) && (WO_NAME.test(n.name ?? '') || WO_NAME.test(n.input?.[1] ?? '')));
    if (!wo.length) {
      wo = g.nodes.filter((n) => {
        if (n.opType === 'MatMulNBits') return attrInt(n, 'K', 0) > attrInt(n, 'N', 0);
        if (n.opType !== 'MatMul') return false;
        const w = g.inits.get(n.input?.[1] ?? '');
        return !!w && w.dims.length === 2 && w.dims[0]! > w.dims[1]!;
      });
    }
    const residual = new Set<NodeProto>();
    for (const m of wo) {
      keep.set(m, 't5-wo');
      for (const c of consumers(m.output?.[0] ?? '')) if (c.opType === 'Add') residual.add(c);
    }
    let changed = true;
    while (changed) {
      changed = false;
      for (const r of [...residual]) {
        for (const c of consumers(r.output?.[0] ?? '')) if (c.opType === 'Add' && !residual.has(c)) (residual.add(c), (changed = true));
        for (const x of r.input ?? []) {
          const p = producers.get(x);
          if (p && p.opType === 'Add' && !residual.has(p)) (residual.add(p), (changed = true));
        }
      }
    }
    for (const r of residual) keep.set(r, 't5-residual');
  }
  return keep;
}

export function convertToFp16(g: ComponentGraph, opts: Fp16Options): Fp16Report {
  const types = inferTypes(g);
  const keep = markKeepFp32(g, types, opts.component);
  const F32 = DT.FLOAT;
  const F16 = DT.FLOAT16;
  const isF = (t: string) => !!t && isFloatType(types.get(t));
  const nodePrec = (n: NodeProto) => (keep.has(n) ? F32 : F16);
  const uses = useMap(g.nodes);

  const required = (n: NodeProto, slot: number): number | 'any' => {
    const op = n.opType ?? '';
    if (slot >= 0 && anySlot(op, slot)) return 'any';
    if (slot >= 0) {
      const f = fixedSlot(op, slot);
      if (f) return f;
    }
    if (slot < 0) return F32; // subgraph captures: bodies stay fp32
    return nodePrec(n);
  };

  // Precision of every float tensor.
  const prec = new Map<string, number>();
  for (const i of g.inputs) if (isF(i.name ?? '')) prec.set(i.name ?? '', opts.ioTypes.get(i.name ?? '') ?? F32);
  const wantsF16 = (t: string) => (uses.get(t) ?? []).some((u) => required(u.node, u.slot) === F16);

  for (const [name, init] of g.inits) {
    if (init.dataType !== F32) continue;
    if (wantsF16(name) && init.job.spec.kind === 'copy') {
      init.job.spec.to = F16;
      init.dataType = F16;
      init.byteLength = init.byteLength / 2;
      prec.set(name, F16);
    } else if (wantsF16(name) && init.job.spec.kind === 'quant' && init.index === 1) {
      // MatMulNBits scales have the activations' type (T1); the writer emits them as fp16 for this dataType.
      init.dataType = F16;
      init.byteLength = init.byteLength / 2;
      prec.set(name, F16);
    } else prec.set(name, F32);
  }

  for (const n of g.nodes) {
    const op = n.opType ?? '';
    const out0 = n.output?.[0] ?? '';
    if (op === 'Constant') {
      const a = (n.attribute ?? [])[0];
      if (a?.name === 'value' && a.t && a.t.dataType === F32) {
        if (wantsF16(out0)) {
          retypeAttrTensor(a.t, inlineTensorBytes(a.t), F16);
          prec.set(out0, F16);
        } else prec.set(out0, F32);
      } else if ((a?.name === 'value_float' || a?.name === 'value_floats') && isF(out0)) prec.set(out0, F32);
      continue;
    }
    const p = nodePrec(n);
    if (op === 'Cast') {
      if (attrInt(n, 'to', 0) === F32 && p === F16) setAttrInt(n, 'to', F16);
      if (isF(out0)) prec.set(out0, attrInt(n, 'to', 0));
      continue;
    }
    if (op === 'ConstantOfShape' && isF(out0)) {
      const a = getAttr(n, 'value');
      if (p === F16) {
        if (a?.t) retypeAttrTensor(a.t, inlineTensorBytes(a.t), F16);
        else (n.attribute ??= []).push({ name: 'value', type: 4, t: { dims: [1], dataType: F16, rawData: new Uint8Array(2) } });
      }
      prec.set(out0, p);
      continue;
    }
    if (op === 'LayerNormalization') {
      (n.output ?? []).forEach((o, i) => o && isF(o) && prec.set(o, i === 0 ? p : attrInt(n, 'stash_type', F32)));
      continue;
    }
    if (op === 'If' || op === 'Loop' || op === 'Scan') {
      (n.output ?? []).forEach((o) => o && isF(o) && prec.set(o, types.get(o) ?? F32));
      continue;
    }
    for (const o of n.output ?? []) if (o && isF(o)) prec.set(o, p);
  }

  // Casts where a consumer needs the other precision.
  const castOf = new Map<string, string>();
  const out: NodeProto[] = [];
  let casts = 0;
  const getCast = (t: string, to: number): string => {
    const key = `${t}|${to}`;
    let c = castOf.get(key);
    if (!c) {
      c = `${t}_to${to === F16 ? 'fp16' : 'fp32'}`;
      castOf.set(key, c);
      out.push(node('Cast', [t], [c], { to }, { name: `${c}_cast` }));
      prec.set(c, to);
      types.set(c, to);
      casts++;
    }
    return c;
  };
  for (const n of g.nodes) {
    const ins = n.input ?? [];
    ins.forEach((t, slot) => {
      if (!t || !isF(t)) return;
      const need = required(n, slot);
      const have = prec.get(t);
      if (need === 'any' || have === undefined || have === need) return;
      ins[slot] = getCast(t, need);
    });
    for (const t of implicitInputs(n)) {
      if (!isF(t)) continue;
      const have = prec.get(t);
      if (have !== undefined && have !== F32) renameInSubgraphs(n, t, getCast(t, F32));
    }
    out.push(n);
  }
  // Graph outputs in their declared types.
  for (const o of g.outputs) {
    const name = o.name ?? '';
    if (!isF(name)) continue;
    const want = opts.ioTypes.get(name) ?? F32;
    const have = prec.get(name);
    if (have === undefined || have === want) continue;
    const inner = `${name}_${have === F16 ? 'fp16' : 'fp32'}_inner`;
    for (const n of out) {
      n.output = (n.output ?? []).map((x) => (x === name ? inner : x));
      n.input = (n.input ?? []).map((x) => (x === name ? inner : x));
    }
    out.push(node('Cast', [inner], [name], { to: want }, { name: `${name}_out_cast` }));
    casts++;
  }
  for (const v of [...g.inputs, ...g.outputs]) {
    const tt = v.type?.tensorType;
    if (tt && isFloatType(valueInfoElemType(v))) tt.elemType = opts.ioTypes.get(v.name ?? '') ?? F32;
  }
  g.nodes = out;

  const keptReasons: Record<string, number> = {};
  for (const r of keep.values()) keptReasons[r] = (keptReasons[r] ?? 0) + 1;
  return {
    fp32Nodes: keep.size,
    fp16Nodes: g.nodes.length - keep.size - casts,
    casts,
    keptReasons,
    woNodes: [...keep.entries()].filter(([, r]) => r === 't5-wo').map(([n]) => n.name ?? ''),
  };
}
