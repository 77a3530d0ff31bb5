/**
 * A pack larger than 2 GiB for the browser memory tests and the benchmark: the test pack's text encoders, VAE
 * and tokenizers, plus a "transformer" honouring the schnell I/O contract whose weights are a chain of
 * `layers` fp32 4096×4096 matrices (64 MiB each):
 *   v = W_out · tanh(W_k · … tanh(W_1 · W_in · hidden_states))
 * split into stages of `layersPerStage` matrices, one graph and one external-data file each, as the converter
 * splits large components (a session's external data is read whole by onnxruntime-web's default build).
 * Random uniform weights scaled by 1/√fan_in keep activations O(1). Written streaming (one matrix at a time),
 * hashed while written.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { encodeModel, OnnxDataType, type ExternalInitializer } from '../../src/onnx/proto-writer.js';
import { TEST_PACK_DIR } from './fixtures.js';

const WIDTH = 4096;

export interface LargePack {
  dir: string;
  totalBytes: number;
  transformerBytes: number;
  /** External-data files of the transformer (one per stage). */
  shards: number;
  largestShardBytes: number;
}

/** xorshift32 uniforms in [-scale, scale), fast enough to fill gigabytes. */
function fillUniform(out: Float32Array, state: { s: number }, scale: number): void {
  let s = state.s;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  state.s = s;
}

export function writeLargePack(dir: string, options: { layers?: number; layersPerStage?: number } = {}): LargePack {
  const layers = options.layers ?? 35;
  const perStage = options.layersPerStage ?? 4;
  const generator = `large-pack:stages:${layers}:${perStage}`;
  const marker = join(dir, 'manifest.json');
  if (existsSync(marker)) {
    const m = JSON.parse(readFileSync(marker, 'utf8')) as { files: { path: string; size: number }[]; generator?: string };
    if (m.generator === generator) return summary(dir, m.files);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'transformer'), { recursive: true });
  const files: { path: string; size: number; sha256: string }[] = [];
  const F = OnnxDataType.FLOAT;
  const state = { s: 0x9e3779b9 };
  const stageCount = Math.ceil(layers / perStage);
  const stages: { graph: string; externalData: { path: string; file: string }[] }[] = [];

  for (let k = 0; k < stageCount; k++) {
    const first = k * perStage + 1;
    const last = Math.min(layers, first + perStage - 1);
    // Stage 0 also holds W_in [64, 4096] and declares all six FLUX inputs; the last also W_out [4096, 64].
    const tensors = [
      ...(k === 0 ? [{ name: 'w_in', dims: [64, WIDTH] }] : []),
      ...Array.from({ length: last - first + 1 }, (_, i) => ({ name: `w_${first + i}`, dims: [WIDTH, WIDTH] })),
      ...(k === stageCount - 1 ? [{ name: 'w_out', dims: [WIDTH, 64] }] : []),
    ];
    const base = `stage${k}`;
    const dataName = `${base}.onnx.data`;
    const fd = openSync(join(dir, 'transformer', dataName), 'w');
    const hash = createHash('sha256');
    const externals: ExternalInitializer[] = [];
    let offset = 0;
    for (const t of tensors) {
      const count = t.dims[0]! * t.dims[1]!;
      const data = new Float32Array(count);
      fillUniform(data, state, Math.sqrt(3 / t.dims[0]!));
      const bytes = new Uint8Array(data.buffer);
      writeSync(fd, bytes);
      hash.update(bytes);
      externals.push({ name: t.name, dims: t.dims, location: dataName, offset, length: bytes.length });
      offset += bytes.length;
    }
    closeSync(fd);

    const nodes: { op: string; inputs: string[]; outputs: string[] }[] = [];
    if (k === 0) nodes.push({ op: 'MatMul', inputs: ['hidden_states', 'w_in'], outputs: ['h0'] });
    for (let i = first; i <= last; i++) {
      nodes.push({ op: 'MatMul', inputs: [`h${i - 1}`, `w_${i}`], outputs: [`m${i}`] }, { op: 'Tanh', inputs: [`m${i}`], outputs: [`h${i}`] });
    }
    if (k === stageCount - 1) nodes.push({ op: 'MatMul', inputs: [`h${layers}`, 'w_out'], outputs: ['latent'] });
    const inputs =
      k === 0
        ? [
            { name: 'hidden_states', type: F, shape: ['B', 'S', 64] },
            { name: 'encoder_hidden_states', type: F, shape: ['B', 'L', 64] },
            { name: 'pooled_projections', type: F, shape: ['B', 32] },
            { name: 'timestep', type: F, shape: ['B'] },
            { name: 'img_ids', type: F, shape: ['S', 3] },
            { name: 'txt_ids', type: F, shape: ['L', 3] },
          ]
        : [{ name: `h${first - 1}`, type: F, shape: ['B', 'S', WIDTH] }];
    const output = k === stageCount - 1 ? { name: 'latent', type: F, shape: ['B', 'S', 64] } : { name: `h${last}`, type: F, shape: ['B', 'S', WIDTH] };
    const graph = encodeModel({ name: `large_transformer_${base}`, inputs, outputs: [output], nodes, externalInitializers: externals });
    writeFileSync(join(dir, 'transformer', `${base}.onnx`), graph);
    files.push({ path: `transformer/${base}.onnx`, size: graph.length, sha256: createHash('sha256').update(graph).digest('hex') });
    files.push({ path: `transformer/${dataName}`, size: offset, sha256: hash.digest('hex') });
    stages.push({ graph: `transformer/${base}.onnx`, externalData: [{ path: dataName, file: `transformer/${dataName}` }] });
  }

  const test = JSON.parse(readFileSync(join(TEST_PACK_DIR, 'manifest.json'), 'utf8')) as {
    files: { path: string; size: number; sha256: string }[];
    components: Record<string, unknown>;
    tokenizers: unknown;
  };
  for (const f of test.files.filter((x) => !x.path.startsWith('transformer/'))) {
    mkdirSync(dirname(join(dir, f.path)), { recursive: true });
    copyFileSync(join(TEST_PACK_DIR, f.path), join(dir, f.path));
    files.push(f);
  }
  const manifest = {
    format: 'flux-webgpu-pack',
    formatVersion: 1,
    id: 'flux-test-large',
    name: 'Large test pack (random weights, > 2 GiB)',
    description: `Test pack with a 2+ GiB random-weight transformer in ${stageCount} stages, for memory and throughput tests.`,
    model: 'flux.1-schnell',
    testPack: true,
    generator,
    files,
    components: {
      ...test.components,
      transformer: { stages, dtype: 'float32', weights: 'float32', maxTensorBytes: WIDTH * WIDTH * 4 },
    },
    tokenizers: test.tokenizers,
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 1));
  return summary(dir, files);
}

function summary(dir: string, files: { path: string; size: number }[]): LargePack {
  const t = files.filter((f) => f.path.startsWith('transformer/'));
  return {
    dir,
    totalBytes: files.reduce((s, f) => s + f.size, 0),
    transformerBytes: t.reduce((s, f) => s + f.size, 0),
    shards: t.filter((f) => f.path.endsWith('.data')).length,
    largestShardBytes: Math.max(...t.map((f) => f.size)),
  };
}
