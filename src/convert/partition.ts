/**
 * Splitting a graph into stages: contiguous segments of the topological order whose weights stay under a budget.
 * Cuts go where the fewest float activations cross (between transformer blocks: the img/txt streams, the
 * conditioning vector and the RoPE tables), never inside a block if a better cut exists. Stage k reads component
 * inputs and outputs of earlier stages by name; small integer/shape computations and Constants that a later stage
 * needs are recomputed there instead of crossing.
 */
import { implicitInputs, type ComponentGraph, type OutInit } from './graph.js';
import { isFloatType, valueInfo, type NodeProto, type ValueInfoProto } from './onnx.js';

export interface Stage {
  nodes: NodeProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  inits: OutInit[];
  weightBytes: number;
}

const CHEAP_OPS = new Set([
  'Constant', 'Shape', 'Size', 'Gather', 'Unsqueeze', 'Squeeze', 'Concat', 'Slice', 'Cast', 'Reshape', 'Range', 'ConstantOfShape', 'Equal',
  'Where', 'Expand', 'Add', 'Sub', 'Mul', 'Div', 'Neg', 'Floor', 'Ceil', 'Min', 'Max', 'ReduceProd', 'Identity', 'Not', 'Less', 'Greater',
]);

/**
 * Partition `g` (topologically sorted) so each stage's weights are ≤ `budget` bytes where possible.
 * `types` are the element types of all tensors.
 */
export function partition(g: ComponentGraph, budget: number, types: Map<string, number>): Stage[] {
  const nodes = g.nodes;
  const N = nodes.length;
  const inputNames = new Set(g.inputs.map((i) => i.name ?? ''));
  const producedAt = new Map<string, number>();
  nodes.forEach((n, i) => (n.output ?? []).forEach((o) => o && producedAt.set(o, i)));
  const reads = (n: NodeProto) => [...(n.input ?? []).filter(Boolean), ...implicitInputs(n)];
  const isConstNode = (n: NodeProto) => n.opType === 'Constant';

  // A tensor is recomputable in a later stage when it is not float (shape arithmetic) or comes from a Constant,
  // and so is everything it is computed from (initializers and component inputs are always available).
  const recomputable = new Map<string, boolean>();
  const canRecompute = (t: string, depth = 0): boolean => {
    if (g.inits.has(t) || inputNames.has(t)) return true;
    const cached = recomputable.get(t);
    if (cached !== undefined) return cached;
    const at = producedAt.get(t);
    if (at === undefined || depth > 64) return false;
    const p = nodes[at]!;
    const ok = (isConstNode(p) || (!isFloatType(types.get(t)) && CHEAP_OPS.has(p.opType ?? ''))) && reads(p).every((x) => canRecompute(x, depth + 1));
    recomputable.set(t, ok);
    return ok;
  };

  // Float activations crossing each possible cut (after node i).
  const lastUse = new Map<string, number>();
  nodes.forEach((n, i) => reads(n).forEach((x) => lastUse.set(x, i)));
  for (const o of g.outputs) lastUse.set(o.name ?? '', N);
  const delta = new Float64Array(N + 1);
  for (const [t, p] of producedAt) {
    const l = lastUse.get(t);
    if (l === undefined || l <= p || canRecompute(t)) continue;
    delta[p] += 1;
    delta[l] -= 1;
  }
  const crossing = new Float64Array(N);
  let run = 0;
  for (let i = 0; i < N; i++) crossing[i] = run += delta[i]!;

  // Greedy segments over the weights each node adds.
  const cuts: number[] = [];
  let segInits = new Set<string>();
  let segWeight = 0;
  let segStart = 0;
  const weightAt: number[] = [];
  for (let i = 0; i < N; i++) {
    const add = reads(nodes[i]!).filter((x) => g.inits.has(x) && !segInits.has(x));
    const addBytes = add.reduce((s, x) => s + g.inits.get(x)!.byteLength, 0);
    if (segWeight + addBytes > budget && i > segStart) {
      // Best cut in [segStart, i-1]: fewest crossings, preferring segments at least half full, then the latest.
      let best = i - 1;
      let bestCost = Infinity;
      for (let c = segStart; c < i; c++) {
        if (weightAt[c - segStart]! < budget / 2 && weightAt[i - 1 - segStart]! >= budget / 2) continue;
        if (crossing[c]! <= bestCost) {
          bestCost = crossing[c]!;
          best = c;
        }
      }
      cuts.push(best);
      segStart = best + 1;
      segInits = new Set();
      segWeight = 0;
      weightAt.length = 0;
      for (let j = segStart; j <= i; j++) {
        for (const x of reads(nodes[j]!)) {
          if (g.inits.has(x) && !segInits.has(x)) {
            segInits.add(x);
            segWeight += g.inits.get(x)!.byteLength;
          }
        }
        weightAt.push(segWeight);
      }
      continue;
    }
    for (const x of add) segInits.add(x);
    segWeight += addBytes;
    weightAt.push(segWeight);
  }

  const bounds: [number, number][] = [];
  let s = 0;
  for (const c of cuts) {
    bounds.push([s, c]);
    s = c + 1;
  }
  bounds.push([s, N - 1]);

  // Build stage graphs.
  const stageOf = new Map<string, number>();
  bounds.forEach(([a, b], k) => {
    for (let i = a; i <= b; i++) for (const o of nodes[i]!.output ?? []) if (o) stageOf.set(o, k);
  });
  const outputsNeeded = bounds.map(() => new Set<string>());
  const stages: Stage[] = [];
  const vi = (name: string): ValueInfoProto => {
    const t = types.get(name);
    if (!t) throw new Error(`cannot split the graph at "${name}": its element type is unknown`);
    return valueInfo(name, t);
  };
  const graphOutputs = new Set(g.outputs.map((o) => o.name ?? ''));
  const plans = bounds.map(([a, b], k) => {
    const own = nodes.slice(a, b + 1);
    const local = new Set<string>();
    for (const n of own) for (const o of n.output ?? []) if (o) local.add(o);
    const dup: NodeProto[] = [];
    const dupSet = new Set<NodeProto>();
    const stageInputs = new Set<string>();
    const need = (t: string) => {
      if (!t || local.has(t) || g.inits.has(t)) return;
      if (inputNames.has(t)) {
        stageInputs.add(t);
        return;
      }
      const from = stageOf.get(t);
      if (from === undefined) throw new Error(`tensor "${t}" has no producer`);
      if (canRecompute(t)) {
        const p = nodes[producedAt.get(t)!]!;
        if (!dupSet.has(p)) {
          dupSet.add(p);
          for (const x of reads(p)) need(x);
          dup.push(p);
          for (const o of p.output ?? []) if (o) local.add(o);
        }
        return;
      }
      stageInputs.add(t);
      outputsNeeded[from]!.add(t);
    };
    for (const n of own) for (const x of reads(n)) need(x);
    for (const o of graphOutputs) if (stageOf.get(o) === k) outputsNeeded[k]!.add(o);
    // Duplicated nodes keep their original relative order.
    const order = new Map(nodes.map((n, i) => [n, i]));
    dup.sort((x, y) => order.get(x)! - order.get(y)!);
    return { nodes: [...dup, ...own], inputs: stageInputs };
  });
  plans.forEach((p, k) => {
    // Drop nodes whose results only later stages use (Constants and shape arithmetic they recompute).
    for (;;) {
      const read = new Set<string>(outputsNeeded[k]);
      for (const n of p.nodes) for (const x of reads(n)) read.add(x);
      const before = p.nodes.length;
      p.nodes = p.nodes.filter((n) => (n.output ?? []).some((o) => o && read.has(o)));
      if (p.nodes.length === before) break;
    }
    const used = new Set<string>();
    for (const n of p.nodes) for (const x of reads(n)) if (g.inits.has(x)) used.add(x);
    const inits = [...used].map((x) => g.inits.get(x)!);
    const outputs = [...outputsNeeded[k]!].map((o) => (graphOutputs.has(o) ? g.outputs.find((x) => x.name === o)! : vi(o)));
    const inputs = [...p.inputs].map((x) => (inputNames.has(x) ? g.inputs.find((i) => i.name === x)! : vi(x)));
    stages.push({ nodes: p.nodes, inputs, outputs, inits, weightBytes: inits.reduce((s2, i) => s2 + i.byteLength, 0) });
  });
  const last = stages[stages.length - 1]!;
  for (const o of graphOutputs) {
    if (!last.outputs.some((x) => x.name === o)) throw new Error(`graph output "${o}" is not produced by the last stage`);
  }
  return stages;
}
