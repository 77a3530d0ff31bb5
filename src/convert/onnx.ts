/**
 * ONNX protobuf access for the converter (Node only: protobufjs via onnx-proto never reaches the browser bundle),
 * data-type tables and small helpers for building nodes, attributes and value infos.
 */
import { createRequire } from 'node:module';
import type { onnx as OnnxNs } from 'onnx-proto';
import { fromFloat16Bits, toFloat16Bits } from '../runtime/float16.js';

const require = createRequire(import.meta.url);
// onnx-proto is CommonJS; its static protobufjs classes encode/decode every ONNX message.
export const onnx = (require('onnx-proto') as { onnx: typeof OnnxNs }).onnx;
export type { OnnxNs };

export type NodeProto = OnnxNs.INodeProto;
export type GraphProto = OnnxNs.IGraphProto;
export type ModelProto = OnnxNs.IModelProto;
export type TensorProto = OnnxNs.ITensorProto;
export type ValueInfoProto = OnnxNs.IValueInfoProto;
export type AttributeProto = OnnxNs.IAttributeProto;

/** onnx.TensorProto.DataType values used here. */
export const DT = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;

const ELEM_SIZE: Record<number, number> = {
  1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2,
};

export const DT_NAME: Record<number, string> = {
  0: 'undefined', 1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
  9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'bfloat16',
};

export function elemSize(dataType: number): number {
  const s = ELEM_SIZE[dataType];
  if (s === undefined) throw new Error(`unsupported tensor data type ${DT_NAME[dataType] ?? dataType}`);
  return s;
}

export const isFloatType = (t: number | undefined): boolean => t === DT.FLOAT || t === DT.FLOAT16 || t === DT.BFLOAT16 || t === DT.DOUBLE;

/** protobufjs gives int64 fields as Long objects (or numbers when small). */
export function toNum(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Number(v);
  if (v && typeof v === 'object' && 'toNumber' in v) return (v as { toNumber(): number }).toNumber();
  if (v === undefined || v === null) return 0;
  return Number(v);
}

export const numel = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

// ---------------------------------------------------------------------------------------------------------------
// fp16 / bf16 <-> fp32
// ---------------------------------------------------------------------------------------------------------------

/** Raw little-endian bytes of `dataType` → Float32Array (bf16 and fp16 exactly). Copies. */
export function bytesToFloat32(bytes: Uint8Array, dataType: number): Float32Array {
  const n = bytes.byteLength / elemSize(dataType);
  if (dataType === DT.FLOAT) {
    const out = new Float32Array(n);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const out = new Float32Array(n);
  if (dataType === DT.BFLOAT16) {
    const src = new Uint16Array(n);
    new Uint8Array(src.buffer).set(bytes);
    const o32 = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) o32[i] = src[i]! << 16;
    return out;
  }
  if (dataType === DT.FLOAT16) {
    const src = new Uint16Array(n);
    new Uint8Array(src.buffer).set(bytes);
    const lut = halfLut();
    for (let i = 0; i < n; i++) out[i] = lut[src[i]!]!;
    return out;
  }
  if (dataType === DT.DOUBLE) {
    const src = new Float64Array(n);
    new Uint8Array(src.buffer).set(bytes);
    for (let i = 0; i < n; i++) out[i] = src[i]!;
    return out;
  }
  throw new Error(`not a float type: ${DT_NAME[dataType] ?? dataType}`);
}

let HALF_LUT: Float32Array | null = null;
function halfLut(): Float32Array {
  if (!HALF_LUT) {
    HALF_LUT = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) HALF_LUT[i] = fromFloat16Bits(i);
  }
  return HALF_LUT;
}

/** Float32Array → raw bytes of `dataType` (FLOAT or FLOAT16). */
export function float32ToBytes(values: Float32Array, dataType: number): Uint8Array {
  if (dataType === DT.FLOAT) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (dataType === DT.FLOAT16) {
    const out = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = toFloat16Bits(values[i]!);
    return new Uint8Array(out.buffer);
  }
  throw new Error(`cannot write float data as ${DT_NAME[dataType] ?? dataType}`);
}

/** Convert raw bytes between float types (identity when equal). */
export function convertFloatBytes(bytes: Uint8Array, from: number, to: number): Uint8Array {
  if (from === to) return bytes;
  return float32ToBytes(bytesToFloat32(bytes, from), to);
}

// ---------------------------------------------------------------------------------------------------------------
// Inline tensor data → raw bytes
// ---------------------------------------------------------------------------------------------------------------

/** The data of a TensorProto that holds its values inside (raw_data or a typed field), as little-endian raw bytes. */
export function inlineTensorBytes(t: TensorProto): Uint8Array {
  const dt = t.dataType ?? 0;
  const dims = (t.dims ?? []).map(toNum);
  const n = numel(dims);
  if (t.rawData && t.rawData.length) return new Uint8Array(t.rawData);
  const size = elemSize(dt);
  const out = new Uint8Array(n * size);
  const dv = new DataView(out.buffer);
  if (n === 0) return out;
  if (dt === DT.FLOAT && t.floatData?.length) t.floatData.forEach((v, i) => dv.setFloat32(i * 4, v, true));
  else if (dt === DT.DOUBLE && t.doubleData?.length) t.doubleData.forEach((v, i) => dv.setFloat64(i * 8, v, true));
  else if ((dt === DT.INT64) && t.int64Data?.length) t.int64Data.forEach((v, i) => dv.setBigInt64(i * 8, BigInt(toNum(v)), true));
  else if ((dt === DT.UINT64 || dt === DT.UINT32) && t.uint64Data?.length) {
    t.uint64Data.forEach((v, i) => (dt === DT.UINT64 ? dv.setBigUint64(i * 8, BigInt(toNum(v)), true) : dv.setUint32(i * 4, toNum(v), true)));
  } else if (t.int32Data?.length) {
    const d = t.int32Data;
    for (let i = 0; i < n; i++) {
      const v = d[i] ?? 0;
      if (size === 1) dv.setUint8(i, v & 0xff);
      else if (size === 2) dv.setUint16(i * 2, v & 0xffff, true);
      else dv.setInt32(i * 4, v, true);
    }
  } else if (n > 0) {
    throw new Error(`tensor "${t.name}" has no data`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------------------------

export type AttrValue = number | string | number[] | { f: number } | { floats: number[] } | { t: TensorProto };

export function attr(name: string, v: AttrValue): AttributeProto {
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: 2, i: v } : { name, type: 1, f: v };
  if (typeof v === 'string') return { name, type: 3, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: 7, ints: v };
  if ('f' in v) return { name, type: 1, f: v.f };
  if ('floats' in v) return { name, type: 6, floats: v.floats };
  return { name, type: 4, t: v.t };
}

export function node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, extra: { name?: string; domain?: string } = {}): NodeProto {
  const n: NodeProto = { opType, input: inputs, output: outputs, attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)) };
  if (extra.name) n.name = extra.name;
  if (extra.domain) n.domain = extra.domain;
  return n;
}

export function getAttr(n: NodeProto, name: string): AttributeProto | undefined {
  return (n.attribute ?? []).find((a) => a.name === name);
}
export function attrInt(n: NodeProto, name: string, dflt: number): number {
  const a = getAttr(n, name);
  return a && a.i !== undefined && a.i !== null ? toNum(a.i) : dflt;
}
export function attrFloat(n: NodeProto, name: string, dflt: number): number {
  const a = getAttr(n, name);
  return a && a.f !== undefined && a.f !== null ? a.f : dflt;
}
export function setAttrInt(n: NodeProto, name: string, v: number): void {
  const a = getAttr(n, name);
  if (a) a.i = v;
  else (n.attribute ??= []).push(attr(name, v));
}

export function valueInfo(name: string, elemType: number, dims?: (number | string)[]): ValueInfoProto {
  const tensorType: OnnxNs.TypeProto.ITensor = { elemType };
  if (dims) tensorType.shape = { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return { name, type: { tensorType } };
}

export function valueInfoElemType(v: ValueInfoProto): number | undefined {
  return v.type?.tensorType?.elemType ?? undefined;
}
export function valueInfoDims(v: ValueInfoProto): (number | string)[] | undefined {
  const dims = v.type?.tensorType?.shape?.dim;
  if (!dims) return undefined;
  return dims.map((d) => (d.dimParam ? d.dimParam : d.dimValue !== undefined && d.dimValue !== null ? toNum(d.dimValue) : '?'));
}

/** The graphs nested in a node's attributes (If/Loop/Scan bodies). */
export function subgraphs(n: NodeProto): GraphProto[] {
  const out: GraphProto[] = [];
  for (const a of n.attribute ?? []) {
    if (a.g) out.push(a.g);
    for (const g of a.graphs ?? []) out.push(g);
  }
  return out;
}
