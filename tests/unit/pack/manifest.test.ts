import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packSizeBytes, parseManifest } from '../../../src/pack/manifest.js';
import { expectFluxError } from '../../support/errors.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';

const testManifest = () => JSON.parse(readFileSync(join(TEST_PACK_DIR, 'manifest.json'), 'utf8')) as Record<string, any>;

function expectBad(edit: (m: Record<string, any>) => void, field: string, message: RegExp) {
  const m = testManifest();
  edit(m);
  expectFluxError(() => parseManifest(m), 'invalid_manifest', field, message);
}

describe('parseManifest', () => {
  it('accepts the embedded test pack and lists every file it references', () => {
    const m = parseManifest(testManifest());
    expect(m.id).toBe('flux-test-tiny');
    expect(packSizeBytes(m)).toBeGreaterThan(1_000_000);
    const refs = [
      ...Object.values(m.components).flatMap((c) => [c!.graph, ...(c!.externalData ?? []).map((x) => x.file)]),
      ...Object.values(m.tokenizers ?? {}).flatMap((t) => [t.tokenizer, ...(t.config ? [t.config] : [])]),
    ];
    expect(new Set(m.files.map((f) => f.path))).toEqual(new Set(refs));
  });

  it.each([
    [(m: any) => (m.format = 'other'), 'format', /flux-webgpu-pack/],
    [(m: any) => (m.formatVersion = 2), 'formatVersion', /unsupported version 2/],
    [(m: any) => (m.id = 'Bad Id'), 'id', /\[a-z0-9\]/],
    [(m: any) => (m.model = 'flux.1-dev'), 'model', /schnell/],
    [(m: any) => (m.files[0].sha256 = 'xyz'), 'files[0].sha256', /64 lowercase hex/],
    [(m: any) => (m.files[0].size = -1), 'files[0].size', /non-negative/],
    [(m: any) => (m.files[1].path = '../escape.onnx'), 'files[1].path', /inside the pack/],
    [(m: any) => m.files.push({ ...m.files[0] }), 'files[9].path', /duplicate/],
    [(m: any) => delete m.components.vae_decoder, 'components.vae_decoder', /required/],
    [(m: any) => (m.components.unet = m.components.transformer), 'components.unet', /unknown component/],
    [(m: any) => (m.components.transformer.graph = 'missing.onnx'), 'components.transformer.graph', /not listed in files/],
    [(m: any) => (m.components.transformer.dtype = 'bfloat16'), 'components.transformer.dtype', /float32.*float16/],
    [(m: any) => (m.components.transformer.externalData[0].file = 'clip/model.onnx'), 'components.transformer.externalData[0].file', /must be "transformer\/model\.onnx\.data"/],
    [(m: any) => (m.components.transformer.outputs = { noise: 'latent' }), 'components.transformer.outputs.noise', /unknown role; expected one of velocity/],
    [(m: any) => delete m.tokenizers, 'tokenizers.clip', /come together/],
    [(m: any) => (m.config = { latentChannels: 0 }), 'config.latentChannels', /positive/],
    [(m: any) => (m.config = { guidance: 3 }), 'config.guidance', /unknown key/],
    [(m: any) => (m.config = { maxSteps: 4 }), 'config.maxSteps', /narrows fal's 1–12 steps: add config.maxStepsReason/],
    [(m: any) => (m.config = { maxSteps: 13 }), 'config.maxSteps', /between 1 and 12, got 13/],
    [(m: any) => (m.config = { maxSteps: 4, maxStepsReason: '' }), 'config.maxStepsReason', /non-empty string/],
    [(m: any) => (m.config = { maxSteps: 4, maxStepsReason: 'x', defaultSteps: 5 }), 'config.defaultSteps', /above maxSteps 4/],
  ])('%#: rejects with a field-specific message', (edit, field, message) => expectBad(edit, field, message));

  it('a pack may narrow the step range when it says why', () => {
    const m = testManifest();
    m.config = { maxSteps: 4, maxStepsReason: 'trained for at most 4 steps' };
    expect(parseManifest(m).config).toEqual({ maxSteps: 4, maxStepsReason: 'trained for at most 4 steps' });
  });
});
