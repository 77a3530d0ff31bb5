/**
 * The on-device helper graphs must compute exactly what their JS twins (the spec implementations) compute.
 * Run on onnxruntime-node's CPU EP here; the browser e2e runs them on WebGPU.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { castGraph, eulerStepGraph, gatherRowsGraph, tileGraph, vaeInputGraph } from '../../../src/pipeline/device-graphs.js';
import { packLatents } from '../../../src/pipeline/latents.js';
import { eulerStep } from '../../../src/pipeline/schedule.js';
import { vaeInputTransform } from '../../../src/pipeline/vae.js';
import { float16ToFloat32, float32ToFloat16, fromFloat16Bits, toFloat16Bits } from '../../../src/runtime/float16.js';

const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 3);
const i64 = (v: number[]) => new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), [v.length]);

describe('device graphs equal the JS reference', () => {
  it('euler step (float32), bit-exact', async () => {
    const s = await ort.InferenceSession.create(eulerStepGraph('float32', 'float32'));
    const [x, v] = [rand(2 * 16 * 64, 1), rand(2 * 16 * 64, 2)];
    for (const dt of [-1, -0.25, Math.fround(-1 / 3)]) {
      const r = await s.run({ x: new ort.Tensor('float32', x, [2, 16, 64]), v: new ort.Tensor('float32', v, [2, 16, 64]), dt: new ort.Tensor('float32', new Float32Array([dt]), [1]) });
      expect(r.x_next!.data).toEqual(eulerStep(x, v, dt));
    }
  });

  it('euler step with an fp16 velocity upcasts before the update', async () => {
    const s = await ort.InferenceSession.create(eulerStepGraph('float16', 'float32'));
    const [x, v] = [rand(64, 3), rand(64, 4)];
    const v16 = float32ToFloat16(v);
    const r = await s.run({ x: new ort.Tensor('float32', x, [1, 1, 64]), v: new ort.Tensor('float16', v16, [1, 1, 64]), dt: new ort.Tensor('float32', new Float32Array([-0.5]), [1]) });
    expect(r.x_next!.data).toEqual(eulerStep(x, float16ToFloat32(v16), -0.5));
  });

  it('VAE input: unpack (diffusers order) then /0.3611 + 0.1159, bit-exact', async () => {
    const s = await ort.InferenceSession.create(vaeInputGraph(0.3611, 0.1159, 'float32'));
    const [B, C, h, w] = [2, 16, 6, 4];
    const lat = rand(B * C * h * w, 5);
    const packed = packLatents(lat, { batch: B, channels: C, height: h, width: w });
    const r = await s.run({ x: new ort.Tensor('float32', packed, [B, (h / 2) * (w / 2), 4 * C]), shape6: i64([B, h / 2, w / 2, C, 2, 2]), shape4: i64([B, C, h, w]) });
    expect(r.z!.dims).toEqual([B, C, h, w]);
    expect(r.z!.data).toEqual(vaeInputTransform(lat, { vaeScalingFactor: 0.3611, vaeShiftFactor: 0.1159 }));
  });

  it('tile repeats the batch', async () => {
    const s = await ort.InferenceSession.create(tileGraph(2, 'float32'));
    const r = await s.run({ x: new ort.Tensor('float32', new Float32Array([1, 2, 3]), [1, 3]), repeats: i64([3, 1]) });
    expect(r.y!.dims).toEqual([3, 3]);
    expect(Array.from(r.y!.data as Float32Array)).toEqual([1, 2, 3, 1, 2, 3, 1, 2, 3]);
  });

  it('gather rows picks row index[b] of each batch item', async () => {
    const s = await ort.InferenceSession.create(gatherRowsGraph('float32'));
    const h = Float32Array.from({ length: 2 * 4 * 3 }, (_, i) => i); // [2, 4, 3]
    const r = await s.run({ h: new ort.Tensor('float32', h, [2, 4, 3]), flat_index: i64([0 * 4 + 2, 1 * 4 + 3]), shape2: i64([8, 3]) });
    expect(Array.from(r.pooled!.data as Float32Array)).toEqual([6, 7, 8, 21, 22, 23]);
  });

  it('cast float32 → float16 rounds like our host conversion', async () => {
    const s = await ort.InferenceSession.create(castGraph(2, 'float32', 'float16'));
    const x = rand(100, 6);
    const r = await s.run({ x: new ort.Tensor('float32', x, [10, 10]) });
    expect(Array.from(r.y!.data as Uint16Array)).toEqual(Array.from(float32ToFloat16(x)));
  });
});

describe('float16 conversion', () => {
  it('round-trips representable values and handles specials', () => {
    for (const v of [0, 1, -2, 0.5, 65504, 6.103515625e-5, 5.960464477539063e-8]) expect(fromFloat16Bits(toFloat16Bits(v))).toBe(v);
    expect(fromFloat16Bits(toFloat16Bits(1e6))).toBe(Infinity);
    expect(Number.isNaN(fromFloat16Bits(toFloat16Bits(NaN)))).toBe(true);
    expect(toFloat16Bits(-0)).toBe(0x8000);
    expect(toFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(toFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });
});
