/**
 * Safety-checker math: PIL-style resampling against PIL itself, the on-device preprocessing graph against its
 * JS twin (ORT CPU here; the e2e runs it on WebGPU), scores and flags, the single-read-back packing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { SafetyCheckerConfig, SafetyPreprocess } from '../../../src/pack/safety-checker.js';
import { packForReadbackGraph, safetyPreprocessGraph, type FloatDtype } from '../../../src/pipeline/device-graphs.js';
import { pixelLevel, preprocessForSafety, resampleMatrix, safetyPlaceholder, safetyPreprocessModel, safetyVerdict } from '../../../src/pipeline/safety.js';
import { postprocessImages } from '../../../src/pipeline/vae.js';
import { float16ToFloat32, float32ToFloat16 } from '../../../src/runtime/float16.js';
import { maxAbsDiff, readNpyAny } from '../../support/fixtures.js';
import { SAFETY_DIR } from '../../support/safety-pack.js';

const RESIZE_DIR = join(SAFETY_DIR, 'resize');
const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 1.3);

/** A VAE output value whose 8-bit level is `level`. */
const valueFor = (level: number) => Math.fround((level / 255 - 0.5) * 2);

/** The device graph for `pre`, run on ORT CPU. */
async function runDevice(pixels: Float32Array, dims: number[], pre: SafetyPreprocess, imageDtype: FloatDtype = 'float32', outDtype: FloatDtype = 'float32') {
  const [, , H, W] = dims as [number, number, number, number];
  const graph = safetyPreprocessModel(pre, H, W, imageDtype, outDtype);
  const s = await ort.InferenceSession.create(graph);
  const image = imageDtype === 'float16' ? new ort.Tensor('float16', float32ToFloat16(pixels), dims) : new ort.Tensor('float32', pixels, dims);
  const out = (await s.run({ image })).pixel_values!;
  const data = out.type === 'float16' ? float16ToFloat32(out.data as Uint16Array) : (out.data as Float32Array);
  await s.release();
  return { data, dims: [...out.dims] };
}

const LEVELS: SafetyPreprocess = { height: 0, width: 0, fit: 'stretch', resample: 'bilinear', rescale: 1, mean: [0, 0, 0], std: [1, 1, 1] };

describe('resampling equals PIL (Image.resize, as Hugging Face image processors call it)', () => {
  const input = readNpyAny(join(RESIZE_DIR, 'input.npy')) as { data: Uint8Array; dims: number[] };
  const [H, W] = input.dims as [number, number];
  // [H, W, 3] levels → VAE-style [1, 3, H, W] values with exactly those levels.
  const pixels = new Float32Array(3 * H * W);
  for (let p = 0; p < H * W; p++) for (let c = 0; c < 3; c++) pixels[c * H * W + p] = valueFor(input.data[p * 3 + c]!);
  const cases = JSON.parse(readFileSync(join(RESIZE_DIR, 'cases.json'), 'utf8')) as (SafetyPreprocess & { name: string })[];

  it('the test values map back to their levels', () => {
    for (let i = 0; i < pixels.length; i++) expect(pixelLevel(pixels[i]!)).toBe(input.data[(i % (H * W)) * 3 + Math.floor(i / (H * W))]);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s: within about one level of PIL', async (_, c) => {
    const pre = { ...LEVELS, ...c };
    const ref = readNpyAny(join(RESIZE_DIR, `${c.name}.npy`)) as { data: Uint8Array; dims: number[] };
    const twin = preprocessForSafety(pixels, [1, 3, H, W], pre);
    expect(twin.dims).toEqual([1, 3, c.height, c.width]);
    // Reference is [h, w, 3]; compare channel planes.
    const plane = c.height * c.width;
    const refChw = new Float32Array(3 * plane);
    for (let p = 0; p < plane; p++) for (let ch = 0; ch < 3; ch++) refChw[ch * plane + p] = ref.data[p * 3 + ch]!;
    // Nearest picks the same pixels; the filters differ by PIL's two 8-bit roundings (≤ 0.5 each) at most.
    expect(maxAbsDiff(twin.data, refChw)).toBeLessThanOrEqual(c.resample === 'nearest' ? 0 : 1.1);
    // The device graph computes the same (float32 vs float64 sums).
    const dev = await runDevice(pixels, [1, 3, H, W], pre);
    expect(maxAbsDiff(dev.data, twin.data)).toBeLessThan(2e-3);
  });

  it('rows of every matrix sum to 1, and same-size bilinear/bicubic resampling is the identity', () => {
    for (const r of ['nearest', 'bilinear', 'bicubic'] as const) {
      for (const [a, b] of [[37, 16], [29, 45], [8, 8], [1024, 224]] as const) {
        const m = resampleMatrix(a, b, r);
        for (let i = 0; i < b; i++) expect(m.subarray(i * a, (i + 1) * a).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 12);
      }
      const id = resampleMatrix(5, 5, r);
      expect(Array.from(id, (v) => v + 0)).toEqual(Array.from({ length: 25 }, (_, i) => (i % 6 === 0 ? 1 : 0)));
    }
  });
});

describe('device preprocessing graph', () => {
  it('sees exactly the 8-bit levels of the returned image (rounding half to even, clamping) without a Round op', async () => {
    // Values around every level and its .5 ties, plus out-of-range ones.
    const vals: number[] = [-3, -1.0001, 1.0001, 2.5, 0];
    for (let k = 0; k < 256; k++) for (const d of [-0.5, -0.49, 0, 0.25, 0.5]) vals.push(Math.fround(((k + d) / 255 - 0.5) * 2));
    const n = Math.ceil(vals.length / 3);
    const pixels = new Float32Array(3 * n);
    pixels.set(vals);
    const dev = await runDevice(pixels, [1, 3, 1, n], { ...LEVELS, height: 1, width: n });
    const img = postprocessImages(pixels, [1, 3, 1, n])[0]!;
    for (let c = 0; c < 3; c++) for (let p = 0; p < n; p++) expect(dev.data[c * n + p], `value ${pixels[c * n + p]}`).toBe(img.data[p * 4 + c]);
    const graph = safetyPreprocessGraph({ imageDtype: 'float32', outDtype: 'float32', H: 1, W: 1, rh: [1], rw: [1], outH: 1, outW: 1, scale: [1, 1, 1], bias: [0, 0, 0], channelOrder: 'RGB', layout: 'NCHW' });
    expect(new TextDecoder('latin1').decode(graph)).not.toMatch(/Round/);
  });

  it.each([
    ['stretch bilinear 24×24 (Falconsai-style, mean/std 0.5)', { height: 24, width: 24, fit: 'stretch', resample: 'bilinear', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }],
    ['CLIP-style crop bicubic', { height: 16, width: 16, fit: 'shortest_edge_center_crop', shortestEdge: 20, resample: 'bicubic', mean: [0.481, 0.458, 0.408], std: [0.269, 0.261, 0.276] }],
    ['BGR, NHWC, nearest, rescale 1', { height: 10, width: 12, fit: 'stretch', resample: 'nearest', rescale: 1, mean: [103.9, 116.8, 123.7], std: [1, 1, 1], channelOrder: 'BGR', layout: 'NHWC' }],
  ] as [string, SafetyPreprocess][])('%s: equals the JS twin', async (_, pre) => {
    const dims = [2, 3, 48, 32];
    const pixels = rand(2 * 3 * 48 * 32, 9);
    const twin = preprocessForSafety(pixels, dims, pre);
    const dev = await runDevice(pixels, dims, pre);
    expect(dev.dims).toEqual(twin.dims);
    expect(maxAbsDiff(dev.data, twin.data)).toBeLessThan(1e-3);
  });

  it('fp16 images in, fp16 classifier input out', async () => {
    const pre: SafetyPreprocess = { height: 8, width: 8, fit: 'stretch', resample: 'bilinear', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
    const pixels = rand(3 * 16 * 16, 4);
    const twin = preprocessForSafety(float16ToFloat32(float32ToFloat16(pixels)), [1, 3, 16, 16], pre);
    const dev = await runDevice(pixels, [1, 3, 16, 16], pre, 'float16', 'float16');
    expect(maxAbsDiff(dev.data, twin.data)).toBeLessThan(4e-3);
  });
});

describe('one read-back: image and classifier output packed together', () => {
  it('concatenates exactly, casting fp16 to float32', async () => {
    const s = await ort.InferenceSession.create(packForReadbackGraph('float32', 'float16'));
    const image = rand(2 * 3 * 4 * 4, 1);
    const logits = float32ToFloat16(new Float32Array([0.5, -2, 3.25, 8]));
    const r = await s.run({ image: new ort.Tensor('float32', image, [2, 3, 4, 4]), logits: new ort.Tensor('float16', logits, [2, 2]) });
    expect(Array.from(r.packed!.data as Float32Array)).toEqual([...image, 0.5, -2, 3.25, 8]);
  });
});

describe('scores and flags', () => {
  const cfg = (over: Partial<SafetyCheckerConfig> = {}): SafetyCheckerConfig => ({
    model: 'm',
    preprocess: { height: 1, width: 1, fit: 'stretch', resample: 'bilinear', mean: [0, 0, 0], std: [1, 1, 1] },
    labels: ['drawings', 'hentai', 'neutral', 'porn', 'sexy'],
    unsafeLabels: ['hentai', 'porn', 'sexy'],
    scores: 'softmax',
    threshold: 0.5,
    ...over,
  });

  it('softmax: the unsafe labels’ probabilities add up', () => {
    const logits = new Float32Array([0, 0, Math.log(4), 0, 0, /* */ 5, -5, 0, -5, -5]);
    const v = safetyVerdict(logits, [2, 5], cfg());
    expect(v.scores[0]).toBeCloseTo(3 / 8, 6);
    expect(v.scores[1]).toBeLessThan(0.01);
    expect(v.flagged).toEqual([false, false]);
    expect(safetyVerdict(logits, [2, 5], cfg({ threshold: 0.37 })).flagged[0]).toBe(true);
  });

  it('sigmoid: the most likely unsafe label; probabilities: as given', () => {
    const sig = safetyVerdict(new Float32Array([3, 0]), [1, 2], cfg({ labels: ['a', 'nsfw'], unsafeLabels: ['nsfw'], scores: 'sigmoid' }));
    expect(sig.scores[0]).toBeCloseTo(0.5, 9);
    expect(sig.flagged).toEqual([true]); // ≥ threshold flags
    const p = safetyVerdict(new Float32Array([0.2, 0.8, 0.7, 0.3]), [2, 2], cfg({ labels: ['normal', 'nsfw'], unsafeLabels: ['nsfw'], scores: 'probabilities' }));
    expect(p.scores).toEqual([Math.fround(0.8), Math.fround(0.3)]);
    expect(p.flagged).toEqual([true, false]);
  });

  it('a score that is not a number flags the image (fail closed); a wrong output shape throws', () => {
    expect(safetyVerdict(new Float32Array([NaN, 1]), [1, 2], cfg({ labels: ['a', 'b'], unsafeLabels: ['b'] })).flagged).toEqual([true]);
    expect(() => safetyVerdict(new Float32Array(6), [2, 3], cfg({ labels: ['a', 'b'], unsafeLabels: ['b'] }))).toThrow(/expected classifier output \[B, 2\]/);
  });

  it('the placeholder is opaque black of the same size', () => {
    const p = safetyPlaceholder(3, 2);
    expect([p.width, p.height]).toEqual([3, 2]);
    expect(Array.from(p.data)).toEqual([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255]);
  });
});
