/**
 * Streaming ONNX graph builder for the synthetic FLUX set. Weights are written one chunk at a time to an external
 * data file, so a multi-GB component is generated in constant memory (one 16 MiB chunk, never a whole tensor).
 *
 * Weights are counter-based: element i of tensor `name` is a pure function of (seed, name, i)
 * (`weightValue`), so any tensor can be regenerated alone, in any language — bench/device/flux_torch.py rebuilds
 * the same weights in PyTorch from `weights.json` without reading the ONNX files.
 */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { attr, DT, onnx, type AttrValue, type NodeProto, type TensorProto, type ValueInfoProto } from '../../src/convert/onnx.js';

/** murmur3's 32-bit finalizer. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over the UTF-8 bytes of a tensor name. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(s)) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}

export function tensorSeed(seed: number, name: string): number {
  return fmix32((fnv1a(name) ^ fmix32(seed >>> 0)) >>> 0);
}

const GOLDEN = 0x9e3779b9;

/** Uniform in [mean − std·√3, mean + std·√3): variance std². Computed in float64, stored as float32. */
export function weightValue(tseed: number, i: number, std: number, mean: number): number {
  const h = fmix32((Math.imul(i, GOLDEN) + tseed) >>> 0);
  return mean + std * Math.sqrt(3) * ((2 * h) / 4294967296 - 1);
}

/** fp32 → bf16 bits, round to nearest even (what torch's .to(bfloat16) does for finite values). */
export function toBf16(values: Float32Array): Uint16Array {
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i]!;
    out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

export interface WeightSpec {
  name: string;
  dims: number[];
  std: number;
  mean: number;
}

export class GraphBuilder {
  nodes: NodeProto[] = [];
  inits: TensorProto[] = [];
  /** Every random tensor, in order: enough to regenerate all weights without the ONNX files. */
  readonly weights: WeightSpec[] = [];
  private n = 0;
  private readonly fd: number = -1;
  private offset = 0;
  weightBytes = 0;
  params = 0;
  private readonly chunk = new Float32Array(1 << 22);
  readonly modelPath: string;
  readonly dataPath: string;
  private readonly location: string;

  constructor(
    out: string,
    readonly seed: number,
    readonly floatType: number = DT.FLOAT,
    /** Count weights and build the graph without writing anything (sizes for the disk check). */
    readonly dryRun = false,
  ) {
    this.modelPath = resolve(out);
    this.dataPath = `${this.modelPath}.data`;
    this.location = basename(this.dataPath);
    if (dryRun) return;
    mkdirSync(dirname(this.modelPath), { recursive: true });
    this.fd = openSync(this.dataPath, 'w');
  }

  op(type: string, inputs: string[], attrs: Record<string, AttrValue> = {}, name?: string, outputs = 1): string[] {
    const id = ++this.n;
    const base = name ?? `/${type}_${id}`;
    const outs = Array.from({ length: outputs }, (_, i) => `${base}_output_${i}`);
    this.nodes.push({ opType: type, name: base, input: inputs, output: outs, attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)) });
    return outs;
  }
  op1(type: string, inputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): string {
    return this.op(type, inputs, attrs, name)[0]!;
  }

  /** A random weight (see `weightValue`), streamed to the external-data file in chunks. */
  weight(name: string, dims: number[], std: number, mean = 0): string {
    const count = dims.reduce((a, b) => a * b, 1);
    const ts = tensorSeed(this.seed, name);
    const c = this.chunk;
    const a = std * Math.sqrt(3);
    const start = this.offset;
    const size = this.floatType === DT.FLOAT ? 4 : 2;
    if (this.dryRun) this.offset += count * size;
    for (let done = 0; !this.dryRun && done < count; ) {
      const n = Math.min(c.length, count - done);
      for (let j = 0; j < n; j++) {
        const h = fmix32((Math.imul(done + j, GOLDEN) + ts) >>> 0);
        c[j] = mean + a * ((2 * h) / 4294967296 - 1);
      }
      const bytes = this.encode(c.subarray(0, n));
      let w = 0;
      while (w < bytes.length) w += writeSync(this.fd, bytes, w, bytes.length - w, this.offset + w);
      this.offset += bytes.length;
      done += n;
    }
    const length = this.offset - start;
    this.inits.push({
      name, dims, dataType: this.floatType, dataLocation: 1,
      externalData: [
        { key: 'location', value: this.location },
        { key: 'offset', value: String(start) },
        { key: 'length', value: String(length) },
      ],
    });
    this.weights.push({ name, dims, std, mean });
    this.weightBytes += length;
    this.params += count;
    return name;
  }

  /** fp32 values as the model's float type. */
  encode(values: Float32Array): Uint8Array {
    if (this.floatType === DT.FLOAT) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    return new Uint8Array(toBf16(values).buffer);
  }

  constF(name: string, values: number[] | Float32Array, dims: number[]): string {
    this.inits.push({ name, dims, dataType: this.floatType, rawData: new Uint8Array(this.encode(Float32Array.from(values))) });
    return name;
  }
  /** A float32 constant whatever the model's float type (masks whose value bf16 cannot hold exactly are fine too). */
  constF32(name: string, values: number[] | Float32Array, dims: number[]): string {
    this.inits.push({ name, dims, dataType: DT.FLOAT, rawData: new Uint8Array(Float32Array.from(values).buffer) });
    return name;
  }
  constI(name: string, values: number[], dims: number[] = [values.length]): string {
    this.inits.push({ name, dims, dataType: DT.INT64, rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) });
    return name;
  }

  /** Close the data file and write the graph (opset 17). */
  finish(name: string, inputs: ValueInfoProto[], outputs: ValueInfoProto[]): void {
    if (this.dryRun) return;
    closeSync(this.fd);
    const model = {
      irVersion: 8,
      producerName: 'flux-webgpu synthetic-flux',
      opsetImport: [{ domain: '', version: 17 }],
      graph: { name, node: this.nodes, initializer: this.inits, input: inputs, output: outputs },
    };
    writeFileSync(this.modelPath, onnx.ModelProto.encode(onnx.ModelProto.fromObject(model)).finish());
  }
}
