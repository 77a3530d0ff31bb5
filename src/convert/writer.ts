/**
 * Output side: runs the initializer jobs one tensor at a time and appends their bytes to external-data shards of at
 * most `shardBytes` each (never splitting a tensor), then writes the graph with every initializer pointing at its
 * shard, offset and length. Memory: one source tensor (a reused scratch buffer) plus that tensor's outputs.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Job, OutInit } from './graph.js';
import { readTensorBytes } from './model-reader.js';
import { bytesToFloat32, DT, float32ToBytes, onnx, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from './onnx.js';
import { quantizeMatrix, quantizeRowsInt8, type ReconStats } from './quantize.js';

export interface WrittenFile {
  /** Path relative to the pack root. */
  path: string;
  size: number;
  sha256: string;
}

/** Tensors at most this big stay inside the graph file. */
export const INLINE_MAX = 1024;
const ALIGN = 64;

export class ShardWriter {
  private fd = -1;
  private index = -1;
  private offset = 0;
  private hash: Hash | null = null;
  private current = '';
  readonly files: WrittenFile[] = [];
  /** External-data locations as recorded in the graph (relative to the graph file). */
  readonly locations: string[] = [];

  constructor(
    private readonly absDir: string,
    private readonly relDir: string,
    private readonly baseName: string,
    private readonly limit: number,
  ) {}

  private roll(): void {
    this.close();
    this.index++;
    this.current = `${this.baseName}.data.${String(this.index).padStart(3, '0')}`;
    this.fd = openSync(join(this.absDir, this.current), 'w');
    this.offset = 0;
    this.hash = createHash('sha256');
    this.locations.push(this.current);
  }

  private write(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done);
    this.hash!.update(bytes);
    this.offset += bytes.length;
  }

  append(bytes: Uint8Array, tensor: string): { location: string; offset: number; length: number } {
    if (bytes.length > this.limit) {
      throw new Error(`tensor "${tensor}" is ${(bytes.length / 2 ** 20).toFixed(1)} MiB, larger than --shard-mb ${(this.limit / 2 ** 20).toFixed(3)}; raise --shard-mb (tensors are never split)`);
    }
    const pad = (ALIGN - (this.offset % ALIGN)) % ALIGN;
    if (this.fd < 0 || this.offset + pad + bytes.length > this.limit) this.roll();
    else if (pad) this.write(new Uint8Array(pad));
    const offset = this.offset;
    this.write(bytes);
    return { location: this.current, offset, length: bytes.length };
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.files.push({ path: this.relDir ? `${this.relDir}/${this.current}` : this.current, size: this.offset, sha256: this.hash!.digest('hex') });
    this.fd = -1;
    this.hash = null;
  }
}

export interface JobContext {
  scratch: Buffer;
  reconRows: number;
  /** Called after each job, e.g. to sample memory and print progress. */
  onJob?: (job: Job, bytesIn: number) => void;
  bytesIn: number;
}

export function makeJobContext(maxSourceBytes: number, reconRows: number): JobContext {
  return { scratch: Buffer.allocUnsafeSlow(Math.max(64, maxSourceBytes)), reconRows, bytesIn: 0 };
}

function asFloat32(bytes: Uint8Array, dataType: number): Float32Array {
  if (dataType === DT.FLOAT && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return bytesToFloat32(bytes, dataType);
}

/** Run one job: the bytes of each of its outputs (views valid until the next job runs). */
export function runJob(job: Job, ctx: JobContext): Uint8Array[] {
  const src = job.source;
  const bytes = readTensorBytes(src, ctx.scratch);
  if (src.source.kind === 'file') ctx.bytesIn += src.byteLength;
  const spec = job.spec;
  let result: Uint8Array[];
  if (spec.kind === 'copy') {
    if (spec.to === src.dataType && spec.scale === undefined) result = [bytes];
    else if (spec.to !== DT.FLOAT && spec.to !== DT.FLOAT16) throw new Error(`cannot convert "${src.name}" to type ${spec.to}`);
    else {
      const f = bytesToFloat32(bytes, src.dataType);
      if (spec.scale !== undefined) for (let i = 0; i < f.length; i++) f[i] = Math.fround(f[i]! * spec.scale);
      result = [float32ToBytes(f, spec.to)];
    }
  } else if (spec.kind === 'quant') {
    const w = asFloat32(bytes, src.dataType);
    const { q, stats } = quantizeMatrix(w, spec.K, spec.N, spec.layout, { ...spec.params, alpha: spec.alpha, reconRows: ctx.reconRows, seed: job.id });
    if (!job.stats) job.stats = stats;
    // fp16 activations (src/convert/fp16.ts) retype the scales: MatMulNBits wants them in the activations' type.
    const scales = job.outputs[1]!.dataType === DT.FLOAT16 ? float32ToBytes(q.scales, DT.FLOAT16) : new Uint8Array(q.scales.buffer);
    result = [q.B, scales, ...(q.zeroPoints ? [q.zeroPoints] : [])];
  } else {
    const w = asFloat32(bytes, src.dataType);
    const { q, scales } = quantizeRowsInt8(w, spec.V, spec.D);
    result = [new Uint8Array(q.buffer), new Uint8Array(scales.buffer)];
  }
  result.forEach((r, i) => {
    if (r.length !== job.outputs[i]!.byteLength) throw new Error(`internal: job for "${src.name}" produced ${r.length} bytes for ${job.outputs[i]!.name}, expected ${job.outputs[i]!.byteLength}`);
  });
  ctx.onJob?.(job, src.byteLength);
  return result;
}

export interface GraphToWrite {
  nodes: NodeProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  inits: OutInit[];
  name: string;
  opsetImport: { domain: string; version: number }[];
  irVersion: number;
}

export interface WrittenGraph {
  graph: WrittenFile;
  data: WrittenFile[];
  /** `{ path: location in graph, file: pack path }` for the manifest. */
  externalData: { path: string; file: string }[];
  weightBytes: number;
  /** Bytes of the largest tensor (it must fit one GPU storage binding). */
  maxTensorBytes: number;
}

/**
 * Write `<absDir>/<baseName>` and its shards. `relDir` is the folder relative to the pack root.
 */
export function writeGraph(g: GraphToWrite, absDir: string, relDir: string, baseName: string, shardBytes: number, ctx: JobContext): WrittenGraph {
  mkdirSync(absDir, { recursive: true });
  const shards = new ShardWriter(absDir, relDir, baseName, shardBytes);
  const wanted = new Set(g.inits.map((i) => i.name));
  const tensors = new Map<string, TensorProto>();
  let weightBytes = 0;
  let maxTensorBytes = 0;
  // Jobs in order of first use.
  const order: Job[] = [];
  const seen = new Set<number>();
  for (const i of g.inits) if (!seen.has(i.job.id)) (seen.add(i.job.id), order.push(i.job));
  try {
    for (const job of order) {
      const outs = runJob(job, ctx);
      job.outputs.forEach((o, k) => {
        if (!wanted.has(o.name)) return;
        const bytes = outs[k]!;
        weightBytes += bytes.length;
        maxTensorBytes = Math.max(maxTensorBytes, bytes.length);
        const t: TensorProto = { name: o.name, dims: o.dims, dataType: o.dataType };
        if (bytes.length <= INLINE_MAX) t.rawData = new Uint8Array(bytes);
        else {
          const loc = shards.append(bytes, o.name);
          t.dataLocation = 1;
          t.externalData = [
            { key: 'location', value: loc.location },
            { key: 'offset', value: String(loc.offset) },
            { key: 'length', value: String(loc.length) },
          ];
        }
        tensors.set(o.name, t);
      });
    }
  } finally {
    shards.close();
  }
  const model: ModelProto = {
    irVersion: Math.max(g.irVersion, 8),
    producerName: 'flux-webgpu-convert',
    producerVersion: '1',
    opsetImport: g.opsetImport.map((o) => ({ domain: o.domain, version: o.version })),
    graph: {
      name: g.name,
      node: g.nodes,
      initializer: g.inits.map((i) => tensors.get(i.name)!),
      input: g.inputs,
      output: g.outputs,
    },
  };
  const bytes = onnx.ModelProto.encode(onnx.ModelProto.fromObject(model)).finish();
  if (bytes.length > 2 ** 31 - 1) throw new Error(`${baseName}: graph proto is over 2 GB`);
  writeFileSync(join(absDir, baseName), bytes);
  const graph: WrittenFile = { path: relDir ? `${relDir}/${baseName}` : baseName, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
  return {
    graph,
    data: shards.files,
    externalData: shards.locations.map((l) => ({ path: l, file: relDir ? `${relDir}/${l}` : l })),
    weightBytes,
    maxTensorBytes,
  };
}

export type { ReconStats };
