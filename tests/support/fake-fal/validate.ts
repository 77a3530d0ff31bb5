/**
 * FLUX input validation as fal reports it: a Pydantic-v2-style `detail` array (docs/fal-protocol.md §4.2, §5.1).
 * The queue accepts anything at submit; these errors surface at result time (or directly on the sync host).
 * Ranges marked [unverified] in the doc are enforced anyway so the app's error UI gets exercised.
 */
import { IMAGE_SIZE_PRESETS, type ImageSize } from './images.js';

export type FluxEndpoint =
  | 'fal-ai/flux/schnell'
  | 'fal-ai/flux/dev'
  | 'fal-ai/flux/dev/image-to-image'
  | 'fal-ai/flux/schnell/redux'
  | 'fal-ai/flux/dev/redux';

interface EndpointSpec {
  prompt: boolean;
  imageUrl: boolean;
  /** image-to-image has no image_size: its output follows the input image. */
  imageSize: boolean;
  guidance: boolean;
  strength: boolean;
  steps: { default: number; max: number };
}

const ENDPOINTS: Record<FluxEndpoint, EndpointSpec> = {
  'fal-ai/flux/schnell': { prompt: true, imageUrl: false, imageSize: true, guidance: true, strength: false, steps: { default: 4, max: 12 } },
  'fal-ai/flux/dev': { prompt: true, imageUrl: false, imageSize: true, guidance: true, strength: false, steps: { default: 28, max: 50 } },
  'fal-ai/flux/dev/image-to-image': { prompt: true, imageUrl: true, imageSize: false, guidance: true, strength: true, steps: { default: 40, max: 50 } },
  'fal-ai/flux/dev/redux': { prompt: false, imageUrl: true, imageSize: true, guidance: true, strength: false, steps: { default: 28, max: 50 } },
  'fal-ai/flux/schnell/redux': { prompt: false, imageUrl: true, imageSize: true, guidance: false, strength: false, steps: { default: 4, max: 12 } },
};

export function isFluxEndpoint(id: string): id is FluxEndpoint {
  return Object.hasOwn(ENDPOINTS, id);
}

export interface FieldError {
  loc: (string | number)[];
  msg: string;
  type: string;
  input: unknown;
  ctx?: Record<string, unknown>;
}

export interface FluxParams {
  /** '' for the redux endpoints, which take no prompt. */
  prompt: string;
  steps: number;
  numImages: number;
  outputFormat: 'jpeg' | 'png';
  seed: number | null;
  /** null: follow the input image (image-to-image). */
  imageSize: ImageSize | null;
  imageUrl: string | null;
  syncMode: boolean;
}

export type Validation = { ok: true; params: FluxParams } | { ok: false; errors: FieldError[] };

const MAX_SIDE = 14142;

/** Validates a raw request body for `endpoint`, collecting every error like Pydantic does. */
export function validateInput(endpoint: FluxEndpoint, bodyText: string): Validation {
  const spec = ENDPOINTS[endpoint];
  let input: unknown;
  try {
    input = bodyText.trim() === '' ? undefined : JSON.parse(bodyText);
  } catch (e) {
    return fail([{ loc: ['body', 0], msg: 'JSON decode error', type: 'json_invalid', input: {}, ctx: { error: (e as Error).message } }]);
  }
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return fail([{ loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from', type: 'model_attributes_type', input: input ?? null }]);
  }
  const body = input as Record<string, unknown>;
  const errors: FieldError[] = [];
  const v = new Fields(body, errors);

  const prompt = spec.prompt ? v.string('prompt', true) : '';
  const imageUrl = spec.imageUrl ? v.url('image_url') : null;
  const steps = v.int('num_inference_steps', spec.steps.default, 1, spec.steps.max);
  const numImages = v.int('num_images', 1, 1, 4);
  if (spec.guidance) v.number('guidance_scale', 1, 20);
  if (spec.strength) v.number('strength', 0.01, 1);
  const seed = v.int('seed', null, null, null);
  const outputFormat = v.literal('output_format', ['jpeg', 'png'] as const, 'jpeg');
  v.literal('acceleration', ['none', 'regular', 'high'] as const, 'none');
  v.bool('enable_safety_checker', true);
  const syncMode = v.bool('sync_mode', false);
  const imageSize = spec.imageSize ? v.imageSize('image_size') : null;

  if (errors.length > 0) return fail(errors);
  return {
    ok: true,
    params: { prompt: prompt ?? '', steps: steps ?? spec.steps.default, numImages: numImages ?? 1, outputFormat: outputFormat ?? 'jpeg', seed, imageSize, imageUrl, syncMode },
  };
}

function fail(errors: FieldError[]): Validation {
  return { ok: false, errors };
}

/** Field checkers; each returns the value (or default) and pushes errors with Pydantic's types and messages. */
class Fields {
  constructor(
    private readonly body: Record<string, unknown>,
    private readonly errors: FieldError[],
  ) {}

  private error(loc: (string | number)[], type: string, msg: string, input: unknown, ctx?: Record<string, unknown>): null {
    this.errors.push(ctx ? { loc: ['body', ...loc], msg, type, input, ctx } : { loc: ['body', ...loc], msg, type, input });
    return null;
  }

  string(name: string, required: boolean): string | null {
    const value = this.body[name];
    if (value === undefined) return required ? this.error([name], 'missing', 'Field required', this.body) : null;
    if (typeof value !== 'string') return this.error([name], 'string_type', 'Input should be a valid string', value);
    return value;
  }

  /** fal takes image URLs as http(s) URLs or data URIs. */
  url(name: string): string | null {
    const value = this.string(name, true);
    if (value === null) return null;
    if (/^data:/i.test(value)) return value;
    try {
      const u = new URL(value);
      if (u.protocol === 'http:' || u.protocol === 'https:') return value;
    } catch {
      // fall through to the error
    }
    return this.error([name], 'url_parsing', 'Input should be a valid URL', value);
  }

  int<D extends number | null>(name: string, dflt: D, min: number | null, max: number | null, loc: string[] = [name], raw: unknown = this.body[name]): number | D {
    if (raw === undefined) return dflt;
    // Pydantic's lax mode also takes integer strings.
    const value = typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : raw;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      this.error(loc, 'int_type', 'Input should be a valid integer', raw);
      return dflt;
    }
    if (!Number.isInteger(value)) {
      this.error(loc, 'int_from_float', 'Input should be a valid integer, got a number with a fractional part', raw);
      return dflt;
    }
    return this.range(loc, value, min, max) ? value : dflt;
  }

  number(name: string, min: number, max: number): number | null {
    const raw = this.body[name];
    if (raw === undefined) return null;
    const value = typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
    if (typeof value !== 'number' || !Number.isFinite(value)) return this.error([name], 'float_type', 'Input should be a valid number', raw);
    return this.range([name], value, min, max) ? value : null;
  }

  private range(loc: string[], value: number, min: number | null, max: number | null): boolean {
    if (min !== null && value < min) {
      this.error(loc, 'greater_than_equal', `Input should be greater than or equal to ${min}`, value, { ge: min });
      return false;
    }
    if (max !== null && value > max) {
      this.error(loc, 'less_than_equal', `Input should be less than or equal to ${max}`, value, { le: max });
      return false;
    }
    return true;
  }

  bool(name: string, dflt: boolean): boolean {
    const value = this.body[name];
    if (value === undefined) return dflt;
    if (typeof value !== 'boolean') {
      this.error([name], 'bool_type', 'Input should be a valid boolean', value);
      return dflt;
    }
    return value;
  }

  literal<T extends string>(name: string, allowed: readonly T[], dflt: T): T | null {
    const value = this.body[name];
    if (value === undefined) return dflt;
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
    return this.error([name], 'literal_error', `Input should be ${quoteList(allowed)}`, value, { expected: quoteList(allowed) });
  }

  /** A preset name or `{width, height}` (each default 512, 0 < side <= 14142 as in fal's toolkit). */
  imageSize(name: string): ImageSize | null {
    const value = this.body[name];
    if (value === undefined) return IMAGE_SIZE_PRESETS.landscape_4_3;
    if (typeof value === 'string') {
      const preset = Object.hasOwn(IMAGE_SIZE_PRESETS, value) ? IMAGE_SIZE_PRESETS[value as keyof typeof IMAGE_SIZE_PRESETS] : undefined;
      if (preset) return preset;
      const names = Object.keys(IMAGE_SIZE_PRESETS);
      return this.error([name], 'literal_error', `Input should be ${quoteList(names)}`, value, { expected: quoteList(names) });
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return this.error([name], 'model_type', 'Input should be a valid dictionary or instance of ImageSize', value);
    }
    const obj = value as Record<string, unknown>;
    const before = this.errors.length;
    const side = (key: 'width' | 'height'): number => {
      const n = this.int(key, 512, null, MAX_SIDE, [name, key], obj[key]);
      if (n <= 0) this.error([name, key], 'greater_than', 'Input should be greater than 0', n, { gt: 0 });
      return n;
    };
    const width = side('width');
    const height = side('height');
    return this.errors.length === before ? { width, height } : null;
  }
}

/** Pydantic's "'a', 'b' or 'c'". */
function quoteList(values: readonly string[]): string {
  const q = values.map((v) => `'${v}'`);
  return q.length === 1 ? q[0]! : `${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}`;
}
