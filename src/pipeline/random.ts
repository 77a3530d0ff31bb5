/**
 * Seeded Gaussian noise that is bit-identical in every JS engine (docs/noise.md).
 *
 * - Uniform bits: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11),
 *   counter-based, key = the 64-bit seed, counter = block index. Known-answer tests in tests/unit.
 * - Normals: Box–Muller, two normals per pair of uniforms u = (bits + 0.5)·2⁻³², so u ∈ (0, 1).
 * - ln, sin and cos are evaluated here with +, −, ×, ÷ and sqrt only. Those are correctly rounded
 *   IEEE-754 double operations in every engine, whereas Math.log/sin/cos may differ in the last bit
 *   between engines. Each normal is finally rounded to float32.
 *
 * torch's generators (mt19937 / Philox on CUDA) are not reproduced: a seed gives different noise than in
 * PyTorch, as in every non-PyTorch FLUX port. To reproduce a PyTorch run, pass its `latents`.
 */

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32 (exact, via 16-bit limbs). */
function mulhi32(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const ll = al * bl;
  const lh = al * bh;
  const hl = ah * bl;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (ah * bh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/**
 * One Philox4x32-10 block: 4 × uint32 from a 128-bit counter and a 64-bit key.
 * Writes into `out` (length ≥ 4) to avoid allocation in the hot loop.
 */
export function philox4x32(ctr: ArrayLike<number>, key: ArrayLike<number>, out: Uint32Array | number[] = new Uint32Array(4)): Uint32Array | number[] {
  let c0 = ctr[0]! >>> 0;
  let c1 = ctr[1]! >>> 0;
  let c2 = ctr[2]! >>> 0;
  let c3 = ctr[3]! >>> 0;
  let k0 = key[0]! >>> 0;
  let k1 = key[1]! >>> 0;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + PHILOX_W0) >>> 0;
      k1 = (k1 + PHILOX_W1) >>> 0;
    }
    const hi0 = mulhi32(PHILOX_M0, c0);
    const lo0 = Math.imul(PHILOX_M0, c0) >>> 0;
    const hi1 = mulhi32(PHILOX_M1, c2);
    const lo1 = Math.imul(PHILOX_M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
  return out;
}

const LN2 = 0.6931471805599453;
const SQRT_HALF = 0.7071067811865476;
const HALF_PI = 1.5707963267948966;

/** ln(v) for v in (0, 1], to ~1e-16, using only exactly-rounded operations. */
export function portableLog(v: number): number {
  if (!(v > 0 && v <= 1)) throw new RangeError(`portableLog: ${v} is outside (0, 1]`);
  let m = v;
  let e = 0;
  while (m < SQRT_HALF) {
    m *= 2; // exact
    e--;
  }
  // ln m = 2·atanh(s), s = (m−1)/(m+1), |s| ≤ 0.1716; series to s^25 is below double precision.
  const s = (m - 1) / (m + 1);
  const s2 = s * s;
  let p = 1 / 25;
  for (let k = 23; k >= 1; k -= 2) p = 1 / k + s2 * p;
  return e * LN2 + 2 * s * p;
}

/** sin and cos of x ∈ [0, π/4] by Taylor series (terms beyond x^18 are below double precision). */
function sinCosSmall(x: number): [number, number] {
  const x2 = x * x;
  // sin x = x(1 − x²/3! + x⁴/5! − … ± x^16/17!), Horner form
  let s = 1;
  for (let k = 17; k >= 3; k -= 2) s = 1 - (x2 / (k * (k - 1))) * s;
  const sin = x * s;
  // cos x = 1 − x²/2! + … ± x^18/18!
  let c = 1;
  for (let k = 18; k >= 2; k -= 2) c = 1 - (x2 / (k * (k - 1))) * c;
  return [sin, c];
}

/** [sin(2πt), cos(2πt)] for t ∈ [0, 1), exactly reproducible. */
export function portableSinCos2Pi(t: number): [number, number] {
  const t4 = t * 4; // exact
  const q = Math.floor(t4);
  const f = t4 - q; // exact, in [0, 1)
  let s: number;
  let c: number;
  if (f <= 0.5) {
    [s, c] = sinCosSmall(f * HALF_PI);
  } else {
    [c, s] = sinCosSmall((1 - f) * HALF_PI); // sin(π/2 − x) = cos x
  }
  switch (q & 3) {
    case 0:
      return [s, c];
    case 1:
      return [c, -s];
    case 2:
      return [-s, -c];
    default:
      return [-c, s];
  }
}

const TWO_POW_M32 = 1 / 4294967296;

/**
 * `count` standard normals (float32) from a seed, in stream order: block b of Philox (counter = [b, 0, 0, 0],
 * key = [seed mod 2³², ⌊seed / 2³²⌋]) yields 4 uniforms (u1, u2, u3, u4) → normals
 * r₁cos θ₁, r₁sin θ₁, r₂cos θ₂, r₂sin θ₂ with r = √(−2 ln u₁), θ = 2π u₂.
 */
export function randomNormals(seed: number, count: number, out: Float32Array = new Float32Array(count)): Float32Array {
  assertSeed(seed);
  const key = [seed % 4294967296, Math.floor(seed / 4294967296)];
  const ctr = [0, 0, 0, 0];
  const bits = new Uint32Array(4);
  for (let i = 0, block = 0; i < count; block++) {
    ctr[0] = block >>> 0;
    ctr[1] = Math.floor(block / 4294967296);
    philox4x32(ctr, key, bits);
    for (let pair = 0; pair < 2 && i < count; pair++) {
      const u1 = (bits[2 * pair]! + 0.5) * TWO_POW_M32;
      const u2 = (bits[2 * pair + 1]! + 0.5) * TWO_POW_M32;
      const r = Math.sqrt(-2 * portableLog(u1));
      const [sin, cos] = portableSinCos2Pi(u2);
      out[i++] = r * cos;
      if (i < count) out[i++] = r * sin;
    }
  }
  return out;
}

/** Largest seed accepted: seeds are JS safe integers. */
export const MAX_SEED = Number.MAX_SAFE_INTEGER;

export function assertSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be an integer in [0, ${MAX_SEED}], got ${seed}`);
}

/** A fresh random seed in [0, 2³²), from the platform CSPRNG. */
export function randomSeed(): number {
  const a = new Uint32Array(1);
  globalThis.crypto.getRandomValues(a);
  return a[0]!;
}
