/**
 * A pack converted with `--quant int4 --activations fp16` declares shader-f16 and is refused on an adapter without
 * it (SwiftShader here) with a clear error before any session exists, instead of failing in a kernel (native EP)
 * or computing garbage (JSEP). Its images on an f16 adapter: tests/f16/fp16-golden.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { convertPack } from '../../src/convert/index.js';
import type { PackManifest } from '../../src/pack/manifest.js';
import { TEST_PACK_DIR } from '../support/fixtures.js';
import { openApp, servePack, TEST_PACK_ID } from './helpers.js';

const PACK_ID = 'flux-test-int4-fp16act';
let pack: { manifest: PackManifest; files: Map<string, Uint8Array> };

test.beforeAll(async () => {
  const out = mkdtempSync(join(tmpdir(), 'flux-e2e-fp16act-'));
  try {
    const src = (c: string) => join(TEST_PACK_DIR, c, 'model.onnx');
    await convertPack({
      transformer: src('transformer'), vaeDecoder: src('vae_decoder'), clip: src('clip'), t5: src('t5'), tokenizers: TEST_PACK_DIR,
      quant: 'int4', activations: 'fp16', out, id: PACK_ID, testPack: true, verifyMb: 0, reconRows: 0,
    });
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as PackManifest;
    pack = { manifest, files: new Map(manifest.files.map((f) => [f.path, new Uint8Array(readFileSync(join(out, f.path)))])) };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('an fp16-activation pack is refused without shader-f16: capacity says why, loading fails with missing_gpu_feature', async ({ page }) => {
  const { architecture, features } = await openApp(page);
  expect(architecture).toBe('swiftshader');
  expect(features, 'this test needs an adapter without shader-f16 (SwiftShader has none)').not.toContain('shader-f16');
  expect(pack.manifest.components.transformer.requiredFeatures).toEqual(['shader-f16']);

  await servePack(page, pack);
  const r = await page.evaluate(async (id) => {
    await window.flux.installPack(`/packs/${id}/`);
    const capacity = await window.flux.probeCapacity(id);
    let error: { code: string | undefined; message: string; details: unknown } | null = null;
    try {
      await window.flux.loadPack(id);
    } catch (e) {
      const f = e as { code?: string; message: string; details?: unknown };
      error = { code: f.code, message: f.message, details: f.details };
    }
    return { capacity: { canRunLocally: capacity.canRunLocally, reason: capacity.reason }, error };
  }, PACK_ID);

  expect(r.capacity.canRunLocally).toBe(false);
  expect(r.capacity.reason).toMatch(/shader-f16/);
  expect(r.error, 'loadPack must refuse the pack').not.toBeNull();
  expect(r.error!.code, r.error!.message).toBe('missing_gpu_feature');
  expect(r.error!.message).toMatch(/^(clip|t5|transformer): this GPU lacks WebGPU feature\(s\) shader-f16 needed for float16 graphs/);
  expect(r.error!.details).toMatchObject({ missing: ['shader-f16'] });

  // The refusal leaves the worker usable: the fp32-activation test pack still loads and generates.
  await page.locator(`li[data-pack="${TEST_PACK_ID}"]`).getByTestId('install-pack').click();
  await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', TEST_PACK_ID, { timeout: 120_000 });
  const out = await page.evaluate(() => window.flux.generate({ prompt: 'a cat', num_inference_steps: 1, image_size: { width: 32, height: 32 } }));
  expect(out.images).toHaveLength(1);
});
