/**
 * fal's FLUX input fields (docs/fal-protocol.md §4.2), checked one way for both paths: local generation
 * (request.ts) and the remote endpoints (remote/endpoints.ts) call these, so the same request gets the same verdict
 * and the same message wherever it would run. Each check names the field and the allowed range; nothing is clamped.
 */
import { invalidInput } from '../errors.js';
import { IMAGE_SIZE_PRESETS, isImageSizePreset, type ImageSize } from './image-size.js';
import { MAX_SEED } from './random.js';

export type OutputFormat = 'jpeg' | 'png';
export type Acceleration = 'none' | 'regular' | 'high';

/** fal's `num_images` range for every FLUX endpoint. */
export const MAX_NUM_IMAGES = 4;
/** fal's `guidance_scale` range (schnell accepts it and ignores it; dev uses it). */
export const GUIDANCE_SCALE_RANGE = { min: 1, max: 20 } as const;
/** fal's `num_inference_steps` range for FLUX.1 [schnell] (its σ schedule is defined for any N). */
export const SCHNELL_STEPS = { min: 1, max: 12, default: 4 } as const;

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An integer in [min, max], or invalid_input naming the field and the range. `why` explains a narrower range. */
export function intInRange(value: unknown, field: string, min: number, max: number, why?: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidInput(field, `must be an integer between ${min} and ${max}${why ? ` (${why})` : ''}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A finite number in [min, max] (or (min, max] with `minExclusive`). */
export function numberInRange(value: unknown, field: string, min: number, max: number, minExclusive = false): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || (minExclusive ? value <= min : value < min) || value > max) {
    throw invalidInput(field, `must be a number ${minExclusive ? 'above' : 'from'} ${min} ${minExclusive ? 'up ' : ''}to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A non-empty prompt (`allowEmpty`: any string, for requests whose embeddings replace the text encoders). */
export function checkPrompt(value: unknown, options: { allowEmpty?: boolean } = {}): string {
  if (typeof value !== 'string') throw invalidInput('prompt', value === undefined ? 'must not be empty' : 'must be a string');
  if (!options.allowEmpty && value.trim() === '') throw invalidInput('prompt', 'must not be empty');
  return value;
}

/** A preset name, or `{width, height}` with each side in [minSide, maxSide] (the path's own limit). */
export function checkImageSize(value: unknown, minSide: number, maxSide: number): ImageSize {
  if (typeof value === 'string') {
    if (!isImageSizePreset(value)) throw invalidInput('image_size', `unknown preset "${value}"; use one of ${Object.keys(IMAGE_SIZE_PRESETS).join(', ')} or {width, height}`);
    return value;
  }
  if (!isObject(value)) throw invalidInput('image_size', 'must be a preset name or an object {width, height}');
  for (const k of Object.keys(value)) if (k !== 'width' && k !== 'height') throw invalidInput(`image_size.${k}`, 'unknown field; expected width and height');
  return { width: intInRange(value.width, 'image_size.width', minSide, maxSide), height: intInRange(value.height, 'image_size.height', minSide, maxSide) };
}

export function checkSeed(value: unknown): number {
  return intInRange(value, 'seed', 0, MAX_SEED);
}

export function checkNumImages(value: unknown): number {
  return intInRange(value, 'num_images', 1, MAX_NUM_IMAGES);
}

export function checkGuidanceScale(value: unknown): number {
  return numberInRange(value, 'guidance_scale', GUIDANCE_SCALE_RANGE.min, GUIDANCE_SCALE_RANGE.max);
}

export function checkOutputFormat(value: unknown): OutputFormat {
  if (value !== 'jpeg' && value !== 'png') throw invalidInput('output_format', `must be "jpeg" or "png", got ${JSON.stringify(value)}`);
  return value;
}

export function checkBoolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw invalidInput(field, 'must be true or false');
  return value;
}

export function checkAcceleration(value: unknown): Acceleration {
  if (value !== 'none' && value !== 'regular' && value !== 'high') throw invalidInput('acceleration', 'must be "none", "regular" or "high"');
  return value;
}
