/**
 * The synthetic FLUX transformer (tools/synthetic-flux, a source graph or a converted single-graph pack) on
 * onnxruntime-node with the deterministic inputs of bench/device/flux_torch.py: per-step time to completion on the
 * CPU or WebGPU EP; `--dump <dir>` writes latent.npy + meta.json for `flux_torch.py --check` (the parity of the two
 * implementations).
 *
 *   npx tsx bench/device/ort_transformer.ts --model <set>/transformer/model.onnx --ep cpu|webgpu \
 *     [--size 64x64] [--txt 16] [--steps 2] [--dump <dir>]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { encodeNpy } from '../../src/cli/npy.js';
import { timeSteps, transformerFeeds } from './transformer-run.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, ep: { type: 'string', default: 'cpu' }, size: { type: 'string', default: '64x64' }, txt: { type: 'string', default: '16' }, steps: { type: 'string', default: '2' }, dump: { type: 'string' } } });
if (!values.model) throw new Error('--model <transformer.onnx> is required');
const ep = values.ep!;
if (ep !== 'cpu' && ep !== 'webgpu') throw new Error(`--ep must be cpu or webgpu, got ${ep}`);
const m = /^(\d+)x(\d+)$/.exec(values.size!);
if (!m) throw new Error(`--size must be WxH, got ${values.size}`);
const [width, height] = [Number(m[1]), Number(m[2])];
const txt = Number(values.txt);

const session = await ort.InferenceSession.create(values.model, { executionProviders: [ep] });
const r = await timeSteps(session, transformerFeeds(ort, session, width, height, txt), Number(values.steps));
console.log(JSON.stringify({ ep, size: `${width}x${height}`, txt, step_ms: r.stepMs, mean_step_ms: r.meanMs }));
if (values.dump) {
  mkdirSync(values.dump, { recursive: true });
  writeFileSync(join(values.dump, 'latent.npy'), encodeNpy(r.latent.data as Float32Array, r.latent.dims as number[]));
  writeFileSync(join(values.dump, 'meta.json'), JSON.stringify({ ep, width, height, txt }));
}
