import { describe, expect, it } from 'vitest';
import { philox4x32, portableLog, portableSinCos2Pi, randomNormals, randomSeed } from '../../../src/pipeline/random.js';

const hex = (a: ArrayLike<number>) => Array.from(a, (x) => x.toString(16).padStart(8, '0'));

describe('Philox4x32-10 known-answer tests (Random123 kat_vectors)', () => {
  it.each([
    [[0, 0, 0, 0], [0, 0], ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']],
    [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], ['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']],
    [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], ['d16cfe09', '94fdcceb', '5001e420', '24126ea1']],
  ])('ctr %j key %j', (ctr, key, expected) => {
    expect(hex(philox4x32(ctr, key))).toEqual(expected);
  });
});

describe('portable transcendental functions', () => {
  it('portableLog matches Math.log to ~1e-15 relative over (0, 1]', () => {
    for (let i = 1; i <= 2000; i++) {
      const u = i / 2000;
      expect(Math.abs(portableLog(u) - Math.log(u))).toBeLessThanOrEqual(2e-15 * Math.max(1, Math.abs(Math.log(u))));
    }
    expect(portableLog(2 ** -32)).toBeCloseTo(-32 * Math.LN2, 12);
    expect(() => portableLog(0)).toThrow(RangeError);
  });
  it('portableSinCos2Pi matches Math.sin/cos to 1e-15', () => {
    for (let i = 0; i < 4096; i++) {
      const t = i / 4096 + 1e-5;
      const [s, c] = portableSinCos2Pi(t % 1);
      expect(Math.abs(s - Math.sin(2 * Math.PI * (t % 1)))).toBeLessThan(2e-15);
      expect(Math.abs(c - Math.cos(2 * Math.PI * (t % 1)))).toBeLessThan(2e-15);
    }
  });
});

describe('randomNormals', () => {
  it('pins the first values of seed 42 (any engine must reproduce these bits)', () => {
    expect(Array.from(randomNormals(42, 4))).toEqual([-0.9701898097991943, 0.19401895999908447, -1.2356207370758057, 1.9239267110824585]);
  });
  it('has standard-normal moments', () => {
    const n = randomNormals(7, 200_000);
    let m = 0;
    for (const x of n) m += x;
    m /= n.length;
    let v = 0;
    let k = 0;
    for (const x of n) {
      v += (x - m) ** 2;
      k += (x - m) ** 4;
    }
    v /= n.length;
    k /= n.length * v * v;
    expect(Math.abs(m)).toBeLessThan(0.01);
    expect(Math.abs(v - 1)).toBeLessThan(0.01);
    expect(Math.abs(k - 3)).toBeLessThan(0.05);
  });
  it('is a prefix-stable stream and depends on the seed, also above 2^32', () => {
    const a = randomNormals(5, 11);
    expect(randomNormals(5, 7)).toEqual(a.subarray(0, 7));
    expect(randomNormals(5 + 2 ** 32, 11)).not.toEqual(a);
    expect(randomNormals(6, 11)).not.toEqual(a);
  });
  it('rejects invalid seeds', () => {
    expect(() => randomNormals(-1, 1)).toThrow(RangeError);
    expect(() => randomNormals(1.5, 1)).toThrow(RangeError);
    expect(() => randomNormals(2 ** 53, 1)).toThrow(RangeError);
  });
  it('randomSeed gives a 32-bit unsigned integer', () => {
    const s = randomSeed();
    expect(Number.isInteger(s) && s >= 0 && s < 2 ** 32).toBe(true);
  });
});
