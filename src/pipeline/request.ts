/**
 * The request a caller makes (fal's FLUX input schema plus diffusers-style reference tensors) and its
 * validated, normalised form. Validation names the field and the allowed range; nothing is clamped.
 */
import { invalidInput } from '../errors.js';
import type { FluxModelConfig } from './config.js';
import {
  checkAcceleration,
  checkBoolean,
  checkGuidanceScale,
  checkImageSize,
  checkNumImages,
  checkOutputFormat,
  checkPrompt,
  checkSeed,
  intInRange,
  isObject,
  MAX_NUM_IMAGES,
  SCHNELL_STEPS,
  type OutputFormat,
} from './fal-fields.js';
import { DEFAULT_IMAGE_SIZE, floorToMultiple, IMAGE_SIZE_PRESETS, MAX_IMAGE_SIDE, MIN_IMAGE_SIDE, type ImageSize } from './image-size.js';
import { latentSizeFor } from './latents.js';
import { randomSeed } from './random.js';

export { MAX_NUM_IMAGES, type OutputFormat };

/** A float32 tensor passed by value: C-order data and its dims. */
export interface HostTensor {
  data: Float32Array;
  dims: number[];
}

/** Input of fal-ai/flux/schnell (docs/fal-protocol.md §4.2), as accepted for local generation. */
export interface FluxSchnellInput {
  /** Required unless prompt_embeds and pooled_prompt_embeds are given. */
  prompt?: string;
  /** @defaultValue 'landscape_4_3' */
  image_size?: ImageSize;
  /** 1–12, as on fal (a pack may narrow it, saying why). @defaultValue 4 */
  num_inference_steps?: number;
  /** Integer in [0, 2^53−1]; random when omitted (reported back in the result). */
  seed?: number;
  /** 1–4. @defaultValue 1 */
  num_images?: number;
  /** @defaultValue 'jpeg' */
  output_format?: OutputFormat;
  /** @defaultValue true */
  enable_safety_checker?: boolean;
  /** true: images come back as data: URIs; false: object URLs. @defaultValue false */
  sync_mode?: boolean;
  /** Accepted for fal compatibility; has no effect locally. */
  acceleration?: 'none' | 'regular' | 'high';
  /** 1–20 as on fal, which accepts it for schnell; schnell has no guidance embedding, so it has no effect. */
  guidance_scale?: number;
  /** Initial noise, unpacked [B, C, h, w] (like diffusers' `latents`). Overrides seed-derived noise. */
  latents?: HostTensor;
  /** T5 output [B, L, D]; with pooled_prompt_embeds it replaces the text encoders. */
  prompt_embeds?: HostTensor;
  /** CLIP pooled output [B, P]. */
  pooled_prompt_embeds?: HostTensor;
}

export const FLUX_INPUT_FIELDS: readonly (keyof FluxSchnellInput)[] = [
  'prompt',
  'image_size',
  'num_inference_steps',
  'seed',
  'num_images',
  'output_format',
  'enable_safety_checker',
  'sync_mode',
  'acceleration',
  'guidance_scale',
  'latents',
  'prompt_embeds',
  'pooled_prompt_embeds',
];

/** A validated request: every default applied, sizes floored, seed chosen. */
export interface GenerationRequest {
  prompt: string;
  /** Output pixel size (multiple of 2·vaeScaleFactor). */
  width: number;
  height: number;
  latentHeight: number;
  latentWidth: number;
  steps: number;
  seed: number;
  numImages: number;
  outputFormat: OutputFormat;
  enableSafetyChecker: boolean;
  syncMode: boolean;
  latents?: HostTensor;
  promptEmbeds?: HostTensor;
  pooledPromptEmbeds?: HostTensor;
}

function checkTensor(value: unknown, field: string, rank: number, layout: string): HostTensor {
  if (!isObject(value) || !(value.data instanceof Float32Array) || !Array.isArray(value.dims)) {
    throw invalidInput(field, `must be a float32 tensor {data: Float32Array, dims: number[]} of shape ${layout}`);
  }
  const dims = value.dims as unknown[];
  if (dims.length !== rank || dims.some((d) => typeof d !== 'number' || !Number.isInteger(d) || d < 1)) {
    throw invalidInput(field, `must have shape ${layout}, got [${dims.join(', ')}]`);
  }
  const n = (dims as number[]).reduce((a, b) => a * b, 1);
  if (value.data.length !== n) throw invalidInput(field, `has ${value.data.length} values but shape [${dims.join(', ')}] needs ${n}`);
  for (let i = 0; i < value.data.length; i++) {
    if (!Number.isFinite(value.data[i]!)) throw invalidInput(field, `contains a non-finite value at index ${i}`);
  }
  return { data: value.data, dims: [...(dims as number[])] };
}

function resolveImageSize(value: unknown, multiple: number): { width: number; height: number } {
  if (value === undefined) return { ...IMAGE_SIZE_PRESETS[DEFAULT_IMAGE_SIZE] };
  // Custom sides locally: MIN_IMAGE_SIDE–MAX_IMAGE_SIDE (what a browser GPU can hold), floored to the latent grid.
  const size = checkImageSize(value, MIN_IMAGE_SIDE, MAX_IMAGE_SIDE);
  if (typeof size === 'string') return { ...IMAGE_SIZE_PRESETS[size] };
  return { width: floorToMultiple(size.width, multiple), height: floorToMultiple(size.height, multiple) };
}

/**
 * The local step range: fal's 1–12 for schnell, unless the pack's config narrows it (only with a stated reason,
 * which the error quotes).
 */
function checkSteps(value: unknown, config: FluxModelConfig): number {
  const narrowed = config.maxSteps < SCHNELL_STEPS.max;
  return intInRange(value, 'num_inference_steps', SCHNELL_STEPS.min, config.maxSteps, narrowed ? `this model pack allows at most ${config.maxSteps}: ${config.maxStepsReason ?? 'no reason given'}` : undefined);
}

/**
 * Validate a fal-style input for local generation. Throws FluxError('invalid_input') naming the field.
 * `seedSource` supplies a random seed when none is given (injectable for tests).
 */
export function validateRequest(input: unknown, config: FluxModelConfig, seedSource: () => number = randomSeed): GenerationRequest {
  if (!isObject(input)) throw invalidInput('input', 'must be an object');
  for (const k of Object.keys(input)) {
    if (!(FLUX_INPUT_FIELDS as readonly string[]).includes(k)) {
      throw invalidInput(k, `unknown field; accepted fields are ${FLUX_INPUT_FIELDS.join(', ')}`);
    }
  }
  const multiple = 2 * config.vaeScaleFactor;

  const promptEmbeds = input.prompt_embeds === undefined ? undefined : checkTensor(input.prompt_embeds, 'prompt_embeds', 3, '[B, L, D]');
  const pooled =
    input.pooled_prompt_embeds === undefined ? undefined : checkTensor(input.pooled_prompt_embeds, 'pooled_prompt_embeds', 2, '[B, P]');
  if ((promptEmbeds === undefined) !== (pooled === undefined)) {
    throw invalidInput(promptEmbeds ? 'pooled_prompt_embeds' : 'prompt_embeds', 'prompt_embeds and pooled_prompt_embeds must be given together');
  }
  if (promptEmbeds && pooled && promptEmbeds.dims[0] !== pooled.dims[0]) {
    throw invalidInput('pooled_prompt_embeds', `batch ${pooled.dims[0]} differs from prompt_embeds batch ${promptEmbeds.dims[0]}`);
  }

  // The prompt may be left out (or empty) only when the embeddings replace the text encoders.
  const prompt = promptEmbeds && input.prompt === undefined ? '' : checkPrompt(input.prompt, { allowEmpty: promptEmbeds !== undefined });

  const steps = input.num_inference_steps === undefined ? config.defaultSteps : checkSteps(input.num_inference_steps, config);
  const seed = input.seed === undefined || input.seed === null ? seedSource() : checkSeed(input.seed);
  const explicitImages = input.num_images === undefined ? undefined : checkNumImages(input.num_images);
  const outputFormat: OutputFormat = input.output_format === undefined ? 'jpeg' : checkOutputFormat(input.output_format);
  for (const k of ['enable_safety_checker', 'sync_mode'] as const) if (input[k] !== undefined) checkBoolean(input[k], k);
  if (input.acceleration !== undefined) checkAcceleration(input.acceleration);
  if (input.guidance_scale !== undefined) checkGuidanceScale(input.guidance_scale);

  // Size: from image_size, or from the latents when only they are given.
  let latents: HostTensor | undefined;
  let size: { width: number; height: number };
  let latentHeight: number;
  let latentWidth: number;
  if (input.latents !== undefined) {
    latents = checkTensor(input.latents, 'latents', 4, `[B, ${config.latentChannels}, h, w]`);
    const [, c, h, w] = latents.dims as [number, number, number, number];
    if (c !== config.latentChannels) throw invalidInput('latents', `must have ${config.latentChannels} channels (dim 1), got ${c}`);
    if (h % 2 || w % 2) throw invalidInput('latents', `height and width must be even, got ${h}×${w}`);
    latentHeight = h;
    latentWidth = w;
    if (input.image_size === undefined) {
      size = { width: w * config.vaeScaleFactor, height: h * config.vaeScaleFactor };
    } else {
      size = resolveImageSize(input.image_size, multiple);
      if (latentSizeFor(size.width, config) !== w || latentSizeFor(size.height, config) !== h) {
        throw invalidInput(
          'image_size',
          `${size.width}×${size.height} needs latents of ${latentSizeFor(size.height, config)}×${latentSizeFor(size.width, config)} (h×w) at VAE scale factor ${config.vaeScaleFactor}, but latents are ${h}×${w}`,
        );
      }
    }
  } else {
    size = resolveImageSize(input.image_size, multiple);
    latentHeight = latentSizeFor(size.height, config);
    latentWidth = latentSizeFor(size.width, config);
  }

  let numImages = explicitImages ?? 1;
  if (latents) {
    const b = latents.dims[0]!;
    if (explicitImages !== undefined && explicitImages !== b) throw invalidInput('num_images', `is ${explicitImages} but latents have batch ${b}`);
    if (b > MAX_NUM_IMAGES) throw invalidInput('latents', `batch must be between 1 and ${MAX_NUM_IMAGES}, got ${b}`);
    numImages = b;
  } else if (promptEmbeds && explicitImages === undefined) {
    const b = promptEmbeds.dims[0]!;
    if (b > MAX_NUM_IMAGES) throw invalidInput('prompt_embeds', `batch must be between 1 and ${MAX_NUM_IMAGES}, got ${b}`);
    numImages = b;
  }
  if (promptEmbeds) {
    const b = promptEmbeds.dims[0]!;
    if (b !== 1 && b !== numImages) throw invalidInput('prompt_embeds', `batch must be 1 or ${numImages} (the number of images), got ${b}`);
  }

  const request: GenerationRequest = {
    prompt,
    width: size.width,
    height: size.height,
    latentHeight,
    latentWidth,
    steps,
    seed,
    numImages,
    outputFormat,
    enableSafetyChecker: (input.enable_safety_checker as boolean | undefined) ?? true,
    syncMode: (input.sync_mode as boolean | undefined) ?? false,
  };
  if (latents) request.latents = latents;
  if (promptEmbeds && pooled) {
    request.promptEmbeds = promptEmbeds;
    request.pooledPromptEmbeds = pooled;
  }
  return request;
}
