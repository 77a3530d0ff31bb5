import { describe, expect, it } from 'vitest';
import { expectFluxError } from '../../support/errors.js';
import { FLUX_SCHNELL_CONFIG, resolveModelConfig } from '../../../src/pipeline/config.js';
import { IMAGE_SIZE_PRESETS } from '../../../src/pipeline/image-size.js';
import { validateRequest } from '../../../src/pipeline/request.js';
import { validateRemoteInput } from '../../../src/remote/endpoints.js';
import { FluxError } from '../../../src/errors.js';

const cfg = FLUX_SCHNELL_CONFIG;
const seed = () => 777;
const tensor = (dims: number[]) => ({ data: new Float32Array(dims.reduce((a, b) => a * b, 1)), dims });

function expectInvalid(input: unknown, field: string, message: RegExp) {
  expectFluxError(() => validateRequest(input, cfg, seed), 'invalid_input', field, message);
}

describe('validateRequest: defaults (fal-ai/flux/schnell)', () => {
  it('landscape_4_3, 4 steps, 1 image, jpeg, safety on, async URLs, random seed reported', () => {
    const r = validateRequest({ prompt: 'a cat' }, cfg, seed);
    expect(r).toMatchObject({
      prompt: 'a cat',
      width: 1024,
      height: 768,
      latentWidth: 128,
      latentHeight: 96,
      steps: 4,
      numImages: 1,
      outputFormat: 'jpeg',
      enableSafetyChecker: true,
      syncMode: false,
      seed: 777,
    });
  });
  it.each(Object.entries(IMAGE_SIZE_PRESETS))('preset %s', (name, size) => {
    const r = validateRequest({ prompt: 'x', image_size: name }, cfg, seed);
    expect([r.width, r.height]).toEqual([size.width, size.height]);
  });
  it('custom sizes are floored to multiples of 16', () => {
    const r = validateRequest({ prompt: 'x', image_size: { width: 72, height: 57 } }, cfg, seed);
    expect([r.width, r.height, r.latentWidth, r.latentHeight]).toEqual([64, 48, 8, 6]);
  });
  it('keeps an explicit seed, including 0', () => {
    expect(validateRequest({ prompt: 'x', seed: 0 }, cfg, seed).seed).toBe(0);
  });
});

describe('validateRequest: bad input names the field and the range', () => {
  it.each([
    [{ prompt: 'x', num_inference_steps: 0 }, 'num_inference_steps', /between 1 and 12, got 0/],
    [{ prompt: 'x', num_inference_steps: 13 }, 'num_inference_steps', /between 1 and 12, got 13/],
    [{ prompt: 'x', num_inference_steps: 2.5 }, 'num_inference_steps', /integer/],
    [{ prompt: 'x', num_images: 5 }, 'num_images', /between 1 and 4/],
    [{ prompt: 'x', num_images: 0 }, 'num_images', /between 1 and 4/],
    [{ prompt: 'x', image_size: { width: 10, height: 512 } }, 'image_size.width', /between 16 and 2048/],
    [{ prompt: 'x', image_size: { width: 512, height: 4096 } }, 'image_size.height', /between 16 and 2048/],
    [{ prompt: 'x', image_size: { width: 512 } }, 'image_size.height', /integer/],
    [{ prompt: 'x', image_size: { width: 512, height: 512, depth: 3 } }, 'image_size.depth', /unknown field/],
    [{ prompt: '' }, 'prompt', /must not be empty/],
    [{ prompt: '   ' }, 'prompt', /must not be empty/],
    [{}, 'prompt', /must not be empty/],
    [{ prompt: 42 }, 'prompt', /string/],
    [{ prompt: 'x', image_size: 'square_xl' }, 'image_size', /unknown preset "square_xl".*square_hd/],
    [{ prompt: 'x', output_format: 'webp' }, 'output_format', /"jpeg" or "png"/],
    [{ prompt: 'x', seed: -1 }, 'seed', /between 0 and/],
    [{ prompt: 'x', seed: 'abc' }, 'seed', /integer/],
    [{ prompt: 'x', sync_mode: 'yes' }, 'sync_mode', /true or false/],
    [{ prompt: 'x', num_inference_step: 2 }, 'num_inference_step', /unknown field/],
    [{ prompt: 'x', acceleration: 'turbo' }, 'acceleration', /none/],
  ])('%j → %s', (input, field, message) => expectInvalid(input, field, message));
  it('rejects a non-object', () => expectInvalid('a cat', 'input', /object/));
});

describe('validateRequest: reference tensors (diffusers-style)', () => {
  it('takes size and batch from the latents', () => {
    const r = validateRequest({ latents: tensor([2, 16, 6, 8]), prompt: 'x' }, cfg, seed);
    expect([r.width, r.height, r.numImages, r.latentHeight, r.latentWidth]).toEqual([64, 48, 2, 6, 8]);
  });
  it('embeddings replace the prompt; their shapes are whatever the caller gives', () => {
    const r = validateRequest({ prompt_embeds: tensor([1, 77, 64]), pooled_prompt_embeds: tensor([1, 32]) }, cfg, seed);
    expect(r.promptEmbeds!.dims).toEqual([1, 77, 64]);
    expect(r.prompt).toBe('');
  });
  it.each([
    [{ latents: tensor([1, 4, 8, 8]), prompt: 'x' }, 'latents', /16 channels/],
    [{ latents: tensor([1, 16, 7, 8]), prompt: 'x' }, 'latents', /even/],
    [{ latents: tensor([1, 16, 8]), prompt: 'x' }, 'latents', /shape/],
    [{ latents: { data: new Float32Array(3), dims: [1, 16, 8, 8] }, prompt: 'x' }, 'latents', /needs 1024/],
    [{ latents: tensor([1, 16, 8, 8]), prompt: 'x', image_size: 'square' }, 'image_size', /64×64.*8×8/],
    [{ latents: tensor([2, 16, 8, 8]), prompt: 'x', num_images: 1 }, 'num_images', /batch 2/],
    [{ prompt_embeds: tensor([1, 256, 64]) }, 'pooled_prompt_embeds', /together/],
    [{ prompt_embeds: tensor([2, 256, 64]), pooled_prompt_embeds: tensor([1, 32]) }, 'pooled_prompt_embeds', /batch/],
    [{ prompt_embeds: tensor([2, 256, 64]), pooled_prompt_embeds: tensor([2, 32]), num_images: 3 }, 'prompt_embeds', /1 or 3/],
    [{ prompt_embeds: { data: new Float32Array([NaN]), dims: [1, 1, 1] }, pooled_prompt_embeds: tensor([1, 1]) }, 'prompt_embeds', /non-finite/],
  ])('%#: rejects %s', (input, field, message) => expectInvalid(input, field, message));

  it('uses the pack config (e.g. 1 latent channel, VAE scale 1)', () => {
    const tiny = resolveModelConfig({ latentChannels: 1, vaeScaleFactor: 1 });
    const r = validateRequest({ prompt: 'x', latents: tensor([1, 1, 8, 8]) }, tiny, seed);
    expect([r.width, r.height]).toEqual([8, 8]);
  });
});

describe("fal's schnell ranges, one validator for both paths", () => {
  const shared: [Record<string, unknown>, string][] = [
    [{ prompt: 'x', num_inference_steps: 13 }, 'num_inference_steps'],
    [{ prompt: 'x', num_inference_steps: 0 }, 'num_inference_steps'],
    [{ prompt: 'x', guidance_scale: 0 }, 'guidance_scale'],
    [{ prompt: 'x', guidance_scale: 20.5 }, 'guidance_scale'],
    [{ prompt: 'x', guidance_scale: '3' }, 'guidance_scale'],
    [{ prompt: 'x', num_images: 5 }, 'num_images'],
    [{ prompt: 'x', seed: -1 }, 'seed'],
    [{ prompt: 'x', output_format: 'gif' }, 'output_format'],
    [{ prompt: 'x', sync_mode: 1 }, 'sync_mode'],
    [{ prompt: 'x', enable_safety_checker: 'no' }, 'enable_safety_checker'],
    [{ prompt: 'x', acceleration: 'max' }, 'acceleration'],
    [{ prompt: 'x', image_size: 'huge' }, 'image_size'],
    [{ prompt: 'x', image_size: { width: 512, height: 512, d: 1 } }, 'image_size.d'],
    [{ prompt: '  ' }, 'prompt'],
    [{ prompt: 7 }, 'prompt'],
  ];
  it.each(shared)('%j is refused locally and for fal with the same message', (input, field) => {
    let local: unknown;
    let remote: unknown;
    try {
      validateRequest(input, cfg, seed);
    } catch (e) {
      local = e;
    }
    try {
      validateRemoteInput('fal-ai/flux/schnell', input);
    } catch (e) {
      remote = e;
    }
    expect(local).toBeInstanceOf(FluxError);
    expect((local as FluxError).field).toBe(field);
    expect((remote as FluxError).message).toBe((local as FluxError).message);
  });

  it('accepts 1–12 steps and guidance 1–20 (ignored by schnell) like fal', () => {
    expect(validateRequest({ prompt: 'x', num_inference_steps: 12 }, cfg, seed).steps).toBe(12);
    expect(validateRequest({ prompt: 'x', num_inference_steps: 1, guidance_scale: 1 }, cfg, seed).steps).toBe(1);
    expect(validateRemoteInput('fal-ai/flux/schnell', { prompt: 'x', num_inference_steps: 12, guidance_scale: 20 })).toMatchObject({ num_inference_steps: 12 });
    expectInvalid({ prompt: 'x', num_inference_steps: 13 }, 'num_inference_steps', /^num_inference_steps: must be an integer between 1 and 12, got 13$/);
  });

  it('a pack that narrows the range is quoted with its reason', () => {
    const narrow = resolveModelConfig({ maxSteps: 6, maxStepsReason: 'distilled for at most 6 steps' });
    expectFluxError(() => validateRequest({ prompt: 'x', num_inference_steps: 7 }, narrow, seed), 'invalid_input', 'num_inference_steps', /between 1 and 6 \(this model pack allows at most 6: distilled for at most 6 steps\), got 7/);
    expect(validateRequest({ prompt: 'x', num_inference_steps: 6 }, narrow, seed).steps).toBe(6);
  });
});
