import { describe, expect, it } from 'vitest';
import { decideRoute, type LocalAvailability } from '../../../src/client/routing.js';
import { FluxError } from '../../../src/errors.js';
import { FLUX_ENDPOINTS, validateRemoteInput } from '../../../src/remote/endpoints.js';
import type { CapacityDecision } from '../../../src/runtime/capacity.js';

function fails(f: () => unknown): FluxError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(FluxError);
    return e as FluxError;
  }
  throw new Error('expected a FluxError');
}

describe('validateRemoteInput', () => {
  it('accepts each endpoint’s own fields and keeps only what was given', () => {
    expect(validateRemoteInput('fal-ai/flux/dev', { prompt: 'x', num_inference_steps: 50, guidance_scale: 20, image_size: 'square_hd' })).toEqual({
      prompt: 'x',
      num_inference_steps: 50,
      guidance_scale: 20,
      image_size: 'square_hd',
    });
    expect(validateRemoteInput('fal-ai/flux/schnell/redux', { image_url: 'https://example.com/a.png', num_inference_steps: 12 })).toEqual({
      image_url: 'https://example.com/a.png',
      num_inference_steps: 12,
    });
    expect(validateRemoteInput('fal-ai/flux/dev/image-to-image', { prompt: 'p', image_url: 'data:image/png;base64,AAAA', strength: 0.95 }).strength).toBe(0.95);
  });

  it.each([
    ['fal-ai/flux/schnell', { prompt: 'x', num_inference_steps: 13 }, 'num_inference_steps', /between 1 and 12, got 13/],
    ['fal-ai/flux/dev', { prompt: 'x', num_inference_steps: 0 }, 'num_inference_steps', /between 1 and 50/],
    ['fal-ai/flux/dev', { prompt: 'x', guidance_scale: 25 }, 'guidance_scale', /from 1 to 20, got 25/],
    ['fal-ai/flux/dev', { prompt: '  ' }, 'prompt', /must not be empty/],
    ['fal-ai/flux/dev', {}, 'prompt', /must not be empty/],
    ['fal-ai/flux/dev/redux', { prompt: 'x', image_url: 'https://a/b.png' }, 'prompt', /not an input of fal-ai\/flux\/dev\/redux/],
    ['fal-ai/flux/dev/redux', {}, 'image_url', /is required/],
    ['fal-ai/flux/dev/redux', { image_url: 'ftp://a/b.png' }, 'image_url', /http\(s\) or data: URL/],
    ['fal-ai/flux/dev/redux', { image_url: 'data:text/plain;base64,AAAA' }, 'image_url', /data: URI of an image/],
    ['fal-ai/flux/dev/image-to-image', { prompt: 'x', image_url: 'https://a/b.png', strength: 0 }, 'strength', /above 0 up to 1/],
    ['fal-ai/flux/dev/image-to-image', { prompt: 'x', image_url: 'https://a/b.png', image_size: 'square' }, 'image_size', /not an input/],
    ['fal-ai/flux/schnell/redux', { image_url: 'https://a/b.png', guidance_scale: 3 }, 'guidance_scale', /not an input/],
    ['fal-ai/flux/dev', { prompt: 'x', num_images: 5 }, 'num_images', /between 1 and 4/],
    ['fal-ai/flux/dev', { prompt: 'x', image_size: 'huge' }, 'image_size', /unknown preset "huge"/],
    ['fal-ai/flux/dev', { prompt: 'x', image_size: { width: 0, height: 512 } }, 'image_size.width', /between 1 and 14142/],
    ['fal-ai/flux/dev', { prompt: 'x', output_format: 'webp' }, 'output_format', /"jpeg" or "png"/],
    ['fal-ai/flux/dev', { prompt: 'x', sync_mode: 'yes' }, 'sync_mode', /true or false/],
  ] as const)('%s %j → %s', (endpoint, input, field, message) => {
    const e = fails(() => validateRemoteInput(endpoint, input));
    expect(e.code).toBe('invalid_input');
    expect(e.field).toBe(field);
    expect(e.message).toMatch(message);
  });

  it('refuses data: URIs over fal’s 10 MiB limit', () => {
    const big = 'data:image/png;base64,' + 'A'.repeat(10 * 1024 * 1024);
    expect(fails(() => validateRemoteInput('fal-ai/flux/dev/redux', { image_url: big })).message).toMatch(/fal accepts up to/);
  });

  it('accepts image files and refuses other files', () => {
    expect(validateRemoteInput('fal-ai/flux/dev/redux', { image_url: new Blob([new Uint8Array(4)], { type: 'image/png' }) }).image_url).toBeInstanceOf(Blob);
    expect(fails(() => validateRemoteInput('fal-ai/flux/dev/redux', { image_url: new Blob(['x'], { type: 'text/plain' }) })).message).toMatch(/must be an image file/);
  });
});

const capable: CapacityDecision = { canRunLocally: true, reason: 'fits', plan: 'all-resident', resident: [], neededBytes: 1, budgetBytes: 2, checks: [] } as unknown as CapacityDecision;
const tooSmall = { ...capable, canRunLocally: false, plan: null, reason: 'it needs at least 11 GB of GPU memory and 4 GB could be allocated' } as unknown as CapacityDecision;
const ready: LocalAvailability = { webgpuError: null, packId: 'flux1-schnell', capacity: capable };

describe('decideRoute', () => {
  it('runs schnell locally when the device can, with the plan as the reason', () => {
    expect(decideRoute('fal-ai/flux/schnell', 'auto', ready, true)).toMatchObject({ target: 'local', reason: 'Runs on this device (all-resident plan)' });
  });

  it.each([
    [{ webgpuError: 'no adapter', packId: null, capacity: null }, /no usable WebGPU \(no adapter\)/],
    [{ webgpuError: null, packId: null, capacity: null }, /no FLUX.1 \[schnell\] model is installed/],
    [{ webgpuError: null, packId: 'p', capacity: tooSmall }, /lacks the capacity: it needs at least 11 GB/],
  ])('sends schnell to fal when the device cannot, and says why (%#)', (local, why) => {
    const d = decideRoute('fal-ai/flux/schnell', 'auto', local, true);
    expect(d.target).toBe('remote');
    expect(d.reason).toMatch(/^Sent to fal because /);
    expect(d.reason).toMatch(why);
  });

  it('honours the user’s override both ways', () => {
    expect(decideRoute('fal-ai/flux/schnell', 'remote', ready, true)).toMatchObject({ target: 'remote', reason: 'Remote was chosen' });
    expect(decideRoute('fal-ai/flux/schnell', 'local', { ...ready, capacity: tooSmall }, true)).toMatchObject({ target: 'local', reason: expect.stringMatching(/^Local was chosen, although this device lacks/) });
  });

  it('sends every other endpoint to fal, and never sends a forced-local request away', () => {
    for (const id of FLUX_ENDPOINTS.filter((e) => e !== 'fal-ai/flux/schnell')) {
      expect(decideRoute(id, 'auto', ready, true)).toMatchObject({ target: 'remote', reason: expect.stringMatching(/runs on fal's servers/) });
      const e = fails(() => decideRoute(id, 'local', ready, true));
      expect(e.code).toBe('local_unavailable');
      expect(e.message).toMatch(/cannot run in this browser/);
    }
  });

  it('explains a remote route with no proxy configured', () => {
    const e = fails(() => decideRoute('fal-ai/flux/dev', 'auto', null, false));
    expect(e.code).toBe('remote_unavailable');
    expect(e.message).toMatch(/no fal proxy is configured/);
  });
});
