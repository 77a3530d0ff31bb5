/**
 * The optional `components.safety_checker`: valid with its classifier fields, every field checked with a clear
 * error, optional (packs without it stay valid), and built from Hugging Face configs as optimum exports them.
 */
import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../../src/pack/manifest.js';
import { safetyConfigFromHuggingFace } from '../../../src/pack/safety-checker.js';
import { packNeeds, decideCapacity, planBytes } from '../../../src/runtime/capacity.js';
import { expectFluxError } from '../../support/errors.js';
import { fixtureSafetyConfig, safetyPackFiles, SAFETY_CHECKER_NAME } from '../../support/safety-pack.js';

const manifest = () => JSON.parse(JSON.stringify(safetyPackFiles().manifest)) as Record<string, any>;

function expectBad(edit: (m: Record<string, any>) => void, field: string, message: RegExp) {
  const m = manifest();
  edit(m);
  expectFluxError(() => parseManifest(m), 'invalid_manifest', field, message);
}

describe('components.safety_checker', () => {
  it('is accepted with its classifier fields, and stays optional', () => {
    const m = parseManifest(manifest());
    expect(m.components.safety_checker).toMatchObject({
      graph: 'safety_checker/model.onnx',
      model: SAFETY_CHECKER_NAME,
      labels: ['normal', 'nsfw'],
      unsafeLabels: ['nsfw'],
      scores: 'softmax',
      threshold: 0.5,
      preprocess: { fit: 'stretch', height: 24, width: 24, resample: 'bilinear', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    });
    const without = manifest();
    delete without.components.safety_checker;
    expect(parseManifest(without).components.safety_checker).toBeUndefined();
  });

  const sc = 'components.safety_checker';
  it.each(([
    [(m: any) => delete m.components.safety_checker.model, `${sc}.model`, /non-empty string/],
    [(m: any) => delete m.components.safety_checker.preprocess, `${sc}.preprocess`, /must be an object/],
    [(m: any) => (m.components.safety_checker.preprocess.height = 0), `${sc}.preprocess.height`, /integer between 1 and 4096/],
    [(m: any) => (m.components.safety_checker.preprocess.fit = 'cover'), `${sc}.preprocess.fit`, /stretch, shortest_edge_center_crop/],
    [(m: any) => (m.components.safety_checker.preprocess.resample = 'lanczos'), `${sc}.preprocess.resample`, /nearest, bilinear, bicubic/],
    [(m: any) => (m.components.safety_checker.preprocess.shortestEdge = 256), `${sc}.preprocess.shortestEdge`, /only applies with fit "shortest_edge_center_crop"/],
    [(m: any) => Object.assign(m.components.safety_checker.preprocess, { fit: 'shortest_edge_center_crop', shortestEdge: 20 }), `${sc}.preprocess.shortestEdge`, /at least the crop size \(24\)/],
    [(m: any) => (m.components.safety_checker.preprocess.std = [0.5, 0, 0.5]), `${sc}.preprocess.std`, /positive/],
    [(m: any) => (m.components.safety_checker.preprocess.mean = [0.5, 0.5]), `${sc}.preprocess.mean`, /array of 3 numbers/],
    [(m: any) => (m.components.safety_checker.preprocess.layout = 'CHW'), `${sc}.preprocess.layout`, /NCHW.*NHWC/],
    [(m: any) => (m.components.safety_checker.preprocess.channelOrder = 'rgb'), `${sc}.preprocess.channelOrder`, /"RGB" or "BGR"/],
    [(m: any) => (m.components.safety_checker.preprocess.interpolation = 'x'), `${sc}.preprocess.interpolation`, /unknown key/],
    [(m: any) => (m.components.safety_checker.labels = []), `${sc}.labels`, /non-empty array/],
    [(m: any) => (m.components.safety_checker.labels = ['a', 'a']), `${sc}.labels`, /repeat/],
    [(m: any) => (m.components.safety_checker.unsafeLabels = ['porn']), `${sc}.unsafeLabels[0]`, /"porn" is not one of the labels \(normal, nsfw\)/],
    [(m: any) => (m.components.safety_checker.scores = 'logits'), `${sc}.scores`, /softmax, sigmoid, probabilities/],
    [(m: any) => (m.components.safety_checker.threshold = 0), `${sc}.threshold`, /\(0, 1\]/],
    [(m: any) => (m.components.safety_checker.threshold = 1.5), `${sc}.threshold`, /\(0, 1\]/],
    [(m: any) => (m.components.safety_checker.graph = 'nope.onnx'), `${sc}.graph`, /not listed in files/],
    [(m: any) => (m.components.vae_decoder.threshold = 0.5), 'components.vae_decoder.threshold', /belongs to components.safety_checker only/],
  ] as [(m: any) => unknown, string, RegExp][]).map(([edit, field, message]) => [field, edit, message] as const))('%s is checked', (field, edit, message) => expectBad(edit, field, message));
});

describe('classifier config from Hugging Face files', () => {
  it('Falconsai/nsfw_image_detection (ViTImageProcessor, id2label normal/nsfw, as optimum exports it)', () => {
    const c = safetyConfigFromHuggingFace(
      { do_normalize: true, do_rescale: true, do_resize: true, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], image_processor_type: 'ViTImageProcessor', resample: 2, rescale_factor: 1 / 255, size: { height: 224, width: 224 } },
      { _name_or_path: 'Falconsai/nsfw_image_detection', id2label: { '0': 'normal', '1': 'nsfw' } },
      'fallback',
    );
    expect(c).toEqual({
      model: 'Falconsai/nsfw_image_detection',
      preprocess: { fit: 'stretch', height: 224, width: 224, resample: 'bilinear', rescale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
      labels: ['normal', 'nsfw'],
      unsafeLabels: ['nsfw'],
      scores: 'softmax',
      threshold: 0.5,
    });
  });

  it('CLIPImageProcessor (shortest edge + center crop, bicubic), multi-label, overrides win', () => {
    const c = safetyConfigFromHuggingFace(
      { do_center_crop: true, crop_size: { height: 224, width: 224 }, size: { shortest_edge: 224 }, resample: 3, image_mean: [0.48, 0.46, 0.41], image_std: [0.27, 0.26, 0.28] },
      { id2label: { '1': 'porn', '0': 'drawings', '2': 'sexy' }, problem_type: 'multi_label_classification' },
      'my-checker',
      { threshold: 0.7, unsafeLabels: ['porn'], preprocess: { channelOrder: 'BGR' } },
    );
    expect(c).toMatchObject({
      model: 'my-checker',
      preprocess: { fit: 'shortest_edge_center_crop', shortestEdge: 224, height: 224, width: 224, resample: 'bicubic', channelOrder: 'BGR' },
      labels: ['drawings', 'porn', 'sexy'],
      unsafeLabels: ['porn'],
      scores: 'sigmoid',
      threshold: 0.7,
    });
  });

  it('no unsafe-sounding label and none given: a clear error', () => {
    expect(() => safetyConfigFromHuggingFace({ size: { height: 8, width: 8 } }, { id2label: { 0: 'cat', 1: 'dog' } }, 'x')).toThrow(/unsafeLabels: must be a non-empty array/);
  });
});

describe('capacity accounts for the checker (small, resident with the VAE)', () => {
  it('adds its bytes to the plans and keeps it resident where the VAE is', () => {
    const m = parseManifest(manifest());
    const needs = packNeeds(m);
    expect(needs.componentBytes.safety_checker).toBe(m.files.find((f) => f.path === 'safety_checker/model.onnx')!.size);
    const without = { ...needs, componentBytes: { ...needs.componentBytes } };
    delete without.componentBytes.safety_checker;
    expect(planBytes(needs)['all-resident'] - planBytes(without)['all-resident']).toBe(needs.componentBytes.safety_checker);
    const GB = 1024 ** 3;
    const big = { ...needs, componentBytes: { transformer: 6.5 * GB, t5: 2.5 * GB, clip: 0.25 * GB, vae_decoder: 0.1 * GB, safety_checker: 0.09 * GB } };
    const offer = (bytes: number) => ({ features: [], limits: { maxStorageBufferBindingSize: 2 * GB }, allocatableBytes: bytes });
    expect(decideCapacity(big, offer(16 * GB)).resident).toEqual(['clip', 't5', 'transformer', 'vae_decoder', 'safety_checker']);
    expect(decideCapacity(big, offer(10.9 * GB)).resident).toEqual(['transformer', 'vae_decoder', 'safety_checker']);
    expect(decideCapacity(big, offer(8.2 * GB)).resident).toEqual([]);
  });
});

it('fixture config is what the Python generator describes', () => {
  expect(fixtureSafetyConfig().preprocess).toMatchObject({ height: 24, width: 24, fit: 'stretch', resample: 'bilinear' });
});
