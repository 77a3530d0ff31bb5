import { describe, expect, it } from 'vitest';
import { CLIP_SPECIAL_TOKENS, FLUX_SCHNELL_CONFIG, T5_SPECIAL_TOKENS } from '../../../src/pipeline/config.js';
import { clipPooledIndex, frameClipIds, frameT5Ids } from '../../../src/pipeline/tokens.js';
import { postprocessImages, vaeInputTransform } from '../../../src/pipeline/vae.js';

describe('CLIP framing (§2.1)', () => {
  it('BOS 49406 + ids + EOS 49407, padded with 49407 to 77', () => {
    const ids = frameClipIds([320, 1125, 539], CLIP_SPECIAL_TOKENS);
    expect(ids.length).toBe(77);
    expect(Array.from(ids.slice(0, 6))).toEqual([49406, 320, 1125, 539, 49407, 49407]);
    expect(ids.every((v, i) => i < 4 || v === 49407)).toBe(true);
    expect(clipPooledIndex(3)).toBe(4);
  });
  it('truncates to 75 body tokens; pooled index is then 76', () => {
    const raw = Array.from({ length: 100 }, (_, i) => i + 1);
    const ids = frameClipIds(raw, CLIP_SPECIAL_TOKENS);
    expect(ids[0]).toBe(49406);
    expect(ids[75]).toBe(75);
    expect(ids[76]).toBe(49407);
    expect(clipPooledIndex(100)).toBe(76);
  });
  it('empty prompt → [BOS, EOS, pad…], pooled at 1', () => {
    const ids = frameClipIds([], CLIP_SPECIAL_TOKENS);
    expect(Array.from(ids.slice(0, 3))).toEqual([49406, 49407, 49407]);
    expect(clipPooledIndex(0)).toBe(1);
  });
});

describe('T5 framing (§2.2)', () => {
  it('ids + EOS 1, padded with 0 to 256, no BOS', () => {
    const ids = frameT5Ids([3, 9, 27], T5_SPECIAL_TOKENS, FLUX_SCHNELL_CONFIG.t5MaxLength);
    expect(ids.length).toBe(256);
    expect(Array.from(ids.slice(0, 5))).toEqual([3, 9, 27, 1, 0]);
    expect(ids.slice(4).every((v) => v === 0)).toBe(true);
  });
  it('truncates to L−1 tokens and keeps the EOS', () => {
    const ids = frameT5Ids(Array.from({ length: 300 }, () => 5), T5_SPECIAL_TOKENS, 256);
    expect(ids[254]).toBe(5);
    expect(ids[255]).toBe(1);
  });
  it('honours another length (dev: 512)', () => {
    expect(frameT5Ids([7], T5_SPECIAL_TOKENS, 512).length).toBe(512);
  });
});

describe('VAE constants and transform (§6)', () => {
  it('FLUX defaults: 16 channels, 8×, scaling 0.3611, shift 0.1159', () => {
    expect(FLUX_SCHNELL_CONFIG).toMatchObject({ latentChannels: 16, vaeScaleFactor: 8, vaeScalingFactor: 0.3611, vaeShiftFactor: 0.1159 });
  });
  it('z = x / 0.3611 + 0.1159 (divide first, then add), in float32', () => {
    const z = vaeInputTransform(new Float32Array([0, 1, -0.3611]), FLUX_SCHNELL_CONFIG);
    expect(z[0]).toBe(Math.fround(0.1159));
    expect(z[1]).toBeCloseTo(1 / 0.3611 + 0.1159, 5);
    expect(z[2]).toBeCloseTo(-1 + 0.1159, 5);
  });
});

describe('postprocessImages (diffusers VaeImageProcessor.postprocess)', () => {
  it('maps [-1,1] → [0,255], clamps, rounds half to even, NCHW → RGBA', () => {
    // (x/2+0.5)*255 for x = −1, 1, 0, 2, −3, and a value landing exactly on 127.5 → 128 (even)
    const px = [-1, 1, 0, 2, -3, 0.6];
    const pixels = new Float32Array(3 * px.length);
    pixels.set(px, 0); // R plane
    pixels.set(px.map(() => 0), px.length); // G
    pixels.set(px.map(() => 1), 2 * px.length); // B
    const [img] = postprocessImages(pixels, [1, 3, 1, px.length]);
    const r = Array.from({ length: px.length }, (_, i) => img!.data[i * 4]);
    expect(r).toEqual([0, 255, 128, 255, 0, Math.round(0.8 * 255)]);
    expect(img!.data[1]).toBe(128);
    expect(img!.data[2]).toBe(255);
    expect(img!.data[3]).toBe(255);
  });
  it('rounds exact .5 ties to even like numpy (128.5 → 128, 129.5 → 130)', () => {
    const f32 = Math.fround;
    // Find float32 y in [0.5, 1) with f32(y·255) = k + 0.5 exactly; then x = (y − 0.5)·2 maps back to y exactly.
    const tieInput = (k: number): number => {
      const buf = new Float32Array(1);
      const bits = new Uint32Array(buf.buffer);
      buf[0] = (k + 0.5) / 255;
      for (let d = -64; d <= 64; d++) {
        const probe = new Float32Array(1);
        new Uint32Array(probe.buffer)[0] = bits[0]! + d;
        if (f32(probe[0]! * 255) === k + 0.5) return (probe[0]! - 0.5) * 2;
      }
      throw new Error(`no float32 tie for ${k}`);
    };
    const ks = [128, 129, 200, 201];
    const pixels = new Float32Array(3 * ks.length);
    pixels.set(ks.map(tieInput));
    const [img] = postprocessImages(pixels, [1, 3, 1, ks.length]);
    expect(ks.map((_, i) => img!.data[i * 4])).toEqual([128, 130, 200, 202]);
  });
  it('rejects a non-RGB output', () => {
    expect(() => postprocessImages(new Float32Array(4), [1, 4, 1, 1])).toThrow(/\[B, 3, H, W\]/);
  });
});
