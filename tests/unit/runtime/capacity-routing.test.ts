/** A request whose activations cannot fit routes to fal under Auto, with the field-level reason; forced local never does. */
import { describe, expect, it } from 'vitest';
import { decideRoute, type LocalAvailability } from '../../../src/client/routing.js';
import { FLUX_SCHNELL_ARCHS } from '../../../src/runtime/activation-memory.js';
import { decideActivations, decideCapacity, weightsDuring, type PackNeeds } from '../../../src/runtime/capacity.js';

const GiB = 2 ** 30;
const needs: PackNeeds = { componentBytes: { transformer: 6.5e9, t5: 2.5e9, clip: 0.25e9, vae_decoder: 0.1e9 }, requiredFeatures: [], maxTensorBytes: null };
const limits = { maxBufferSize: GiB, maxStorageBufferBindingSize: GiB };
const capacity = decideCapacity(needs, { features: [], limits, allocatableBytes: 24e9 });
const model = { archs: FLUX_SCHNELL_ARCHS, t5Length: 256, clipLength: 77, vaeScaleFactor: 8 };
const check = (width: number, height: number) => decideActivations(model, { batch: 1, width, height }, { ...limits, budgetBytes: 24e9 }, weightsDuring(capacity.plan!, needs));

describe('routing by the activation check', () => {
  it('the pack fits, 512² fits: local', () => {
    const local: LocalAvailability = { webgpuError: null, packId: 'flux1-schnell', capacity, request: check(512, 512) };
    expect(decideRoute('fal-ai/flux/schnell', 'auto', local, true)).toMatchObject({ target: 'local' });
  });

  it('1024² on 1 GiB buffers: Auto sends it to fal and says why, with the numbers', () => {
    const local: LocalAvailability = { webgpuError: null, packId: 'flux1-schnell', capacity, request: check(1024, 1024) };
    const d = decideRoute('fal-ai/flux/schnell', 'auto', local, true);
    expect(d.target).toBe('remote');
    expect(d.reason).toBe(
      'Sent to fal because this request does not fit this GPU: image_size: 1024×1024 needs a 1.82 GB buffer (transformer attention scores [1, 24, 4352, 4352]); this GPU allows 1 GiB per buffer (maxBufferSize); the largest size that fits is 880×880.',
    );
  });

  it('forced local stays local (the worker then refuses it with the same reason); no proxy: a clear error', () => {
    const local: LocalAvailability = { webgpuError: null, packId: 'flux1-schnell', capacity, request: check(1024, 1024) };
    expect(decideRoute('fal-ai/flux/schnell', 'local', local, true)).toMatchObject({ target: 'local', reason: expect.stringMatching(/^Local was chosen, although this request does not fit this GPU: image_size: 1024×1024 needs a 1\.82 GB buffer/) });
    expect(() => decideRoute('fal-ai/flux/schnell', 'auto', local, false)).toThrow(/does not fit this GPU.*no fal proxy is configured/);
  });
});
