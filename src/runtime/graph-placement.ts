/**
 * Session options that keep a graph's work where its data already is.
 *
 * The WebGPU EP has no kernels for some integer ops (ArgMax on ids, T5's relative-position buckets…), so ORT runs
 * them on the CPU EP — and when their inputs were first computed on the GPU (a Cast of input_ids, say) it reads
 * them back with a GPU→CPU copy in every run. Two remedies, measured with the GPU read counter:
 * - chains that depend only on integer graph inputs, shapes and scalar constants (which the host already has) are
 *   pinned to the CPU with `forceCpuNodeNames`, so their results are only ever uploaded;
 * - a graph whose chains depend on shapes alone (T5's position buckets) gets its free dimensions fixed instead
 *   (text encoders always run at batch 1 and a fixed length), so ORT folds them into constants at load.
 */
import { readOnnxGraph, type OnnxGraphInfo } from '../onnx/proto-reader.js';
import type { OrtSessionOptions } from './ort-api.js';

/** Float initializers up to this many elements count as host constants (eps, scales); weight tables never do. */
const HOST_FLOAT_CONSTANT_ELEMENTS = 16;
const INT_TYPES = new Set([2, 3, 4, 5, 6, 7, 9, 12, 13]); // uint8 … int64, bool, uint32, uint64

/** ORT rejects provider option values longer than this (comma-joined node names). */
const MAX_OPTION_CHARS = 8192;

/**
 * Names of nodes to pin to the CPU: nodes computable on the host (every input is an integer graph input, an integer
 * or scalar initializer, a constant, a shape of such values, or the output of such a node) that descend from an integer
 * graph input, plus their host-computable ancestors, so no pinned node ever waits for a GPU value. Shape
 * arithmetic on float tensors is left to ORT, which keeps it on the host already.
 */
export function hostOnlyNodes(graph: OnnxGraphInfo): string[] {
  const intInputs = graph.inputs.filter((v) => INT_TYPES.has(v.elemType)).map((v) => v.name);
  const hostValues = new Set<string>(intInputs);
  const idValues = new Set<string>(intInputs);
  for (const t of graph.initializers) {
    // Integer initializers are shapes, indices and axes; float ones are weights unless (near-)scalar.
    if (INT_TYPES.has(t.dataType) || t.dims.reduce((a, b) => a * b, 1) <= HOST_FLOAT_CONSTANT_ELEMENTS) hostValues.add(t.name);
  }
  const producer = new Map<string, number>();
  const hostNodes = new Set<number>();
  const seeds: number[] = [];
  graph.nodes.forEach((n, i) => {
    for (const o of n.outputs) producer.set(o, i);
    if (n.domain !== '' && n.domain !== 'ai.onnx') return;
    const inputs = n.inputs.filter((x) => x !== '');
    if (!inputs.every((x) => hostValues.has(x))) return; // Shape of a float tensor lands here: ORT's business
    for (const o of n.outputs) hostValues.add(o);
    if (n.opType === 'Constant') return;
    hostNodes.add(i);
    if (inputs.some((x) => idValues.has(x))) {
      for (const o of n.outputs) idValues.add(o);
      seeds.push(i);
    }
  });
  // Close over host-computable ancestors.
  const pinned = new Set<number>();
  const stack = [...seeds];
  while (stack.length) {
    const i = stack.pop()!;
    if (pinned.has(i)) continue;
    pinned.add(i);
    for (const x of graph.nodes[i]!.inputs) {
      const p = producer.get(x);
      if (p !== undefined && hostNodes.has(p) && !pinned.has(p)) stack.push(p);
    }
  }
  const names: string[] = [];
  let chars = 0;
  for (const i of [...pinned].sort((a, b) => a - b)) {
    const name = graph.nodes[i]!.name;
    if (!name || chars + name.length + 1 > MAX_OPTION_CHARS) continue;
    names.push(name);
    chars += name.length + 1;
  }
  return names;
}

/** ORT `freeDimensionOverrides` that give every graph input the shape `shape` (symbolic dims only). */
export function fixedShapeOverrides(graph: OnnxGraphInfo, shape: readonly number[]): Record<string, number> {
  const overrides: Record<string, number> = {};
  for (const v of graph.inputs) {
    v.dims.forEach((d, axis) => {
      if (typeof d === 'string' && shape[axis] !== undefined) overrides[d] = shape[axis]!;
    });
  }
  return overrides;
}

/**
 * WebGPU session options for one graph. `fixedInputShape` (text encoders) folds shape-only chains;
 * otherwise ids-derived host chains are pinned. Not both: folding renames the nodes a pin list refers to.
 */
export function placementOptions(model: Uint8Array, options: { fixedInputShape?: readonly number[] } = {}): Pick<OrtSessionOptions, 'freeDimensionOverrides'> & { forceCpuNodeNames?: string[] } {
  const graph = readOnnxGraph(model);
  if (options.fixedInputShape) return { freeDimensionOverrides: fixedShapeOverrides(graph, options.fixedInputShape) };
  return { forceCpuNodeNames: hostOnlyNodes(graph) };
}
