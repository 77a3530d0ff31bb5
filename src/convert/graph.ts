/**
 * The converter's working graph: the decoded ONNX graph plus the output initializers, each produced by a job that
 * reads one source tensor and writes one or more output tensors (a copy with a dtype change, a MatMulNBits
 * quantization, an int8 embedding table). Nothing here holds tensor data; jobs run when the writer needs them.
 */
import type { TensorRef } from './model-reader.js';
import { convertFloatBytes, DT, elemSize, isFloatType, numel, subgraphs, toNum, valueInfoElemType, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto } from './onnx.js';
import type { QuantParams, ReconStats } from './quantize.js';

export interface OutInit {
  name: string;
  dims: number[];
  dataType: number;
  byteLength: number;
  job: Job;
  /** Index of this tensor among the job's outputs. */
  index: number;
}

export type JobSpec =
  | { kind: 'copy'; to: number; scale?: number }
  | { kind: 'quant'; K: number; N: number; layout: 'KN' | 'NK'; params: QuantParams; alpha: number }
  | { kind: 'embed8'; V: number; D: number };

export interface Job {
  id: number;
  source: TensorRef;
  spec: JobSpec;
  outputs: OutInit[];
  /** Filled by the runner for quant jobs. */
  stats?: ReconStats;
}

export interface ComponentGraph {
  nodes: NodeProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  inits: Map<string, OutInit>;
  /** Other graph fields kept as they are (name, doc string…). */
  name: string;
  /** Source model facts. */
  opsetImport: { domain: string; version: number }[];
  irVersion: number;
  jobs: Job[];
}

let jobCounter = 0;

export function newJob(source: TensorRef, spec: JobSpec, outs: { name: string; dims: number[]; dataType: number; byteLength?: number }[]): Job {
  const job: Job = { id: ++jobCounter, source, spec, outputs: [] };
  job.outputs = outs.map((o, index) => ({
    name: o.name,
    dims: o.dims,
    dataType: o.dataType,
    byteLength: o.byteLength ?? numel(o.dims) * elemSize(o.dataType),
    job,
    index,
  }));
  return job;
}

/** A plain copy job (optionally converting float type). */
export function copyInit(source: TensorRef, name: string, to: number = source.dataType, scale?: number): OutInit {
  const spec: JobSpec = scale !== undefined && scale !== 1 ? { kind: 'copy', to, scale } : { kind: 'copy', to };
  return newJob(source, spec, [{ name, dims: source.dims, dataType: to }]).outputs[0]!;
}

/** Tensor producers and consumers of the top-level graph (subgraph references count as uses by their node). */
export function useMap(nodes: readonly NodeProto[]): Map<string, { node: NodeProto; slot: number }[]> {
  const uses = new Map<string, { node: NodeProto; slot: number }[]>();
  const add = (name: string, node: NodeProto, slot: number) => {
    if (!name) return;
    let l = uses.get(name);
    if (!l) uses.set(name, (l = []));
    l.push({ node, slot });
  };
  for (const n of nodes) {
    (n.input ?? []).forEach((x, i) => add(x, n, i));
    for (const x of implicitInputs(n)) add(x, n, -1);
  }
  return uses;
}

export function producerMap(nodes: readonly NodeProto[]): Map<string, NodeProto> {
  const m = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) if (o) m.set(o, n);
  return m;
}

/** Outer-scope names a node's subgraphs read (If/Loop/Scan bodies). */
export function implicitInputs(n: NodeProto): string[] {
  const gs = subgraphs(n);
  if (!gs.length) return [];
  const out = new Set<string>();
  const visit = (g: GraphProto, outerDefined: Set<string>) => {
    const defined = new Set<string>(outerDefined);
    for (const i of g.input ?? []) defined.add(i.name ?? '');
    for (const i of g.initializer ?? []) defined.add(i.name ?? '');
    for (const nn of g.node ?? []) {
      for (const x of nn.input ?? []) if (x && !defined.has(x)) out.add(x);
      for (const sg of subgraphs(nn)) visit(sg, defined);
      for (const o of nn.output ?? []) defined.add(o);
    }
    for (const o of g.output ?? []) if (o.name && !defined.has(o.name)) out.add(o.name);
  };
  for (const g of gs) visit(g, new Set());
  return [...out];
}

/** Rename every read of `from` to `to` inside a node's subgraphs (outer-scope captures). */
export function renameInSubgraphs(n: NodeProto, from: string, to: string): void {
  const visit = (g: GraphProto) => {
    const local = new Set<string>([...(g.input ?? []).map((i) => i.name ?? ''), ...(g.initializer ?? []).map((i) => i.name ?? '')]);
    for (const nn of g.node ?? []) for (const o of nn.output ?? []) local.add(o);
    if (local.has(from)) return; // shadowed
    for (const nn of g.node ?? []) {
      nn.input = (nn.input ?? []).map((x) => (x === from ? to : x));
      for (const sg of subgraphs(nn)) visit(sg);
    }
    for (const o of g.output ?? []) if (o.name === from) throw new Error(`subgraph output reads outer "${from}" directly; cannot retype it`);
  };
  for (const g of subgraphs(n)) visit(g);
}

/** Stable topological sort (keeps the given order where it already is one). */
export function topoSort(nodes: NodeProto[], available: Set<string>): NodeProto[] {
  const have = new Set(available);
  const ready = (n: NodeProto) => [...(n.input ?? []), ...implicitInputs(n)].every((x) => !x || have.has(x));
  let sorted = true;
  for (const n of nodes) {
    if (!ready(n)) {
      sorted = false;
      break;
    }
    for (const o of n.output ?? []) have.add(o);
  }
  if (sorted) return nodes;
  const out: NodeProto[] = [];
  const pending = [...nodes];
  const have2 = new Set(available);
  while (pending.length) {
    const i = pending.findIndex((n) => [...(n.input ?? []), ...implicitInputs(n)].every((x) => !x || have2.has(x)));
    if (i < 0) throw new Error(`graph has a cycle or reads undefined tensors (e.g. node ${pending[0]!.name} reads ${(pending[0]!.input ?? []).filter((x) => x && !have2.has(x)).join(', ')})`);
    const [n] = pending.splice(i, 1);
    out.push(n!);
    for (const o of n!.output ?? []) have2.add(o);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Element-type inference (enough for exported transformer/T5/CLIP/VAE graphs)
// ---------------------------------------------------------------------------------------------------------------

const BOOL_OPS = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin', 'NonMaxSuppression']);

function attrTensorType(n: NodeProto, name: string): number | undefined {
  const a = (n.attribute ?? []).find((x) => x.name === name);
  return a?.t?.dataType ?? undefined;
}

/** Element type of every tensor name in the top-level graph that can be inferred. */
export function inferTypes(g: Pick<ComponentGraph, 'nodes' | 'inputs' | 'inits'>): Map<string, number> {
  const types = new Map<string, number>();
  for (const i of g.inputs) {
    const t = valueInfoElemType(i);
    if (t) types.set(i.name ?? '', t);
  }
  for (const [name, init] of g.inits) types.set(name, init.dataType);
  for (const n of g.nodes) {
    const op = n.opType ?? '';
    const ins = (n.input ?? []).map((x) => (x ? types.get(x) : undefined));
    const outs = n.output ?? [];
    const set = (i: number, t: number | undefined) => {
      if (outs[i] && t) types.set(outs[i]!, t);
    };
    const attrInt = (name: string) => {
      const a = (n.attribute ?? []).find((x) => x.name === name);
      return a?.i !== undefined && a.i !== null ? toNum(a.i) : undefined;
    };
    if (op === 'Cast') set(0, attrInt('to'));
    else if (op === 'CastLike') set(0, ins[1]);
    else if (INT64_OPS.has(op)) set(0, DT.INT64);
    else if (BOOL_OPS.has(op)) set(0, DT.BOOL);
    else if (op === 'Constant') {
      const a = (n.attribute ?? [])[0];
      const nm = a?.name;
      if (nm === 'value') set(0, a?.t?.dataType ?? undefined);
      else if (nm === 'value_float' || nm === 'value_floats') set(0, DT.FLOAT);
      else if (nm === 'value_int' || nm === 'value_ints') set(0, DT.INT64);
    } else if (op === 'ConstantOfShape') set(0, attrTensorType(n, 'value') ?? DT.FLOAT);
    else if (op === 'Where') set(0, ins[1] ?? ins[2]);
    else if (op === 'TopK') {
      set(0, ins[0]);
      set(1, DT.INT64);
    } else if (op === 'DequantizeLinear') set(0, ins[1]);
    else if (op === 'QuantizeLinear') set(0, ins[2] ?? DT.UINT8);
    else if (op === 'RandomNormal' || op === 'RandomUniform') set(0, attrInt('dtype') ?? DT.FLOAT);
    else if (op === 'RandomNormalLike' || op === 'RandomUniformLike' || op === 'EyeLike') set(0, attrInt('dtype') ?? ins[0]);
    else if (op === 'LayerNormalization') {
      set(0, ins[0]);
      set(1, attrInt('stash_type') ?? DT.FLOAT);
      set(2, attrInt('stash_type') ?? DT.FLOAT);
    } else if (op === 'If') {
      const a = (n.attribute ?? []).find((x) => x.name === 'then_branch');
      (a?.g?.output ?? []).forEach((o, i) => set(i, valueInfoElemType(o)));
    } else if (op === 'Loop' || op === 'Scan') {
      const a = (n.attribute ?? []).find((x) => x.name === 'body');
      const outsT = (a?.g?.output ?? []).map((o) => valueInfoElemType(o));
      const skip = op === 'Loop' ? 1 : 0;
      outs.forEach((_, i) => set(i, outsT[i + skip]));
    } else {
      const t = ins.find((x) => x !== undefined);
      outs.forEach((_, i) => set(i, t));
    }
  }
  return types;
}

export const isFloatTensor = (types: Map<string, number>, name: string): boolean => isFloatType(types.get(name));

// ---------------------------------------------------------------------------------------------------------------
// Inline tensors in nodes (Constant / ConstantOfShape values) and dtype attributes
// ---------------------------------------------------------------------------------------------------------------

/** Rewrite a TensorProto held in an attribute to another float type (data made raw). */
export function retypeAttrTensor(t: TensorProto, bytes: Uint8Array, to: number): void {
  const from = t.dataType ?? 0;
  t.rawData = convertFloatBytes(bytes, from, to);
  t.dataType = to;
  t.floatData = [];
  t.int32Data = [];
  t.doubleData = [];
}
