/**
 * fp16 activations on a real shader-f16 adapter: the golden cases through the whole pipeline (onnxruntime-web's
 * WebGPU build on Dawn over Mesa 25 lavapipe, tests/f16/golden-runner.ts) give the same images as the fp32
 * activations within the PSNR stated in the README, and the adapter used was really the f16 one.
 *
 * Setup once: scripts/setup-lavapipe.sh (Mesa 25 extracted under .cache/lavapipe, no system change).
 * Run: npx vitest run -c tests/f16/vitest.config.ts
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readNpyAny, referenceCases, ROOT } from '../support/fixtures.js';

const ENV_SH = join(process.env.FLUX_LAVAPIPE_DIR ?? join(ROOT, '.cache', 'lavapipe'), 'env.sh');

interface Image {
  width: number;
  height: number;
  rgb: number[];
}
interface RunnerOutput {
  /** y of tests/f16/overflow-model.ts (NaN written as -1e30). */
  overflow: { clamped: number[]; unclamped: number[] };
  adapter: { vendor: string; architecture: string; description: string };
  deviceFeatures: string[];
  components: Record<string, Record<string, { requiredFeatures: string[]; weights: string }>>;
  images: Record<'fp32' | 'int4' | 'int4_fp16act', Record<string, Image[]>>;
}

/** PSNR in dB of 8-bit images, and the largest pixel difference. */
export function psnr(a: ArrayLike<number>, b: ArrayLike<number>): { db: number; maxDiff: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let se = 0;
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    se += d * d;
    maxDiff = Math.max(maxDiff, Math.abs(d));
  }
  const mse = se / a.length;
  return { db: mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse), maxDiff };
}

let out: RunnerOutput;

beforeAll(() => {
  if (!existsSync(ENV_SH)) throw new Error(`${ENV_SH} is missing: run scripts/setup-lavapipe.sh first (Mesa 25 lavapipe, the CPU adapter with shader-f16)`);
  const dir = mkdtempSync(join(tmpdir(), 'flux-f16-'));
  const file = join(dir, 'out.json');
  const r = spawnSync('bash', ['-c', `source "${ENV_SH}" && exec node --liftoff-only --import tsx tests/f16/golden-runner.ts "${file}"`], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 256 * 2 ** 20,
    timeout: 18 * 60_000,
  });
  if (r.status !== 0) throw new Error(`golden-runner failed (status ${r.status}, signal ${r.signal}):\n${r.stderr.slice(-4000)}`);
  out = JSON.parse(readFileSync(file, 'utf8')) as RunnerOutput;
  rmSync(dir, { recursive: true, force: true });
}, 19 * 60_000);

describe('fp16 activations on an f16 adapter (Dawn + lavapipe 25)', () => {
  it('ran on Mesa lavapipe with shader-f16 enabled on the device ORT used', () => {
    expect(out.adapter.description).toMatch(/llvmpipe: Mesa 25\./);
    expect(out.deviceFeatures).toContain('shader-f16');
    // The fp16-activation pack declares it (so adapters without it refuse the pack); the others do not.
    for (const c of ['transformer', 'clip', 't5']) {
      expect(out.components.int4_fp16act[c]!.requiredFeatures, c).toEqual(['shader-f16']);
      expect(out.components.int4[c]!.requiredFeatures, c).toEqual([]);
    }
  });

  it('an fp16 residual that overflows: NaN without the clamp, finite with it (real f16 arithmetic)', () => {
    expect(out.overflow.unclamped.some((v) => v === -1e30 || !Number.isFinite(v)), JSON.stringify(out.overflow)).toBe(true);
    expect(out.overflow.clamped.every((v) => Number.isFinite(v) && Math.abs(v) < 10), JSON.stringify(out.overflow)).toBe(true);
    // The overflowed values saturate at 65504 together; the small ones stay below them, in order.
    const c = out.overflow.clamped;
    expect(c[0]).toBeCloseTo(c[3]!, 3);
    expect(c[0]!).toBeGreaterThan(c[7]!);
    expect(c[7]!).toBeGreaterThan(c[4]!);
  });

  it('the fp32 pack reproduces the PyTorch reference images on this adapter (within 1/255)', () => {
    for (const c of referenceCases()) {
      const ref = readNpyAny(join(c.dir, 'image.npy')).data as Uint8Array;
      const per = c.width * c.height * 3;
      out.images.fp32[c.name]!.forEach((img, b) => {
        expect([img.width, img.height]).toEqual([c.width, c.height]);
        expect(psnr(img.rgb, ref.subarray(b * per, (b + 1) * per)).maxDiff, `${c.name} #${b}`).toBeLessThanOrEqual(1);
      });
    }
  });

  it('int4 + fp16 activations: ≥ 55 dB PSNR against int4 + fp32 activations, and no worse than int4 alone against fp32', () => {
    const rows: string[] = [];
    for (const c of referenceCases()) {
      const half = out.images.int4_fp16act[c.name]!;
      half.forEach((img, b) => {
        const vsInt4 = psnr(img.rgb, out.images.int4[c.name]![b]!.rgb);
        const vsFp32 = psnr(img.rgb, out.images.fp32[c.name]![b]!.rgb);
        const int4VsFp32 = psnr(out.images.int4[c.name]![b]!.rgb, out.images.fp32[c.name]![b]!.rgb);
        rows.push(`${c.name} #${b}: fp16act vs int4 ${vsInt4.db.toFixed(1)} dB (max ${vsInt4.maxDiff}), vs fp32 ${vsFp32.db.toFixed(1)} dB; int4 vs fp32 ${int4VsFp32.db.toFixed(1)} dB`);
        expect(vsInt4.db, rows.at(-1)).toBeGreaterThanOrEqual(55);
        expect(vsInt4.maxDiff, rows.at(-1)).toBeLessThanOrEqual(2);
        expect(vsFp32.db, rows.at(-1)).toBeGreaterThanOrEqual(int4VsFp32.db - 0.5);
      });
    }
    process.stdout.write(rows.join('\n') + '\n');
  });
});
