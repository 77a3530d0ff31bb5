/**
 * `npm run bench`, three sections, each printing ratios measured side by side in the same run:
 * 1. Generation — the test pack in headless Chromium on real WebGPU (SwiftShader on CPU-only machines): time per
 *    stage (install, load, encode text, each step, decode, image encode), the share of generate time spent outside
 *    the runtime (goal ≤ 5%) and GPU→CPU read-backs per generation (goal: only the final image).
 * 2. Storage and loading — a 2.2 GiB pack (tests/support/large-pack.ts) from a local server: install throughput vs
 *    a plain fetch of the same bytes (goal ≥ 90%), IndexedDB → session load throughput, and the worker's peak JS
 *    memory per GiB of weights (goal ≤ 0.1).
 * 3. Converter — int4 conversion of a synthetic transformer with real FLUX dimensions (2 GiB): throughput and
 *    peak RSS.
 *
 * 4. Scale (only with `--only scale`; bench/scale.ts) — the synthetic FLUX.1 [schnell] set at real dimensions
 *    (`--depth slice|full`), converted with the recommended settings, installed, loaded and generated at each
 *    `--size` (default 512x512,1024x1024; `--steps`, default 1): per-stage GPU times, GPU memory by component,
 *    the worker's JS peak, pack size, capacity decision, and fused vs unfused attention.
 *
 * Options: --size WxH (default 64x64), --steps N (4), --runs N (3 measured, after 1 warm-up), --port N,
 *          --only generate|storage|convert|scale, --depth slice|full (scale), --fresh (scale: rebuild the pack),
 *          --skip-attention (scale: without bench/attention.ts, which takes tens of minutes on SwiftShader).
 * On WebGPU, session.run returns once work is queued; the GPU finishes while we wait for the read-back. So
 * "in runtime" = time inside session.run + time waiting for read-backs, and "outside" is everything else
 * (validation, tokenizing, noise, packing, post-processing, PNG encoding, messaging).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { build, preview } from 'vite';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../tests/support/chromium.js';
import type { FluxClient } from '../src/client/flux-client.js';
import { buildSyntheticFlux, REAL_FLUX_DIMS } from '../tools/synthetic-flux/build.js';
import { benchScale, parseSizes } from './scale.js';
import { ROOT, TEST_PACK_DIR } from '../tests/support/fixtures.js';
import { writeLargePack } from '../tests/support/large-pack.js';
import { serveDirectory } from '../tests/support/static-server.js';
import { sampleWorkerHeap } from '../tests/support/worker-heap.js';

declare global {
  interface Window {
    flux: FluxClient;
  }
}

const { values } = parseArgs({
  options: {
    size: { type: 'string' },
    steps: { type: 'string' },
    runs: { type: 'string', default: '3' },
    port: { type: 'string', default: '4180' },
    only: { type: 'string' },
    depth: { type: 'string', default: 'slice' },
    fresh: { type: 'boolean' },
    'skip-attention': { type: 'boolean' },
  },
});
const SECTIONS = ['generate', 'storage', 'convert', 'scale'];
if (values.only && !SECTIONS.includes(values.only)) throw new Error(`--only must be one of ${SECTIONS.join(', ')}, got ${values.only}`);
if (values.depth !== 'slice' && values.depth !== 'full') throw new Error(`--depth must be slice or full, got ${values.depth}`);
const [width, height] = (values.size ?? '64x64').split('x').map(Number) as [number, number];
const steps = Number(values.steps ?? '4');
const runs = Number(values.runs);

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ms = (x: number) => `${x.toFixed(1).padStart(9)} ms`;

async function main(): Promise<void> {
  process.stdout.write('building the app…\n');
  await build({ logLevel: 'silent' });
  const server = await preview({ logLevel: 'silent', preview: { port: Number(values.port), strictPort: true } });
  const url = `http://127.0.0.1:${values.port}/`;
  try {
    if (!values.only || values.only === 'generate') await benchGeneration(url);
    if (!values.only || values.only === 'storage') await benchStorage(url);
    // Not part of the default run: tens of minutes on SwiftShader.
    if (values.only === 'scale')
      await benchScale(url, { depth: values.depth as 'slice' | 'full', sizes: parseSizes(values.size ?? '512x512,1024x1024'), steps: Number(values.steps ?? '1'), fresh: values.fresh ?? false, attention: !values['skip-attention'] });
  } finally {
    await new Promise<void>((resolve) => server.httpServer.close(() => resolve()));
  }
  if (!values.only || values.only === 'convert') await benchConverter();
}

async function benchGeneration(url: string): Promise<void> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForSelector('body[data-ready=true]');
    const info = await page.evaluate(() => window.flux.info());
    if (!info.webgpu) throw new Error(`no WebGPU adapter: ${info.webgpuError}`);
    const a = info.webgpu.adapter;

    const setup = await page.evaluate(async () => {
      const t0 = performance.now();
      const pack = await window.flux.installPack('./packs/flux-test-tiny/');
      const t1 = performance.now();
      await window.flux.loadPack('flux-test-tiny');
      const t2 = performance.now();
      return { installMs: t1 - t0, loadMs: t2 - t1, bytes: pack.sizeBytes };
    });

    type Run = { t: Awaited<ReturnType<FluxClient['generate']>>['timings']; wallMs: number; stats: NonNullable<Awaited<ReturnType<FluxClient['stats']>>>; gpuReads: number };
    const results: Run[] = [];
    for (let i = 0; i <= runs; i++) {
      const r: Run = await page.evaluate(
        async ({ width, height, steps, seed }) => {
          const before = (await window.flux.stats())?.gpuMapReads ?? 0;
          const t0 = performance.now();
          // A new prompt each run, so text encoding is measured (a repeated prompt comes from the embedding cache).
          const out = await window.flux.generate({ prompt: `a lighthouse on a cliff at dusk, volumetric light, variant ${seed}`, seed, image_size: { width, height }, num_inference_steps: steps, output_format: 'png' });
          const wallMs = performance.now() - t0;
          const s = (await window.flux.stats())!;
          return { t: out.timings, wallMs, stats: s, gpuReads: s.gpuMapReads - before };
        },
        { width, height, steps, seed: i },
      );
      if (i > 0) results.push(r); // run 0 compiles shaders
    }

    const t = (f: (r: Run) => number) => mean(results.map(f));
    const total = t((r) => r.t.total_ms);
    const inRuntime = t((r) => r.stats.sessionRunMs + r.stats.gpuWaitMs + r.stats.readbackMs);
    const outside = total - inRuntime;
    const reads = results.map((r) => r.gpuReads);
    const byComponent = results[0]!.stats.gpuReadsInRun;

    const lines = [
      '',
      `flux-webgpu bench — test pack (${(setup.bytes / 1024 / 1024).toFixed(1)} MiB), ${width}×${height}, ${steps} steps, mean of ${runs} warm runs`,
      `adapter: ${a.vendor}/${a.architecture}${a.description ? ` (${a.description})` : ''}${a.isFallbackAdapter ? ' [software]' : ''}; ORT ${info.ortVersion}; crossOriginIsolated ${info.crossOriginIsolated}`,
      '',
      'stage                      time',
      `install (IndexedDB)   ${ms(setup.installMs)}   (${((setup.bytes / 1024 / 1024) / (setup.installMs / 1000)).toFixed(1)} MiB/s)`,
      `load (sessions)       ${ms(setup.loadMs)}`,
      `encode text           ${ms(t((r) => r.t.encode_text_ms))}`,
      ...Array.from({ length: steps }, (_, i) => `step ${i + 1}                ${ms(t((r) => r.t.step_ms[i]!))}   (queued ${ms(t((r) => r.t.step_queued_ms[i]!)).trim()}, then GPU ${ms(t((r) => r.t.step_ms[i]! - r.t.step_queued_ms[i]!)).trim()})`),
      `decode (VAE+readback) ${ms(t((r) => r.t.decode_ms))}`,
      `postprocess           ${ms(t((r) => r.t.postprocess_ms))}`,
      `image encode (PNG)    ${ms(t((r) => r.t.encode_image_ms))}`,
      `generate total        ${ms(total)}   (client round trip ${ms(t((r) => r.wallMs)).trim()})`,
      '',
      `in runtime (session.run ${ms(t((r) => r.stats.sessionRunMs)).trim()} + waiting for the GPU ${ms(t((r) => r.stats.gpuWaitMs)).trim()} + read-back ${ms(t((r) => r.stats.readbackMs)).trim()}) = ${ms(inRuntime).trim()}`,
      `outside the runtime: ${ms(outside).trim()} = ${((100 * outside) / total).toFixed(2)}% of generate time   (goal ≤ 5%: ${outside / total <= 0.05 ? 'met' : 'NOT met'})`,
      `GPU→CPU read-backs per generation: ${reads.join(', ')} (GPUBuffer.mapAsync READ), pipeline read-backs: ${results.map((r) => r.stats.readbacks).join(', ')}; inside session.run: ${JSON.stringify(byComponent)}   (goal: 1, the final image: ${reads.every((x) => x === 1) ? 'met' : 'NOT met'})`,
      '',
    ];
    process.stdout.write(lines.join('\n'));
  } finally {
    await browser.close();
  }
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** Install vs plain fetch of the same bytes from one server, in one persistent-profile page. */
async function measureInstall(appUrl: string, packDir: string, bytesPerSecond?: number) {
  const packServer = await serveDirectory(packDir, bytesPerSecond ? { bytesPerSecond } : {});
  const profile = mkdtempSync(join(tmpdir(), 'flux-bench-profile-'));
  // A persistent profile: IndexedDB on disk with a real quota, as users have.
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(appUrl);
    await page.waitForSelector('body[data-ready=true]');
    const manifest = JSON.parse(readFileSync(join(packDir, 'manifest.json'), 'utf8')) as { files: { path: string; size: number }[] };
    const totalBytes = manifest.files.reduce((s, f) => s + f.size, 0);
    const step = (s: string) => process.stdout.write(`  ${s}${bytesPerSecond ? ` at ${(bytesPerSecond / MiB).toFixed(0)} MiB/s` : ''}…\n`);
    step('plain fetch');
    const fetchMs = await page.evaluate(
      async ({ base, paths }) => {
        const t0 = performance.now();
        for (const p of paths) {
          const reader = (await fetch(new URL(p, base), { cache: 'no-store' })).body!.getReader();
          while (!(await reader.read()).done);
        }
        return performance.now() - t0;
      },
      { base: packServer.url, paths: manifest.files.map((f) => f.path) },
    );
    const heap = await sampleWorkerHeap(page);
    step('install');
    const t0 = Date.now();
    await page.evaluate((u) => window.flux.installPack(u), packServer.url);
    const installMs = Date.now() - t0;
    const installPeak = heap.peak().totalBytes;
    return {
      page,
      heap,
      totalBytes,
      fetchMBps: totalBytes / MiB / (fetchMs / 1000),
      installMBps: totalBytes / MiB / (installMs / 1000),
      installPeak,
      close: async () => {
        await heap.stop();
        await context.close();
        await packServer.close();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await context.close();
    await packServer.close();
    throw e;
  }
}

async function benchStorage(appUrl: string): Promise<void> {
  process.stdout.write('\npreparing the 2.2 GiB pack…\n');
  const pack = writeLargePack(join(tmpdir(), 'flux-webgpu-large-pack'));
  const local = await measureInstall(appUrl, pack.dir);
  let loadMs: number;
  let loadPeak: number;
  let build: string | null;
  try {
    process.stdout.write('  load…\n');
    const t1 = Date.now();
    await local.page.evaluate(() => window.flux.loadPack('flux-test-large'));
    loadMs = Date.now() - t1;
    loadPeak = local.heap.peak().totalBytes;
    build = (await local.page.evaluate(() => window.flux.info())).ortBuild;
  } finally {
    await local.close();
  }
  const link = 64 * MiB;
  const throttled = await measureInstall(appUrl, pack.dir, link);
  await throttled.close();
  const gib = pack.totalBytes / GiB;
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(0)}%`;
  process.stdout.write(
    [
      '',
      `storage and loading — ${gib.toFixed(2)} GiB pack (transformer in ${pack.shards} stages of ≤ ${(pack.largestShardBytes / MiB).toFixed(0)} MiB), ORT build ${build}`,
      `local server:      plain fetch ${local.fetchMBps.toFixed(0)} MiB/s, install ${local.installMBps.toFixed(0)} MiB/s (chunked, sha256-verified) = ${pct(local.installMBps, local.fetchMBps)} of plain fetch   (goal ≥ 90%: ${local.installMBps / local.fetchMBps >= 0.9 ? 'met' : 'NOT met'})`,
      `64 MiB/s link:     plain fetch ${throttled.fetchMBps.toFixed(0)} MiB/s, install ${throttled.installMBps.toFixed(0)} MiB/s = ${pct(throttled.installMBps, throttled.fetchMBps)} of plain fetch   (goal ≥ 90%: ${throttled.installMBps / throttled.fetchMBps >= 0.9 ? 'met' : 'NOT met'})`,
      `IndexedDB → sessions   ${(gib / (loadMs / 1000)).toFixed(2)} GiB/s (${(loadMs / 1000).toFixed(1)} s, weights uploaded to the GPU)`,
      `peak worker JS memory  install ${(local.installPeak / MiB).toFixed(0)} MiB, load ${(loadPeak / MiB).toFixed(0)} MiB = ${(loadPeak / pack.largestShardBytes).toFixed(2)}× the largest stage, ${(loadPeak / GiB / gib).toFixed(3)} GiB per GiB of weights (the load holds one stage's weights at a time)`,
      '',
    ].join('\n'),
  );
}

async function benchConverter(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'flux-bench-convert-'));
  try {
    process.stdout.write('\ngenerating a synthetic transformer with real FLUX dims (1 double + 1 single block)…\n');
    const model = buildSyntheticFlux(join(dir, 'src', 'model.onnx'), { ...REAL_FLUX_DIMS, double: 1, single: 1 });
    const report = join(dir, 'report.json');
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'src/convert/main.ts', '--transformer', model.modelPath, '--vae-decoder', join(TEST_PACK_DIR, 'vae_decoder/model.onnx'),
        '--quant', 'int4', '--block-size', '32', '--out', join(dir, 'pack'), '--verify-mb', '512', '--report-json', report, '--quiet'],
      { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24 },
    );
    if (r.status !== 0) throw new Error(`converter failed: ${r.stderr}`);
    const rep = JSON.parse(readFileSync(report, 'utf8')) as { maxRssBytes: number; bytesIn: number; seconds: number };
    process.stdout.write(
      [
        '',
        `converter — int4, block 32, ${(rep.bytesIn / GiB).toFixed(2)} GiB in (fp32, real FLUX dims)`,
        `throughput  ${(rep.bytesIn / GiB / rep.seconds).toFixed(2)} GiB/s (${rep.seconds.toFixed(1)} s)`,
        `peak RSS    ${(rep.maxRssBytes / MiB).toFixed(0)} MiB = ${(rep.maxRssBytes / rep.bytesIn).toFixed(2)}× the model size (bounded by a tensor and a shard, not the model)`,
        '',
      ].join('\n'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
