/**
 * Honest timings on a real WebGPU adapter (SwiftShader here): the reported step_ms of a run is at least the GPU
 * time of that step. The reference is the same generation with a synchronising wait after every step (a
 * read-back of the latents, setTimingSyncForTesting('readback')), whose step times certainly include the GPU
 * work. Without any wait ('none', what step_ms used to be) the steps measure only queueing and the GPU work lands
 * in decode_ms; the test shows that difference too, so it fails on the old behaviour. The default run still
 * reads back exactly once per generation.
 */
import { expect, test, type Page } from '@playwright/test';
import { generate, installTestPack, openApp } from './helpers.js';

const STEPS = 2;
// 256²: heavy enough on SwiftShader that GPU time dominates queueing, light enough for four runs.
const input = { prompt: 'a lighthouse at dusk', seed: 11, image_size: { width: 256, height: 256 }, num_inference_steps: STEPS, output_format: 'png' as const };

interface Run {
  step: number[];
  queued: number[];
  decode: number;
  inference: number;
  readbacks: number;
  gpuMaps: number;
  gpuWaits: number;
  sha: string;
}

async function run(page: Page, mode: 'submitted' | 'readback' | 'none'): Promise<Run> {
  await page.evaluate((m) => window.flux.setTimingSyncForTesting(m), mode);
  const maps0 = (await page.evaluate(() => window.flux.stats()))?.gpuMapReads ?? 0;
  const r = await generate(page, input);
  const s = (await page.evaluate(() => window.flux.stats()))!;
  const t = r.timings as { step_ms: number[]; step_queued_ms: number[]; decode_ms: number; inference: number };
  return { step: t.step_ms, queued: t.step_queued_ms, decode: t.decode_ms, inference: t.inference, readbacks: s.readbacks, gpuMaps: s.gpuMapReads - maps0, gpuWaits: s.gpuWaits, sha: r.images[0]!.sha256 };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

test('step_ms includes the GPU work of the step (checked against a synchronising wait), with one read-back per image', async ({ page }) => {
  test.setTimeout(480_000);
  const { architecture } = await openApp(page);
  expect(architecture).not.toBe('');
  await installTestPack(page);
  await run(page, 'submitted'); // warm-up: shader compilation and buffer pools are not what is compared

  const honest = await run(page, 'submitted');
  const synced = await run(page, 'readback');
  const queued = await run(page, 'none');
  console.log(JSON.stringify({ honest, synced, queued }));

  // Same work, same image in every mode.
  expect(synced.sha).toBe(honest.sha);
  expect(queued.sha).toBe(honest.sha);
  // Waiting for the GPU costs no read-back: exactly one GPU map per generation (the image).
  expect(honest.readbacks).toBe(1);
  expect(honest.gpuMaps).toBe(1);
  expect(honest.gpuWaits).toBe(1 + STEPS);
  expect(synced.readbacks).toBe(1 + STEPS + 1);

  // The claim: each reported step is at least the GPU time of that step. The synchronised step bounds that GPU
  // time from above (plus a small copy); allow 25 % for the noise of a CPU shared with SwiftShader's threads.
  expect(sum(honest.step)).toBeGreaterThanOrEqual(0.75 * sum(synced.step));
  for (let i = 0; i < STEPS; i++) expect(honest.step[i]!, `step ${i + 1}`).toBeGreaterThanOrEqual(0.6 * synced.step[i]!);
  for (let i = 0; i < STEPS; i++) expect(honest.queued[i]!).toBeLessThanOrEqual(honest.step[i]!);

  // Without a wait the same steps look much faster and the decode absorbs their GPU work: the old figures,
  // which the check above would have failed.
  expect(sum(queued.step)).toBeLessThan(0.5 * sum(synced.step));
  expect(queued.decode).toBeGreaterThan(honest.decode + 0.5 * (sum(honest.step) - sum(queued.step)));
  // fal's inference (seconds) spans the whole pipeline either way.
  expect(honest.inference * 1000).toBeGreaterThanOrEqual(sum(honest.step) + honest.decode);
});
