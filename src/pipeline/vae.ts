/**
 * VAE pre- and post-processing (docs/flux-pipeline.md §6).
 */
import type { FluxModelConfig } from './config.js';

const f32 = Math.fround;

/** z = latents / scaling + shift, in float32 (reference for the on-device graph). */
export function vaeInputTransform(latents: Float32Array, config: Pick<FluxModelConfig, 'vaeScalingFactor' | 'vaeShiftFactor'>): Float32Array {
  const scale = f32(config.vaeScalingFactor);
  const shift = f32(config.vaeShiftFactor);
  const out = new Float32Array(latents.length);
  for (let i = 0; i < latents.length; i++) out[i] = f32(latents[i]! / scale) + shift;
  return out;
}

/** Round half to even, like numpy.round. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** One decoded image, 8-bit RGBA (alpha 255) row-major, ready for ImageData or an encoder. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8ClampedArray;
}

/**
 * VAE output [B, 3, H, W] (nominally [−1, 1], not clamped) → 8-bit images, exactly as diffusers'
 * VaeImageProcessor.postprocess: clamp(x/2 + 0.5, 0, 1)·255, rounded half-to-even, all in float32.
 */
export function postprocessImages(pixels: Float32Array, dims: readonly number[]): RgbaImage[] {
  const [B, C, H, W] = dims as [number, number, number, number];
  if (dims.length !== 4 || C !== 3) throw new RangeError(`VAE output must be [B, 3, H, W], got [${dims.join(', ')}]`);
  if (pixels.length !== B * 3 * H * W) throw new RangeError(`VAE output has ${pixels.length} values, expected ${B * 3 * H * W}`);
  const images: RgbaImage[] = [];
  const plane = H * W;
  for (let b = 0; b < B; b++) {
    const data = new Uint8ClampedArray(plane * 4);
    const base = b * 3 * plane;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) {
        let v = f32(f32(pixels[base + c * plane + p]! / 2) + 0.5);
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        data[p * 4 + c] = roundHalfEven(f32(v * 255));
      }
      data[p * 4 + 3] = 255;
    }
    images.push({ width: W, height: H, data });
  }
  return images;
}
