/**
 * fal's FLUX endpoints and their input schemas (docs/fal-protocol.md §4), validated before anything is
 * sent so a bad field fails here with its name and range, not as a queued request that fails at result time.
 * Ranges fal does not document are kept wide; fal's own 422 then names the field (fal-remote.ts).
 */
import { invalidInput } from '../errors.js';
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
  numberInRange,
  SCHNELL_STEPS,
} from '../pipeline/fal-fields.js';
import type { ImageSize } from '../pipeline/image-size.js';

export const FLUX_ENDPOINTS = [
  'fal-ai/flux/schnell',
  'fal-ai/flux/dev',
  'fal-ai/flux/dev/image-to-image',
  'fal-ai/flux/schnell/redux',
  'fal-ai/flux/dev/redux',
] as const;

export type FluxEndpointId = (typeof FLUX_ENDPOINTS)[number];

export function isFluxEndpoint(id: unknown): id is FluxEndpointId {
  return typeof id === 'string' && (FLUX_ENDPOINTS as readonly string[]).includes(id);
}

/** Inputs of every FLUX endpoint (a field an endpoint lacks is refused for it). */
export interface FluxRemoteInput {
  prompt?: string;
  /** An http(s) or data: URL, or a Blob/File (sent as a data: URI up to fal's limit, else uploaded). */
  image_url?: string | Blob;
  image_size?: ImageSize;
  num_inference_steps?: number;
  guidance_scale?: number;
  strength?: number;
  seed?: number;
  num_images?: number;
  enable_safety_checker?: boolean;
  output_format?: 'jpeg' | 'png';
  sync_mode?: boolean;
  acceleration?: 'none' | 'regular' | 'high';
}

interface EndpointSchema {
  /** Human name for messages and the UI. */
  title: string;
  prompt: 'required' | 'absent';
  imageUrl: 'required' | 'absent';
  imageSize: boolean;
  steps: { readonly min: number; readonly max: number; readonly default: number };
  guidance: boolean;
  strength: boolean;
}

const COMMON = ['seed', 'num_images', 'enable_safety_checker', 'output_format', 'sync_mode', 'acceleration'] as const;

export const ENDPOINT_SCHEMAS: Readonly<Record<FluxEndpointId, EndpointSchema>> = {
  'fal-ai/flux/schnell': { title: 'FLUX.1 [schnell]', prompt: 'required', imageUrl: 'absent', imageSize: true, steps: SCHNELL_STEPS, guidance: true, strength: false },
  'fal-ai/flux/dev': { title: 'FLUX.1 [dev]', prompt: 'required', imageUrl: 'absent', imageSize: true, steps: { min: 1, max: 50, default: 28 }, guidance: true, strength: false },
  'fal-ai/flux/dev/image-to-image': { title: 'FLUX.1 [dev] image-to-image', prompt: 'required', imageUrl: 'required', imageSize: false, steps: { min: 1, max: 50, default: 40 }, guidance: true, strength: true },
  'fal-ai/flux/schnell/redux': { title: 'FLUX.1 [schnell] Redux', prompt: 'absent', imageUrl: 'required', imageSize: true, steps: SCHNELL_STEPS, guidance: false, strength: false },
  'fal-ai/flux/dev/redux': { title: 'FLUX.1 [dev] Redux', prompt: 'absent', imageUrl: 'required', imageSize: true, steps: { min: 1, max: 50, default: 28 }, guidance: true, strength: false },
};

/** fal's toolkit accepts data: URIs up to 10 MiB (docs/fal-protocol.md §4.2); larger images are uploaded. */
export const MAX_DATA_URI_CHARS = 10 * 1024 * 1024;
/** Largest custom side fal's toolkit accepts. */
export const MAX_REMOTE_SIDE = 14142;

export function fieldsOf(endpoint: FluxEndpointId): string[] {
  const s = ENDPOINT_SCHEMAS[endpoint];
  return [
    ...(s.prompt === 'required' ? ['prompt'] : []),
    ...(s.imageUrl === 'required' ? ['image_url'] : []),
    ...(s.imageSize ? ['image_size'] : []),
    'num_inference_steps',
    ...(s.guidance ? ['guidance_scale'] : []),
    ...(s.strength ? ['strength'] : []),
    ...COMMON,
  ];
}

function imageUrl(value: unknown): string | Blob {
  if (typeof Blob !== 'undefined' && value instanceof Blob) {
    if (!/^image\//.test(value.type)) throw invalidInput('image_url', `must be an image file, got type "${value.type || 'unknown'}"`);
    return value;
  }
  if (typeof value !== 'string' || value === '') throw invalidInput('image_url', 'is required: an image URL (https: or data:) or an image file');
  if (/^data:/i.test(value)) {
    if (!/^data:image\/[a-z0-9.+-]+;base64,/i.test(value)) throw invalidInput('image_url', 'must be a base64 data: URI of an image');
    if (value.length > MAX_DATA_URI_CHARS) throw invalidInput('image_url', `data: URI is ${value.length} characters; fal accepts up to ${MAX_DATA_URI_CHARS} (pass the file instead, it is uploaded)`);
    return value;
  }
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw invalidInput('image_url', `is not a URL: ${JSON.stringify(value.slice(0, 80))}`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw invalidInput('image_url', `must be an http(s) or data: URL, got ${u.protocol}`);
  return value;
}

/**
 * Check `input` against `endpoint`'s schema. Returns a copy with only the fields sent to fal; defaults are left
 * to fal. Throws FluxError('invalid_input') naming the field and the allowed range.
 */
export function validateRemoteInput(endpoint: FluxEndpointId, input: unknown): FluxRemoteInput {
  const s = ENDPOINT_SCHEMAS[endpoint];
  if (!isObject(input)) throw invalidInput('input', 'must be an object');
  const allowed = fieldsOf(endpoint);
  for (const k of Object.keys(input)) {
    if (input[k] === undefined) continue;
    if (!allowed.includes(k)) throw invalidInput(k, `is not an input of ${endpoint}; its inputs are ${allowed.join(', ')}`);
  }
  const out: FluxRemoteInput = {};
  if (s.prompt === 'required') out.prompt = checkPrompt(input.prompt);
  if (s.imageUrl === 'required') out.image_url = imageUrl(input.image_url);
  if (input.image_size !== undefined) out.image_size = checkImageSize(input.image_size, 1, MAX_REMOTE_SIDE);
  if (input.num_inference_steps !== undefined) out.num_inference_steps = intInRange(input.num_inference_steps, 'num_inference_steps', s.steps.min, s.steps.max);
  if (input.guidance_scale !== undefined) out.guidance_scale = checkGuidanceScale(input.guidance_scale);
  if (input.strength !== undefined) out.strength = numberInRange(input.strength, 'strength', 0, 1, true);
  if (input.seed !== undefined && input.seed !== null) out.seed = checkSeed(input.seed);
  if (input.num_images !== undefined) out.num_images = checkNumImages(input.num_images);
  for (const k of ['enable_safety_checker', 'sync_mode'] as const) if (input[k] !== undefined) out[k] = checkBoolean(input[k], k);
  if (input.output_format !== undefined) out.output_format = checkOutputFormat(input.output_format);
  if (input.acceleration !== undefined) out.acceleration = checkAcceleration(input.acceleration);
  return out;
}
