/**
 * fal's `image_size`: a preset name or {width, height} (docs/flux-pipeline.md §7).
 */
export const IMAGE_SIZE_PRESETS = Object.freeze({
  square_hd: { width: 1024, height: 1024 },
  square: { width: 512, height: 512 },
  portrait_4_3: { width: 768, height: 1024 },
  portrait_16_9: { width: 576, height: 1024 },
  landscape_4_3: { width: 1024, height: 768 },
  landscape_16_9: { width: 1024, height: 576 },
} as const);

export type ImageSizePreset = keyof typeof IMAGE_SIZE_PRESETS;
export type ImageSize = ImageSizePreset | { width: number; height: number };

/** fal's default for fal-ai/flux/schnell. */
export const DEFAULT_IMAGE_SIZE: ImageSizePreset = 'landscape_4_3';

export function isImageSizePreset(s: unknown): s is ImageSizePreset {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(IMAGE_SIZE_PRESETS, s);
}

/** Smallest and largest side accepted for local generation, in pixels (before flooring to 16). */
export const MIN_IMAGE_SIDE = 16;
export const MAX_IMAGE_SIDE = 2048;

/** Pixel sizes are floored to a multiple of 2·vaeScaleFactor (16 for FLUX), as diffusers does. */
export function floorToMultiple(pixels: number, multiple: number): number {
  return multiple * Math.floor(pixels / multiple);
}
