/**
 * The synthetic FLUX generator (tools/synthetic-flux) at test size: a runnable graph with the schnell I/O; the
 * converter handles it (int8 + stages), and a bf16 copy (like the official transformer.opt/bf16 export, which no
 * browser can run) converts to an fp32 graph equal to the fp32 model up to bf16 weight rounding.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { convertPack } from '../../../src/convert/index.js';
import { readModel, readTensorBytes } from '../../../src/convert/model-reader.js';
import { DT } from '../../../src/convert/onnx.js';
import { compareArrays, inputMetadata, makeInputs, runGraphs } from '../../../src/convert/verify.js';
import { parseManifest } from '../../../src/pack/manifest.js';
import { buildSyntheticFlux, SMALL_FLUX_DIMS } from '../../../tools/synthetic-flux/build.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-synth-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const VAE = join(TEST_PACK_DIR, 'vae_decoder/model.onnx');
const fp32 = buildSyntheticFlux(join(tmp, 'fp32/model.onnx'), { ...SMALL_FLUX_DIMS, double: 2, single: 2, seed: 5 });
const bf16 = buildSyntheticFlux(join(tmp, 'bf16/model.onnx'), { ...SMALL_FLUX_DIMS, double: 2, single: 2, seed: 5, dtype: 'bfloat16' });

describe('synthetic FLUX transformer', () => {
  it('runs on ORT with the schnell interface', async () => {
    const metas = await inputMetadata(fp32.modelPath);
    expect(metas.map((m) => m.name).sort()).toEqual(['encoder_hidden_states', 'hidden_states', 'img_ids', 'pooled_projections', 'timestep', 'txt_ids']);
    const feeds = makeInputs(metas, { component: 'transformer', seqImg: 16, seqTxt: 8 });
    const out = await runGraphs([fp32.modelPath], feeds);
    expect(out.latent!.dims).toEqual([1, 16, 64]);
    const v = out.latent!.data as Float32Array;
    expect(v.every(Number.isFinite)).toBe(true);
    expect(Math.max(...v.map(Math.abs))).toBeGreaterThan(0);
  });

  it('int8 with stages: ≥ 2 stages, chained output equals the unsplit conversion', async () => {
    const a = await convertPack({ transformer: fp32.modelPath, vaeDecoder: VAE, quant: 'int8', out: join(tmp, 'int8') });
    const b = await convertPack({ transformer: fp32.modelPath, vaeDecoder: VAE, quant: 'int8', out: join(tmp, 'int8-split'), maxStageMb: 0.15 });
    const st = b.report.manifest.components.transformer.stages!;
    expect(st.length).toBeGreaterThanOrEqual(2);
    const cos = (r: typeof a) => (r.report.components[0]!.verify as { outputs: { cosine: number }[] }).outputs[0]!.cosine;
    expect(cos(a)).toBeGreaterThan(0.999);
    expect(cos(b)).toBe(cos(a));
    // Stage boundaries carry only float activations (shape arithmetic is recomputed inside each stage).
    for (const s of st.slice(1)) {
      const metas = await inputMetadata(join(tmp, 'int8-split', s.graph));
      for (const m of metas) expect(m.type, m.name).toBe('float32');
    }
  });

  it('a bf16 source becomes an fp32 graph equal to the fp32 model up to bf16 rounding', async () => {
    const r = await convertPack({ transformer: bf16.modelPath, vaeDecoder: VAE, quant: 'fp32', out: join(tmp, 'from-bf16') });
    const t = r.report.components[0]!;
    expect(t.sourceHadBf16).toBe(true);
    expect(bf16.weightBytes * 2).toBe(fp32.weightBytes);
    expect(t.bytesAfter).toBeGreaterThanOrEqual(fp32.weightBytes);
    const m = parseManifest(JSON.parse(readFileSync(join(tmp, 'from-bf16/manifest.json'), 'utf8')));
    expect(m.components.transformer.dtype).toBe('float32');
    const graph = join(tmp, 'from-bf16', m.components.transformer.graph!);
    const metas = await inputMetadata(graph);
    for (const x of metas) expect(x.type).toBe('float32');
    const feeds = makeInputs(metas, { component: 'transformer' });
    const want = (await runGraphs([fp32.modelPath], feeds)).latent!;
    const got = (await runGraphs([graph], feeds)).latent!;
    const c = compareArrays('latent', want.data as Float32Array, got.data as Float32Array);
    console.log(`[convert] bf16 source → fp32 vs fp32 model: cos ${c.cosine.toFixed(6)}, max abs ${c.maxAbs.toExponential(2)}`);
    expect(c.cosine).toBeGreaterThan(0.995); // the difference is bf16's 8-bit mantissa on weights and constants
    expect(got).toBeInstanceOf(ort.Tensor);

    // The weights themselves convert exactly: fp32 bits = bf16 bits << 16.
    const src = readModel(bf16.modelPath);
    const dst = readModel(graph);
    let checked = 0;
    for (const [name, t] of src.initializers) {
      const o = dst.initializers.get(name);
      if (!o || t.dataType !== DT.BFLOAT16) continue;
      const a = new Uint16Array(Uint8Array.from(readTensorBytes(t)).buffer);
      const b = new Uint32Array(Uint8Array.from(readTensorBytes(o)).buffer);
      expect(o.dataType).toBe(DT.FLOAT);
      for (let i = 0; i < a.length; i++) if (b[i] !== (a[i]! << 16) >>> 0) throw new Error(`${name}[${i}] not exact`);
      checked++;
    }
    expect(checked).toBeGreaterThan(20);
  });
});
