/**
 * Browser memory limits: a pack whose shards total more than 2 GiB (no single ArrayBuffer could hold it) installs
 * into IndexedDB and loads into WebGPU sessions, with the worker's JS memory peak well below the pack size —
 * weights go from IndexedDB Blobs to the GPU one stage at a time (the default asyncify build reads a session's
 * external data whole, so the peak follows the largest stage, not the pack). Then it generates.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, expect, test, type Page } from '@playwright/test';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../support/chromium.js';
import { writeLargePack } from '../support/large-pack.js';
import { serveDirectory, type StaticServer } from '../support/static-server.js';
import { sampleWorkerHeap } from '../support/worker-heap.js';
import { openApp } from './helpers.js';

const GiB = 1024 ** 3;
let server: StaticServer;
let pack: ReturnType<typeof writeLargePack>;

test.use({ trace: 'off' }); // a trace would record gigabytes of responses
test.beforeAll(() => {
  pack = writeLargePack(join(tmpdir(), 'flux-webgpu-large-pack'));
});
test.afterAll(async () => server?.close());

test('a pack of more than 2 GiB installs and loads with the JS heap peak far below the pack size, then generates', async ({ baseURL }) => {
  test.setTimeout(15 * 60_000);
  expect(pack.totalBytes).toBeGreaterThan(2 * GiB);
  server = await serveDirectory(pack.dir);
  // A persistent profile, as users have: off-the-record contexts keep IndexedDB in memory with a small quota.
  const profile = mkdtempSync(join(tmpdir(), 'flux-profile-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, baseURL: baseURL! });
  try {
    await run(context.pages()[0] ?? (await context.newPage()));
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
});

async function run(page: Page): Promise<void> {
  await openApp(page);
  const heap = await sampleWorkerHeap(page);
  const baseline = heap.latest();

  const t0 = Date.now();
  const installed = await page.evaluate((url) => window.flux.installPack(url), server.url);
  const installMs = Date.now() - t0;
  expect(installed).toMatchObject({ id: 'flux-test-large', state: 'complete' });
  expect(installed.sizeBytes).toBe(pack.totalBytes);
  const installPeak = heap.peak();

  const t1 = Date.now();
  const loaded = await page.evaluate(() => window.flux.loadPack('flux-test-large'));
  const loadMs = Date.now() - t1;
  expect(loaded.components.transformer).toMatchObject({ loaded: true, stages: pack.shards });
  expect((await page.evaluate(() => window.flux.info())).ortBuild).toBe('asyncify');
  const loadPeak = heap.peak();

  const out = await page.evaluate(async () => {
    const r = await window.flux.generate({ prompt: 'a large pack', seed: 1, image_size: { width: 32, height: 32 }, num_inference_steps: 1, output_format: 'png' });
    return { w: r.images[0]!.width, h: r.images[0]!.height };
  });
  expect(out).toEqual({ w: 32, h: 32 });
  await heap.stop();

  const gb = pack.totalBytes / GiB;
  const report = {
    packGiB: gb.toFixed(2),
    stages: pack.shards,
    largestStageMiB: (pack.largestShardBytes / 1024 ** 2).toFixed(0),
    installMBps: ((pack.totalBytes / 1024 ** 2) / (installMs / 1000)).toFixed(0),
    loadGBps: (gb / (loadMs / 1000)).toFixed(2),
    baselineMiB: baseline ? ((baseline.usedBytes + baseline.backingBytes) / 1024 ** 2).toFixed(0) : 'n/a',
    installPeakMiB: (installPeak.totalBytes / 1024 ** 2).toFixed(0),
    loadPeakMiB: (loadPeak.totalBytes / 1024 ** 2).toFixed(0),
    loadPeakBackingMiB: (loadPeak.backingBytes / 1024 ** 2).toFixed(0),
    peakPerGiB: (loadPeak.totalBytes / GiB / gb).toFixed(3),
  };
  console.log('large pack:', JSON.stringify(report));
  for (const [k, v] of Object.entries(report)) test.info().annotations.push({ type: k, description: String(v) });
  // "Well below the pack size": the worker never holds more than a fraction of the weights in JS memory: about one
  // stage's weights (read whole by the asyncify build) plus ORT's wasm memory.
  expect(loadPeak.totalBytes).toBeLessThan(0.3 * pack.totalBytes);
  expect(loadPeak.totalBytes).toBeLessThan(3 * pack.largestShardBytes);
  expect(installPeak.totalBytes).toBeLessThan(0.2 * pack.totalBytes);
}
