import { describe, expect, it } from 'vitest';
import { FLUX_SCHNELL_ARCHS } from '../../../src/runtime/activation-memory.js';
import { activationError, activationMemoryNeed, decideActivations, formatBytes, formatLimit, weightsDuring, type ActivationModel, type PackNeeds } from '../../../src/runtime/capacity.js';

const GiB = 2 ** 30;
const GB = 1e9;
const model: ActivationModel = { archs: FLUX_SCHNELL_ARCHS, t5Length: 256, clipLength: 77, vaeScaleFactor: 8 };
const needs: PackNeeds = {
  componentBytes: { transformer: 6.5 * GB, t5: 2.5 * GB, clip: 0.25 * GB, vae_decoder: 0.1 * GB },
  requiredFeatures: [],
  maxTensorBytes: null,
};
const swiftshader = { maxBufferSize: GiB, maxStorageBufferBindingSize: GiB, budgetBytes: null };
const noWeights = weightsDuring('all-transient', { ...needs, componentBytes: {} });

describe('decideActivations', () => {
  it('1024×1024 unfused on 1 GiB buffers: refused on image_size with the numbers and the largest size that fits', () => {
    const d = decideActivations(model, { batch: 1, width: 1024, height: 1024 }, swiftshader, noWeights);
    expect(d.fits).toBe(false);
    expect(d.field).toBe('image_size');
    expect(d.reason).toBe(
      'image_size: 1024×1024 needs a 1.82 GB buffer (transformer attention scores [1, 24, 4352, 4352]); this GPU allows 1 GiB per buffer (maxBufferSize); the largest size that fits is 880×880.',
    );
    // 880²: S = 55² + 256 = 3281, 24·3281²·4 = 1.03 GB ≤ 1 GiB; 896²: S = 3392, 1.10 GB > 1 GiB.
    expect(decideActivations(model, { batch: 1, width: 880, height: 880 }, swiftshader, noWeights).fits).toBe(true);
    expect(decideActivations(model, { batch: 1, width: 896, height: 896 }, swiftshader, noWeights).fits).toBe(false);
    const e = activationError(d);
    expect(e).toMatchObject({ code: 'insufficient_capacity', field: 'image_size' });
  });

  it('keeps the aspect ratio in the suggestion; a stricter binding limit is the one named', () => {
    const d = decideActivations(model, { batch: 1, width: 1024, height: 768 }, { maxBufferSize: 4 * GiB, maxStorageBufferBindingSize: 512 * 2 ** 20, budgetBytes: null }, noWeights);
    expect(d.reason).toMatch(/^image_size: 1024×768 needs a 1\.06 GB buffer \(transformer attention scores \[1, 24, 3328, 3328\]\); this GPU allows 512 MiB per buffer \(maxStorageBufferBindingSize\); the largest size that fits is (\d+)×(\d+)\.$/);
    const [, w, h] = /fits is (\d+)×(\d+)/.exec(d.reason)!.map(Number);
    expect(Math.abs(w! / h! - 4 / 3)).toBeLessThan(0.05);
  });

  it('fused attention: 1024² fits the buffer limit (the VAE map of 1 GiB is exactly at the limit)', () => {
    const fused: ActivationModel = {
      ...model,
      archs: { ...FLUX_SCHNELL_ARCHS, transformer: { ...FLUX_SCHNELL_ARCHS.transformer, attention: 'fused' }, vae_decoder: { ...FLUX_SCHNELL_ARCHS.vae_decoder, attention: 'fused' } },
    };
    expect(decideActivations(fused, { batch: 1, width: 1024, height: 1024 }, swiftshader, noWeights).fits).toBe(true);
    // unfused VAE alone: its scores are 1 GiB too, so still at the limit; one pixel row more would not be
    const d = decideActivations(fused, { batch: 1, width: 1024, height: 1040 }, swiftshader, noWeights);
    expect(d.fits).toBe(false);
    expect(d.reason).toMatch(/VAE decoder up block 2 upsampled \[1, 256, 1040, 1024\]/);
  });

  it('a batch that does not fit while one image does is blamed on num_images', () => {
    const d = decideActivations(model, { batch: 3, width: 512, height: 512 }, { maxBufferSize: 2 ** 28, maxStorageBufferBindingSize: 2 ** 28, budgetBytes: null }, noWeights);
    // 512²: S = 1280, scores 24·1280²·4 = 157 MB per image; 256 MiB allows one
    expect(d).toMatchObject({ fits: false, field: 'num_images', maxBatch: 1 });
    expect(d.reason).toMatch(/^num_images: 3 images at 512×512 needs a 471\.9 MB buffer .*; at most 1 image of this size fit\.$/);
  });

  it('the memory budget: weights during the component + its activations', () => {
    const w = weightsDuring('all-transient', needs);
    expect(w.transformer).toBe(6.5 * GB);
    const need = activationMemoryNeed(model, { batch: 1, width: 512, height: 512 }, w);
    const ok = decideActivations(model, { batch: 1, width: 512, height: 512 }, { maxBufferSize: 4 * GiB, maxStorageBufferBindingSize: 4 * GiB, budgetBytes: need }, w);
    expect(ok.fits).toBe(true);
    const short = decideActivations(model, { batch: 1, width: 512, height: 512 }, { maxBufferSize: 4 * GiB, maxStorageBufferBindingSize: 4 * GiB, budgetBytes: need - 1 }, w);
    expect(short.fits).toBe(false);
    expect(short.reason).toMatch(/^image_size: 512×512 needs [\d.]+ GB of GPU memory while the transformer runs \(6\.50 GB weights \+ [\d.]+ MB activations\); [\d.]+ GB could be allocated; the largest size that fits is \d+×\d+\.$/);
  });

  it('weights during each component follow the plan', () => {
    const all = weightsDuring('all-resident', needs);
    expect(all.vae_decoder).toBeCloseTo(9.35 * GB);
    const enc = weightsDuring('encoders-transient', needs);
    expect(enc.t5).toBeCloseTo(9.25 * GB);
    expect(enc.vae_decoder).toBeCloseTo(6.6 * GB);
  });

  it('formats needs in GB and power-of-two limits in GiB/MiB', () => {
    expect(formatBytes(1_818_230_784)).toBe('1.82 GB');
    expect(formatBytes(GiB)).toBe('1.07 GB');
    expect(formatLimit(GiB)).toBe('1 GiB');
    expect(formatLimit(256 * 2 ** 20)).toBe('256 MiB');
  });
});
