/**
 * The safety checker on WebGPU (docs/safety.md): a pack with the tiny fixture checker (flags images whose red
 * channel's mean exceeds green and blue's by > 0.06) replaces flagged images by black placeholders before any byte
 * leaves the worker, reports has_nsfw_concepts and safety honestly, and still reads back from the GPU once per
 * generation. A pack without a checker says nothing was checked.
 */
import { expect, test, type Page } from '@playwright/test';
import jpeg from 'jpeg-js';
import { decodePng } from '../support/fixtures.js';
import { FLAGGED_SEED, MIXED_BATCH, SAFETY_CHECKER_NAME, SAFETY_PACK_ID, SAFETY_REQUEST, UNFLAGGED_SEED, safetyPackFiles } from '../support/safety-pack.js';
import type { FluxSchnellInput } from '../../src/pipeline/request.js';
import { installAndLoad, openApp, servePack, TEST_PACK_ID } from './helpers.js';

// The checker pack is served by request interception, which a service worker's own fetches would bypass.
test.use({ serviceWorkers: 'block' });

function isBlack(bytes: number[], contentType = 'image/png'): boolean {
  const u8 = Uint8Array.from(bytes);
  if (contentType === 'image/jpeg') {
    const img = jpeg.decode(u8, { useTArray: true });
    return img.data.every((v, i) => (i % 4 === 3 ? v === 255 : v <= 2));
  }
  return decodePng(u8).rgb.every((v) => v === 0);
}

/** Generate through window.flux; return the result's fields and every URL's bytes. */
async function run(page: Page, input: FluxSchnellInput) {
  return page.evaluate(async (inp) => {
    const before = (await window.flux.stats())?.gpuMapReads ?? 0;
    const out = await window.flux.generate(inp);
    const stats = (await window.flux.stats())!;
    const images = [];
    for (const img of out.images) {
      images.push({ url: img.url.slice(0, 5), bytes: Array.from(new Uint8Array(await (await fetch(img.url)).arrayBuffer())), width: img.width, height: img.height, contentType: img.content_type });
    }
    return { has_nsfw_concepts: out.has_nsfw_concepts, safety: out.safety, images, readbacks: stats.readbacks, gpuMapReads: stats.gpuMapReads - before };
  }, input);
}

test('flagged images come back as black placeholders, unflagged ones unchanged; one GPU read-back', async ({ page }) => {
  await openApp(page);
  await servePack(page, safetyPackFiles());
  await installAndLoad(page, SAFETY_PACK_ID);
  expect((await page.evaluate(() => window.flux.loadedModel))?.safetyChecker?.model).toBe(SAFETY_CHECKER_NAME);

  const flagged = await run(page, { ...SAFETY_REQUEST, seed: FLAGGED_SEED });
  expect(flagged.has_nsfw_concepts).toEqual([true]);
  expect(flagged.safety).toMatchObject({ ran: true, checker: SAFETY_CHECKER_NAME, threshold: 0.5 });
  expect(flagged.safety.scores![0]).toBeGreaterThan(0.9);
  expect([flagged.images[0]!.url, flagged.images[0]!.width, flagged.images[0]!.height]).toEqual(['blob:', 32, 32]);
  expect(isBlack(flagged.images[0]!.bytes), 'the object URL holds the placeholder').toBe(true);
  // The check adds no read-back: image and classifier output come back together, once.
  expect([flagged.readbacks, flagged.gpuMapReads]).toEqual([1, 1]);

  // Without the check the same request gives the real (red-tinted) image.
  const unchecked = await run(page, { ...SAFETY_REQUEST, seed: FLAGGED_SEED, enable_safety_checker: false });
  expect(unchecked.has_nsfw_concepts).toEqual([false]);
  expect(unchecked.safety).toEqual({ ran: false, checker: null, reason: 'disabled by enable_safety_checker: false' });
  expect(isBlack(unchecked.images[0]!.bytes)).toBe(false);

  const ok = await run(page, { ...SAFETY_REQUEST, seed: UNFLAGGED_SEED });
  const okUnchecked = await run(page, { ...SAFETY_REQUEST, seed: UNFLAGGED_SEED, enable_safety_checker: false });
  expect(ok.has_nsfw_concepts).toEqual([false]);
  expect(ok.safety.ran).toBe(true);
  expect(ok.safety.scores![0]).toBeLessThan(0.1);
  expect(ok.images[0]!.bytes, 'an unflagged image is byte-identical to the unchecked one').toEqual(okUnchecked.images[0]!.bytes);

  // A batch mixes both; the passing images equal their single runs.
  const batch = await run(page, { ...SAFETY_REQUEST, seed: MIXED_BATCH.seed, num_images: 4 });
  expect(batch.has_nsfw_concepts).toEqual(MIXED_BATCH.flags);
  expect(batch.safety.scores).toHaveLength(4);
  expect(batch.images.map((i) => isBlack(i.bytes))).toEqual(MIXED_BATCH.flags);
  expect(batch.images[2]!.bytes).toEqual(ok.images[0]!.bytes); // seed 7 + 2 = UNFLAGGED_SEED
  expect([batch.readbacks, batch.gpuMapReads]).toEqual([1, 1]);

  // data: URIs (sync_mode) and JPEG carry the placeholder too.
  const sync = await page.evaluate(async (inp) => {
    const out = await window.flux.generate(inp);
    const img = out.images[0]!;
    return { prefix: img.url.slice(0, 23), bytes: Array.from(new Uint8Array(await (await fetch(img.url)).arrayBuffer())), flags: out.has_nsfw_concepts };
  }, { ...SAFETY_REQUEST, seed: FLAGGED_SEED, sync_mode: true, output_format: 'jpeg' as const });
  expect(sync.prefix).toBe('data:image/jpeg;base64,');
  expect(sync.flags).toEqual([true]);
  expect(isBlack(sync.bytes, 'image/jpeg')).toBe(true);
});

test('a pack without a safety checker marks results as not checked', async ({ page }) => {
  await openApp(page);
  await installAndLoad(page, TEST_PACK_ID);
  const on = await run(page, { ...SAFETY_REQUEST, seed: FLAGGED_SEED });
  expect(await page.evaluate(() => window.flux.loadedModel?.safetyChecker)).toBeNull();
  expect(on.has_nsfw_concepts).toEqual([false]);
  expect(on.safety).toEqual({ ran: false, checker: null, reason: 'this model pack has no safety checker' });
  expect(isBlack(on.images[0]!.bytes)).toBe(false);
  const off = await run(page, { ...SAFETY_REQUEST, seed: FLAGGED_SEED, enable_safety_checker: false });
  expect(off.safety).toEqual({ ran: false, checker: null, reason: 'disabled by enable_safety_checker: false' });
  expect([on.readbacks, on.gpuMapReads]).toEqual([1, 1]);
});

/** Fill the form for SAFETY_REQUEST with `seed` and generate through the UI. */
async function generateInUi(page: Page, seed: number, checker: boolean): Promise<void> {
  await page.getByLabel('Prompt').fill(SAFETY_REQUEST.prompt);
  await page.getByLabel('Size').selectOption('custom');
  await page.getByLabel('Width').fill('32');
  await page.getByLabel('Height').fill('32');
  await page.getByLabel('Steps').fill(String(SAFETY_REQUEST.num_inference_steps));
  await page.getByLabel('Format').selectOption('png');
  await page.getByLabel('Seed', { exact: true }).fill(String(seed));
  await page.getByTestId('safety-toggle').setChecked(checker);
  const before = await page.getByTestId('result-image').count();
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('result-image')).toHaveCount(before + 1, { timeout: 120_000 });
}

test('the UI: a hidden image says so, history keeps only the placeholder, and unchecked results say why', async ({ page }) => {
  await openApp(page);
  await servePack(page, safetyPackFiles());
  await installAndLoad(page, SAFETY_PACK_ID);
  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  await page.locator(`li[data-pack="${SAFETY_PACK_ID}"]`).getByTestId('load-pack').click(); // the model manager's Load
  await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', SAFETY_PACK_ID, { timeout: 120_000 });
  await expect(page.getByTestId('safety-toggle')).toBeChecked(); // on by default

  await generateInUi(page, FLAGGED_SEED, true);
  const newest = page.locator('figure.result').first();
  await expect(newest.getByTestId('safety-hidden')).toHaveText('Hidden by the safety checker. Generate again with the checker off to see it.');
  await expect(newest.getByTestId('result-meta')).toContainText(`safety: checked by ${SAFETY_CHECKER_NAME}`);
  // What the page shows and what history stored are the placeholder: there is nothing else to reveal.
  const shown = await newest.getByTestId('result-image').evaluate(async (img: HTMLImageElement) => Array.from(new Uint8Array(await (await fetch(img.src)).arrayBuffer())));
  expect(isBlack(shown)).toBe(true);
  const stored = await page.evaluate(async () => {
    const h = (window as unknown as { fluxHistory: { list(): Promise<{ id: string }[]>; image(id: string, i: number): Promise<Blob | null> } }).fluxHistory;
    const [latest] = await h.list();
    return Array.from(new Uint8Array(await (await h.image(latest!.id, 0))!.arrayBuffer()));
  });
  expect(isBlack(stored)).toBe(true);

  await generateInUi(page, FLAGGED_SEED, false);
  const off = page.locator('figure.result').first();
  await expect(off.getByTestId('safety-hidden')).toHaveCount(0);
  await expect(off.getByTestId('result-meta')).toContainText('safety check not run (disabled by enable_safety_checker: false)');
});
