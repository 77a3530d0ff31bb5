/**
 * A minimal ONNX ModelProto reader: graph structure only (nodes, inputs/outputs with types and dims, initializer
 * names/dims). Tensor bytes are skipped, never copied, so reading a graph with embedded weights is cheap.
 * Field numbers follow onnx/onnx.proto3.
 */

export interface OnnxValueInfo {
  name: string;
  /** TensorProto.DataType (1 float, 6 int32, 7 int64, 10 float16, …); 0 if not a tensor. */
  elemType: number;
  /** Fixed sizes (number) or symbolic names (string); null for an unknown dim. */
  dims: (number | string | null)[];
}

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
}

export interface OnnxInitializer {
  name: string;
  dataType: number;
  dims: number[];
}

export interface OnnxGraphInfo {
  nodes: OnnxNode[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  initializers: OnnxInitializer[];
}

class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }
  get done(): boolean {
    return this.pos >= this.end;
  }
  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.buf[this.pos++]!;
      // Beyond 2^53 precision is lost; ONNX dims and lengths never get there.
      result += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return result;
      shift += 7;
      if (shift > 63) throw new Error('ONNX protobuf: varint too long');
    }
  }
  /** [field, wireType] */
  tag(): [number, number] {
    const t = this.varint();
    return [Math.floor(t / 8), t & 7];
  }
  bytes(): Reader {
    const len = this.varint();
    const r = new Reader(this.buf, this.pos, this.pos + len);
    this.pos += len;
    if (this.pos > this.end) throw new Error('ONNX protobuf: truncated message');
    return r;
  }
  string(): string {
    const r = this.bytes();
    return new TextDecoder().decode(this.buf.subarray(r.pos, r.end));
  }
  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) {
      const len = this.varint(); // read first: `pos += varint()` would use the pos from before the length
      this.pos += len;
    }
    else if (wireType === 5) this.pos += 4;
    else throw new Error(`ONNX protobuf: unsupported wire type ${wireType}`);
  }
}

function readDims(r: Reader, out: number[]): void {
  // repeated int64 dims: packed (wire type 2) or one varint per field
  while (!r.done) out.push(r.varint());
}

function readValueInfo(r: Reader): OnnxValueInfo {
  const v: OnnxValueInfo = { name: '', elemType: 0, dims: [] };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === 2) v.name = r.string();
    else if (f === 2 && w === 2) {
      const type = r.bytes();
      while (!type.done) {
        const [tf, tw] = type.tag();
        if (tf === 1 && tw === 2) {
          const tensor = type.bytes();
          while (!tensor.done) {
            const [xf, xw] = tensor.tag();
            if (xf === 1 && xw === 0) v.elemType = tensor.varint();
            else if (xf === 2 && xw === 2) {
              const shape = tensor.bytes();
              while (!shape.done) {
                const [sf, sw] = shape.tag();
                if (sf === 1 && sw === 2) {
                  const dim = shape.bytes();
                  let d: number | string | null = null;
                  while (!dim.done) {
                    const [df, dw] = dim.tag();
                    if (df === 1 && dw === 0) d = dim.varint();
                    else if (df === 2 && dw === 2) d = dim.string();
                    else dim.skip(dw);
                  }
                  v.dims.push(d);
                } else shape.skip(sw);
              }
            } else tensor.skip(xw);
          }
        } else type.skip(tw);
      }
    } else r.skip(w);
  }
  return v;
}

function readNode(r: Reader): OnnxNode {
  const n: OnnxNode = { name: '', opType: '', domain: '', inputs: [], outputs: [] };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === 2) n.inputs.push(r.string());
    else if (f === 2 && w === 2) n.outputs.push(r.string());
    else if (f === 3 && w === 2) n.name = r.string();
    else if (f === 4 && w === 2) n.opType = r.string();
    else if (f === 7 && w === 2) n.domain = r.string();
    else r.skip(w);
  }
  return n;
}

function readInitializer(r: Reader): OnnxInitializer {
  const t: OnnxInitializer = { name: '', dataType: 0, dims: [] };
  while (!r.done) {
    const [f, w] = r.tag();
    if (f === 1 && w === 2) readDims(r.bytes(), t.dims);
    else if (f === 1 && w === 0) t.dims.push(r.varint());
    else if (f === 2 && w === 0) t.dataType = r.varint();
    else if (f === 8 && w === 2) t.name = r.string();
    else r.skip(w);
  }
  return t;
}

/** Read the main graph's structure from ModelProto bytes. */
export function readOnnxGraph(model: Uint8Array): OnnxGraphInfo {
  const info: OnnxGraphInfo = { nodes: [], inputs: [], outputs: [], initializers: [] };
  const m = new Reader(model);
  while (!m.done) {
    const [f, w] = m.tag();
    if (f !== 7 || w !== 2) {
      m.skip(w);
      continue;
    }
    const g = m.bytes();
    while (!g.done) {
      const [gf, gw] = g.tag();
      if (gf === 1 && gw === 2) info.nodes.push(readNode(g.bytes()));
      else if (gf === 5 && gw === 2) info.initializers.push(readInitializer(g.bytes()));
      else if (gf === 11 && gw === 2) info.inputs.push(readValueInfo(g.bytes()));
      else if (gf === 12 && gw === 2) info.outputs.push(readValueInfo(g.bytes()));
      else g.skip(gw);
    }
  }
  return info;
}
