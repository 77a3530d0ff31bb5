/**
 * FLUX math that must run where the latents live (on the GPU in the browser), expressed as tiny ONNX graphs so
 * every execution provider runs it and nothing is read back between steps. Each graph has a JS twin in this
 * folder (schedule.ts, latents.ts, vae.ts) that defines the semantics; tests check they agree.
 */
import { encodeModel, OnnxDataType, type GraphSpec, type NodeSpec } from '../onnx/proto-writer.js';

export type FloatDtype = 'float32' | 'float16';

const ONNX_TYPE: Record<FloatDtype, OnnxDataType> = { float32: OnnxDataType.FLOAT, float16: OnnxDataType.FLOAT16 };

/**
 * Euler update x' = x + dt·v (scheduler step, float32). `v` may come from an fp16 transformer; the second
 * output is x' cast to the transformer's input dtype (only when that differs from float32).
 *   inputs:  x float32 [B,S,K], v <velocityDtype> [B,S,K], dt float32 [1]
 *   outputs: x_next float32 [B,S,K] (+ x_next_model <modelDtype>)
 */
export function eulerStepGraph(velocityDtype: FloatDtype, modelInputDtype: FloatDtype): Uint8Array {
  const nodes: NodeSpec[] = [];
  let v = 'v';
  if (velocityDtype !== 'float32') {
    nodes.push({ op: 'Cast', inputs: ['v'], outputs: ['v32'], attributes: { to: OnnxDataType.FLOAT } });
    v = 'v32';
  }
  nodes.push({ op: 'Mul', inputs: [v, 'dt'], outputs: ['dv'] }, { op: 'Add', inputs: ['x', 'dv'], outputs: ['x_next'] });
  const outputs = [{ name: 'x_next', type: OnnxDataType.FLOAT, shape: ['B', 'S', 'K'] }];
  if (modelInputDtype !== 'float32') {
    nodes.push({ op: 'Cast', inputs: ['x_next'], outputs: ['x_next_model'], attributes: { to: ONNX_TYPE[modelInputDtype] } });
    outputs.push({ name: 'x_next_model', type: ONNX_TYPE[modelInputDtype], shape: ['B', 'S', 'K'] });
  }
  return encodeModel({
    name: 'euler_step',
    inputs: [
      { name: 'x', type: OnnxDataType.FLOAT, shape: ['B', 'S', 'K'] },
      { name: 'v', type: ONNX_TYPE[velocityDtype], shape: ['B', 'S', 'K'] },
      { name: 'dt', type: OnnxDataType.FLOAT, shape: [1] },
    ],
    outputs,
    nodes,
  });
}

/**
 * Unpack [B,S,4C] → [B,C,h,w] in diffusers' order (view [B,h/2,w/2,C,2,2], permute 0,3,1,4,2,5) and apply
 * z = x / scaling + shift, cast to the VAE's dtype.
 *   inputs:  x float32 [B,S,K], shape6 int64 [6] = [B,h/2,w/2,C,2,2], shape4 int64 [4] = [B,C,h,w]
 *   output:  z <vaeDtype> [B,C,h,w]
 */
export function vaeInputGraph(scalingFactor: number, shiftFactor: number, vaeDtype: FloatDtype): Uint8Array {
  const nodes: NodeSpec[] = [
    { op: 'Reshape', inputs: ['x', 'shape6'], outputs: ['x6'] },
    { op: 'Transpose', inputs: ['x6'], outputs: ['xt'], attributes: { perm: [0, 3, 1, 4, 2, 5] } },
    { op: 'Reshape', inputs: ['xt', 'shape4'], outputs: ['lat'] },
    { op: 'Div', inputs: ['lat', 'scaling'], outputs: ['scaled'] },
    { op: 'Add', inputs: ['scaled', 'shift'], outputs: vaeDtype === 'float32' ? ['z'] : ['z32'] },
  ];
  if (vaeDtype !== 'float32') nodes.push({ op: 'Cast', inputs: ['z32'], outputs: ['z'], attributes: { to: ONNX_TYPE[vaeDtype] } });
  const spec: GraphSpec = {
    name: 'vae_input',
    inputs: [
      { name: 'x', type: OnnxDataType.FLOAT, shape: ['B', 'S', 'K'] },
      { name: 'shape6', type: OnnxDataType.INT64, shape: [6] },
      { name: 'shape4', type: OnnxDataType.INT64, shape: [4] },
    ],
    outputs: [{ name: 'z', type: ONNX_TYPE[vaeDtype], shape: ['B', 'C', 'H', 'W'] }],
    nodes,
    initializers: [
      { name: 'scaling', type: OnnxDataType.FLOAT, values: [scalingFactor], dims: [] },
      { name: 'shift', type: OnnxDataType.FLOAT, values: [shiftFactor], dims: [] },
    ],
  };
  return encodeModel(spec);
}

/** Repeat along the batch: Tile(x, repeats). inputs: x <dtype> rank `rank`, repeats int64 [rank]. */
export function tileGraph(rank: number, dtype: FloatDtype): Uint8Array {
  const dims = Array.from({ length: rank }, (_, i) => `d${i}`);
  return encodeModel({
    name: 'tile',
    inputs: [
      { name: 'x', type: ONNX_TYPE[dtype], shape: dims },
      { name: 'repeats', type: OnnxDataType.INT64, shape: [rank] },
    ],
    outputs: [{ name: 'y', type: ONNX_TYPE[dtype], shape: dims.map((d) => `${d}_out`) }],
    nodes: [{ op: 'Tile', inputs: ['x', 'repeats'], outputs: ['y'] }],
  });
}

/**
 * Pick one row per batch item: h [B,N,D] → [B,D] with rows flatIndex[b] = b·N + index[b]
 * (CLIP graphs that return hidden states instead of the pooled output).
 *   inputs: h <dtype> [B,N,D], flat_index int64 [B], shape2 int64 [2] = [B·N, D]
 */
export function gatherRowsGraph(dtype: FloatDtype): Uint8Array {
  return encodeModel({
    name: 'gather_rows',
    inputs: [
      { name: 'h', type: ONNX_TYPE[dtype], shape: ['B', 'N', 'D'] },
      { name: 'flat_index', type: OnnxDataType.INT64, shape: ['B'] },
      { name: 'shape2', type: OnnxDataType.INT64, shape: [2] },
    ],
    outputs: [{ name: 'pooled', type: ONNX_TYPE[dtype], shape: ['B', 'D'] }],
    nodes: [
      { op: 'Reshape', inputs: ['h', 'shape2'], outputs: ['flat'] },
      { op: 'Gather', inputs: ['flat', 'flat_index'], outputs: ['pooled'], attributes: { axis: 0 } },
    ],
  });
}

/** Cast between float types. input x <from> of rank `rank` → y <to>. */
export function castGraph(rank: number, from: FloatDtype, to: FloatDtype): Uint8Array {
  const dims = Array.from({ length: rank }, (_, i) => `d${i}`);
  return encodeModel({
    name: 'cast',
    inputs: [{ name: 'x', type: ONNX_TYPE[from], shape: dims }],
    outputs: [{ name: 'y', type: ONNX_TYPE[to], shape: dims }],
    nodes: [{ op: 'Cast', inputs: ['x'], outputs: ['y'], attributes: { to: ONNX_TYPE[to] } }],
  });
}
