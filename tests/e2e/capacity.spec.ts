/**
 * Activation-aware capacity on a real WebGPU adapter whose limits, as the capacity check reads them, are lowered
 * to 8 MiB per buffer (capLimitsForTesting; the device itself is unchanged): a size whose activations cannot fit
 * is refused on its field, with the numbers, before any GPU work; the size the refusal names as the largest that
 * fits does run; under Auto the same request goes to fal with that reason.
 *
 * The test pack's figures (src/runtime/activation-memory.ts on its graphs: 2 heads, T5 length 256, a 4-level VAE):
 * at 512² the transformer's scores are [1, 2, 1280, 1280] fp32 = 13.1 MB; at 304² everything stays under 8 MiB
 * (VAE mid-block scores [1, 1, 1444, 1444] = 8.34 MB ≤ 8 MiB), at 320² the VAE's are 10.2 MB.
 */
import { expect, test } from '@playwright/test';
import type { FluxApiClient } from '../../src/client/flux-api.js';
import { FAKE_FAL_URL } from '../support/fal-e2e.js';
import { generate, installTestPack, openApp } from './helpers.js';

declare global {
  interface Window {
    fluxApi: FluxApiClient;
  }
}

const MiB = 2 ** 20;
const at = (size: number) => ({ prompt: 'a lighthouse at dusk', seed: 7, image_size: { width: size, height: size }, num_inference_steps: 1, output_format: 'png' as const });

test('a size whose activations exceed the (lowered) buffer limit is refused on image_size before any GPU work; under Auto it goes to fal with the reason', async ({ page }) => {
  const { architecture } = await openApp(page);
  expect(architecture).not.toBe('');
  await installTestPack(page);
  await generate(page, at(64)); // warm: sessions exist, so a refusal cannot hide behind a load

  await page.evaluate((limit) => window.flux.capLimitsForTesting({ maxBufferSize: limit, maxStorageBufferBindingSize: limit }), 8 * MiB);
  const reads0 = (await page.evaluate(() => window.flux.stats()))!.gpuMapReads;
  const refused = await page.evaluate(async (input) => {
    try {
      await window.flux.generate(input);
      return null;
    } catch (e) {
      const f = e as { code: string; field?: string; message: string };
      return { code: f.code, field: f.field, message: f.message };
    }
  }, at(512));
  expect(refused).toEqual({
    code: 'insufficient_capacity',
    field: 'image_size',
    message:
      'image_size: 512×512 needs a 13.1 MB buffer (transformer attention scores [1, 2, 1280, 1280]); this GPU allows 8 MiB per buffer (maxBufferSize); the largest size that fits is 304×304.',
  });
  // Nothing ran on the GPU for it: no session.run, no read-back, no GPU map.
  const s = (await page.evaluate(() => window.flux.stats()))!;
  expect(s.sessionRuns).toBe(0);
  expect(s.readbacks).toBe(0);
  expect(s.gpuMapReads).toBe(reads0);

  // The size it names runs; one step up is refused (the VAE this time).
  const ok = await generate(page, at(304));
  expect(ok.images[0]).toMatchObject({ width: 304, height: 304 });
  const next = await page.evaluate((input) => window.flux.generate(input).then(() => null, (e: Error) => e.message), at(320));
  expect(next).toMatch(/^image_size: 320×320 needs a 10\.2 MB buffer \(VAE decoder mid-block attention scores \[1, 1, 1600, 1600\]\)/);

  // Auto: the same request is sent to fal (the fake upstream), with the reason; a size that fits stays here.
  await fetch(`${FAKE_FAL_URL}/__fake/reset`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const local = await page.evaluate((input) => window.fluxApi.route('fal-ai/flux/schnell', 'auto', input), at(256));
  expect(local).toMatchObject({ target: 'local' });
  const routed = await page.evaluate(async (input) => {
    const r = await window.fluxApi.subscribe('fal-ai/flux/schnell', { input, route: 'auto' });
    return { route: r.route, width: r.data.images[0]?.width };
  }, at(512));
  expect(routed.route.target).toBe('remote');
  expect(routed.route.reason).toBe(`Sent to fal because this request does not fit this GPU: ${refused!.message}`);
  expect(routed.width).toBe(512);

  // Forced local is never sent away: it is refused with the same reason.
  const forced = await page.evaluate((input) => window.fluxApi.subscribe('fal-ai/flux/schnell', { input, route: 'local' }).then(() => null, (e: { code: string; field?: string }) => ({ code: e.code, field: e.field })), at(512));
  expect(forced).toEqual({ code: 'insufficient_capacity', field: 'image_size' });

  // Back to the adapter's real limits: the refused 320² runs here.
  await page.evaluate(() => window.flux.capLimitsForTesting(null));
  expect((await generate(page, at(320))).images[0]).toMatchObject({ width: 320, height: 320 });
});
