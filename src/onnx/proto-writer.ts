/**
 * A minimal ONNX ModelProto encoder: just the messages needed to describe small helper graphs (a few nodes,
 * no initializers beyond scalars). Field numbers follow onnx/onnx.proto3. Kept dependency-free so the
 * browser bundle does not carry protobufjs for it.
 */

export enum OnnxDataType {
  FLOAT = 1,
  UINT8 = 2,
  INT32 = 6,
  INT64 = 7,
  FLOAT16 = 10,
}

class ProtoBuffer {
  private bytes: number[] = [];

  varint(value: number | bigint): this {
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.bytes.push(Number(v));
    return this;
  }
  tag(field: number, wireType: 0 | 2 | 5): this {
    return this.varint((field << 3) | wireType);
  }
  int(field: number, value: number | bigint): this {
    return this.tag(field, 0).varint(value);
  }
  bytesField(field: number, data: Uint8Array | number[]): this {
    this.tag(field, 2).varint(data.length);
    for (const b of data) this.bytes.push(b);
    return this;
  }
  string(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }
  message(field: number, m: ProtoBuffer): this {
    return this.bytesField(field, m.bytes);
  }
  float(field: number, value: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(new Float32Array([value]).buffer);
    for (const x of b) this.bytes.push(x);
    return this;
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

export type Dim = number | string;

export interface ValueInfo {
  name: string;
  type: OnnxDataType;
  /** Fixed sizes or symbolic names. */
  shape: Dim[];
}

export type AttributeValue = number | number[] | string | { ints: number[] } | { floats: number[] };

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes?: Record<string, AttributeValue>;
}

export interface ScalarInitializer {
  name: string;
  type: OnnxDataType.FLOAT | OnnxDataType.INT64;
  values: readonly number[];
  dims: readonly number[];
}

/** A float32 initializer whose bytes live in an external-data file (ONNX `data_location: EXTERNAL`). */
export interface ExternalInitializer {
  name: string;
  dims: readonly number[];
  /** File name relative to the graph, offset and length in bytes. */
  location: string;
  offset: number;
  length: number;
}

export interface GraphSpec {
  name: string;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  nodes: NodeSpec[];
  initializers?: ScalarInitializer[];
  externalInitializers?: ExternalInitializer[];
  opset?: number;
}

function valueInfo(v: ValueInfo): ProtoBuffer {
  const shape = new ProtoBuffer();
  for (const d of v.shape) {
    const dim = new ProtoBuffer();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoBuffer().int(1, v.type).message(2, shape);
  const type = new ProtoBuffer().message(1, tensorType);
  return new ProtoBuffer().string(1, v.name).message(2, type);
}

function attribute(name: string, value: AttributeValue): ProtoBuffer {
  const a = new ProtoBuffer().string(1, name);
  if (typeof value === 'number') {
    if (Number.isInteger(value)) a.int(3, value).int(20, 2);
    else a.float(2, value).int(20, 1);
  } else if (typeof value === 'string') {
    a.string(4, value).int(20, 3);
  } else if (Array.isArray(value) || 'ints' in value) {
    for (const i of Array.isArray(value) ? value : value.ints) a.int(8, i);
    a.int(20, 7);
  } else {
    for (const f of value.floats) a.float(7, f);
    a.int(20, 6);
  }
  return a;
}

function initializer(t: ScalarInitializer): ProtoBuffer {
  const p = new ProtoBuffer();
  for (const d of t.dims) p.int(1, d);
  p.int(2, t.type);
  const raw =
    t.type === OnnxDataType.FLOAT
      ? new Uint8Array(Float32Array.from(t.values).buffer)
      : new Uint8Array(new BigInt64Array(t.values.map((v) => BigInt(v))).buffer);
  p.string(8, t.name);
  p.bytesField(9, raw);
  return p;
}

function externalInitializer(t: ExternalInitializer): ProtoBuffer {
  const p = new ProtoBuffer();
  for (const d of t.dims) p.int(1, d);
  p.int(2, OnnxDataType.FLOAT);
  p.string(8, t.name);
  for (const [k, v] of [
    ['location', t.location],
    ['offset', String(t.offset)],
    ['length', String(t.length)],
  ] as const) {
    p.message(13, new ProtoBuffer().string(1, k).string(2, v));
  }
  p.int(14, 1); // DataLocation.EXTERNAL
  return p;
}

/** Serialize a graph as an ONNX model (IR 8, default domain at `opset`, 17 unless given). */
export function encodeModel(g: GraphSpec): Uint8Array {
  const graph = new ProtoBuffer();
  g.nodes.forEach((n, i) => {
    const node = new ProtoBuffer();
    for (const x of n.inputs) node.string(1, x);
    for (const x of n.outputs) node.string(2, x);
    node.string(3, `${n.op}_${i}`);
    node.string(4, n.op);
    for (const [k, v] of Object.entries(n.attributes ?? {})) node.message(5, attribute(k, v));
    graph.message(1, node);
  });
  graph.string(2, g.name);
  for (const t of g.initializers ?? []) graph.message(5, initializer(t));
  for (const t of g.externalInitializers ?? []) graph.message(5, externalInitializer(t));
  for (const v of g.inputs) graph.message(11, valueInfo(v));
  for (const v of g.outputs) graph.message(12, valueInfo(v));
  const opset = new ProtoBuffer().string(1, '').int(2, g.opset ?? 17);
  return new ProtoBuffer().int(1, 8).message(8, opset).string(2, 'flux-webgpu').message(7, graph).finish();
}
