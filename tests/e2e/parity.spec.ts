/**
 * The browser (WebGPU) and the Node CLI (onnxruntime-node CPU) give the same image for the same pack, prompt,
 * seed and size (max pixel difference ≤ 2/255); and the browser reproduces the PyTorch reference pipeline.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from './shared-app.js';
import { main } from '../../src/cli/main.js';
import { decodePng, maxAbsDiff, readNpyAny, referenceCases, TEST_PACK_DIR } from '../support/fixtures.js';
import { generate, installTestPack, openApp } from './helpers.js';

test('browser and CLI agree within 2/255 for the same prompt, seed and size', async ({ loadedApp: page }) => {
  const prompt = 'a watercolor map of an island, 1024 px, "quoted" & punctuated!';
  const browser = await generate(page, { prompt, seed: 31337, image_size: { width: 48, height: 32 }, num_inference_steps: 4, num_images: 2, output_format: 'png' });

  const out = join(mkdtempSync(join(tmpdir(), 'flux-parity-')), 'cli.png');
  const code = await main(['generate', '--pack', TEST_PACK_DIR, '--prompt', prompt, '--seed', '31337', '--width', '48', '--height', '32', '--steps', '4', '--num-images', '2', '--out', out, '--json']);
  expect(code).toBe(0);
  for (const i of [0, 1]) {
    const cli = decodePng(new Uint8Array(readFileSync(out.replace('.png', `-${i}.png`))));
    const web = decodePng(Uint8Array.from(browser.images[i]!.bytes));
    expect([web.width, web.height]).toEqual([cli.width, cli.height]);
    const diff = maxAbsDiff(web.rgb, cli.rgb);
    test.info().annotations.push({ type: `max pixel diff image ${i}`, description: String(diff) });
    expect(diff).toBeLessThanOrEqual(2);
  }
});

test('the browser pipeline reproduces the PyTorch FluxPipeline reference from the same latents and embeddings', async ({ loadedApp: page }) => {
  for (const c of referenceCases().filter((x) => ['steps3_32x48_b2', 'steps4_48x32_b1_L77'].includes(x.name))) {
    const arr = (f: string) => {
      const a = readNpyAny(join(c.dir, f));
      return { data: Array.from(a.data as Float32Array), dims: a.dims };
    };
    const result = await page.evaluate(
      async ({ latents, promptEmbeds, pooled, steps }) => {
        const t = (x: { data: number[]; dims: number[] }) => ({ data: Float32Array.from(x.data), dims: x.dims });
        const out = await window.flux.generate({ latents: t(latents), prompt_embeds: t(promptEmbeds), pooled_prompt_embeds: t(pooled), num_inference_steps: steps, output_format: 'png' });
        const images = [];
        for (const img of out.images) images.push(Array.from(new Uint8Array(await (await fetch(img.url)).arrayBuffer())));
        return images;
      },
      { latents: arr('latents.npy'), promptEmbeds: arr('prompt_embeds.npy'), pooled: arr('pooled_prompt_embeds.npy'), steps: c.steps },
    );
    const ref = readNpyAny(join(c.dir, 'image.npy')).data as Uint8Array;
    const per = c.width * c.height * 3;
    expect(result).toHaveLength(c.batch);
    result.forEach((bytes, b) => {
      const png = decodePng(Uint8Array.from(bytes));
      expect([png.width, png.height]).toEqual([c.width, c.height]);
      expect(maxAbsDiff(png.rgb, ref.subarray(b * per, (b + 1) * per))).toBeLessThanOrEqual(2);
    });
  }
});

test('the JSPI build (opt-in) gives the same bytes as the default asyncify build', async ({ page }) => {
  const input = { prompt: 'two builds', seed: 11, image_size: { width: 32, height: 16 }, num_inference_steps: 2, output_format: 'png' as const };
  const results: Record<string, string> = {};
  for (const build of ['asyncify', 'jspi'] as const) {
    await page.goto(`/?ort=${build}`);
    await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
    if (build === 'asyncify') await installTestPack(page);
    else await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', 'flux-test-tiny', { timeout: 120_000 });
    expect((await page.evaluate(() => window.flux.info())).ortBuild).toBe(build);
    results[build] = (await generate(page, input)).images[0]!.sha256;
  }
  expect(results.jspi).toBe(results.asyncify);
});
