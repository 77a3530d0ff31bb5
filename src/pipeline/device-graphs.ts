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

/**
 * Safety-checker input from the decoded image, on the device (the JS twin is preprocessForSafety in safety.ts):
 * 8-bit levels as postprocessImages makes them, PIL-style resampling as two MatMuls with the matrices of
 * safetyResizeMatrices (center crop folded in), per-channel (v·rescale − mean)/std in the classifier's channel
 * order, then its layout and dtype.
 *   input:  image <imageDtype> [B, 3, H, W]
 *   output: pixel_values <outDtype> [B, 3, h, w] (NCHW) or [B, h, w, 3] (NHWC)
 */
export function safetyPreprocessGraph(args: {
  imageDtype: FloatDtype;
  outDtype: FloatDtype;
  H: number;
  W: number;
  /** [outH, H] and [outW, W], row-major. */
  rh: ArrayLike<number>;
  rw: ArrayLike<number>;
  outH: number;
  outW: number;
  /** Per model channel: x = v·scale + bias, with scale = rescale/std, bias = −mean/std. */
  scale: readonly number[];
  bias: readonly number[];
  channelOrder: 'RGB' | 'BGR';
  layout: 'NCHW' | 'NHWC';
}): Uint8Array {
  const { H, W, outH, outW } = args;
  const transpose = (m: ArrayLike<number>, r: number, c: number) => {
    const t: number[] = new Array(r * c);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = m[i * c + j]!;
    return t;
  };
  const nodes: NodeSpec[] = [];
  let x = 'image';
  if (args.imageDtype !== 'float32') {
    nodes.push({ op: 'Cast', inputs: [x], outputs: ['image32'], attributes: { to: OnnxDataType.FLOAT } });
    x = 'image32';
  }
  nodes.push(
    // round(clamp(x/2 + 0.5, 0, 1)·255), float32 step by step like postprocessImages. Rounding half to even
    // without the Round op (not on every WebGPU build): v + 2^23 − 2^23 in float32 is exactly that for
    // 0 ≤ v < 2^22, as two separate kernels whose intermediate is stored as float32.
    { op: 'Div', inputs: [x, 'two'], outputs: ['half'] },
    { op: 'Add', inputs: ['half', 'point5'], outputs: ['unit'] },
    { op: 'Clip', inputs: ['unit', 'zero', 'one'], outputs: ['clamped'] },
    { op: 'Mul', inputs: ['clamped', 'c255'], outputs: ['scaled255'] },
    { op: 'Add', inputs: ['scaled255', 'two23'], outputs: ['shifted'] },
    { op: 'Sub', inputs: ['shifted', 'two23'], outputs: ['levels'] },
    // Width pass [B,3,H,W]·[W,outW] → [B,3,H,outW]; transpose; height pass → [B,3,outW,outH].
    { op: 'MatMul', inputs: ['levels', 'rw_t'], outputs: ['resized_w'] },
    { op: 'Transpose', inputs: ['resized_w'], outputs: ['resized_wt'], attributes: { perm: [0, 1, 3, 2] } },
    { op: 'MatMul', inputs: ['resized_wt', 'rh_t'], outputs: ['resized_t'] },
  );
  let y = 'resized_t';
  if (args.channelOrder === 'BGR') {
    nodes.push({ op: 'Gather', inputs: [y, 'bgr'], outputs: ['reordered'], attributes: { axis: 1 } });
    y = 'reordered';
  }
  nodes.push(
    { op: 'Mul', inputs: [y, 'norm_scale'], outputs: ['normed'] },
    { op: 'Add', inputs: ['normed', 'norm_bias'], outputs: ['normalized'] },
    // [B,3,outW,outH] → NCHW [B,3,outH,outW] or NHWC [B,outH,outW,3].
    { op: 'Transpose', inputs: ['normalized'], outputs: [args.outDtype === 'float32' ? 'pixel_values' : 'pixel_values32'], attributes: { perm: args.layout === 'NCHW' ? [0, 1, 3, 2] : [0, 3, 2, 1] } },
  );
  if (args.outDtype !== 'float32') nodes.push({ op: 'Cast', inputs: ['pixel_values32'], outputs: ['pixel_values'], attributes: { to: ONNX_TYPE[args.outDtype] } });
  const scalar = (name: string, v: number) => ({ name, type: OnnxDataType.FLOAT as const, values: [v], dims: [] });
  return encodeModel({
    name: 'safety_preprocess',
    inputs: [{ name: 'image', type: ONNX_TYPE[args.imageDtype], shape: ['B', 3, H, W] }],
    outputs: [{ name: 'pixel_values', type: ONNX_TYPE[args.outDtype], shape: args.layout === 'NCHW' ? ['B', 3, outH, outW] : ['B', outH, outW, 3] }],
    nodes,
    initializers: [
      scalar('two', 2),
      scalar('point5', 0.5),
      scalar('zero', 0),
      scalar('one', 1),
      scalar('c255', 255),
      scalar('two23', 2 ** 23),
      { name: 'rw_t', type: OnnxDataType.FLOAT, values: transpose(args.rw, outW, W), dims: [W, outW] },
      { name: 'rh_t', type: OnnxDataType.FLOAT, values: transpose(args.rh, outH, H), dims: [H, outH] },
      { name: 'norm_scale', type: OnnxDataType.FLOAT, values: [...args.scale], dims: [1, 3, 1, 1] },
      { name: 'norm_bias', type: OnnxDataType.FLOAT, values: [...args.bias], dims: [1, 3, 1, 1] },
      ...(args.channelOrder === 'BGR' ? [{ name: 'bgr', type: OnnxDataType.INT64 as const, values: [2, 1, 0], dims: [3] }] : []),
    ],
  });
}

/**
 * One buffer for one read-back: the decoded image and the safety checker's output, flattened and concatenated
 * (float32), so a checked generation still reads back from the GPU exactly once.
 *   inputs: image <imageDtype> [B,3,H,W], logits <logitsDtype> [B,N]
 *   output: packed float32 [B·3·H·W + B·N]
 */
export function packForReadbackGraph(imageDtype: FloatDtype, logitsDtype: FloatDtype): Uint8Array {
  const nodes: NodeSpec[] = [];
  const cast = (name: string, dtype: FloatDtype) => {
    if (dtype === 'float32') return name;
    nodes.push({ op: 'Cast', inputs: [name], outputs: [`${name}32`], attributes: { to: OnnxDataType.FLOAT } });
    return `${name}32`;
  };
  const image = cast('image', imageDtype);
  const logits = cast('logits', logitsDtype);
  nodes.push(
    { op: 'Reshape', inputs: [image, 'flat'], outputs: ['image_flat'] },
    { op: 'Reshape', inputs: [logits, 'flat'], outputs: ['logits_flat'] },
    { op: 'Concat', inputs: ['image_flat', 'logits_flat'], outputs: ['packed'], attributes: { axis: 0 } },
  );
  return encodeModel({
    name: 'pack_for_readback',
    inputs: [
      { name: 'image', type: ONNX_TYPE[imageDtype], shape: ['B', 3, 'H', 'W'] },
      { name: 'logits', type: ONNX_TYPE[logitsDtype], shape: ['B', 'N'] },
    ],
    outputs: [{ name: 'packed', type: OnnxDataType.FLOAT, shape: ['P'] }],
    nodes,
    initializers: [{ name: 'flat', type: OnnxDataType.INT64, values: [-1], dims: [1] }],
  });
}
