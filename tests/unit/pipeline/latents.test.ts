import { describe, expect, it } from 'vitest';
import { latentSizeFor, makeImageIds, makeNoise, makeTextIds, packLatents, unpackLatents } from '../../../src/pipeline/latents.js';
import { diffusersPack, diffusersUnpack } from './ndarray.js';

const seq = (n: number) => Float32Array.from({ length: n }, (_, i) => i);

describe('latent geometry (§4.1)', () => {
  it.each([
    [1024, 128],
    [768, 96],
    [576, 72],
    [512, 64],
    [72, 8],
    [57, 6],
    [16, 2],
    [15, 0],
  ])('%i px → %i latent cells (floor to 16 px)', (px, lat) => {
    expect(latentSizeFor(px, { vaeScaleFactor: 8 })).toBe(lat);
  });
});

describe('packLatents / unpackLatents (§4.3)', () => {
  it('matches diffusers view/permute/reshape order (independent N-d reference)', () => {
    for (const [B, C, h, w] of [
      [1, 16, 2, 2],
      [2, 16, 4, 6],
      [1, 3, 8, 4],
      [3, 1, 6, 10],
    ] as const) {
      const lat = seq(B * C * h * w);
      const shape = { batch: B, channels: C, height: h, width: w };
      expect(Array.from(packLatents(lat, shape))).toEqual(Array.from(diffusersPack(lat, B, C, h, w)));
      const packed = seq(B * C * h * w).map((v) => v * 3 + 1);
      expect(Array.from(unpackLatents(packed, shape))).toEqual(Array.from(diffusersUnpack(packed, B, C, h, w)));
    }
  });

  it('follows the spec index formula P[b,(y>>1)(w/2)+(x>>1), 4c+2(y&1)+(x&1)] = L[b,c,y,x]', () => {
    const [B, C, h, w] = [2, 16, 4, 6];
    const lat = seq(B * C * h * w);
    const p = packLatents(lat, { batch: B, channels: C, height: h, width: w });
    const S = (h / 2) * (w / 2);
    for (let b = 0; b < B; b++)
      for (let c = 0; c < C; c++)
        for (let y = 0; y < h; y++)
          for (let x = 0; x < w; x++) {
            const n = (y >> 1) * (w / 2) + (x >> 1);
            const k = 4 * c + 2 * (y & 1) + (x & 1);
            expect(p[(b * S + n) * 4 * C + k]).toBe(lat[((b * C + c) * h + y) * w + x]);
          }
  });

  it('round-trips', () => {
    const shape = { batch: 2, channels: 16, height: 8, width: 12 };
    const lat = Float32Array.from({ length: 2 * 16 * 8 * 12 }, () => Math.random());
    expect(unpackLatents(packLatents(lat, shape), shape)).toEqual(lat);
  });

  it('first packed token holds channel-major 2×2 patches: [L(c0,0,0), L(c0,0,1), L(c0,1,0), L(c0,1,1), L(c1,0,0), …]', () => {
    const [C, h, w] = [2, 2, 2];
    const lat = seq(C * h * w); // c0: 0..3, c1: 4..7
    expect(Array.from(packLatents(lat, { batch: 1, channels: C, height: h, width: w }))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('rejects odd latent sizes and wrong lengths', () => {
    expect(() => packLatents(seq(3 * 4), { batch: 1, channels: 1, height: 3, width: 4 })).toThrow(/even/);
    expect(() => packLatents(seq(5), { batch: 1, channels: 1, height: 2, width: 2 })).toThrow(/expected 4/);
  });
});

describe('position ids (§4.4)', () => {
  it('img_ids row i·(w/2)+j = (0, i, j)', () => {
    const ids = makeImageIds(4, 6); // 2×3 patches
    expect(Array.from(ids)).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 1, 1, 0, 1, 2]);
  });
  it('1024² gives S = 4096 ids, last = (0, 63, 63)', () => {
    const ids = makeImageIds(128, 128);
    expect(ids.length).toBe(4096 * 3);
    expect(Array.from(ids.slice(-3))).toEqual([0, 63, 63]);
  });
  it('txt_ids are zeros [L, 3]', () => {
    const t = makeTextIds(256);
    expect(t.length).toBe(768);
    expect(t.every((v) => v === 0)).toBe(true);
  });
});

describe('makeNoise', () => {
  it('is deterministic, and batch item b equals a single image with seed + b', () => {
    const shape = { batch: 3, channels: 16, height: 4, width: 4 };
    const a = makeNoise(1234, shape);
    expect(makeNoise(1234, shape)).toEqual(a);
    const per = 16 * 4 * 4;
    const single = makeNoise(1235, { ...shape, batch: 1 });
    expect(a.subarray(per, 2 * per)).toEqual(single);
    expect(makeNoise(1235, shape)).not.toEqual(a);
  });
});
