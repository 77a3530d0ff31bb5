/** Installing a pack from a local folder through the UI (the hidden webkitdirectory input), then loading it. */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { TEST_PACK_DIR } from '../support/fixtures.js';
import { generate, openApp, TEST_PACK_ID } from './helpers.js';

// Storage accounting is asserted: keep the service worker's precache out of this origin's usage.
test.use({ serviceWorkers: 'block' });

test('"Install from folder…": the picked folder is installed with no network, the pack loads and generates', async ({ page }) => {
  await openApp(page);
  let packRequests = 0;
  await page.context().route('**/packs/**', (route) => {
    packRequests++;
    return route.continue();
  });
  await expect(page.getByTestId('install-folder')).toBeVisible();
  const chooser = page.waitForEvent('filechooser');
  await page.getByTestId('install-folder').click();
  await (await chooser).setFiles(TEST_PACK_DIR);

  await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', TEST_PACK_ID, { timeout: 120_000 });
  const row = page.locator(`li[data-pack="${TEST_PACK_ID}"]`);
  await expect(row.getByTestId('pack-state')).toHaveText(/^installed, 2\.7 MiB/);
  const info = (await page.evaluate(() => window.flux.listPacks())).find((p) => p.id === TEST_PACK_ID);
  expect(info).toMatchObject({ state: 'complete', source: 'files', sourceUrl: null, storedBytes: 2_782_493 });
  expect(packRequests).toBe(0);
  await expect(page.getByTestId('storage-status')).toHaveText(/^Browser storage: 2\.\d MiB used \(this browser does not disclose the space left\) · (not )?persistent/); // stock Chromium ≥ 138
  await expect(page.getByTestId('storage-status')).toHaveAttribute('data-persisted', /^(true|false)$/);

  const out = await generate(page, { prompt: 'from a folder', seed: 5, image_size: { width: 16, height: 16 }, num_inference_steps: 1, output_format: 'png' });
  expect(out.images).toHaveLength(1);
  expect(packRequests).toBe(0);
});

test('a folder that lacks files is refused before anything is written, naming them', async ({ page }) => {
  await openApp(page);
  const dir = join(mkdtempSync(join(tmpdir(), 'flux-folder-')), 'my-download');
  try {
    cpSync(TEST_PACK_DIR, dir, { recursive: true });
    rmSync(join(dir, 'vae_decoder', 'model.onnx'));
    rmSync(join(dir, 'tokenizer_2', 'tokenizer.json'));
    await page.getByTestId('folder-input').setInputFiles(dir);
    await expect(page.getByTestId('error')).toHaveText(
      'The folder "my-download" lacks 2 of the 9 files its manifest.json lists: tokenizer_2/tokenizer.json, vae_decoder/model.onnx. Choose the complete pack folder (finish downloading it first).',
    );
    expect(await page.evaluate(() => window.flux.listPacks())).toEqual([]);
    await expect(page.getByTestId('model-progress')).toBeHidden();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
