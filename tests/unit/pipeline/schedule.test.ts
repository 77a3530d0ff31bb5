import { describe, expect, it } from 'vitest';
import { eulerDt, eulerStep, schnellSigmas, timestepInput } from '../../../src/pipeline/schedule.js';

const f32 = Math.fround;

describe('schnellSigmas (docs/flux-pipeline.md §5.2 table)', () => {
  it.each([
    [1, [1, 0]],
    [2, [1, 0.5, 0]],
    [3, [1, f32(2 / 3), f32(1 / 3), 0]],
    [4, [1, 0.75, 0.5, 0.25, 0]],
  ])('N=%i gives exactly the float32 values of linspace(1, 1/N, N) + [0]', (n, expected) => {
    expect(Array.from(schnellSigmas(n))).toEqual(expected);
  });

  it('N=3 values are the float32 roundings 0.6666666865 and 0.3333333433', () => {
    const s = schnellSigmas(3);
    expect(s[1]).toBe(0.6666666865348816);
    expect(s[2]).toBe(0.3333333432674408);
  });

  it('timestep input is σ (not 1000σ), via float32(float32(1000σ)/1000)', () => {
    for (const n of [1, 2, 3, 4]) {
      const s = schnellSigmas(n);
      for (let i = 0; i < n; i++) expect(timestepInput(s[i]!)).toBe(s[i]);
    }
    expect(timestepInput(0.75)).toBe(0.75);
  });

  it('Euler dt are negative: N=4 → −0.25 ×4; N=3 → [−0.33333331, −0.33333334, −0.33333334]', () => {
    const s4 = schnellSigmas(4);
    expect([0, 1, 2, 3].map((i) => eulerDt(s4, i))).toEqual([-0.25, -0.25, -0.25, -0.25]);
    const s3 = schnellSigmas(3);
    const dts = [0, 1, 2].map((i) => eulerDt(s3, i));
    expect(dts[0]).toBeCloseTo(-0.33333331, 8);
    expect(dts[1]).toBeCloseTo(-0.33333334, 8);
    expect(dts[2]).toBeCloseTo(-0.33333334, 8);
    expect(dts.every((d) => d < 0)).toBe(true);
  });

  it('shift = 3 warps σ to 3σ/(1+2σ) (dev-style static shift), identity at the ends', () => {
    const s = schnellSigmas(4, 3);
    expect(s[0]).toBe(1);
    expect(s[2]).toBeCloseTo((3 * 0.5) / (1 + 2 * 0.5), 6);
    expect(s[4]).toBe(0);
  });

  it('rejects a non-positive step count', () => {
    expect(() => schnellSigmas(0)).toThrow(RangeError);
  });

  it('eulerStep computes x + dt·v in float32 and N=1 gives x0 = ε − v', () => {
    const x = new Float32Array([1, 2, -3]);
    const v = new Float32Array([0.5, -1, 2]);
    expect(Array.from(eulerStep(x, v, -1))).toEqual([0.5, 3, -5]);
    expect(Array.from(eulerStep(x, v, -0.25))).toEqual([f32(1 - 0.125), f32(2 + 0.25), f32(-3 - 0.5)]);
  });
});
