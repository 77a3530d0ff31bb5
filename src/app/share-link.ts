/**
 * Share links: the page URL reproduces a generation. Query parameters are named like fal's input fields —
 * `prompt`, `seed`, `num_inference_steps`, `image_size` (a preset name or `WxH`), `num_images`, `output_format` —
 * plus `model` for endpoints other than schnell and `run=1` to start on load. Pure (URLSearchParams only).
 * A link is anyone's to craft, so `run=1` only starts a run on this device; one that would go to fal (and spend the
 * server's fal credit) waits for a click (autoRunAction).
 */
import { FluxError, invalidInput } from '../errors.js';
import { isImageSizePreset, type ImageSize, isFluxEndpoint, type FluxEndpointId } from '../client/request-vocabulary.js';

export interface SharedSettings {
  endpoint: FluxEndpointId;
  prompt?: string;
  seed?: number;
  num_inference_steps?: number;
  image_size?: ImageSize;
  num_images?: number;
  output_format?: 'jpeg' | 'png';
  guidance_scale?: number;
}

const DEFAULT_ENDPOINT: FluxEndpointId = 'fal-ai/flux/schnell';

function intParam(p: URLSearchParams, name: string): number | undefined {
  const v = p.get(name);
  if (v === null || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw invalidInput(name, `in the link must be a whole number, got "${v}"`);
  return Number(v);
}

/**
 * Read settings from a query string. Throws FluxError('invalid_input') naming the parameter when one is malformed;
 * ranges are checked later by the same validation as any request.
 */
export function parseShareLink(search: string): { settings: SharedSettings; run: boolean } | null {
  const p = new URLSearchParams(search);
  const known = ['prompt', 'seed', 'num_inference_steps', 'image_size', 'num_images', 'output_format', 'guidance_scale', 'model'];
  if (!known.some((k) => p.has(k))) return null;
  const model = p.get('model') ?? DEFAULT_ENDPOINT;
  if (!isFluxEndpoint(model)) throw invalidInput('model', `in the link is not a FLUX endpoint: "${model}"`);
  const s: SharedSettings = { endpoint: model };
  const prompt = p.get('prompt');
  if (prompt !== null) s.prompt = prompt;
  const set = (k: 'seed' | 'num_inference_steps' | 'num_images') => {
    const v = intParam(p, k);
    if (v !== undefined) s[k] = v;
  };
  set('seed');
  set('num_inference_steps');
  set('num_images');
  const size = p.get('image_size');
  if (size !== null && size !== '') {
    const m = /^(\d+)x(\d+)$/i.exec(size);
    if (m) s.image_size = { width: Number(m[1]), height: Number(m[2]) };
    else if (isImageSizePreset(size)) s.image_size = size;
    else throw invalidInput('image_size', `in the link must be a preset name or WxH (e.g. 768x512), got "${size}"`);
  }
  const fmt = p.get('output_format');
  if (fmt !== null && fmt !== '') {
    if (fmt !== 'jpeg' && fmt !== 'png') throw invalidInput('output_format', `in the link must be jpeg or png, got "${fmt}"`);
    s.output_format = fmt;
  }
  const g = p.get('guidance_scale');
  if (g !== null && g !== '') {
    if (!Number.isFinite(Number(g))) throw invalidInput('guidance_scale', `in the link must be a number, got "${g}"`);
    s.guidance_scale = Number(g);
  }
  const run = p.get('run');
  if (run !== null && run !== '1' && run !== '0') throw new FluxError('invalid_input', `run: in the link must be 1 or 0, got "${run}"`, { field: 'run' });
  return { settings: s, run: run === '1' };
}

/** The query string for `settings` (with `run=1` when asked), in a stable order. */
export function buildShareLink(settings: SharedSettings, options: { run?: boolean } = {}): string {
  const p = new URLSearchParams();
  if (settings.endpoint !== DEFAULT_ENDPOINT) p.set('model', settings.endpoint);
  if (settings.prompt !== undefined) p.set('prompt', settings.prompt);
  if (settings.seed !== undefined) p.set('seed', String(settings.seed));
  if (settings.num_inference_steps !== undefined) p.set('num_inference_steps', String(settings.num_inference_steps));
  if (settings.image_size !== undefined) {
    p.set('image_size', typeof settings.image_size === 'string' ? settings.image_size : `${settings.image_size.width}x${settings.image_size.height}`);
  }
  if (settings.num_images !== undefined) p.set('num_images', String(settings.num_images));
  if (settings.output_format !== undefined) p.set('output_format', settings.output_format);
  if (settings.guidance_scale !== undefined) p.set('guidance_scale', String(settings.guidance_scale));
  if (options.run) p.set('run', '1');
  return `?${p.toString()}`;
}

/**
 * What a `run=1` link may do on load, given where the request would run now: run it on this device, or ask for a
 * click because it would go to fal and spend the server's credit on a stranger's link.
 */
export function autoRunAction(route: { target: 'local' | 'remote' } | null): 'run-local' | 'ask' {
  return route?.target === 'local' ? 'run-local' : 'ask';
}

/** The run-status line when a `run=1` link was not started by itself. */
export const AUTO_RUN_ASK_TEXT = 'This link asks to generate on fal, which spends the server\'s fal credit, so it did not start by itself: press Generate to run it.';
