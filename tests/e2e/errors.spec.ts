/** Bad input and broken packs give clear, specific errors in the page; nothing crashes. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { expect, test } from './shared-app.js';
import { MODELS_DIR, TEST_PACK_DIR } from '../support/fixtures.js';
import { installTestPack, openApp } from './helpers.js';

async function expectGenerateError(page: Page, input: unknown, code: string, message: RegExp) {
  const err = await page.evaluate(async (inp) => {
    try {
      await window.flux.generate(inp as never);
      return null;
    } catch (e) {
      const f = e as { code?: string; field?: string; message: string };
      return { code: f.code, field: f.field, message: f.message };
    }
  }, input);
  expect(err, `expected ${JSON.stringify(input)} to fail`).not.toBeNull();
  expect(err!.code).toBe(code);
  expect(err!.message).toMatch(message);
  return err!;
}

test('invalid requests name the field and the allowed range', async ({ loadedApp: page }) => {
  await expectGenerateError(page, { prompt: 'x', num_inference_steps: 0 }, 'invalid_input', /num_inference_steps: must be an integer between 1 and 12, got 0/);
  await expectGenerateError(page, { prompt: 'x', num_inference_steps: 13 }, 'invalid_input', /between 1 and 12, got 13/);
  await expectGenerateError(page, { prompt: 'x', num_images: 5 }, 'invalid_input', /num_images: must be an integer between 1 and 4, got 5/);
  await expectGenerateError(page, { prompt: 'x', image_size: { width: 10, height: 64 } }, 'invalid_input', /image_size.width: must be an integer between 16 and 2048, got 10/);
  await expectGenerateError(page, { prompt: '' }, 'invalid_input', /prompt: must not be empty/);
  await expectGenerateError(page, { prompt: 'x', image_size: 'square_xxl' }, 'invalid_input', /unknown preset "square_xxl"/);
  const e = await expectGenerateError(page, { prompt: 'x', output_format: 'gif' }, 'invalid_input', /"jpeg" or "png"/);
  expect(e.field).toBe('output_format');
});

test('the form shows errors in place and marks the field; then generation still works', async ({ page }) => {
  await openApp(page);
  await installTestPack(page);
  await page.getByLabel('Steps').fill('13');
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('error')).toHaveText(/num_inference_steps: must be an integer between 1 and 12, got 13/);
  await expect(page.getByLabel('Steps')).toHaveAttribute('aria-invalid', 'true');
  await page.getByLabel('Prompt').fill('');
  await page.getByLabel('Steps').fill('1');
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('error')).toHaveText(/prompt: must not be empty/);
  await page.getByLabel('Prompt').fill('ok now');
  await page.getByLabel('Size').selectOption('custom');
  await page.getByLabel('Width').fill('16');
  await page.getByLabel('Height').fill('16');
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('result-image')).toHaveCount(1, { timeout: 120_000 });
  await expect(page.getByTestId('error')).toBeHidden();
});

/** Serve a modified copy of the test pack at /packs/<id>/ through request interception. */
async function serveVariant(page: Page, id: string, edit: (files: Map<string, Buffer>, manifest: Record<string, unknown>) => void) {
  const manifest = JSON.parse(readFileSync(join(TEST_PACK_DIR, 'manifest.json'), 'utf8')) as Record<string, unknown> & { files: { path: string; size: number; sha256: string }[] };
  const files = new Map(manifest.files.map((f) => [f.path, readFileSync(join(TEST_PACK_DIR, f.path))]));
  manifest.id = id;
  edit(files, manifest);
  await page.route(`**/packs/${id}/**`, (route) => {
    const path = decodeURIComponent(new URL(route.request().url()).pathname.split(`/packs/${id}/`)[1]!);
    if (path === 'manifest.json') return route.fulfill({ json: manifest });
    const body = files.get(path);
    return body ? route.fulfill({ body, contentType: 'application/octet-stream' }) : route.fulfill({ status: 404, body: 'not found' });
  });
}

async function installError(page: Page, id: string) {
  return page.evaluate(async (packId) => {
    try {
      await window.flux.installPack(`/packs/${packId}/`);
      await window.flux.loadPack(packId);
      return null;
    } catch (e) {
      const f = e as { code?: string; message: string };
      return { code: f.code, message: f.message };
    }
  }, id);
}

test('a missing pack file fails the install with the file and the HTTP status', async ({ page }) => {
  await openApp(page);
  await serveVariant(page, 'broken-missing', (files) => files.delete('vae_decoder/model.onnx'));
  const err = await installError(page, 'broken-missing');
  expect(err?.code).toBe('pack_file_missing');
  expect(err?.message).toMatch(/vae_decoder\/model\.onnx.*404/);
  const packs = await page.evaluate(() => window.flux.listPacks());
  expect(packs.find((p) => p.id === 'broken-missing')?.state).not.toBe('complete');
});

test('a corrupted file in transit is caught by sha256 and never marked installed', async ({ page }) => {
  await openApp(page);
  await serveVariant(page, 'broken-corrupt', (files) => {
    const b = Buffer.from(files.get('transformer/model.onnx.data')!);
    b[1000] ^= 0x55;
    files.set('transformer/model.onnx.data', b);
  });
  const err = await installError(page, 'broken-corrupt');
  expect(err?.code).toBe('pack_file_corrupt');
  expect(err?.message).toMatch(/transformer\/model\.onnx\.data/);
});

test('an fp16 graph on an adapter without shader-f16 is refused with a clear error, not garbage', async ({ page }) => {
  const { features } = await openApp(page);
  test.skip(features.includes('shader-f16'), 'this adapter has shader-f16; the refusal path needs one without');
  await serveVariant(page, 'fp16-vae', (files, manifest) => {
    const bytes = readFileSync(join(MODELS_DIR, 'vae-fp16.onnx'));
    files.set('vae_decoder/model.onnx', bytes);
    const m = manifest as { files: { path: string; size: number; sha256: string }[]; components: Record<string, { dtype: string }> };
    const entry = m.files.find((f) => f.path === 'vae_decoder/model.onnx')!;
    entry.size = bytes.length;
    entry.sha256 = createHash('sha256').update(bytes).digest('hex');
    m.components.vae_decoder!.dtype = 'float16';
  });
  const err = await installError(page, 'fp16-vae');
  expect(err, JSON.stringify(err)).not.toBeNull();
  expect(err?.code, err?.message).toBe('missing_gpu_feature');
  expect(err?.message).toMatch(/vae_decoder: this GPU lacks WebGPU feature\(s\) shader-f16/);
});
