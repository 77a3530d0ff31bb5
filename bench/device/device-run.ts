/**
 * The onnxruntime-node half of bench/device/run-h200.sh (bundled by bench/device/prepare.sh into
 * .device/device.mjs, so the GPU machine needs no npm install):
 * 1. the synthetic FLUX.1 [schnell] set (tools/synthetic-flux) with `--double`/`--single` transformer blocks and
 *    1 T5 layer, bf16 like BFL's export, plus weights.json for flux_torch.py;
 * 2. the README's recommended conversion (int4, CLIP int8, block 32; one graph per component: no browser limits);
 * 3. the transformer alone on the WebGPU EP, per step to completion, with flux_torch.py's inputs (the
 *    WebGPU/native ratio compares exactly this);
 * 4. the whole pipeline through the CLI (`generate --ep webgpu --json`): the engine's per-stage times.
 * Results go to `<out>/webgpu.json`.
 *
 *   node <runtime>/device.mjs --work /tmp/flux-dev --out $OUT [--double 4] [--single 8] [--sizes 512x512,1024x1024] [--steps 4] [--ep webgpu]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { convertPack } from '../../src/convert/index.js';
import { buildSyntheticSet } from '../../tools/synthetic-flux/build.js';
import { timeSteps, transformerFeeds } from './transformer-run.js';

const { values } = parseArgs({
  options: {
    work: { type: 'string', default: '/tmp/flux-dev' }, out: { type: 'string', default: '.' }, double: { type: 'string', default: '4' }, single: { type: 'string', default: '8' },
    sizes: { type: 'string', default: '512x512,1024x1024' }, steps: { type: 'string', default: '4' }, ep: { type: 'string', default: 'webgpu' }, txt: { type: 'string', default: '256' },
    tokenizers: { type: 'string' }, cli: { type: 'string' }, small: { type: 'boolean' },
  },
});
const int = (name: string, v: string | undefined, lo: number, hi: number) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`--${name} must be an integer in [${lo}, ${hi}], got ${v}`);
  return n;
};
const double = int('double', values.double, 0, 19);
const single = int('single', values.single, 0, 38);
const steps = int('steps', values.steps, 1, 4);
const txt = int('txt', values.txt, 1, 512);
const ep = values.ep!;
if (ep !== 'webgpu' && ep !== 'cpu') throw new Error(`--ep must be webgpu or cpu, got ${ep}`);
const sizes = values.sizes!.split(',').map((s) => {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m) throw new Error(`--sizes: expected WxH[,WxH…], got ${s}`);
  return [Number(m[1]), Number(m[2])] as const;
});
const log = (s: string) => process.stdout.write(`[webgpu-half] ${s}\n`);
const here = dirname(process.argv[1]!);
mkdirSync(values.out!, { recursive: true });
const result: Record<string, unknown> = { ep, double, single, txt, steps, ortVersion: ort.env.versions?.common };

let t = performance.now();
const set = buildSyntheticSet(join(values.work!, 'src'), {
  depth: 'slice', small: values.small ?? false, blocks: { double, single, t5Layers: 1 }, ...(values.tokenizers ? { toyTokenizers: values.tokenizers } : {}),
});
result.generateS = (performance.now() - t) / 1000;
result.params = set.params;
result.transformerParams = set.transformer.params;
log(`set: ${(set.params / 1e9).toFixed(2)} B params (transformer ${double}+${single} blocks ${(set.transformer.params / 1e9).toFixed(2)} B) in ${(result.generateS as number).toFixed(0)} s`);

t = performance.now();
const packDir = join(values.work!, 'pack');
const conv = await convertPack({
  transformer: set.transformer.modelPath, t5: set.t5.modelPath, clip: set.clip.modelPath, vaeDecoder: set.vae_decoder.modelPath, tokenizers: set.tokenizers,
  quant: 'int4', clipQuant: 'int8', blockSize: 32, shardMb: 512, maxStageMb: 0, verifyMb: 0, reconRows: 0, out: packDir, testPack: true,
});
result.convertS = (performance.now() - t) / 1000;
result.packBytes = conv.report.totalBytes;
log(`converted (int4, CLIP int8, block 32): ${(conv.report.totalBytes / 2 ** 30).toFixed(2)} GiB in ${(result.convertS as number).toFixed(0)} s`);

// 3. The transformer alone.
const graph = join(packDir, conv.report.manifest.components.transformer.graph!);
t = performance.now();
const session = await ort.InferenceSession.create(graph, { executionProviders: [ep] });
result.sessionCreateS = (performance.now() - t) / 1000;
const transformer: unknown[] = [];
for (const [w, h] of sizes) {
  try {
    const r = await timeSteps(session, transformerFeeds(ort, session, w, h, txt), steps);
    const finite = (r.latent.data as Float32Array).every(Number.isFinite);
    transformer.push({ size: `${w}x${h}`, step_ms: r.stepMs, mean_step_ms: r.meanMs, finite });
    log(`transformer ${w}x${h} on ${ep}: ${r.meanMs.toFixed(1)} ms per step (mean of ${steps}, to completion)${finite ? '' : ' — NON-FINITE output'}`);
  } catch (e) {
    transformer.push({ size: `${w}x${h}`, error: (e as Error).message.split('\n')[0] });
    log(`transformer ${w}x${h} FAILED: ${(e as Error).message.split('\n')[0]}`);
  }
}
await session.release();
result.transformer = transformer;

// 4. The whole pipeline through the CLI (T5 → CLIP → steps → VAE), the engine's own timings.
const cli = values.cli ?? join(here, 'cli.mjs');
const pipeline: unknown[] = [];
for (const [w, h] of sizes) {
  const png = join(values.work!, `cli-${w}x${h}.png`);
  const r = spawnSync(process.execPath, [cli, 'generate', '--pack', packDir, '--no-verify', '--ep', ep, '--prompt', 'a lighthouse on a cliff at dusk', '--seed', '7', '--steps', String(steps), '--image-size', `${w}x${h}`, '--json', '--out', png], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) {
    pipeline.push({ size: `${w}x${h}`, error: (r.stderr || r.stdout).slice(-2000) });
    log(`pipeline ${w}x${h} FAILED: ${(r.stderr || r.stdout).split('\n').filter(Boolean).slice(-2).join(' | ')}`);
    continue;
  }
  const json = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { timings: Record<string, unknown> };
  pipeline.push({ size: `${w}x${h}`, timings: json.timings });
  log(`pipeline ${w}x${h}: ${JSON.stringify(json.timings)}`);
}
result.pipeline = pipeline;
writeFileSync(join(values.out!, 'webgpu.json'), JSON.stringify(result, null, 1));
log(`wrote ${join(values.out!, 'webgpu.json')}`);
