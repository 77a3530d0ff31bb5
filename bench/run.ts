/**
 * `npm run bench`: the test pack in headless Chromium on real WebGPU (SwiftShader on CPU-only machines).
 * Prints time per stage (install, load, encode text, each step, decode, image encode), the share of generate time
 * spent outside the runtime (goal ≤ 5%) and GPU→CPU read-backs per generation (goal: only the final image).
 *
 * Options: --size WxH (default 64x64), --steps N (4), --runs N (3 measured, after 1 warm-up), --port N.
 * On WebGPU, session.run returns once work is queued; the GPU finishes while we wait for the read-back. So
 * "in runtime" = time inside session.run + time waiting for read-backs, and "outside" is everything else
 * (validation, tokenizing, noise, packing, post-processing, PNG encoding, messaging).
 */
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { build, preview } from 'vite';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../tests/support/chromium.js';
import type { FluxClient } from '../src/client/flux-client.js';

declare global {
  interface Window {
    flux: FluxClient;
  }
}

const { values } = parseArgs({
  options: { size: { type: 'string', default: '64x64' }, steps: { type: 'string', default: '4' }, runs: { type: 'string', default: '3' }, port: { type: 'string', default: '4180' } },
});
const [width, height] = values.size!.split('x').map(Number) as [number, number];
const steps = Number(values.steps);
const runs = Number(values.runs);

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const ms = (x: number) => `${x.toFixed(1).padStart(9)} ms`;

async function main(): Promise<void> {
  process.stdout.write('building the app…\n');
  await build({ logLevel: 'silent' });
  const server = await preview({ logLevel: 'silent', preview: { port: Number(values.port), strictPort: true } });
  const url = `http://127.0.0.1:${values.port}/`;
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
          const out = await window.flux.generate({ prompt: 'a lighthouse on a cliff at dusk, volumetric light', seed, image_size: { width, height }, num_inference_steps: steps, output_format: 'png' });
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
    const inRuntime = t((r) => r.stats.sessionRunMs + r.stats.readbackMs);
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
      ...Array.from({ length: steps }, (_, i) => `step ${i + 1}                ${ms(t((r) => r.t.step_ms[i]!))}`),
      `decode (VAE+readback) ${ms(t((r) => r.t.decode_ms))}`,
      `postprocess           ${ms(t((r) => r.t.postprocess_ms))}`,
      `image encode (PNG)    ${ms(t((r) => r.t.encode_image_ms))}`,
      `generate total        ${ms(total)}   (client round trip ${ms(t((r) => r.wallMs)).trim()})`,
      '',
      `in runtime (session.run ${ms(t((r) => r.stats.sessionRunMs)).trim()} + waiting for GPU/read-back ${ms(t((r) => r.stats.readbackMs)).trim()}) = ${ms(inRuntime).trim()}`,
      `outside the runtime: ${ms(outside).trim()} = ${((100 * outside) / total).toFixed(2)}% of generate time   (goal ≤ 5%: ${outside / total <= 0.05 ? 'met' : 'NOT met'})`,
      `GPU→CPU read-backs per generation: ${reads.join(', ')} (GPUBuffer.mapAsync READ), pipeline read-backs: ${results.map((r) => r.stats.readbacks).join(', ')}; inside session.run: ${JSON.stringify(byComponent)}   (goal: 1, the final image: ${reads.every((x) => x === 1) ? 'met' : 'NOT met'})`,
      '',
    ];
    process.stdout.write(lines.join('\n'));
  } finally {
    await browser.close();
    await new Promise<void>((resolve) => server.httpServer.close(() => resolve()));
  }
}

await main();
