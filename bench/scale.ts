/**
 * The scale benchmark (`npm run bench -- --only scale [--depth slice|full] [--size 512x512,1024x1024] [--steps 1]`):
 * the synthetic FLUX.1 [schnell] set (tools/synthetic-flux: real T5-XXL, CLIP-L, VAE and transformer dimensions;
 * slice = 1 double + 1 single block and 1 T5 layer, full = 19 + 38 blocks and 24 layers) converted with the
 * README's recommended settings, installed into IndexedDB in headless Chromium, loaded, and generated at each size.
 *
 * It prints, per size: the capacity decision (the worker's checkRequest: the activation model against the
 * adapter's limits and what can be allocated, before any GPU work), the engine's per-stage times — `step_ms` is to GPU completion, `step_queued_ms` the part spent queueing,
 * and the client's wall time around the one read-back per image — the GPU memory by component (weights from the
 * manifest, activation peak buffer and live total from src/runtime/activation-memory.ts), the worker's JS peak,
 * and the pack size. Then the attention microbenchmark (bench/attention.ts): fused against unfused at the
 * largest size where unfused still fits. A JSON copy goes to `<cache>/scale-<depth>.json`.
 *
 * The set and the pack are cached under $FLUX_SCALE_DIR (default <tmp>/flux-webgpu-scale/<depth>) and reused
 * while their generator config matches; `--fresh` rebuilds them.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { FluxClient } from '../src/client/flux-client.js';
import { parseManifest } from '../src/pack/manifest.js';
import { activationsFor, packActivationArchs } from '../src/runtime/activation-memory.js';
import { decideActivations, packNeeds, weightsDuring, type ActivationDecision, type CapacityDecision } from '../src/runtime/capacity.js';
import { openFsPack } from '../src/storage/fs-pack-source.js';
import { buildSyntheticSet, type SyntheticDepth } from '../tools/synthetic-flux/build.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../tests/support/chromium.js';
import { ROOT } from '../tests/support/fixtures.js';
import { serveDirectory } from '../tests/support/static-server.js';
import { sampleWorkerHeap } from '../tests/support/worker-heap.js';

declare global {
  interface Window {
    flux: FluxClient;
  }
}

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const mib = (b: number) => `${(b / MiB).toFixed(0)} MiB`;
const gb = (b: number) => (b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : mib(b));
const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The README's recommended conversion (Building the real FLUX.1 [schnell] pack, step 4). */
export const RECOMMENDED_CONVERT_FLAGS = ['--quant', 'int4', '--clip-quant', 'int8', '--block-size', '32', '--shard-mb', '512'];

export interface ScaleOptions {
  depth: SyntheticDepth;
  sizes: [number, number][];
  steps: number;
  fresh?: boolean;
  /** Run bench/attention.ts after the generations (default true). */
  attention?: boolean;
}

interface SizeResult {
  width: number;
  height: number;
  decision: ActivationDecision;
  /** null when refused before any GPU work. */
  run: null | {
    timings: Awaited<ReturnType<FluxClient['generate']>>['timings'];
    wallMs: number;
    sessionRunMs: number;
    readbackMs: number;
    gpuReads: number;
    error?: string;
  };
}

export function parseSizes(s: string): [number, number][] {
  return s.split(',').map((x) => {
    const m = /^(\d+)x(\d+)$/.exec(x.trim());
    if (!m) throw new Error(`--size: expected WxH[,WxH…] (e.g. 512x512,1024x768), got "${x}"`);
    return [Number(m[1]), Number(m[2])];
  });
}

/** Generate the set and convert it, unless a cached pack from the same generator config exists. */
export function preparePack(depth: SyntheticDepth, fresh: boolean, log: (s: string) => void): { packDir: string; cacheDir: string; sourceBytes: number; params: number; convertS: number | null; generateS: number | null } {
  const cacheDir = process.env.FLUX_SCALE_DIR ?? join(tmpdir(), 'flux-webgpu-scale', depth);
  const src = join(cacheDir, 'src');
  const packDir = join(cacheDir, 'pack');
  const stampPath = join(cacheDir, 'stamp.json');
  const want = buildSyntheticSet(src, { depth, dryRun: true });
  const stamp = JSON.stringify({ config: want.config, convert: RECOMMENDED_CONVERT_FLAGS });
  if (fresh) rmSync(cacheDir, { recursive: true, force: true });
  if (existsSync(stampPath) && readFileSync(stampPath, 'utf8') === stamp && existsSync(join(packDir, 'manifest.json'))) {
    log(`reusing ${packDir} (same generator config; --fresh rebuilds)`);
    return { packDir, cacheDir, sourceBytes: want.weightBytes, params: want.params, convertS: null, generateS: null };
  }
  rmSync(cacheDir, { recursive: true, force: true });
  mkdirSync(cacheDir, { recursive: true });
  // Source + pack (int4 ≈ 0.35× of bf16, the fp32 VAE 2×) must fit together.
  const fs = statfsSync(cacheDir);
  const free = fs.bavail * fs.bsize;
  const need = want.weightBytes * 1.6 + 2 * GiB;
  if (free < need) throw new Error(`scale bench: ${cacheDir} has ${gb(free)} free; the ${depth} set and its pack need about ${gb(need)} (set FLUX_SCALE_DIR to a larger disk)`);
  log(`generating the ${depth} set (${(want.params / 1e9).toFixed(2)} B params, ${gb(want.weightBytes)} bf16) → ${src}…`);
  const t0 = performance.now();
  buildSyntheticSet(src, { depth });
  const generateS = (performance.now() - t0) / 1000;
  log(`converting with ${RECOMMENDED_CONVERT_FLAGS.join(' ')}…`);
  const t1 = performance.now();
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/convert/main.ts', '--transformer', join(src, 'transformer/model.onnx'), '--t5', join(src, 't5/model.onnx'), '--clip', join(src, 'clip/model.onnx'),
      '--vae-decoder', join(src, 'vae_decoder/model.onnx'), '--tokenizers', join(src, 'tokenizers'), ...RECOMMENDED_CONVERT_FLAGS,
      '--id', `flux-synthetic-${depth}`, '--name', `Synthetic FLUX.1 [schnell] ${depth} (random weights)`, '--test-pack',
      '--out', packDir, '--report-json', join(cacheDir, 'convert.json')],
    { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  if (r.status !== 0) throw new Error(`converter failed (exit ${r.status}): ${r.stderr || r.stdout}`);
  for (const line of r.stdout.split('\n')) if (/^\S.*(\[|pack:|peak RSS)/.test(line)) log(`  ${line}`);
  const convertS = (performance.now() - t1) / 1000;
  // The bf16 source is not needed any more (the pack is what the browser reads); keep the disk free.
  rmSync(src, { recursive: true, force: true });
  writeFileSync(stampPath, stamp);
  return { packDir, cacheDir, sourceBytes: want.weightBytes, params: want.params, convertS, generateS };
}

export async function benchScale(appUrl: string, o: ScaleOptions): Promise<void> {
  const log = (s: string) => process.stdout.write(`${s}\n`);
  log(`\nscale — synthetic FLUX.1 [schnell] ${o.depth} set, sizes ${o.sizes.map(([w, h]) => `${w}×${h}`).join(', ')}, ${o.steps} step(s)`);
  const prep = preparePack(o.depth, o.fresh ?? false, log);
  const source = await openFsPack(prep.packDir);
  const manifest = parseManifest(JSON.parse(readFileSync(join(prep.packDir, 'manifest.json'), 'utf8')));
  const packBytes = manifest.files.reduce((s, f) => s + f.size, 0);
  const needs = packNeeds(manifest);
  const archs = await packActivationArchs(source);
  const cfg = (manifest as { config?: { t5MaxLength?: number; vaeScaleFactor?: number } }).config ?? {};
  const model = { archs, t5Length: cfg.t5MaxLength ?? 256, clipLength: 77, vaeScaleFactor: cfg.vaeScaleFactor ?? 8 };

  const server = await serveDirectory(prep.packDir);
  const profile = mkdtempSync(join(tmpdir(), 'flux-scale-profile-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  const results: SizeResult[] = [];
  let report: Record<string, unknown> = {};
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(0);
    await page.goto(appUrl);
    await page.waitForSelector('body[data-ready=true]');
    const heap = await sampleWorkerHeap(page, 250);
    log('installing into IndexedDB…');
    const t0 = Date.now();
    const installed = await page.evaluate((u) => window.flux.installPack(u), server.url);
    const installMs = Date.now() - t0;
    const installPeak = heap.peak().totalBytes;
    log('loading…');
    const t1 = Date.now();
    const loaded = await page.evaluate((id) => window.flux.loadPack(id), installed.id);
    const loadMs = Date.now() - t1;
    const loadPeak = heap.peak().totalBytes;
    const info = await page.evaluate(() => window.flux.info());
    if (!info.webgpu) throw new Error(`no WebGPU adapter: ${info.webgpuError}`);
    const capacity: CapacityDecision = info.capacity ?? (await page.evaluate((id) => window.flux.probeCapacity(id), installed.id));
    const limits = info.webgpu.limits;
    const offer = { maxBufferSize: limits.maxBufferSize ?? Infinity, maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize ?? Infinity, budgetBytes: capacity.budgetBytes };
    const a = info.webgpu.adapter;
    const adapter = `${a.vendor}/${a.architecture}${a.description ? ` (${a.description})` : ''}${a.isFallbackAdapter ? ' [software]' : ''}`;
    log(`adapter ${adapter}; maxBufferSize ${gb(offer.maxBufferSize)}, maxStorageBufferBindingSize ${gb(offer.maxStorageBufferBindingSize)}; ORT ${info.ortVersion} (${info.ortBuild})`);
    log(`capacity: ${capacity.canRunLocally ? 'local' : 'not local'}, plan ${capacity.plan}, resident ${capacity.resident.join('+') || 'none'} — ${capacity.reason}`);

    for (const [width, height] of o.sizes) {
      // The worker's own decision, the one generate takes before any GPU work (it re-measures what can be
      // allocated when the probe's budget is short). null when it checks nothing: then the same model here.
      const input = { prompt: `a lighthouse on a cliff at dusk, ${width}x${height}`, seed: 7, image_size: { width, height }, num_inference_steps: o.steps, output_format: 'png' as const };
      const worker = await page.evaluate(({ id, input }) => window.flux.checkRequest(id, input), { id: installed.id, input });
      const weights = capacity.plan ? weightsDuring(capacity.plan, needs) : needs.componentBytes;
      const decision = worker ?? decideActivations(model, { batch: 1, width, height }, offer, weights as Parameters<typeof decideActivations>[3]);
      if (!decision.fits) {
        log(`${width}×${height}: refused before any GPU work — ${decision.reason}`);
        results.push({ width, height, decision, run: null });
        continue;
      }
      log(`${width}×${height}: generating (${o.steps} step(s))…`);
      const run = await page.evaluate(
        async ({ input }) => {
          const before = (await window.flux.stats())?.gpuMapReads ?? 0;
          const t0 = performance.now();
          try {
            const out = await window.flux.generate(input);
            const wallMs = performance.now() - t0;
            const s = (await window.flux.stats())!;
            return { timings: out.timings, wallMs, sessionRunMs: s.sessionRunMs, readbackMs: s.readbackMs, gpuReads: s.gpuMapReads - before };
          } catch (e) {
            return { timings: null, wallMs: performance.now() - t0, sessionRunMs: 0, readbackMs: 0, gpuReads: 0, error: String((e as Error).message ?? e) };
          }
        },
        { input },
      );
      if (run.error || !run.timings) log(`  FAILED after ${sec(run.wallMs)}: ${run.error}`);
      else {
        const t = run.timings;
        log(`  encode text ${sec(t.encode_text_ms)}; steps ${t.step_ms.map(sec).join(', ')} (GPU completion; queueing ${t.step_queued_ms.map(sec).join(', ')}); decode ${sec(t.decode_ms)}; total ${sec(t.total_ms)}; wall ${sec(run.wallMs)}; read-backs ${run.gpuReads}`);
      }
      results.push({ width, height, decision, run: run.timings ? (run as NonNullable<SizeResult['run']>) : { ...run, timings: null as never } });
    }
    const genPeak = heap.peak();
    await heap.stop();

    // Per component: weights (manifest) and, at each size, the activation model's peak buffer and live total.
    const activations = o.sizes.map(([width, height]) => ({ size: `${width}x${height}`, components: activationsFor(archs, { batch: 1, width, height, t5Length: model.t5Length, clipLength: model.clipLength, vaeScaleFactor: model.vaeScaleFactor }) }));
    const lines = [
      '',
      `scale — synthetic FLUX.1 [schnell] ${o.depth}: ${(prep.params / 1e9).toFixed(2)} B params (${gb(prep.sourceBytes)} bf16 source), pack ${gb(packBytes)} (${manifest.files.length} files)${prep.convertS !== null ? `; generated in ${prep.generateS!.toFixed(0)} s, converted in ${prep.convertS.toFixed(0)} s` : ''}`,
      `adapter ${adapter}; ORT ${info.ortVersion} ${info.ortBuild}`,
      `install ${sec(installMs)} (${((packBytes / MiB) / (installMs / 1000)).toFixed(0)} MiB/s), load ${sec(loadMs)}; transformer ${loaded.components.transformer?.stages ?? 1} stage(s)`,
      `worker JS peak: install ${mib(installPeak)}, load ${mib(loadPeak)}, generate ${mib(genPeak.totalBytes)} (heap ${mib(genPeak.usedBytes)} + ArrayBuffers ${mib(genPeak.backingBytes)})`,
      `capacity: ${capacity.canRunLocally ? 'runs locally' : 'cannot run locally'} (plan ${capacity.plan}, needs ${gb(capacity.neededBytes)} of ${capacity.budgetBytes === null ? 'unchecked' : gb(capacity.budgetBytes)})`,
      '',
      'GPU memory by component (weights; activation peak buffer / live total per size):',
      ...Object.entries(needs.componentBytes).map(([c, w]) => {
        const per = activations.map((x) => {
          const c2 = x.components.find((y) => y.component === c);
          return c2 ? `${x.size}: ${gb(c2.peakBufferBytes)} / ${gb(c2.totalBytes)}` : `${x.size}: —`;
        });
        return `  ${c.padEnd(14)} weights ${gb(w as number).padStart(9)}   ${per.join('   ')}`;
      }),
      '',
      'size        decision                         encode text   step (GPU)   step queued   decode    total     wall',
      ...results.map((r) => {
        const size = `${r.width}×${r.height}`.padEnd(11);
        if (!r.run) return `${size} refused: ${r.decision.reason}`;
        if (!r.run.timings) return `${size} fits; FAILED: ${r.run.error}`;
        const t = r.run.timings;
        const m = (xs: number[]) => sec(xs.reduce((a, b) => a + b, 0) / xs.length);
        return `${size} fits (peak buffer ${gb(Math.max(...r.decision.checks.map((c) => c.peakBufferBytes)))})`.padEnd(45) + [sec(t.encode_text_ms), m(t.step_ms), m(t.step_queued_ms), sec(t.decode_ms), sec(t.total_ms), sec(r.run.wallMs)].map((x) => x.padStart(11)).join(' ');
      }),
      '',
    ];
    log(lines.join('\n'));
    report = { depth: o.depth, adapter, limits: offer, ort: info.ortVersion, packBytes, params: prep.params, installMs, loadMs, installPeak, loadPeak, genPeak, capacity, activations, results };
  } finally {
    await context.close();
    await server.close();
    rmSync(profile, { recursive: true, force: true });
  }

  if (o.attention !== false) {
    try {
      const { benchAttention } = await import('./attention.js');
      const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
      try {
        report.attention = await benchAttention(browser, { log });
      } finally {
        await browser.close();
      }
    } catch (e) {
      log(`attention benchmark (bench/attention.ts) failed: ${(e as Error).message}`);
    }
  }
  const out = join(prep.cacheDir, `scale-${o.depth}.json`);
  writeFileSync(out, JSON.stringify(report, null, 1));
  log(`(saved ${out})`);
}
