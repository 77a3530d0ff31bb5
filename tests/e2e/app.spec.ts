/**
 * The product in Chromium: offline PWA (service worker + IndexedDB), history across reloads, share links,
 * keyboard-only use, and screenshots of the main states at phone and desktop widths
 * (test-results/screenshots/, attached to the report).
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { installTestPack, openApp } from './helpers.js';

const SHOTS = join('test-results', 'screenshots');

/** Small and fast on SwiftShader: 64×64, 2 steps, PNG (byte-stable). */
async function fillSmall(page: Page, prompt: string, seed?: number): Promise<void> {
  await page.getByLabel('Prompt').fill(prompt);
  await page.getByLabel('Size').selectOption('custom');
  await page.getByLabel('Width').fill('64');
  await page.getByLabel('Height').fill('64');
  await page.getByLabel('Steps').fill('2');
  await page.getByLabel('Format').selectOption('png');
  if (seed !== undefined) await page.getByLabel('Seed', { exact: true }).fill(String(seed));
}

async function imageSha(page: Page, index = 0): Promise<string> {
  const bytes = await page.getByTestId('result-image').nth(index).evaluate(async (img: HTMLImageElement) => Array.from(new Uint8Array(await (await fetch(img.src)).arrayBuffer())));
  return createHash('sha256').update(Uint8Array.from(bytes)).digest('hex');
}

async function waitForResults(page: Page, count: number): Promise<void> {
  await expect(page.getByTestId('result-image')).toHaveCount(count, { timeout: 120_000 });
  await expect(page.getByTestId('generate')).toHaveText('Generate');
}

test('installs as an offline PWA: after one visit the app starts and generates with the network off', async ({ page, context }) => {
  await openApp(page);
  await installTestPack(page);
  await fillSmall(page, 'online first', 5);
  await page.getByTestId('generate').click();
  await waitForResults(page, 1);
  // The service worker has precached the app shell and onnxruntime-web and controls the page.
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) await new Promise((r) => navigator.serviceWorker.addEventListener('controllerchange', r, { once: true }));
  });
  const manifest = await page.evaluate(async () => (await fetch('/manifest.webmanifest')).json());
  expect(manifest).toMatchObject({ display: 'standalone', start_url: '/' });
  expect(manifest.icons.some((i: { sizes: string; purpose?: string }) => i.sizes === '512x512' && i.purpose === 'maskable')).toBe(true);

  await context.setOffline(true);
  try {
    await page.reload();
    await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
    await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', 'flux-test-tiny', { timeout: 120_000 });
    await expect(page.getByTestId('result-image')).toHaveCount(1); // history came back too
    await fillSmall(page, 'offline now', 6);
    await page.getByTestId('generate').click();
    await waitForResults(page, 2);
    await expect(page.locator('figure.result').first()).toHaveAttribute('data-target', 'local');
  } finally {
    await context.setOffline(false);
  }
});

test('history persists across reloads, with its actions', async ({ page }) => {
  await openApp(page);
  await installTestPack(page);
  await fillSmall(page, 'a kept result', 4242);
  await page.getByTestId('generate').click();
  await waitForResults(page, 1);
  const sha = await imageSha(page);
  const meta = page.getByTestId('result-meta').first();
  await expect(meta).toContainText('seed 4242 · 64×64 · 2 steps');
  await expect(meta).toContainText('on this device');
  await expect(meta).toContainText('safety check not run (this model pack has no safety checker)');
  await expect(page.getByTestId('result-image').first()).toHaveAttribute('alt', 'a kept result');

  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  await expect(page.getByTestId('result-image')).toHaveCount(1);
  expect(await imageSha(page)).toBe(sha);
  await expect(page.getByTestId('history-usage')).toContainText('1 kept');

  // Reuse settings fills the form; use this seed sets and locks the seed.
  await page.getByLabel('Prompt').fill('something else');
  await page.getByTestId('reuse-settings').first().click();
  await expect(page.getByLabel('Prompt')).toHaveValue('a kept result');
  await expect(page.getByLabel('Width')).toHaveValue('64');
  await page.getByTestId('seed-random').click();
  await expect(page.getByLabel('Seed', { exact: true })).toHaveValue('');
  await page.getByTestId('use-seed').first().click();
  await expect(page.getByLabel('Seed', { exact: true })).toHaveValue('4242');
  await expect(page.getByTestId('seed-lock')).toBeChecked();
  const download = page.waitForEvent('download');
  await page.getByTestId('download').first().click();
  expect((await download).suggestedFilename()).toBe('flux-4242-1.png');

  // Export, delete, import: the same bytes come back.
  const exported = page.waitForEvent('download');
  await page.getByTestId('history-export').click();
  const zipPath = await (await exported).path();
  page.once('dialog', (d) => void d.accept());
  await page.getByTestId('delete-result').first().click();
  await expect(page.getByTestId('result-image')).toHaveCount(0);
  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  await expect(page.getByTestId('result-image')).toHaveCount(0);
  await page.getByTestId('history-file').setInputFiles(zipPath!);
  await expect(page.getByTestId('history-notice')).toContainText('Imported 1 result(s)');
  await expect(page.getByTestId('result-image')).toHaveCount(1);
  expect(await imageSha(page)).toBe(sha);
});

test('a share link regenerates the same image bytes', async ({ page, context }) => {
  await openApp(page);
  await installTestPack(page);
  await fillSmall(page, 'shared fox', 777);
  await page.getByTestId('generate').click();
  await waitForResults(page, 1);
  const sha = await imageSha(page);
  // The address bar now reproduces that run (fal-named parameters).
  const url = new URL(page.url());
  expect(Object.fromEntries(url.searchParams)).toEqual({ prompt: 'shared fox', seed: '777', num_inference_steps: '2', image_size: '64x64', num_images: '1', output_format: 'png' });
  await page.getByTestId('copy-link').first().click().catch(() => undefined); // clipboard may be denied headless; the link is also shown

  const other = await context.newPage();
  url.searchParams.set('run', '1');
  await other.goto(url.pathname + url.search);
  await expect(other.locator('body')).toHaveAttribute('data-ready', 'true');
  // Same context: history is shared, so the new page shows the old result plus the regenerated one.
  await expect(other.getByTestId('result-image')).toHaveCount(2, { timeout: 120_000 });
  expect(await imageSha(other, 0)).toBe(sha);
  await expect(other.getByLabel('Prompt')).toHaveValue('shared fox');
});

test('a malformed share link says which parameter is wrong', async ({ page }) => {
  await openApp(page); // asserts the WebGPU adapter
  await page.goto('/?prompt=x&image_size=huge');
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  await expect(page.getByTestId('error')).toContainText('image_size: in the link must be a preset name or WxH');
});

test('keyboard only: skip link, type a prompt, Ctrl+Enter generates; Tab reaches Generate', async ({ page }) => {
  await openApp(page);
  await installTestPack(page);
  // A small size from a link, then a fresh page: keyboard focus starts at the top.
  await page.goto('/?image_size=32x32&num_inference_steps=1');
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  await expect(page.getByTestId('generate')).toBeEnabled();
  await page.keyboard.press('Tab');
  await expect(page.getByRole('link', { name: 'Skip to the prompt' })).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByLabel('Prompt')).toBeFocused();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.type('typed with the keyboard');
  await page.keyboard.press('Control+Enter');
  await waitForResults(page, 1);
  // Tab forward from the prompt to the Generate button, then Enter.
  await page.getByLabel('Prompt').focus();
  for (let i = 0; i < 30 && !(await page.getByTestId('generate').evaluate((b) => b === document.activeElement)); i++) await page.keyboard.press('Tab');
  await expect(page.getByTestId('generate')).toBeFocused();
  await page.keyboard.press('Enter');
  await waitForResults(page, 2);
  // Focus is visible (an outline) on keyboard focus.
  const outline = await page.getByTestId('generate').evaluate((b) => getComputedStyle(b).outlineStyle);
  expect(outline).not.toBe('none');
});

for (const [name, viewport] of [
  ['phone', { width: 390, height: 844 }],
  ['desktop', { width: 1280, height: 900 }],
] as const) {
  test(`screenshots of the main states (${name})`, async ({ page }, info) => {
    mkdirSync(SHOTS, { recursive: true });
    await page.setViewportSize(viewport);
    const shot = async (state: string) => {
      const path = join(SHOTS, `${state}-${name}.png`);
      await page.screenshot({ path, fullPage: true });
      await info.attach(`${state}-${name}`, { path, contentType: 'image/png' });
      // Nothing sticks out sideways at this width.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(overflow, `${state}: horizontal overflow at ${viewport.width}px`).toBeLessThanOrEqual(0);
    };
    await openApp(page);
    await shot('empty');
    await page.locator('li[data-pack="flux-test-tiny"]').getByTestId('install-pack').click();
    await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', 'flux-test-tiny', { timeout: 120_000 });
    await page.locator('#device-report summary').click();
    await page.getByTestId('model-card').scrollIntoViewIfNeeded();
    await shot('model-manager');
    await fillSmall(page, 'a lighthouse at dusk, screenshot');
    await page.getByLabel('Size').selectOption('custom');
    await page.getByLabel('Width').fill('160');
    await page.getByLabel('Height').fill('160');
    await page.getByLabel('Steps').fill('3');
    await page.getByTestId('generate').click();
    await expect(page.getByTestId('run-status')).toContainText(/Step|Encoding|Decoding/);
    await shot('generating');
    await waitForResults(page, 1);
    await shot('results');
    // fal's range for steps is 1–12.
    await page.getByLabel('Steps').fill('13');
    await page.getByTestId('generate').click();
    await expect(page.getByTestId('error')).toContainText('num_inference_steps');
    await shot('error');
  });
}
