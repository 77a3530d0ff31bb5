/**
 * Real-weights runtime behaviour on a real WebGPU adapter: the capacity probe and its refusal, staged loading
 * under a memory limit (same bytes as all-resident), and recovery from device loss and GPU errors without a page
 * reload or any new download.
 */
import { expect, test, type Page } from '@playwright/test';
import { generate, installTestPack, openApp, TEST_PACK_ID } from './helpers.js';

const input = { prompt: 'a lighthouse at dusk', seed: 77, image_size: { width: 32, height: 32 }, num_inference_steps: 2, output_format: 'png' as const };

async function countPackRequests(page: Page): Promise<() => number> {
  let n = 0;
  await page.context().route('**/packs/**', (route) => {
    n++;
    return route.continue();
  });
  return () => n;
}

test('capacity probe: the test pack runs all-resident; a memory limit below its smallest plan is refused with numbers', async ({ page }) => {
  await openApp(page);
  await installTestPack(page);
  const probe = await page.evaluate((id) => window.flux.probeCapacity(id), TEST_PACK_ID);
  expect(probe).toMatchObject({ canRunLocally: true, plan: 'all-resident' });
  expect(probe.checks.find((c) => c.name === 'memory')?.detail).toMatch(/allocatable/);
  expect((await page.evaluate(() => window.flux.info())).capacity?.plan).toBe('all-resident');

  const refused = await page.evaluate(async (id) => {
    await window.flux.setGpuMemoryLimit(1024 * 1024);
    try {
      await window.flux.loadPack(id);
      return null;
    } catch (e) {
      return { code: (e as { code: string }).code, message: (e as Error).message };
    }
  }, TEST_PACK_ID);
  expect(refused?.code).toBe('insufficient_capacity');
  expect(refused?.message).toMatch(/cannot run the pack locally: it needs at least \d+ MB of GPU memory and 1 MB could be allocated/);
});

test('staged loading under a memory limit gives the same bytes; a repeated prompt runs no text encoder', async ({ page }) => {
  await openApp(page);
  await installTestPack(page);
  const resident = await generate(page, input);
  const needs = await page.evaluate(async (id) => {
    const p = await window.flux.probeCapacity(id);
    return p.neededBytes;
  }, TEST_PACK_ID);
  // Just below the all-resident need: the encoders become transient.
  const staged = await page.evaluate(
    async ({ id, limit }) => {
      await window.flux.setGpuMemoryLimit(limit);
      await window.flux.loadPack(id);
      return (await window.flux.info()).capacity;
    },
    { id: TEST_PACK_ID, limit: needs - 1 },
  );
  expect(staged?.plan).not.toBe('all-resident');
  const first = await generate(page, input);
  const s1 = (await page.evaluate(() => window.flux.stats()))!;
  expect(s1.componentLoads).toMatchObject({ clip: 1, t5: 1 });
  expect(first.images[0]!.sha256).toBe(resident.images[0]!.sha256);
  await generate(page, { ...input, seed: 78 });
  const s2 = (await page.evaluate(() => window.flux.stats()))!;
  expect(s2.runsByLabel.t5 ?? 0).toBe(0);
  expect(s2.componentLoads.t5 ?? 0).toBe(0);
  expect(s2.gpuMapReads - s1.gpuMapReads).toBe(1);
});

test('device loss: the client replaces the worker, reloads from IndexedDB and retries, with no download', async ({ page }) => {
  await openApp(page);
  await installTestPack(page);
  const before = await generate(page, input);
  const packRequests = await countPackRequests(page);
  await page.evaluate(() => window.flux.loseDeviceForTesting());
  const after = await generate(page, input);
  expect(after.images[0]!.sha256).toBe(before.images[0]!.sha256);
  await expect(page.getByTestId('notice')).toHaveText(/The GPU was reset; the model was reloaded and the request retried/);
  expect(packRequests()).toBe(0);
  expect((await page.evaluate(() => window.flux.listPacks())).find((p) => p.id === TEST_PACK_ID)?.state).toBe('complete');
});

test('out of memory during a generation: recovered with a smaller memory plan; a validation error: result discarded and retried', async ({ page }) => {
  await openApp(page);
  await installTestPack(page);
  const before = await generate(page, input);
  await page.evaluate(() => window.flux.injectGpuFailureForTesting('out-of-memory'));
  const after = await generate(page, input);
  expect(after.images[0]!.sha256).toBe(before.images[0]!.sha256);
  await expect(page.getByTestId('notice')).toHaveText(/ran out of memory; the model was reloaded with a smaller memory plan/);
  const info = await page.evaluate(() => window.flux.info());
  expect(info.gpuMemoryLimitBytes).not.toBeNull();
  expect(info.capacity?.plan).not.toBe('all-resident');

  await page.evaluate(() => window.flux.injectGpuFailureForTesting('validation'));
  const again = await generate(page, input);
  expect(again.images[0]!.sha256).toBe(before.images[0]!.sha256);
  await expect(page.getByTestId('notice')).toHaveText(/reported an error; the model was reloaded and the request retried/);
});
