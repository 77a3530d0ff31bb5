import { describe, expect, it } from 'vitest';
import { TimingHistory, type KeyValueStore } from '../../../src/app/estimate.js';
import { buildShareLink, parseShareLink } from '../../../src/app/share-link.js';

describe('share links', () => {
  it('round-trips every field, with fal parameter names', () => {
    const settings = { endpoint: 'fal-ai/flux/schnell' as const, prompt: 'a "quoted" & odd prompt ✓', seed: 42, num_inference_steps: 3, image_size: { width: 768, height: 512 }, num_images: 2, output_format: 'png' as const };
    const q = buildShareLink(settings, { run: true });
    expect(q).toBe('?prompt=a+%22quoted%22+%26+odd+prompt+%E2%9C%93&seed=42&num_inference_steps=3&image_size=768x512&num_images=2&output_format=png&run=1');
    expect(parseShareLink(q)).toEqual({ settings, run: true });
  });

  it('takes preset names and other endpoints', () => {
    expect(parseShareLink('?model=fal-ai/flux/dev&prompt=x&image_size=portrait_4_3&guidance_scale=4.5')).toEqual({
      settings: { endpoint: 'fal-ai/flux/dev', prompt: 'x', image_size: 'portrait_4_3', guidance_scale: 4.5 },
      run: false,
    });
  });

  it('ignores pages without generation parameters', () => {
    expect(parseShareLink('')).toBeNull();
    expect(parseShareLink('?ort=jspi')).toBeNull();
  });

  it.each([
    ['?prompt=x&seed=-1', 'seed', /whole number/],
    ['?prompt=x&num_inference_steps=2.5', 'num_inference_steps', /whole number/],
    ['?prompt=x&image_size=huge', 'image_size', /preset name or WxH/],
    ['?prompt=x&output_format=gif', 'output_format', /jpeg or png/],
    ['?prompt=x&model=fal-ai/other', 'model', /not a FLUX endpoint/],
    ['?prompt=x&run=yes', 'run', /1 or 0/],
  ])('%s → error on %s', (q, field, message) => {
    try {
      parseShareLink(q);
      throw new Error('expected an error');
    } catch (e) {
      expect((e as { field?: string }).field).toBe(field);
      expect((e as Error).message).toMatch(message);
    }
  });
});

function memory(): KeyValueStore & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return { data, getItem: (k) => data.get(k) ?? null, setItem: (k, v) => void data.set(k, v) };
}

describe('TimingHistory', () => {
  const shape = { target: 'local' as const, endpoint: 'fal-ai/flux/schnell', width: 512, height: 512, steps: 4, images: 1 };

  it('averages runs of the same shape and scales from the nearest other shape', () => {
    const t = new TimingHistory(memory());
    expect(t.estimate(shape)).toBeNull();
    t.record(shape, 1000);
    t.record(shape, 2000);
    expect(t.estimate(shape)).toBe(1500);
    expect(t.estimate({ ...shape, steps: 2 })).toBe(750); // half the work
    expect(t.estimate({ ...shape, width: 1024, height: 1024 })).toBe(6000);
    expect(t.estimate({ ...shape, target: 'remote' })).toBeNull(); // different place: no guess
  });

  it('does not scale remote times by pixels, and survives corrupt storage', () => {
    const store = memory();
    const t = new TimingHistory(store);
    t.record({ ...shape, target: 'remote' }, 4000);
    expect(t.estimate({ ...shape, target: 'remote', width: 1024, height: 1024 })).toBe(4000);
    store.data.set('flux-webgpu:timings', '{not json');
    expect(t.estimate(shape)).toBeNull();
    t.record(shape, 10);
    expect(t.estimate(shape)).toBe(10);
  });
});
