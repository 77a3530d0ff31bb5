/**
 * The fake FLUX model: validated input → the §4.3 output (or the model's 422), with real image bytes.
 * Shared by the queue result and the synchronous fal.run host.
 */
import { randomInt } from 'node:crypto';
import { CONTENT_TYPES, EXTENSIONS, IMAGE_SIZE_PRESETS, parseDataUri, renderImage, sniffImageSize, toDataUri, type ImageSize } from './images.js';
import { validateInput, type FieldError, type FluxEndpoint } from './validate.js';

export interface ModelReply {
  status: number;
  body: unknown;
  headers: Record<string, string>;
}

export interface StoredFile {
  bytes: Buffer;
  contentType: string;
}

export interface ModelContext {
  /** Origin for `/files/...` image URLs. */
  origin: string;
  /** Names the output files (`<requestId>-<n>.<ext>`). */
  requestId: string;
  /** Bytes behind an http(s) URL the fake serves itself (uploads, earlier outputs), so image-to-image can echo its size. */
  lookupFile(url: string): StoredFile | undefined;
  /** Where output files go (not used with sync_mode, whose images come back inline, as on fal). */
  saveFile(name: string, file: StoredFile): void;
}

/** Seconds per step reported in timings/metrics; only the shape matters. */
export function inferenceSeconds(steps: number): number {
  return Math.round(steps * 0.05 * 1000) / 1000;
}

/** Steps the job will log while in progress, or 0 when the input fails validation (the model never runs). */
export function plannedSteps(endpoint: FluxEndpoint, bodyText: string): number {
  const check = validateInput(endpoint, bodyText);
  return check.ok ? check.params.steps : 0;
}

export function runModel(endpoint: FluxEndpoint, bodyText: string, ctx: ModelContext): ModelReply {
  const check = validateInput(endpoint, bodyText);
  if (!check.ok) return modelError(check.errors);
  const p = check.params;

  let size: ImageSize | null = p.imageSize;
  if (p.imageUrl !== null) {
    const source = loadSource(p.imageUrl, ctx);
    if (source === 'error') {
      return modelError([
        { loc: ['body', 'image_url'], msg: 'Failed to load the image. Please ensure the image file is not corrupted and is in a supported format.', type: 'image_load_error', input: p.imageUrl },
      ]);
    }
    // image-to-image follows the input image when we can read its size.
    size ??= source;
  }
  size ??= IMAGE_SIZE_PRESETS.landscape_4_3;

  const seed = p.seed ?? randomInt(2 ** 31);
  const contentType = CONTENT_TYPES[p.outputFormat];
  const images = Array.from({ length: p.numImages }, (_, n) => {
    const bytes = renderImage(size, `${seed}|${p.prompt}|${p.imageUrl ?? ''}|${n}`, p.outputFormat);
    let url: string;
    if (p.syncMode) url = toDataUri(bytes, contentType);
    else {
      const name = `${ctx.requestId}-${n}.${EXTENSIONS[p.outputFormat]}`;
      ctx.saveFile(name, { bytes, contentType });
      url = `${ctx.origin}/files/${name}`;
    }
    return { url, width: size.width, height: size.height, content_type: contentType };
  });
  return {
    status: 200,
    body: {
      images,
      timings: { inference: inferenceSeconds(p.steps) },
      seed,
      has_nsfw_concepts: images.map(() => false),
      prompt: p.prompt,
    },
    headers: {},
  };
}

function modelError(detail: FieldError[]): ModelReply {
  return { status: 422, body: { detail }, headers: { 'x-fal-retryable': 'false' } };
}

/** The source image's size when readable, null when unknown (e.g. a remote URL), 'error' for a broken data URI. */
function loadSource(url: string, ctx: ModelContext): ImageSize | null | 'error' {
  if (/^data:/i.test(url)) {
    const data = parseDataUri(url);
    if (!data) return 'error';
    const size = sniffImageSize(data.bytes);
    if (!size && /^image\/(png|jpe?g)$/i.test(data.contentType)) return 'error';
    return size && { width: size.width, height: size.height };
  }
  const file = ctx.lookupFile(url);
  const size = file && sniffImageSize(file.bytes);
  return size ? { width: size.width, height: size.height } : null;
}
