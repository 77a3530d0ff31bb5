/**
 * --quant fp16: LayerNorm, Softmax, RMSNorm chains, the timestep/RoPE trig and T5's FFN output projection `wo`
 * (with the residual adds) stay fp32 in the written graphs; everything else computes in fp16; outputs stay close to
 * fp32 on ORT CPU.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inferTypes, producerMap } from '../../../src/convert/graph.js';
import { convertPack, type ConvertResult } from '../../../src/convert/index.js';
import { readModel } from '../../../src/convert/model-reader.js';
import { DT } from '../../../src/convert/onnx.js';
import { buildComponentGraph } from '../../../src/convert/passes.js';
import { parseManifest } from '../../../src/pack/manifest.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-convert-fp16-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const src = (c: string) => join(TEST_PACK_DIR, c, 'model.onnx');
let result: ConvertResult;

function load(component: string) {
  const m = readModel(join(tmp, component, 'model.onnx'));
  const g = buildComponentGraph(m);
  return { g, types: inferTypes(g), producers: producerMap(g.nodes) };
}

beforeAll(async () => {
  result = await convertPack({
    transformer: src('transformer'), vaeDecoder: src('vae_decoder'), clip: src('clip'), t5: src('t5'), tokenizers: TEST_PACK_DIR,
    quant: 'fp16', out: tmp,
  });
}, 60_000);

describe('--quant fp16', () => {
  it('manifest: fp32 I/O, fp16 weights, needs shader-f16; the VAE stays fp32 by default', () => {
    const m = parseManifest(JSON.parse(readFileSync(join(tmp, 'manifest.json'), 'utf8')));
    for (const c of ['transformer', 'clip', 't5'] as const) {
      expect(m.components[c]!.dtype).toBe('float32');
      expect(m.components[c]!.weights).toBe('float16');
      expect(m.components[c]!.requiredFeatures).toEqual(['shader-f16']);
    }
    expect(m.components.vae_decoder.weights).toBe('float32');
    expect(m.components.vae_decoder.requiredFeatures).toEqual([]);
    const vae = load('vae_decoder');
    expect([...vae.g.inits.values()].every((i) => i.dataType !== DT.FLOAT16)).toBe(true);
  });

  it('LayerNormalization, Softmax, RMSNorm and Cos/Sin compute in fp32; MatMuls in fp16', () => {
    for (const c of ['transformer', 'clip', 't5']) {
      const { g, types } = load(c);
      let checked = 0;
      for (const n of g.nodes) {
        const op = n.opType ?? '';
        if (['LayerNormalization', 'Softmax', 'ReduceMean', 'Pow', 'Sqrt', 'Cos', 'Sin'].includes(op)) {
          expect(types.get(n.input![0]!), `${c}: ${n.name} (${op}) input`).toBe(DT.FLOAT);
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(0);
      const matmuls = g.nodes.filter((n) => n.opType === 'MatMul' && g.inits.has(n.input![1]!));
      const fp16 = matmuls.filter((n) => types.get(n.input![1]!) === DT.FLOAT16);
      expect(fp16.length).toBeGreaterThan(matmuls.length / 2);
      for (const n of fp16) expect(types.get(n.input![0]!)).toBe(DT.FLOAT16);
    }
  });

  it('T5: the FFN output projection wo keeps fp32 weights and fp32 residual adds', () => {
    const { g, types } = load('t5');
    const wo = g.nodes.filter((n) => n.opType === 'MatMul' && /DenseReluDense\/wo|\/wo\//.test(n.name ?? ''));
    expect(wo.length).toBe(2); // one per layer of the tiny T5
    for (const n of wo) {
      expect(types.get(n.input![1]!)).toBe(DT.FLOAT);
      expect(types.get(n.output![0]!)).toBe(DT.FLOAT);
      const adds = g.nodes.filter((a) => a.opType === 'Add' && a.input!.includes(n.output![0]!));
      expect(adds.length).toBe(1);
      expect(types.get(adds[0]!.output![0]!)).toBe(DT.FLOAT);
    }
    const other = g.nodes.filter((n) => n.opType === 'MatMul' && g.inits.has(n.input![1]!) && !wo.includes(n));
    for (const n of other) expect(types.get(n.input![1]!)).toBe(DT.FLOAT16);
    const t5 = result.report.components.find((c) => c.component === 't5')!;
    expect(t5.fp16!.woNodes.length).toBe(2);
  });

  it('converted outputs stay close to fp32 on ORT CPU', () => {
    for (const c of result.report.components) {
      if (!c.verify || 'skipped' in c.verify) throw new Error(`${c.component}: not verified`);
      for (const o of c.verify.outputs) {
        console.log(`[convert] fp16 ${c.component}.${o.output}: max abs ${o.maxAbs.toExponential(2)}, cos ${o.cosine.toFixed(7)}`);
        expect(o.cosine).toBeGreaterThanOrEqual(0.9999);
        expect(o.maxAbs).toBeLessThan(2e-2);
      }
    }
  });
});
