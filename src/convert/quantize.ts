/**
 * Block-wise weight quantization for com.microsoft MatMulNBits, with ONNX Runtime's own semantics
 * (MLAS `BlockwiseQuantizer` as used by `MatMulNBitsQuantizer` / `quantize_matmul_{4,8}bits`):
 *
 * - W is the MatMul weight [K, N]; blocks of `block` consecutive k for each output column n.
 * - asymmetric: min ← min(min, 0), max ← max(max, 0), scale = (max − min)/(2^bits − 1),
 *   zp = clamp(roundf(−min/scale), 0, 2^bits − 1).
 * - symmetric: m = the block value of largest magnitude (signed), scale = −m / 2^(bits−1), zp = 2^(bits−1)
 *   (MatMulNBits' default, so no zero_points input).
 * - q = clamp(roundf(w · (1/scale) + zp), 0, 2^bits − 1) in float32; dequantized ŵ = (q − zp) · scale.
 * - B is [N, K/block, block·bits/8] (W transposed), low nibble first; scales [N·K/block] float32;
 *   4-bit zero points packed two per byte along the blocks of a column (low nibble first), [N·⌈nb/2⌉], an odd
 *   column padded with 8 (kMid) as MLAS does.
 */

export interface QuantParams {
  bits: 4 | 8;
  block: number;
  symmetric: boolean;
  /**
   * Search each block's range (shrinking min/max by up to 20 %) for the smallest squared error instead of plain
   * min/max (ORT's RTN). Same format and kernel; ~6× slower to quantize.
   */
  mseSearch?: boolean;
}

const SEARCH_RATIOS = [1, 0.97, 0.94, 0.91, 0.88, 0.85, 0.82, 0.8];

export interface QuantizedWeight {
  K: number;
  N: number;
  nBlocks: number;
  /** [N, nBlocks, block·bits/8] */
  B: Uint8Array;
  /** [N·nBlocks] */
  scales: Float32Array;
  /** [N·⌈nBlocks·bits/8⌉], absent when symmetric. */
  zeroPoints?: Uint8Array;
}

/** Accumulated ‖xW − xŴ‖ statistics on random x (for one matrix or many). */
export interface ReconStats {
  sumSqRef: number;
  sumSqErr: number;
  dot: number;
  sumSqQ: number;
  maxAbsErr: number;
  count: number;
}

export const emptyStats = (): ReconStats => ({ sumSqRef: 0, sumSqErr: 0, dot: 0, sumSqQ: 0, maxAbsErr: 0, count: 0 });

export function mergeStats(a: ReconStats, b: ReconStats): ReconStats {
  return {
    sumSqRef: a.sumSqRef + b.sumSqRef,
    sumSqErr: a.sumSqErr + b.sumSqErr,
    dot: a.dot + b.dot,
    sumSqQ: a.sumSqQ + b.sumSqQ,
    maxAbsErr: Math.max(a.maxAbsErr, b.maxAbsErr),
    count: a.count + b.count,
  };
}

export function relError(s: ReconStats): number {
  return s.sumSqRef > 0 ? Math.sqrt(s.sumSqErr / s.sumSqRef) : 0;
}
export function cosine(s: ReconStats): number {
  return s.sumSqRef > 0 && s.sumSqQ > 0 ? s.dot / Math.sqrt(s.sumSqRef * s.sumSqQ) : 1;
}

const fround = Math.fround;

/** C `roundf`: half away from zero. */
function roundf(x: number): number {
  return x >= 0 ? Math.floor(x + 0.5) : -Math.floor(-x + 0.5);
}

/** Deterministic standard normals (xorshift + Box–Muller). */
export function randomNormals(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 0x9e3779b9;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(next()));
    const t = 2 * Math.PI * next();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/**
 * Quantize one column (K contiguous values, already multiplied by alpha) into `B`, `scales`, `zps` (unpacked).
 * Writes the dequantized values into `deq` when given.
 */
function quantizeColumn(
  col: Float32Array,
  K: number,
  p: QuantParams,
  B: Uint8Array,
  bOff: number,
  scales: Float32Array,
  sOff: number,
  zps: Uint8Array,
  deq: Float32Array,
  wantDeq: boolean,
): void {
  const qmax = (1 << p.bits) - 1;
  const mid = 1 << (p.bits - 1);
  const nb = K / p.block;
  const blob = (p.block * p.bits) / 8;
  for (let b = 0; b < nb; b++) {
    const k0 = b * p.block;
    let mn = Infinity;
    let mx = -Infinity;
    for (let i = 0; i < p.block; i++) {
      const v = col[k0 + i]!;
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
    let scale = 0;
    let zp = 0;
    let bestErr = Infinity;
    const ratios = p.mseSearch ? SEARCH_RATIOS : SEARCH_RATIOS.slice(0, 1);
    for (const r of ratios) {
      let sc: number;
      let z: number;
      if (p.symmetric) {
        const m = Math.abs(mx) > Math.abs(mn) ? mx : mn;
        sc = fround(fround(-m * r) / mid);
        z = mid;
      } else {
        const lo = fround(Math.min(mn, 0) * r);
        const hi = fround(Math.max(mx, 0) * r);
        sc = fround(fround(hi - lo) / qmax);
        let zf = lo;
        if (sc !== 0) zf = fround(0 - fround(lo / sc));
        z = zf < 0 ? 0 : zf > qmax ? qmax : roundf(zf);
      }
      if (ratios.length === 1) {
        scale = sc;
        zp = z;
        break;
      }
      const rsc = sc !== 0 ? fround(1 / sc) : 0;
      let err = 0;
      for (let i = 0; i < p.block; i++) {
        const v = col[k0 + i]!;
        let q = roundf(fround(fround(v * rsc) + z));
        q = q < 0 ? 0 : q > qmax ? qmax : q;
        const d = v - fround((q - z) * sc);
        err += d * d;
      }
      if (err < bestErr) {
        bestErr = err;
        scale = sc;
        zp = z;
      }
    }
    scales[sOff + b] = scale;
    zps[b] = zp;
    const rs = scale !== 0 ? fround(1 / scale) : 0;
    const base = bOff + b * blob;
    if (p.bits === 8) {
      for (let i = 0; i < p.block; i++) {
        let q = roundf(fround(fround(col[k0 + i]! * rs) + zp));
        q = q < 0 ? 0 : q > qmax ? qmax : q;
        B[base + i] = q;
        if (wantDeq) deq[k0 + i] = fround((q - zp) * scale);
      }
    } else {
      for (let i = 0; i < p.block; i += 2) {
        let q0 = roundf(fround(fround(col[k0 + i]! * rs) + zp));
        q0 = q0 < 0 ? 0 : q0 > qmax ? qmax : q0;
        let q1 = roundf(fround(fround(col[k0 + i + 1]! * rs) + zp));
        q1 = q1 < 0 ? 0 : q1 > qmax ? qmax : q1;
        B[base + (i >> 1)] = q0 | (q1 << 4);
        if (wantDeq) {
          deq[k0 + i] = fround((q0 - zp) * scale);
          deq[k0 + i + 1] = fround((q1 - zp) * scale);
        }
      }
    }
  }
}

function accumulateRecon(x: Float32Array, rows: number, K: number, w: Float32Array, deq: Float32Array, stats: ReconStats): void {
  for (let r = 0; r < rows; r++) {
    let y = 0;
    let yq = 0;
    const xo = r * K;
    for (let k = 0; k < K; k++) {
      const xv = x[xo + k]!;
      y += xv * w[k]!;
      yq += xv * deq[k]!;
    }
    const e = y - yq;
    stats.sumSqRef += y * y;
    stats.sumSqErr += e * e;
    stats.dot += y * yq;
    stats.sumSqQ += yq * yq;
    stats.maxAbsErr = Math.max(stats.maxAbsErr, Math.abs(e));
    stats.count++;
  }
}

export interface QuantizeOptions extends QuantParams {
  /** Multiplier folded into W before quantizing (Gemm alpha). */
  alpha?: number;
  /** Compute reconstruction stats on this many random rows of x (0: none). */
  reconRows?: number;
  /** At most this many output columns are used for the stats (evenly spread). */
  reconMaxCols?: number;
  seed?: number;
}

/**
 * Quantize W. `layout` 'KN': W stored [K, N] row-major (MatMul B); 'NK': stored [N, K] (Gemm transB=1 / Linear).
 */
export function quantizeMatrix(w: Float32Array, K: number, N: number, layout: 'KN' | 'NK', o: QuantizeOptions): { q: QuantizedWeight; stats: ReconStats } {
  if (K % o.block !== 0) throw new Error(`K=${K} is not a multiple of block ${o.block}`);
  if (w.length !== K * N) throw new Error(`weight has ${w.length} values, expected ${K}×${N}`);
  const nb = K / o.block;
  const blob = (o.block * o.bits) / 8;
  const B = new Uint8Array(N * nb * blob);
  const scales = new Float32Array(N * nb);
  const zpPerCol = Math.ceil((nb * o.bits) / 8);
  const zeroPoints = o.symmetric ? undefined : new Uint8Array(N * zpPerCol);
  const zps = new Uint8Array(nb);
  const alpha = o.alpha ?? 1;

  const rows = o.reconRows ?? 0;
  const stats = emptyStats();
  const x = rows > 0 ? randomNormals(rows * K, o.seed ?? 1234) : null;
  const colStride = rows > 0 ? Math.max(1, Math.ceil(N / (o.reconMaxCols ?? 256))) : 0;
  const deq = new Float32Array(rows > 0 ? K : 0);

  const TILE = 64;
  const tile = new Float32Array(TILE * K);
  const col = new Float32Array(K);
  for (let n0 = 0; n0 < N; n0 += TILE) {
    const nt = Math.min(TILE, N - n0);
    if (layout === 'KN') {
      // Gather a tile of columns (row by row: contiguous reads) into [nt][K].
      for (let k = 0; k < K; k++) {
        const rowOff = k * N + n0;
        for (let j = 0; j < nt; j++) tile[j * K + k] = w[rowOff + j]!;
      }
    }
    for (let j = 0; j < nt; j++) {
      const n = n0 + j;
      const src = layout === 'KN' ? tile.subarray(j * K, (j + 1) * K) : w.subarray(n * K, (n + 1) * K);
      let c: Float32Array = src;
      if (alpha !== 1) {
        for (let k = 0; k < K; k++) col[k] = fround(src[k]! * alpha);
        c = col;
      }
      const sampled = rows > 0 && n % colStride === 0;
      quantizeColumn(c, K, o, B, n * nb * blob, scales, n * nb, zps, deq, sampled);
      if (zeroPoints) {
        const zOff = n * zpPerCol;
        if (o.bits === 8) zeroPoints.set(zps, zOff);
        else for (let b = 0; b < nb; b += 2) zeroPoints[zOff + (b >> 1)] = (zps[b]! & 0xf) | ((b + 1 < nb ? zps[b + 1]! : 8) & 0xf) << 4;
      }
      if (sampled && x) accumulateRecon(x, rows, K, c, deq, stats);
    }
  }
  const q: QuantizedWeight = { K, N, nBlocks: nb, B, scales };
  if (zeroPoints) q.zeroPoints = zeroPoints;
  return { q, stats };
}

/** Dequantize to W [K, N] row-major (tests and checks). */
export function dequantize(q: QuantizedWeight, p: QuantParams): Float32Array {
  const { K, N, nBlocks: nb } = q;
  const blob = (p.block * p.bits) / 8;
  const zpPerCol = Math.ceil((nb * p.bits) / 8);
  const mid = 1 << (p.bits - 1);
  const out = new Float32Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nb; b++) {
      const scale = q.scales[n * nb + b]!;
      let zp = mid;
      if (q.zeroPoints) {
        const byte = q.zeroPoints[n * zpPerCol + (p.bits === 8 ? b : b >> 1)]!;
        zp = p.bits === 8 ? byte : b & 1 ? byte >> 4 : byte & 0xf;
      }
      for (let i = 0; i < p.block; i++) {
        const byte = q.B[(n * nb + b) * blob + (p.bits === 8 ? i : i >> 1)]!;
        const v = p.bits === 8 ? byte : i & 1 ? byte >> 4 : byte & 0xf;
        out[(b * p.block + i) * N + n] = fround((v - zp) * scale);
      }
    }
  }
  return out;
}

/** Bytes of the quantized representation (B + scales + zero points). */
export function quantizedBytes(K: number, N: number, p: QuantParams): { B: number; scales: number; zeroPoints: number } {
  const nb = K / p.block;
  return { B: N * nb * ((p.block * p.bits) / 8), scales: N * nb * 4, zeroPoints: p.symmetric ? 0 : N * Math.ceil((nb * p.bits) / 8) };
}

/**
 * Per-row symmetric int8 quantization of an embedding table [V, D] (Gather data): q = round(w / s), s = max|w|/127.
 */
export function quantizeRowsInt8(w: Float32Array, V: number, D: number): { q: Int8Array; scales: Float32Array } {
  const q = new Int8Array(V * D);
  const scales = new Float32Array(V);
  for (let r = 0; r < V; r++) {
    let m = 0;
    const off = r * D;
    for (let i = 0; i < D; i++) m = Math.max(m, Math.abs(w[off + i]!));
    const s = fround(m / 127);
    scales[r] = s;
    const rs = s ? 1 / s : 0;
    for (let i = 0; i < D; i++) q[off + i] = Math.max(-127, Math.min(127, Math.round(w[off + i]! * rs)));
  }
  return { q, scales };
}
