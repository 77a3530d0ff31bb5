/**
 * A transformer split into stages runs like the unsplit graph: tensors pass between stages by name, component
 * inputs may be consumed by any stage, outputs nobody reads are not fetched.
 *   stage 0: h1 = 0.5 · hidden_states; unused = 2 · hidden_states
 *   stage 1: latent = h1 · timestep[:, None, None] (+ the other FLUX inputs, unused)
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { expect, it } from 'vitest';
import { jpegJsEncoder } from '../../../src/cli/node-runtime.js';
import { FluxEngine } from '../../../src/engine/flux-engine.js';
import { encodeModel, OnnxDataType, type ValueInfo } from '../../../src/onnx/proto-writer.js';
import type { OrtApi } from '../../../src/runtime/ort-api.js';
import { openFsPack } from '../../../src/storage/fs-pack-source.js';
import { makeNoise } from '../../../src/pipeline/latents.js';
import { schnellSigmas } from '../../../src/pipeline/schedule.js';

const F = OnnxDataType.FLOAT;
const fluxInputs: Record<string, ValueInfo> = {
  hidden_states: { name: 'hidden_states', type: F, shape: ['B', 'S', 64] },
  encoder_hidden_states: { name: 'encoder_hidden_states', type: F, shape: ['B', 'L', 8] },
  pooled_projections: { name: 'pooled_projections', type: F, shape: ['B', 4] },
  timestep: { name: 'timestep', type: F, shape: ['B'] },
  img_ids: { name: 'img_ids', type: F, shape: ['S', 3] },
  txt_ids: { name: 'txt_ids', type: F, shape: ['L', 3] },
};
const tokens = (name: string): ValueInfo => ({ name, type: F, shape: ['B', 'S', 64] });
const consts = [
  { name: 'half', type: F, values: [0.5], dims: [] },
  { name: 'two', type: F, values: [2], dims: [] },
  { name: 'col', type: OnnxDataType.INT64, values: [-1, 1, 1], dims: [3] },
] as const;

const stage0 = encodeModel({
  name: 's0',
  inputs: [fluxInputs.hidden_states!],
  outputs: [tokens('h1'), tokens('unused')],
  nodes: [
    { op: 'Mul', inputs: ['hidden_states', 'half'], outputs: ['h1'] },
    { op: 'Mul', inputs: ['hidden_states', 'two'], outputs: ['unused'] },
  ],
  initializers: [consts[0], consts[1]],
});
const stage1 = encodeModel({
  name: 's1',
  inputs: [tokens('h1'), fluxInputs.encoder_hidden_states!, fluxInputs.pooled_projections!, fluxInputs.timestep!, fluxInputs.img_ids!, fluxInputs.txt_ids!],
  outputs: [tokens('latent')],
  nodes: [
    { op: 'Reshape', inputs: ['timestep', 'col'], outputs: ['t3'] },
    { op: 'Mul', inputs: ['h1', 't3'], outputs: ['latent'] },
  ],
  initializers: [consts[2]],
});
const whole = encodeModel({
  name: 'whole',
  inputs: Object.values(fluxInputs),
  outputs: [tokens('latent')],
  nodes: [
    { op: 'Mul', inputs: ['hidden_states', 'half'], outputs: ['h1'] },
    { op: 'Reshape', inputs: ['timestep', 'col'], outputs: ['t3'] },
    { op: 'Mul', inputs: ['h1', 't3'], outputs: ['latent'] },
  ],
  initializers: [consts[0], consts[2]],
});
const vae = encodeModel({
  name: 'vae',
  inputs: [{ name: 'latent', type: F, shape: ['B', 16, 'H', 'W'] }],
  outputs: [{ name: 'images', type: F, shape: ['B', 3, 'H', 'W'] }],
  nodes: [
    { op: 'ReduceMean', inputs: ['latent'], outputs: ['m'], attributes: { axes: [1], keepdims: 1 } },
    { op: 'Concat', inputs: ['m', 'm', 'm'], outputs: ['images'], attributes: { axis: 1 } },
  ],
});

function writePack(files: Record<string, Uint8Array>, transformer: object): string {
  const dir = mkdtempSync(join(tmpdir(), 'flux-stages-'));
  for (const [p, b] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), b);
  }
  const manifest = {
    format: 'flux-webgpu-pack',
    formatVersion: 1,
    id: 'stages',
    name: 'stages',
    model: 'flux.1-schnell',
    files: Object.entries(files).map(([path, b]) => ({ path, size: b.length, sha256: createHash('sha256').update(b).digest('hex') })),
    components: { transformer: { ...transformer, dtype: 'float32' }, vae_decoder: { graph: 'vae/model.onnx', dtype: 'float32' } },
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

it('a two-stage transformer equals the single graph', async () => {
  const staged = writePack({ 'transformer/stage0.onnx': stage0, 'transformer/stage1.onnx': stage1, 'vae/model.onnx': vae }, {
    stages: [{ graph: 'transformer/stage0.onnx' }, { graph: 'transformer/stage1.onnx' }],
  });
  const single = writePack({ 'transformer/model.onnx': whole, 'vae/model.onnx': vae }, { graph: 'transformer/model.onnx' });
  const input = {
    seed: 5,
    image_size: { width: 64, height: 32 },
    num_inference_steps: 3,
    output_format: 'png' as const,
    prompt_embeds: { data: new Float32Array(2 * 8), dims: [1, 2, 8] },
    pooled_prompt_embeds: { data: new Float32Array(4), dims: [1, 4] },
  };
  const results = [];
  for (const dir of [staged, single]) {
    const engine = new FluxEngine({ runtime: { ort: ort as unknown as OrtApi, target: 'cpu' }, jpeg: jpegJsEncoder });
    const info = await engine.loadPack(await openFsPack(dir));
    const r = await engine.generate(input, { returnLatents: true });
    results.push({ info, r, runs: { ...engine.stats!.runsByLabel } });
  }
  const [s, w] = results as [(typeof results)[0], (typeof results)[0]];
  expect(s.info.components.transformer).toMatchObject({ stages: 2, outputs: ['latent'] });
  expect(s.runs['transformer[0]']).toBe(3);
  expect(s.runs['transformer[1]']).toBe(3);
  expect(s.r.latents!.data).toEqual(w.r.latents!.data);
  expect(s.r.images[0]!.bytes).toEqual(w.r.images[0]!.bytes);
  // And it is the math we expect: x ← x + dt·(0.5·x·σ) over σ = 1, 2/3, 1/3, from the seed's noise.
  const f32 = Math.fround;
  const sigmas = schnellSigmas(3);
  const noise = makeNoise(5, { batch: 1, channels: 16, height: 4, width: 8 });
  const expected = noise.map((x0) => {
    let x = x0;
    for (let i = 0; i < 3; i++) x = f32(x + f32(f32(sigmas[i + 1]! - sigmas[i]!) * f32(f32(0.5 * x) * sigmas[i]!)));
    return x;
  });
  expect(Array.from(s.r.latents!.data)).toEqual(Array.from(expected));
});

it('a stage input that nothing provides is a clear error', async () => {
  const broken = writePack({ 'transformer/stage1.onnx': stage1, 'vae/model.onnx': vae }, { stages: [{ graph: 'transformer/stage1.onnx' }] });
  const engine = new FluxEngine({ runtime: { ort: ort as unknown as OrtApi, target: 'cpu' }, jpeg: jpegJsEncoder });
  await expect(engine.loadPack(await openFsPack(broken))).rejects.toThrow(/transformer: no graph input for "hidden_states".*graph inputs: h1, encoder_hidden_states/);
});
