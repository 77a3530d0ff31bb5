/**
 * The safety checker in the engine (ORT CPU; tests/e2e/safety.spec.ts runs the same on WebGPU): flagged images
 * become black placeholders before encoding, unflagged ones are byte-identical to an unchecked run, a batch mixes
 * both, results say honestly whether a check ran, and a failing checker fails closed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { jpegJsEncoder } from '../../../src/cli/node-runtime.js';
import { FluxEngine } from '../../../src/engine/flux-engine.js';
import type { ComponentName } from '../../../src/pack/manifest.js';
import type { OrtApi } from '../../../src/runtime/ort-api.js';
import { openFsPack } from '../../../src/storage/fs-pack-source.js';
import { decodePng, TEST_PACK_DIR } from '../../support/fixtures.js';
import { FLAGGED_SEED, MIXED_BATCH, SAFETY_CHECKER_NAME, SAFETY_REQUEST, UNFLAGGED_SEED, safetyPackFiles, writePack } from '../../support/safety-pack.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-safety-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const packDir = (options: Parameters<typeof safetyPackFiles>[0] = {}) => writePack(join(tmp, `pack-${n++}`), safetyPackFiles(options));
const SAFETY_PACK = packDir();

async function engineFor(dir: string, resident?: ComponentName[]) {
  const engine = new FluxEngine({ runtime: { ort: ort as unknown as OrtApi, target: 'cpu' }, jpeg: jpegJsEncoder });
  await engine.loadPack(await openFsPack(dir), resident ? { resident: new Set(resident) } : {});
  return engine;
}
const black = (png: Uint8Array) => decodePng(png).rgb.every((v) => v === 0);

describe('a pack with a safety checker', () => {
  it('replaces a flagged image by a black placeholder and reports it', async () => {
    const engine = await engineFor(SAFETY_PACK);
    expect(engine.info!.safetyChecker).toEqual({ model: SAFETY_CHECKER_NAME, labels: ['normal', 'nsfw'], unsafeLabels: ['nsfw'], threshold: 0.5 });
    const r = await engine.generate({ ...SAFETY_REQUEST, seed: FLAGGED_SEED });
    expect(r.has_nsfw_concepts).toEqual([true]);
    expect(r.safety).toMatchObject({ ran: true, checker: SAFETY_CHECKER_NAME, threshold: 0.5 });
    expect(r.safety.scores![0]).toBeGreaterThan(0.9);
    expect(r.safety.reason).toBeUndefined();
    expect([r.images[0]!.width, r.images[0]!.height]).toEqual([32, 32]);
    expect(black(r.images[0]!.bytes)).toBe(true);
    // One read-back for image + classifier output; the checker's graphs ran.
    expect(engine.stats!.readbacks).toBe(1);
    expect(engine.stats!.runsByLabel).toMatchObject({ safety_pre: 1, safety_checker: 1, safety_pack: 1 });

    const off = await engine.generate({ ...SAFETY_REQUEST, seed: FLAGGED_SEED, enable_safety_checker: false });
    expect(off.has_nsfw_concepts).toEqual([false]);
    expect(off.safety).toEqual({ ran: false, checker: null, reason: 'disabled by enable_safety_checker: false' });
    expect(black(off.images[0]!.bytes)).toBe(false);
    expect(engine.stats!.runsByLabel.safety_checker).toBeUndefined();
    await engine.unload();
  });

  it('leaves an unflagged image byte-identical to the unchecked run; a batch mixes both', async () => {
    const engine = await engineFor(SAFETY_PACK);
    const ok = await engine.generate({ ...SAFETY_REQUEST, seed: UNFLAGGED_SEED });
    const okOff = await engine.generate({ ...SAFETY_REQUEST, seed: UNFLAGGED_SEED, enable_safety_checker: false });
    expect(ok.has_nsfw_concepts).toEqual([false]);
    expect(ok.safety.scores![0]).toBeLessThan(0.1);
    expect(ok.images[0]!.bytes).toEqual(okOff.images[0]!.bytes);

    const batch = await engine.generate({ ...SAFETY_REQUEST, seed: MIXED_BATCH.seed, num_images: 4 }, { returnLatents: true });
    const batchOff = await engine.generate({ ...SAFETY_REQUEST, seed: MIXED_BATCH.seed, num_images: 4, enable_safety_checker: false }, { returnLatents: true });
    expect(batch.has_nsfw_concepts).toEqual(MIXED_BATCH.flags);
    expect(batch.safety.scores!.map((s) => s >= 0.5)).toEqual(MIXED_BATCH.flags);
    for (const [i, flagged] of MIXED_BATCH.flags.entries()) {
      expect(black(batch.images[i]!.bytes), `image ${i}`).toBe(flagged);
      if (!flagged) expect(batch.images[i]!.bytes).toEqual(batchOff.images[i]!.bytes);
      // Latents of a flagged image would decode to it: they are wiped too.
      const per = batch.latents!.data.length / 4;
      const rows = batch.latents!.data.subarray(i * per, (i + 1) * per);
      if (flagged) expect(rows.every((v) => v === 0)).toBe(true);
      else expect(rows).toEqual(batchOff.latents!.data.subarray(i * per, (i + 1) * per));
    }
    expect(batch.images[2]!.bytes).toEqual(ok.images[0]!.bytes);
    await engine.unload();
  });

  it('JPEG output carries the placeholder too', async () => {
    const engine = await engineFor(SAFETY_PACK);
    const r = await engine.generate({ ...SAFETY_REQUEST, seed: FLAGGED_SEED, output_format: 'jpeg' });
    const { default: jpeg } = await import('jpeg-js');
    const img = jpeg.decode(r.images[0]!.bytes, { useTArray: true });
    expect(img.data.every((v, i) => (i % 4 === 3 ? v === 255 : v <= 2))).toBe(true);
    await engine.unload();
  });

  it('every residency plan gives the same results (the checker loads, runs and is released with the VAE)', async () => {
    const results = [];
    for (const plan of [undefined, ['transformer', 'vae_decoder', 'safety_checker'], []] as (ComponentName[] | undefined)[]) {
      const engine = await engineFor(SAFETY_PACK, plan);
      const r = await engine.generate({ ...SAFETY_REQUEST, seed: MIXED_BATCH.seed, num_images: 4 });
      if (plan?.length === 0) {
        expect(engine.stats!.componentLoads.safety_checker).toBe(1);
        expect(engine.info!.components.safety_checker).toMatchObject({ loaded: false, resident: false });
      }
      results.push({ flags: r.has_nsfw_concepts, bytes: r.images.map((i) => i.bytes) });
      await engine.unload();
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
  });
});

describe('honesty when no check runs', () => {
  it('a pack without a checker: not checked, with the reason; disabled: says so', async () => {
    const engine = await engineFor(TEST_PACK_DIR);
    expect(engine.info!.safetyChecker).toBeNull();
    const r = await engine.generate({ ...SAFETY_REQUEST, seed: FLAGGED_SEED, num_images: 2 });
    expect(r.has_nsfw_concepts).toEqual([false, false]);
    expect(r.safety).toEqual({ ran: false, checker: null, reason: 'this model pack has no safety checker' });
    expect(black(r.images[0]!.bytes)).toBe(false);
    const off = await engine.generate({ ...SAFETY_REQUEST, seed: FLAGGED_SEED, enable_safety_checker: false });
    expect(off.safety).toEqual({ ran: false, checker: null, reason: 'disabled by enable_safety_checker: false' });
    await engine.unload();
  });
});

describe('a failing checker fails closed: no images, a clear error', () => {
  it('an output that does not match its labels', async () => {
    const engine = await engineFor(packDir({ config: { labels: ['normal', 'nsfw', 'other'], unsafeLabels: ['nsfw'] } }));
    const err = await engine.generate({ ...SAFETY_REQUEST, seed: UNFLAGGED_SEED }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'safety_checker_failed' });
    expect((err as Error).message).toMatch(/safety checker \(flux-webgpu\/tiny-red-safety-checker\) failed, so no images are returned.*expected \[1, 3\]/);
    // Unchecked generation is still possible, and says so.
    const off = await engine.generate({ ...SAFETY_REQUEST, seed: UNFLAGGED_SEED, enable_safety_checker: false });
    expect(off.safety.ran).toBe(false);
    await engine.unload();
  });

  it('a checker graph that cannot be loaded when its turn comes', async () => {
    const engine = await engineFor(packDir({ checker: Buffer.from('not an onnx graph') }), ['clip', 't5', 'transformer', 'vae_decoder']);
    const err = await engine.generate({ ...SAFETY_REQUEST, seed: UNFLAGGED_SEED }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'safety_checker_failed' });
    expect((err as Error).message).toMatch(/no images are returned.*Could not create the safety_checker session/);
    await engine.unload();
  });
});
