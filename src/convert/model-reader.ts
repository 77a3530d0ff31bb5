/**
 * Streaming ONNX model reader. The graph structure is decoded (small); tensor payloads are never loaded: every
 * initializer becomes a `TensorRef` that says where its bytes are — in an external-data file (offset/length from
 * the initializer's `external_data`) or inside the model file itself (the offset of `raw_data`, found by walking
 * the protobuf wire format with positional reads). So a 2 GB single-file model costs no more memory than its graph,
 * and a 24 GB external-data model the same.
 */
import { closeSync, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, win32 } from 'node:path';
import { FluxError } from '../errors.js';
import { DT, elemSize, inlineTensorBytes, numel, onnx, toNum, type GraphProto, type ModelProto, type TensorProto } from './onnx.js';

/** Where a tensor's bytes are. */
export type DataSource =
  | { kind: 'file'; path: string; offset: number; length: number }
  | { kind: 'inline'; bytes: Uint8Array };

/** An initializer whose data is referenced, not loaded. */
export interface TensorRef {
  name: string;
  dims: number[];
  dataType: number;
  source: DataSource;
  /** Payload bytes. */
  byteLength: number;
}

export interface LoadedModel {
  path: string;
  /** The model with `graph.initializer` emptied (see `initializers`). */
  model: ModelProto;
  graph: GraphProto;
  initializers: Map<string, TensorRef>;
  /** Sum of initializer payload bytes. */
  weightBytes: number;
}

/** Tensors below this many bytes inside the model file are decoded directly. */
const SMALL_TENSOR = 1 << 16;

class FileCursor {
  private buf = Buffer.allocUnsafe(1 << 16);
  private bufStart = 0;
  private bufLen = 0;
  constructor(
    readonly fd: number,
    readonly size: number,
  ) {}

  private fill(pos: number): void {
    this.bufStart = pos;
    this.bufLen = readSync(this.fd, this.buf, 0, Math.min(this.buf.length, this.size - pos), pos);
  }
  byte(pos: number): number {
    if (pos < this.bufStart || pos >= this.bufStart + this.bufLen) this.fill(pos);
    if (pos >= this.bufStart + this.bufLen) throw new Error('unexpected end of ONNX file');
    return this.buf[pos - this.bufStart]!;
  }
  /** Returns [value, next position]. Values above 2^53 lose precision (never the case for lengths here). */
  varint(pos: number): [number, number] {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = this.byte(pos++);
      v += (b & 0x7f) * mul;
      if (b < 0x80) return [v, pos];
      mul *= 128;
    }
  }
  read(pos: number, len: number): Uint8Array {
    const out = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const n = readSync(this.fd, out, done, len - done, pos + done);
      if (n <= 0) throw new Error('unexpected end of ONNX file');
      done += n;
    }
    return out;
  }
}

interface Field {
  field: number;
  wire: number;
  /** Start of the whole field (tag included) and of its payload. */
  start: number;
  payload: number;
  end: number;
}

function* fields(c: FileCursor, start: number, end: number): Generator<Field> {
  let pos = start;
  while (pos < end) {
    const fStart = pos;
    const [tag, p1] = c.varint(pos);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    let payload = p1;
    let fEnd: number;
    if (wire === 0) {
      [, fEnd] = c.varint(p1);
    } else if (wire === 1) fEnd = p1 + 8;
    else if (wire === 5) fEnd = p1 + 4;
    else if (wire === 2) {
      const [len, p2] = c.varint(p1);
      payload = p2;
      fEnd = p2 + len;
    } else throw new Error(`unsupported protobuf wire type ${wire} at byte ${pos}`);
    if (fEnd > end) throw new Error(`truncated ONNX file (field ${field} at byte ${fStart})`);
    yield { field, wire, start: fStart, payload, end: fEnd };
    pos = fEnd;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The graph being read: where its external data may live, and the locations already checked. */
interface ModelContext {
  modelPath: string;
  modelDir: string;
  /** realpath of modelDir, once. */
  realDir?: string;
  checked: Map<string, string>;
}

/**
 * Resolve an external-data `location` so that it stays inside the graph's folder. A hostile graph could otherwise
 * point at /etc/shadow, ../../.ssh/id_rsa or a symlink to either, and the converter would copy those bytes into a
 * pack (onnxruntime itself refuses absolute paths and "..").
 */
function containedLocation(ctx: ModelContext, name: string | null | undefined, location: string): string {
  const cached = ctx.checked.get(location);
  if (cached) return cached;
  const refuse = (why: string) =>
    new FluxError('invalid_input', `${ctx.modelPath}: initializer "${name}": external data location ${JSON.stringify(location)} ${why}; external data must be a relative path inside ${ctx.modelDir}`, {
      field: 'external_data.location',
      details: { graph: ctx.modelPath, location },
    });
  if (isAbsolute(location) || win32.isAbsolute(location) || /^[a-zA-Z]:/.test(location)) throw refuse('is absolute');
  if (location.split(/[\\/]/).some((s) => s === '..')) throw refuse('has a ".." segment');
  if (location.includes('\0')) throw refuse('contains a NUL byte');
  const path = resolve(ctx.modelDir, location);
  let real: string;
  try {
    ctx.realDir ??= realpathSync(ctx.modelDir);
    real = realpathSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new FluxError('pack_file_missing', `${ctx.modelPath}: external data file ${JSON.stringify(location)} of initializer "${name}" is missing (looked for ${path})`, { cause: e });
    }
    throw new Error(`${ctx.modelPath}: cannot resolve external data ${JSON.stringify(location)}: ${(e as Error).message}`, { cause: e });
  }
  const rel = relative(ctx.realDir, real);
  if (rel === '' || rel === '..' || rel.startsWith('../') || isAbsolute(rel)) throw refuse(`resolves outside the graph's folder (to ${real}, through a symlink)`);
  ctx.checked.set(location, path);
  return path;
}

function externalRef(t: TensorProto, ctx: ModelContext): TensorRef {
  const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  if (!location) throw new Error(`initializer "${t.name}" is external but has no location`);
  const path = containedLocation(ctx, t.name, location);
  const dims = (t.dims ?? []).map(toNum);
  const dataType = t.dataType ?? 0;
  const expected = numel(dims) * elemSize(dataType);
  const length = kv.has('length') ? Number(kv.get('length')) : expected;
  if (length !== expected) throw new Error(`initializer "${t.name}": external length ${length} ≠ ${expected} bytes for ${JSON.stringify(dims)}`);
  return { name: t.name ?? '', dims, dataType, byteLength: length, source: { kind: 'file', path, offset: Number(kv.get('offset') ?? 0), length } };
}

function refFromTensor(t: TensorProto, ctx: ModelContext): TensorRef {
  if (t.dataLocation === 1) return externalRef(t, ctx);
  const dims = (t.dims ?? []).map(toNum);
  const dataType = t.dataType ?? 0;
  if (dataType === DT.STRING) throw new Error(`string initializer "${t.name}" is not supported`);
  const bytes = inlineTensorBytes(t);
  return { name: t.name ?? '', dims, dataType, byteLength: bytes.length, source: { kind: 'inline', bytes } };
}

/**
 * A large TensorProto inside the model file: decode everything but the payload, and point at the payload.
 * raw_data (9) is raw bytes; packed float_data (4) / double_data (10) are little-endian values, i.e. raw too.
 */
function scanLargeTensor(c: FileCursor, start: number, end: number, ctx: ModelContext): TensorRef {
  const meta: Uint8Array[] = [];
  let payload: { offset: number; length: number; field: number } | null = null;
  for (const f of fields(c, start, end)) {
    if (f.wire === 2 && (f.field === 9 || f.field === 4 || f.field === 10)) {
      payload = { offset: f.payload, length: f.end - f.payload, field: f.field };
    } else {
      meta.push(c.read(f.start, f.end - f.start));
    }
  }
  const t = onnx.TensorProto.decode(concat(meta));
  if (t.dataLocation === 1) return externalRef(t, ctx);
  const dims = (t.dims ?? []).map(toNum);
  const dataType = t.dataType ?? 0;
  if (!payload) return refFromTensor(t, ctx);
  if ((payload.field === 4 && dataType !== DT.FLOAT) || (payload.field === 10 && dataType !== DT.DOUBLE)) {
    throw new Error(`initializer "${t.name}": large tensor stored in a typed field the converter cannot stream; re-save it with raw_data`);
  }
  const expected = numel(dims) * elemSize(dataType);
  if (payload.length !== expected) throw new Error(`initializer "${t.name}": ${payload.length} payload bytes ≠ ${expected} expected`);
  return { name: t.name ?? '', dims, dataType, byteLength: expected, source: { kind: 'file', path: ctx.modelPath, offset: payload.offset, length: expected } };
}

/** Read an ONNX model: graph decoded, initializer payloads referenced by file position. */
export function readModel(path: string): LoadedModel {
  const modelPath = resolve(path);
  const ctx: ModelContext = { modelPath, modelDir: dirname(modelPath), checked: new Map() };
  let fd: number;
  try {
    fd = openSync(modelPath, 'r');
  } catch (e) {
    throw new Error(`cannot open ${path}: ${(e as Error).message}`);
  }
  try {
    const c = new FileCursor(fd, fstatSync(fd).size);
    const modelParts: Uint8Array[] = [];
    const graphParts: Uint8Array[] = [];
    const initializers = new Map<string, TensorRef>();
    let sawGraph = false;
    for (const f of fields(c, 0, c.size)) {
      if (f.field === 7 && f.wire === 2) {
        sawGraph = true;
        for (const g of fields(c, f.payload, f.end)) {
          if (g.field === 5 && g.wire === 2) {
            const len = g.end - g.payload;
            const ref =
              len <= SMALL_TENSOR
                ? refFromTensor(onnx.TensorProto.decode(c.read(g.payload, len)), ctx)
                : scanLargeTensor(c, g.payload, g.end, ctx);
            initializers.set(ref.name, ref);
          } else if (g.field === 15 && g.wire === 2) {
            throw new Error(`${path}: sparse initializers are not supported`);
          } else {
            graphParts.push(c.read(g.start, g.end - g.start));
          }
        }
      } else {
        modelParts.push(c.read(f.start, f.end - f.start));
      }
    }
    if (!sawGraph) throw new Error(`${path} is not an ONNX model (no graph)`);
    const model = onnx.ModelProto.decode(concat(modelParts));
    const graph = onnx.GraphProto.decode(concat(graphParts));
    model.graph = graph;
    let weightBytes = 0;
    for (const t of initializers.values()) weightBytes += t.byteLength;
    return { path: modelPath, model, graph, initializers, weightBytes };
  } finally {
    closeSync(fd);
  }
}

/** Read a tensor's payload into `scratch` when it fits (returned view), else into a new buffer. */
export function readTensorBytes(t: TensorRef, scratch?: Buffer): Uint8Array {
  if (t.source.kind === 'inline') return t.source.bytes;
  const { path, offset, length } = t.source;
  const out = scratch && scratch.length >= length ? scratch.subarray(0, length) : Buffer.allocUnsafe(length);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`external data file ${path} of tensor "${t.name}" is missing`);
    throw e;
  }
  try {
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), offset + done);
      if (n <= 0) throw new Error(`${path}: file ends before tensor "${t.name}" (offset ${offset}, length ${length})`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}
