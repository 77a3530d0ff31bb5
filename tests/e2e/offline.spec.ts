/** A pack installed into IndexedDB loads and generates later with no network access to pack files at all. */
import { expect, test } from '@playwright/test';
import { generate, installTestPack, openApp, TEST_PACK_ID } from './helpers.js';

test('after install, a reload with the pack URLs blocked loads from IndexedDB and generates', async ({ page }) => {
  await openApp(page);
  await installTestPack(page);
  const first = await generate(page, { prompt: 'offline', seed: 9, image_size: { width: 16, height: 16 }, num_inference_steps: 1, output_format: 'png' });

  let packRequests = 0;
  await page.context().route('**/packs/**', (route) => {
    packRequests++;
    return route.abort('internetdisconnected');
  });
  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', TEST_PACK_ID, { timeout: 120_000 });
  const second = await generate(page, { prompt: 'offline', seed: 9, image_size: { width: 16, height: 16 }, num_inference_steps: 1, output_format: 'png' });
  expect(second.images[0]!.sha256).toBe(first.images[0]!.sha256);
  expect(packRequests).toBe(0);
});
