/**
 * The quantizer's layout and semantics equal what onnxruntime's com.microsoft MatMulNBits kernel computes:
 * ORT(A, B_q, scales, zp) = A · dequantize(W) for 4/8 bits, block 32/64, with and without zero points,
 * and Gemm-style [N, K] weights give the same blocks as [K, N] ones.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { DT, onnx } from '../../../src/convert/onnx.js';
import { dequantize, quantizeMatrix, randomNormals, type QuantParams } from '../../../src/convert/quantize.js';

function matmulNBitsModel(K: number, N: number, p: QuantParams, q: ReturnType<typeof quantizeMatrix>['q']): Uint8Array {
  const nb = K / p.block;
  const init = (name: string, dims: number[], dataType: number, bytes: Uint8Array) => ({ name, dims, dataType, rawData: bytes });
  const inits = [
    init('B', [N, nb, (p.block * p.bits) / 8], DT.UINT8, q.B),
    init('scales', [N * nb], DT.FLOAT, new Uint8Array(q.scales.buffer)),
    ...(q.zeroPoints ? [init('zp', [q.zeroPoints.length], DT.UINT8, q.zeroPoints)] : []),
  ];
  const model = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
    graph: {
      name: 'g',
      node: [{
        opType: 'MatMulNBits', domain: 'com.microsoft', input: ['A', 'B', 'scales', ...(q.zeroPoints ? ['zp'] : [])], output: ['Y'],
        attribute: [
          { name: 'K', type: 2, i: K }, { name: 'N', type: 2, i: N }, { name: 'bits', type: 2, i: p.bits },
          { name: 'block_size', type: 2, i: p.block }, { name: 'accuracy_level', type: 2, i: 0 },
        ],
      }],
      initializer: inits,
      input: [{ name: 'A', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'b' }, { dimParam: 'm' }, { dimValue: K }] } } } }],
      output: [{ name: 'Y', type: { tensorType: { elemType: 1 } } }],
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.fromObject(model)).finish();
}

describe('MatMulNBits quantization', () => {
  const K = 128;
  const N = 48;
  const wAll = randomNormals(K * N, 3).map((v, i) => v * (i % 7 === 0 ? 3 : 0.5));
  const w = wAll;
  for (const [p, k] of [
    [{ bits: 4, block: 32, symmetric: false }, K],
    [{ bits: 4, block: 32, symmetric: false }, 96], // odd number of blocks: padded zero-point nibble
    [{ bits: 4, block: 32, symmetric: true }, K],
    [{ bits: 4, block: 64, symmetric: false }, K],
    [{ bits: 8, block: 32, symmetric: true }, K],
    [{ bits: 8, block: 32, symmetric: false }, 96],
    [{ bits: 4, block: 32, symmetric: false, mseSearch: true }, K],
  ] as [QuantParams, number][]) {
    it(`ORT's kernel computes A·dequant(W) (${p.bits}-bit, block ${p.block}, ${p.symmetric ? 'symmetric' : 'zero points'}${p.mseSearch ? ', MSE search' : ''}, K=${k})`, async () => {
      const w = wAll.subarray(0, k * N);
      const K = k;
      const { q, stats } = quantizeMatrix(w, K, N, 'KN', { ...p, reconRows: 4 });
      const deq = dequantize(q, p);
      // Quantization error is what the bit width allows.
      let err = 0;
      let ref = 0;
      for (let i = 0; i < w.length; i++) {
        err += (w[i]! - deq[i]!) ** 2;
        ref += w[i]! ** 2;
      }
      const rel = Math.sqrt(err / ref);
      expect(rel).toBeLessThan(p.bits === 4 ? 0.15 : 0.01);
      expect(stats.count).toBeGreaterThan(0);

      const s = await ort.InferenceSession.create(matmulNBitsModel(K, N, p, q));
      const M = 5;
      const a = randomNormals(2 * M * K, 11);
      const out = await s.run({ A: new ort.Tensor('float32', a, [2, M, K]) });
      const y = out.Y!.data as Float32Array;
      expect(out.Y!.dims).toEqual([2, M, N]);
      let maxDiff = 0;
      for (let r = 0; r < 2 * M; r++) {
        for (let n = 0; n < N; n++) {
          let acc = 0;
          for (let k = 0; k < K; k++) acc += a[r * K + k]! * deq[k * N + n]!;
          maxDiff = Math.max(maxDiff, Math.abs(acc - y[r * N + n]!));
        }
      }
      expect(maxDiff).toBeLessThan(1e-4);
      await s.release();
    });
  }

  it('--mse-search never increases a block\'s squared error over min/max RTN', () => {
    for (const symmetric of [false, true]) {
      const rtn = dequantize(quantizeMatrix(w, K, N, 'KN', { bits: 4, block: 32, symmetric }).q, { bits: 4, block: 32, symmetric });
      const mse = dequantize(quantizeMatrix(w, K, N, 'KN', { bits: 4, block: 32, symmetric, mseSearch: true }).q, { bits: 4, block: 32, symmetric });
      let eR = 0;
      let eM = 0;
      for (let i = 0; i < w.length; i++) {
        eR += (w[i]! - rtn[i]!) ** 2;
        eM += (w[i]! - mse[i]!) ** 2;
      }
      expect(eM).toBeLessThan(eR);
    }
  });

  it('[N, K] (Gemm transB) weights quantize to the same blocks as their [K, N] transpose', () => {
    const p: QuantParams = { bits: 4, block: 32, symmetric: false };
    const wt = new Float32Array(K * N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) wt[n * K + k] = w[k * N + n]!;
    const a = quantizeMatrix(w, K, N, 'KN', p).q;
    const b = quantizeMatrix(wt, K, N, 'NK', p).q;
    expect(Buffer.from(b.B).equals(Buffer.from(a.B))).toBe(true);
    expect(Buffer.from(b.zeroPoints!).equals(Buffer.from(a.zeroPoints!))).toBe(true);
    expect(Array.from(b.scales)).toEqual(Array.from(a.scales));
  });

  it('asymmetric blocks follow MLAS: range widened to include 0, zp = round(-min/scale)', () => {
    const col = new Float32Array(32 * 2);
    for (let i = 0; i < 32; i++) col[i * 2] = 1 + i / 31; // block of positives in column 0: min→0
    for (let i = 0; i < 32; i++) col[i * 2 + 1] = -2 + i / 31; // all negative in column 1: max→0
    const { q } = quantizeMatrix(col, 32, 2, 'KN', { bits: 4, block: 32, symmetric: false });
    expect(q.scales[0]).toBeCloseTo(2 / 15, 6);
    expect(q.zeroPoints![0]! & 0xf).toBe(0);
    expect(q.scales[1]).toBeCloseTo(2 / 15, 6);
    expect(q.zeroPoints![1]! & 0xf).toBe(15);
  });
});
