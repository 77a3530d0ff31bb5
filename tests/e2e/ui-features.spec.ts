/**
 * The generation UI people expect: a progress bar and Esc to cancel, the full-size view with keyboard navigation,
 * history search / bulk delete / clear, prompt recall and "copy as code" — driven by keyboard and mouse as a user.
 */
import { expect, test, type Page } from '@playwright/test';
import { installTestPack, openApp } from './helpers.js';

async function generateFromUi(page: Page, prompt: string, side = 16): Promise<void> {
  const before = await page.getByTestId('result-image').count();
  await page.getByLabel('Prompt').fill(prompt);
  await page.getByLabel('Size').selectOption('custom');
  await page.getByLabel('Width').fill(String(side));
  await page.getByLabel('Height').fill(String(side));
  await page.getByLabel('Steps').fill('2');
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('result-image')).toHaveCount(before + 1, { timeout: 120_000 });
}

test('progress bar, Esc cancels, lightbox, history search/select/clear, prompt recall, copy as code', async ({ page }) => {
  await openApp(page); // asserts the WebGPU adapter
  await installTestPack(page);
  page.on('dialog', (d) => void d.accept()); // confirm() of bulk delete and clear

  // Progress: the bar shows a growing fraction while a (larger) run goes, then hides; Esc cancels it.
  await page.getByLabel('Prompt').fill('a slow one');
  await page.getByLabel('Size').selectOption('custom');
  await page.getByLabel('Width').fill('64');
  await page.getByLabel('Height').fill('64');
  await page.getByLabel('Steps').fill('12');
  await page.getByTestId('generate').click();
  const bar = page.getByTestId('run-progress');
  await expect(bar).toBeVisible();
  await expect.poll(() => bar.evaluate((el: HTMLProgressElement) => el.value), { timeout: 60_000 }).toBeGreaterThan(0.05);
  await page.keyboard.press('Escape');
  await expect(page.getByTestId('run-status')).toHaveText('Cancelled.');
  await expect(bar).toBeHidden();

  await generateFromUi(page, 'a red fox in the snow');
  await generateFromUi(page, 'a lighthouse at dusk');
  await generateFromUi(page, 'a red barn');

  // Prompt recall: Alt+↑ steps back through the prompts used, newest first; the Recent list offers them too.
  await page.getByLabel('Prompt').fill('');
  await page.getByLabel('Prompt').press('Alt+ArrowUp');
  await expect(page.getByLabel('Prompt')).toHaveValue('a red barn');
  await page.getByLabel('Prompt').press('Alt+ArrowUp');
  await expect(page.getByLabel('Prompt')).toHaveValue('a lighthouse at dusk');
  await page.getByTestId('recent-prompts').selectOption('a red fox in the snow');
  await expect(page.getByLabel('Prompt')).toHaveValue('a red fox in the snow');

  // Lightbox: Enter on a result opens it full size; → and ← browse in page order; Esc closes and cancels nothing.
  const images = page.getByTestId('result-image');
  await images.first().focus();
  await page.keyboard.press('Enter');
  const box = page.getByTestId('lightbox');
  await expect(box).toBeVisible();
  await expect(page.getByTestId('lightbox-caption')).toContainText('1 of 3 · a red barn');
  await page.keyboard.press('ArrowRight');
  await expect(page.getByTestId('lightbox-caption')).toContainText('2 of 3 · a lighthouse at dusk');
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.press('ArrowLeft');
  await expect(page.getByTestId('lightbox-caption')).toContainText('3 of 3 · a red fox in the snow');
  expect(await page.getByTestId('lightbox-image').evaluate((el: HTMLImageElement) => el.naturalWidth)).toBe(16);
  await page.keyboard.press('Escape');
  await expect(box).toBeHidden();
  await expect(images.first()).toBeFocused();

  // Copy as code: fal's subscribe call with these settings.
  await page.getByTestId('copy-code').click();
  await expect(page.getByTestId('code-view')).toContainText('await fal.subscribe("fal-ai/flux/schnell", {');
  await expect(page.getByTestId('code-view')).toContainText('"prompt": "a red fox in the snow"');
  await expect(page.getByTestId('code-view')).toContainText('"num_inference_steps": 2');

  // Search filters by prompt, across everything stored; no match says so.
  await page.getByTestId('history-search').fill('RED');
  await expect(images).toHaveCount(2);
  await page.getByTestId('history-search').fill('zebra');
  await expect(page.getByTestId('no-matches')).toHaveText('No results match “zebra”.');
  await page.getByTestId('history-search').fill('');
  await expect(images).toHaveCount(3);

  // Bulk delete: select one, delete it; it stays gone after a reload.
  await page.getByTestId('history-select').click();
  await page.locator('figure', { hasText: 'a lighthouse at dusk' }).getByTestId('select-entry').check();
  await expect(page.getByTestId('history-delete-selected')).toHaveText('Delete selected (1)');
  await page.getByTestId('history-delete-selected').click();
  await expect(images).toHaveCount(2);
  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  await expect(page.getByTestId('result-image')).toHaveCount(2);
  await expect(page.locator('figure', { hasText: 'a lighthouse at dusk' })).toHaveCount(0);

  // Clear all empties the history, also across a reload.
  await page.getByTestId('history-clear').click();
  await expect(page.getByTestId('result-image')).toHaveCount(0);
  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  await expect(page.getByTestId('result-image')).toHaveCount(0);
  await expect(page.getByTestId('results')).toContainText('Images you generate appear here');
});
