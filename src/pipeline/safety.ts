/**
 * Safety-checker math, DOM-free (docs/safety.md). The decoded image is turned into the classifier's input on the
 * device by `safetyPreprocessGraph` (device-graphs.ts); this file defines what that graph computes — the resampling
 * matrices and a host twin used by tests — and turns the classifier's output into per-image scores and flags.
 *
 * Preprocessing follows Hugging Face image processors on the image the user would get:
 *   1. the 8-bit pixels exactly as postprocessImages makes them (round(clamp(x/2 + 0.5, 0, 1)·255));
 *   2. PIL-style resampling (nearest / bilinear / bicubic, antialiased when shrinking, PIL's filter weights),
 *      as a separable linear map, to height × width ('stretch') or to the shortest edge then a center crop;
 *   3. v·rescale, then (v − mean)/std per channel, in the classifier's channel order and layout.
 * Unlike PIL it stays in float32 between the two resampling passes (no 8-bit rounding), so values differ from
 * PIL's by at most about one level.
 */
import { resolvedPreprocess, type SafetyCheckerConfig, type SafetyPreprocess, type SafetyResample } from '../pack/safety-checker.js';
import { safetyPreprocessGraph, type FloatDtype } from './device-graphs.js';
import type { RgbaImage } from './vae.js';

const f32 = Math.fround;

/** PIL's filters (src/libImaging/Resample.c): support and kernel. */
const FILTERS: Record<Exclude<SafetyResample, 'nearest'>, { support: number; kernel: (x: number) => number }> = {
  bilinear: { support: 1, kernel: (x) => (x < 0 ? -x : x) < 1 ? 1 - Math.abs(x) : 0 },
  bicubic: {
    support: 2,
    kernel: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
};

/**
 * Resampling weights from `inSize` to `outSize` samples, as a dense [outSize, inSize] row-major matrix: row i holds
 * the weights of output sample i. Same coefficients as PIL's `precompute_coeffs` (antialiased: the filter widens
 * by the shrink factor), and PIL's affine nearest-neighbour for 'nearest'.
 */
export function resampleMatrix(inSize: number, outSize: number, resample: SafetyResample): Float64Array {
  const m = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  if (resample === 'nearest') {
    for (let i = 0; i < outSize; i++) m[i * inSize + Math.min(inSize - 1, Math.floor((i + 0.5) * scale))] = 1;
    return m;
  }
  const { support: base, kernel } = FILTERS[resample];
  const filterScale = Math.max(scale, 1);
  const support = base * filterScale;
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    for (let x = xmin; x < xmax; x++) {
      const w = kernel((x - center + 0.5) / filterScale);
      m[i * inSize + x] = w;
      total += w;
    }
    if (total !== 0) for (let x = xmin; x < xmax; x++) m[i * inSize + x]! /= total;
  }
  return m;
}

/** Rows `[start, start + count)` of an [rows, cols] matrix. */
function rows(m: Float64Array, cols: number, start: number, count: number): Float64Array {
  return m.slice(start * cols, (start + count) * cols);
}

/** The device preprocessing graph for an H × W image under `pre`: safetyPreprocessGraph with everything resolved. */
export function safetyPreprocessModel(pre: SafetyPreprocess, H: number, W: number, imageDtype: FloatDtype, outDtype: FloatDtype): Uint8Array {
  const p = resolvedPreprocess(pre);
  const { rh, rw, outH, outW } = safetyResizeMatrices(H, W, p);
  return safetyPreprocessGraph({
    imageDtype,
    outDtype,
    H,
    W,
    rh,
    rw,
    outH,
    outW,
    scale: p.std.map((s) => p.rescale / s),
    bias: p.mean.map((m, i) => -m / p.std[i]!),
    channelOrder: p.channelOrder,
    layout: p.layout,
  });
}

/**
 * The two resampling matrices for an image of H × W: `rh` [outH, H] and `rw` [outW, W], with the center crop
 * folded in (crop = a subset of the resized image's rows and columns, offsets as transformers' center_crop).
 */
export function safetyResizeMatrices(H: number, W: number, pre: SafetyPreprocess): { rh: Float64Array; rw: Float64Array; outH: number; outW: number } {
  const p = resolvedPreprocess(pre);
  if (p.fit === 'stretch') return { rh: resampleMatrix(H, p.height, p.resample), rw: resampleMatrix(W, p.width, p.resample), outH: p.height, outW: p.width };
  // transformers' get_resize_output_image_size(shortest_edge): the long edge is int(short_target · long / short).
  const short = Math.min(H, W);
  const long = Math.max(H, W);
  const newLong = Math.trunc((p.shortestEdge * long) / short);
  const [rH, rW] = H <= W ? [p.shortestEdge, newLong] : [newLong, p.shortestEdge];
  const top = Math.floor((rH - p.height) / 2);
  const left = Math.floor((rW - p.width) / 2);
  return {
    rh: rows(resampleMatrix(H, rH, p.resample), H, top, p.height),
    rw: rows(resampleMatrix(W, rW, p.resample), W, left, p.width),
    outH: p.height,
    outW: p.width,
  };
}

/** The 8-bit level postprocessImages gives a VAE output value (round half to even, in float32). */
export function pixelLevel(x: number): number {
  let v = f32(f32(x / 2) + 0.5);
  v = v < 0 ? 0 : v > 1 ? 1 : v;
  const s = f32(v * 255);
  const r = Math.round(s);
  return r - s === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Host twin of the device preprocessing: VAE output [B, 3, H, W] → classifier input ([B, 3, h, w] NCHW or
 * [B, h, w, 3] NHWC), float64 arithmetic. The pipeline never runs this (the device graph does); tests compare.
 */
export function preprocessForSafety(pixels: Float32Array, dims: readonly number[], pre: SafetyPreprocess): { data: Float32Array; dims: number[] } {
  const [B, C, H, W] = dims as [number, number, number, number];
  if (dims.length !== 4 || C !== 3) throw new RangeError(`image must be [B, 3, H, W], got [${dims.join(', ')}]`);
  const p = resolvedPreprocess(pre);
  const { rh, rw, outH, outW } = safetyResizeMatrices(H, W, pre);
  const order = p.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const out = new Float32Array(B * 3 * outH * outW);
  const tmp = new Float64Array(H * outW);
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < 3; k++) {
      const plane = (b * 3 + order[k]!) * H * W;
      // Width pass, then height pass (PIL's order; the result is the same linear map).
      for (let y = 0; y < H; y++) {
        for (let j = 0; j < outW; j++) {
          let s = 0;
          for (let x = 0; x < W; x++) {
            const w = rw[j * W + x]!;
            if (w !== 0) s += w * pixelLevel(pixels[plane + y * W + x]!);
          }
          tmp[y * outW + j] = s;
        }
      }
      for (let i = 0; i < outH; i++) {
        for (let j = 0; j < outW; j++) {
          let s = 0;
          for (let y = 0; y < H; y++) {
            const w = rh[i * H + y]!;
            if (w !== 0) s += w * tmp[y * outW + j]!;
          }
          const v = (s * p.rescale - p.mean[k]!) / p.std[k]!;
          const idx = p.layout === 'NCHW' ? ((b * 3 + k) * outH + i) * outW + j : ((b * outH + i) * outW + j) * 3 + k;
          out[idx] = v;
        }
      }
    }
  }
  return { data: out, dims: p.layout === 'NCHW' ? [B, 3, outH, outW] : [B, outH, outW, 3] };
}

/** Per-label probabilities of one row of classifier output. */
export function labelProbabilities(row: ArrayLike<number>, scores: SafetyCheckerConfig['scores']): number[] {
  const v = Array.from(row);
  if (scores === 'probabilities') return v;
  if (scores === 'sigmoid') return v.map((x) => 1 / (1 + Math.exp(-x)));
  const max = Math.max(...v);
  const e = v.map((x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

export interface SafetyVerdict {
  /** Unsafe score per image, in [0, 1]. */
  scores: number[];
  /** scores[i] ≥ threshold. */
  flagged: boolean[];
}

/**
 * Classifier output [B, labels] → per-image unsafe score and flag. The score is the probability of the unsafe
 * labels together: their sum for softmax/probabilities (mutually exclusive classes, capped at 1), the largest
 * for sigmoid (independent labels). A score that is not a finite number flags the image (fail closed).
 */
export function safetyVerdict(output: Float32Array, dims: readonly number[], config: SafetyCheckerConfig): SafetyVerdict {
  const [B, N] = dims as [number, number];
  if (dims.length !== 2 || N !== config.labels.length || output.length !== B * N) {
    throw new RangeError(`expected classifier output [B, ${config.labels.length}] (labels ${config.labels.join(', ')}), got [${dims.join(', ')}]`);
  }
  const unsafe = config.unsafeLabels.map((l) => config.labels.indexOf(l));
  const scores: number[] = [];
  for (let b = 0; b < B; b++) {
    const p = labelProbabilities(output.subarray(b * N, (b + 1) * N), config.scores);
    const u = unsafe.map((i) => p[i]!);
    const s = config.scores === 'sigmoid' ? Math.max(...u) : Math.min(1, u.reduce((a, c) => a + c, 0));
    scores.push(Number.isFinite(s) ? s : 1);
  }
  return { scores, flagged: scores.map((s) => s >= config.threshold) };
}

/** What a flagged image becomes: opaque black, same size. */
export function safetyPlaceholder(width: number, height: number): RgbaImage {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let i = 3; i < data.length; i += 4) data[i] = 255;
  return { width, height, data };
}
