/**
 * The core flow in real Chromium with WebGPU: install the test pack into IndexedDB, generate, get an image;
 * determinism by seed; cancel; one read-back per generation.
 */
import { expect, test } from './shared-app.js';
import { readFileSync } from 'node:fs';
import { readPngText } from '../../src/image/metadata.js';
import { decodePng } from '../support/fixtures.js';
import { generate, installTestPack, openApp } from './helpers.js';

test('install the test pack, generate from the UI, get an image', async ({ page }) => {
  const adapter = await openApp(page);
  test.info().annotations.push({ type: 'adapter', description: adapter.architecture });
  await installTestPack(page);
  await page.getByLabel('Prompt').fill('a lighthouse on a cliff at dusk');
  await page.getByLabel('Size').selectOption('custom');
  await page.getByLabel('Width').fill('32');
  await page.getByLabel('Height').fill('48');
  await page.getByLabel('Steps').fill('2');
  await page.getByLabel('Seed').fill('42');
  await page.getByLabel('Format').selectOption('png');
  await page.getByTestId('generate').click();
  const img = page.getByTestId('result-image').first();
  await expect(img).toBeVisible({ timeout: 180_000 });
  await expect(img).toHaveAttribute('alt', 'a lighthouse on a cliff at dusk');
  expect(await img.evaluate((el: HTMLImageElement) => [el.naturalWidth, el.naturalHeight, el.complete])).toEqual([32, 48, true]);
  await expect(page.getByTestId('run-status')).toContainText('Done');
  await expect(page.locator('figcaption').first()).toContainText('seed 42');

  // Download: the same pixels, with the prompt and settings inside the PNG (tEXt `parameters`, `fal_input`).
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('download').first().click()]);
  expect(download.suggestedFilename()).toBe('flux-42-1.png');
  const file = new Uint8Array(readFileSync(await download.path()));
  const text = readPngText(file);
  expect(text.parameters).toMatch(/^a lighthouse on a cliff at dusk\nSteps: 2, Sampler: Euler \(flow matching\), Seed: 42, Size: 32x48, Model: fal-ai\/flux\/schnell, Ran: flux-webgpu \(this device\)$/);
  expect(JSON.parse(text.fal_input!)).toMatchObject({ prompt: 'a lighthouse on a cliff at dusk', seed: 42, num_inference_steps: 2, output_format: 'png' });
  const shown = await img.evaluate(async (el: HTMLImageElement) => Array.from(new Uint8Array(await (await fetch(el.src)).arrayBuffer())));
  expect(decodePng(file).rgb).toEqual(decodePng(Uint8Array.from(shown)).rgb);
});

test('same seed gives identical bytes, a different seed a different image; one GPU read-back each', async ({ loadedApp: page }) => {
  const input = { prompt: 'a red fox in the snow', seed: 1234, image_size: { width: 32, height: 32 }, num_inference_steps: 3, output_format: 'png' as const };
  const before = (await page.evaluate(() => window.flux.stats()))?.gpuMapReads ?? 0;
  const a = await generate(page, input);
  const stats = (await page.evaluate(() => window.flux.stats()))!;
  expect(stats.readbacks).toBe(1);
  expect(stats.gpuMapReads - before).toBe(1); // counted on GPUBuffer.mapAsync itself: nothing else was read back
  const b = await generate(page, input);
  const c = await generate(page, { ...input, seed: 1235 });
  expect(a.seed).toBe(1234);
  expect(a.images[0]!.sha256).toBe(b.images[0]!.sha256);
  expect(c.images[0]!.sha256).not.toBe(a.images[0]!.sha256);
  const pa = decodePng(Uint8Array.from(a.images[0]!.bytes));
  const pc = decodePng(Uint8Array.from(c.images[0]!.bytes));
  expect([pa.width, pa.height]).toEqual([32, 32]);
  expect(pa.rgb).not.toEqual(pc.rgb);
});

test('a batch of 2 gives 2 images; image i equals a single run with seed + i; random seed is reported', async ({ loadedApp: page }) => {
  const base = { prompt: 'boats', image_size: { width: 32, height: 32 }, num_inference_steps: 1, output_format: 'png' as const };
  const batch = await generate(page, { ...base, seed: 500, num_images: 2 });
  expect(batch.images).toHaveLength(2);
  const single = await generate(page, { ...base, seed: 501 });
  expect(batch.images[1]!.sha256).toBe(single.images[0]!.sha256);
  const random = await generate(page, { ...base });
  expect(Number.isInteger(random.seed)).toBe(true);
  const again = await generate(page, { ...base, seed: random.seed });
  expect(again.images[0]!.sha256).toBe(random.images[0]!.sha256);
});

test('sync_mode returns data: URIs; default returns object URLs; JPEG output', async ({ loadedApp: page }) => {
  const urls = await page.evaluate(async () => {
    const common = { prompt: 'x', seed: 1, image_size: { width: 16, height: 16 }, num_inference_steps: 1 };
    const sync = await window.flux.generate({ ...common, sync_mode: true });
    const async_ = await window.flux.generate({ ...common });
    return [sync.images[0]!.url.slice(0, 23), async_.images[0]!.url.slice(0, 5), async_.images[0]!.content_type, sync.has_nsfw_concepts, sync.safety.ran];
  });
  expect(urls).toEqual(['data:image/jpeg;base64,', 'blob:', 'image/jpeg', [false], false]);
});

test('cancel during a generation stops it at a step boundary', async ({ page }) => {
  await openApp(page);
  await installTestPack(page);
  await page.getByLabel('Size').selectOption('custom');
  await page.getByLabel('Width').fill('64');
  await page.getByLabel('Height').fill('64');
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('run-status')).toContainText(/Step|Decoding/);
  await page.getByTestId('cancel').click();
  await expect(page.getByTestId('run-status')).toHaveText('Cancelled.');
  await expect(page.getByTestId('result-image')).toHaveCount(0);
  // The worker is still usable afterwards.
  await page.getByLabel('Width').fill('16');
  await page.getByLabel('Height').fill('16');
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('result-image')).toHaveCount(1, { timeout: 120_000 });
});
