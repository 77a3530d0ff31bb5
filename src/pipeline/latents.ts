/**
 * Latent geometry, 2×2 packing and position ids (docs/flux-pipeline.md §4), in diffusers' exact index order.
 * Latents are [B, C, h, w] (C = 16 for FLUX); packed latents are [B, S, 4C] with S = (h/2)(w/2).
 */
import type { FluxModelConfig } from './config.js';
import { randomNormals } from './random.js';

export interface LatentShape {
  batch: number;
  channels: number;
  /** Latent height/width (even). */
  height: number;
  width: number;
}

/** Latent size for a pixel size: h = 2·⌊H / (2·vaeScaleFactor)⌋ (diffusers floors; 1024 → 128). */
export function latentSizeFor(pixels: number, config: Pick<FluxModelConfig, 'vaeScaleFactor'>): number {
  return 2 * Math.floor(pixels / (2 * config.vaeScaleFactor));
}

export function packedTokens(shape: Pick<LatentShape, 'height' | 'width'>): number {
  return (shape.height / 2) * (shape.width / 2);
}

function checkEven(shape: LatentShape): void {
  if (shape.height % 2 || shape.width % 2 || shape.height < 2 || shape.width < 2) {
    throw new RangeError(`latent height/width must be even and ≥ 2, got ${shape.height}×${shape.width}`);
  }
}

/** [B, C, h, w] → [B, (h/2)(w/2), 4C]: P[b, (y>>1)(w/2) + (x>>1), 4c + 2(y&1) + (x&1)] = L[b, c, y, x]. */
export function packLatents(latents: Float32Array, shape: LatentShape): Float32Array {
  checkEven(shape);
  const { batch: B, channels: C, height: h, width: w } = shape;
  if (latents.length !== B * C * h * w) throw new RangeError(`packLatents: expected ${B * C * h * w} values, got ${latents.length}`);
  const out = new Float32Array(latents.length);
  const w2 = w / 2;
  const S = (h / 2) * w2;
  const K = 4 * C;
  let src = 0;
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < h; y++) {
        const rowBase = b * S * K + (y >> 1) * w2 * K + 4 * c + 2 * (y & 1);
        for (let x = 0; x < w; x++) out[rowBase + (x >> 1) * K + (x & 1)] = latents[src++]!;
      }
    }
  }
  return out;
}

/** Inverse of packLatents: [B, S, 4C] → [B, C, h, w]. */
export function unpackLatents(packed: Float32Array, shape: LatentShape): Float32Array {
  checkEven(shape);
  const { batch: B, channels: C, height: h, width: w } = shape;
  if (packed.length !== B * C * h * w) throw new RangeError(`unpackLatents: expected ${B * C * h * w} values, got ${packed.length}`);
  const out = new Float32Array(packed.length);
  const w2 = w / 2;
  const S = (h / 2) * w2;
  const K = 4 * C;
  let dst = 0;
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < h; y++) {
        const rowBase = b * S * K + (y >> 1) * w2 * K + 4 * c + 2 * (y & 1);
        for (let x = 0; x < w; x++) out[dst++] = packed[rowBase + (x >> 1) * K + (x & 1)]!;
      }
    }
  }
  return out;
}

/** img_ids [S, 3]: row n = i·(w/2) + j holds (0, i, j) — patch row and column (§4.4). */
export function makeImageIds(latentHeight: number, latentWidth: number): Float32Array {
  const h2 = latentHeight / 2;
  const w2 = latentWidth / 2;
  const ids = new Float32Array(h2 * w2 * 3);
  for (let i = 0; i < h2; i++) {
    for (let j = 0; j < w2; j++) {
      const n = i * w2 + j;
      ids[3 * n + 1] = i;
      ids[3 * n + 2] = j;
    }
  }
  return ids;
}

/** txt_ids [L, 3]: all zeros. */
export function makeTextIds(textLength: number): Float32Array {
  return new Float32Array(textLength * 3);
}

/**
 * Initial noise, unpacked [B, C, h, w]. Image b uses seed + b, so every image of a batch can be regenerated
 * alone (docs/noise.md); its values are the first C·h·w normals of that seed's stream, in C order.
 */
export function makeNoise(seed: number, shape: LatentShape): Float32Array {
  const per = shape.channels * shape.height * shape.width;
  const out = new Float32Array(shape.batch * per);
  for (let b = 0; b < shape.batch; b++) randomNormals(seed + b, per, out.subarray(b * per, (b + 1) * per));
  return out;
}
