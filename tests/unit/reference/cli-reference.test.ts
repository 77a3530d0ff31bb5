/**
 * The pipeline equals diffusers' FluxPipeline: the CLI (same engine as the worker) on the golden cases produced by
 * an independent PyTorch re-implementation (tools/testpack/reference_pipeline.py) from the same latents and
 * embeddings. Final latents within 1e-4, pixels within 1/255.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { parseNpy } from '../../../src/cli/npy.js';
import { decodePng, maxAbsDiff, readNpyAny, referenceCases, TEST_PACK_DIR } from '../../support/fixtures.js';

const out = mkdtempSync(join(tmpdir(), 'flux-ref-'));

describe.each(referenceCases())('reference case $name', (c) => {
  it(`latents within 1e-4 and pixels within 1/255 of the PyTorch reference (${c.steps} steps, ${c.width}×${c.height}, B=${c.batch}, L=${c.L})`, async () => {
    const latentsOut = join(out, `${c.name}.npy`);
    const imageOut = join(out, `${c.name}.png`);
    const code = await main([
      'generate',
      '--pack', TEST_PACK_DIR,
      '--latents', join(c.dir, 'latents.npy'),
      '--prompt-embeds', join(c.dir, 'prompt_embeds.npy'),
      '--pooled-prompt-embeds', join(c.dir, 'pooled_prompt_embeds.npy'),
      '--steps', String(c.steps),
      '--width', String(c.width),
      '--height', String(c.height),
      '--save-latents', latentsOut,
      '--out', imageOut,
      '--json',
    ]);
    expect(code).toBe(0);
    const got = parseNpy(new Uint8Array(readFileSync(latentsOut)));
    const want = readNpyAny(join(c.dir, 'final_latents.npy'));
    expect(got.dims).toEqual(want.dims);
    expect(maxAbsDiff(got.data, want.data as Float32Array)).toBeLessThanOrEqual(1e-4);

    const image = readNpyAny(join(c.dir, 'image.npy')); // uint8 [B, H, W, 3]
    const per = c.width * c.height * 3;
    for (let b = 0; b < c.batch; b++) {
      const file = c.batch === 1 ? imageOut : imageOut.replace(/\.png$/, `-${b}.png`);
      const png = decodePng(new Uint8Array(readFileSync(file)));
      expect([png.width, png.height]).toEqual([c.width, c.height]);
      expect(maxAbsDiff(png.rgb, (image.data as Uint8Array).subarray(b * per, (b + 1) * per))).toBeLessThanOrEqual(1);
    }
  });
});

describe.each(referenceCases().filter((c) => c.prompts))('text → image $name', (c) => {
  it('tokenizes the prompts to the reference ids and reproduces the reference image from text', async () => {
    // The reference embeddings came from these framed ids; our tokenizer + framing must produce the same.
    const { sourcesFromPack } = await import('../../../src/runtime/component-source.js');
    const { openFsPack } = await import('../../../src/storage/fs-pack-source.js');
    const { frameClipIds, frameT5Ids } = await import('../../../src/pipeline/tokens.js');
    const sources = await sourcesFromPack(await openFsPack(TEST_PACK_DIR));
    const { clip, t5 } = sources.tokenizers!;
    const clipIds = readNpyAny(join(c.dir, 'clip_input_ids.npy'));
    const t5Ids = readNpyAny(join(c.dir, 't5_input_ids.npy'));
    c.prompts!.forEach((p, b) => {
      const wantClip = Array.from(clipIds.data as BigInt64Array | Int32Array, Number).slice(b * 77, (b + 1) * 77);
      expect(Array.from(frameClipIds(clip.encode(p), clip.special))).toEqual(wantClip);
      const wantT5 = Array.from(t5Ids.data as BigInt64Array | Int32Array, Number).slice(b * c.L, (b + 1) * c.L);
      expect(Array.from(frameT5Ids(t5.encode(p), t5.special, c.L))).toEqual(wantT5);
    });
    if (new Set(c.prompts).size !== 1) return; // the CLI takes one prompt per request
    const imageOut = join(out, `${c.name}-text.png`);
    const code = await main([
      'generate', '--pack', TEST_PACK_DIR, '--prompt', c.prompts![0]!, '--latents', join(c.dir, 'latents.npy'),
      '--steps', String(c.steps), '--out', imageOut, '--json',
    ]);
    expect(code).toBe(0);
    const image = readNpyAny(join(c.dir, 'image.npy'));
    const png = decodePng(new Uint8Array(readFileSync(c.batch === 1 ? imageOut : imageOut.replace(/\.png$/, '-0.png'))));
    expect(maxAbsDiff(png.rgb, (image.data as Uint8Array).subarray(0, c.width * c.height * 3))).toBeLessThanOrEqual(1);
  });
});
