/**
 * A pack larger than 2 GiB for the browser memory tests and the benchmark: the test pack's text encoders, VAE
 * and tokenizers, plus a "transformer" honouring the schnell I/O contract whose weights are a chain of
 * `layers` fp32 4096×4096 matrices (64 MiB each) in external-data shards of `shardBytes`:
 *   v = W_out · tanh(W_k · … tanh(W_1 · W_in · hidden_states))
 * Random uniform weights scaled by 1/√fan_in keep activations O(1). Written streaming (one matrix at a time),
 * hashed while written.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { encodeModel, OnnxDataType, type ExternalInitializer } from '../../src/onnx/proto-writer.js';
import { TEST_PACK_DIR } from './fixtures.js';

const WIDTH = 4096;
const MiB = 1024 * 1024;

export interface LargePack {
  dir: string;
  totalBytes: number;
  transformerBytes: number;
  shards: number;
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

export function writeLargePack(dir: string, options: { layers?: number; shardBytes?: number } = {}): LargePack {
  const layers = options.layers ?? 35;
  const shardBytes = options.shardBytes ?? 512 * MiB;
  const marker = join(dir, 'manifest.json');
  if (existsSync(marker)) {
    const m = JSON.parse(readFileSync(marker, 'utf8')) as { files: { path: string; size: number }[]; generator?: string };
    if (m.generator === `large-pack:${layers}:${shardBytes}`) {
      const t = m.files.filter((f) => f.path.startsWith('transformer/'));
      return { dir, totalBytes: m.files.reduce((s, f) => s + f.size, 0), transformerBytes: t.reduce((s, f) => s + f.size, 0), shards: t.length - 1 };
    }
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'transformer'), { recursive: true });
  const files: { path: string; size: number; sha256: string }[] = [];

  // Weights: W_in [64, 4096], W_1..W_layers [4096, 4096], W_out [4096, 64].
  const tensors = [
    { name: 'w_in', dims: [64, WIDTH] },
    ...Array.from({ length: layers }, (_, i) => ({ name: `w_${i + 1}`, dims: [WIDTH, WIDTH] })),
    { name: 'w_out', dims: [WIDTH, 64] },
  ];
  const externals: ExternalInitializer[] = [];
  const state = { s: 0x9e3779b9 };
  let shard = -1;
  let fd = -1;
  let offset = 0;
  let hash = createHash('sha256');
  const closeShard = () => {
    if (fd < 0) return;
    closeSync(fd);
    files.push({ path: `transformer/model.onnx.data.${String(shard).padStart(3, '0')}`, size: offset, sha256: hash.digest('hex') });
  };
  for (const t of tensors) {
    const count = t.dims[0]! * t.dims[1]!;
    const length = count * 4;
    if (fd < 0 || offset + length > shardBytes) {
      closeShard();
      shard++;
      fd = openSync(join(dir, `transformer/model.onnx.data.${String(shard).padStart(3, '0')}`), 'w');
      offset = 0;
      hash = createHash('sha256');
    }
    const data = new Float32Array(count);
    fillUniform(data, state, Math.sqrt(3 / t.dims[0]!));
    const bytes = new Uint8Array(data.buffer);
    writeSync(fd, bytes);
    hash.update(bytes);
    externals.push({ name: t.name, dims: t.dims, location: `model.onnx.data.${String(shard).padStart(3, '0')}`, offset, length });
    offset += length;
  }
  closeShard();

  const F = OnnxDataType.FLOAT;
  const nodes = [{ op: 'MatMul', inputs: ['hidden_states', 'w_in'], outputs: ['h0'] }];
  for (let i = 1; i <= layers; i++) {
    nodes.push({ op: 'MatMul', inputs: [`h${i - 1}`, `w_${i}`], outputs: [`m${i}`] }, { op: 'Tanh', inputs: [`m${i}`], outputs: [`h${i}`] });
  }
  nodes.push({ op: 'MatMul', inputs: [`h${layers}`, 'w_out'], outputs: ['latent'] });
  const graph = encodeModel({
    name: 'large_transformer',
    inputs: [
      { name: 'hidden_states', type: F, shape: ['B', 'S', 64] },
      { name: 'encoder_hidden_states', type: F, shape: ['B', 'L', 64] },
      { name: 'pooled_projections', type: F, shape: ['B', 32] },
      { name: 'timestep', type: F, shape: ['B'] },
      { name: 'img_ids', type: F, shape: ['S', 3] },
      { name: 'txt_ids', type: F, shape: ['L', 3] },
    ],
    outputs: [{ name: 'latent', type: F, shape: ['B', 'S', 64] }],
    nodes,
    externalInitializers: externals,
  });
  writeFileSync(join(dir, 'transformer/model.onnx'), graph);
  files.unshift({ path: 'transformer/model.onnx', size: graph.length, sha256: createHash('sha256').update(graph).digest('hex') });

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
    description: 'Test pack with a 2+ GiB random-weight transformer in 512 MiB shards, for memory and throughput tests.',
    model: 'flux.1-schnell',
    testPack: true,
    generator: `large-pack:${layers}:${shardBytes}`,
    files,
    components: {
      ...test.components,
      transformer: {
        graph: 'transformer/model.onnx',
        externalData: files.filter((f) => f.path.includes('.data.')).map((f) => ({ path: f.path.slice('transformer/'.length), file: f.path })),
        dtype: 'float32',
        weights: 'float32',
        maxTensorBytes: WIDTH * WIDTH * 4,
      },
    },
    tokenizers: test.tokenizers,
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 1));
  const t = files.filter((f) => f.path.startsWith('transformer/'));
  return { dir, totalBytes: files.reduce((s, f) => s + f.size, 0), transformerBytes: t.reduce((s, f) => s + f.size, 0), shards: t.length - 1 };
}
