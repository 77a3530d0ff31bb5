/**
 * The attention pass at real FLUX dimensions: the synthetic slice (tools/synthetic-flux: hidden 3072, 24 × 128 heads,
 * MLP 12288, joint 4096; 1 double + 1 single block, 535 M fp32 weights) converted with the default
 * `--attention chunked` (and split into stages by the default --max-stage-mb): both attentions are rewritten, no
 * Softmax is left over S×S (each reads a query chunk), and the converted stages reproduce the unconverted graph on
 * ORT CPU within 1e-4 (the converter's own verify: same random inputs through both).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { convertPack } from '../../../src/convert/index.js';
import { onnx, type NodeProto } from '../../../src/convert/onnx.js';
import { buildSyntheticFlux, REAL_FLUX_DIMS } from '../../../tools/synthetic-flux/build.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-attention-real-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('attention pass on the real-dimension synthetic slice', () => {
  it('rewrites both attentions (24 heads × 128), leaves no S×S Softmax, and the fp32 stages match the source within 1e-4', { timeout: 600_000 }, async () => {
    const model = buildSyntheticFlux(join(tmp, 'src', 'model.onnx'), { ...REAL_FLUX_DIMS, double: 1, single: 1 });
    const out = join(tmp, 'pack');
    const r = await convertPack({ transformer: model.modelPath, vaeDecoder: join(TEST_PACK_DIR, 'vae_decoder/model.onnx'), quant: 'fp32', out, verifyMb: 4096 });
    const t = r.report.components.find((c) => c.component === 'transformer')!;
    expect(t.attention).toMatchObject({ mode: 'chunked', chunks: 16, skipped: [] });
    expect(t.attention!.sites).toHaveLength(2);
    expect(r.report.manifest.components.transformer).toMatchObject({ attention: 'fused', attentionChunks: 16 });

    // Every Softmax reads MatMul(Slice(Pad(q)), kᵀ) [· scale]: a chunk of the query rows, never all of them.
    const nodes: NodeProto[] = t.files.filter((f) => f.path.endsWith('.onnx')).flatMap((f) => onnx.ModelProto.decode(readFileSync(join(out, f.path))).graph!.node ?? []);
    const producer = new Map(nodes.flatMap((n) => (n.output ?? []).map((o) => [o, n] as const)));
    const softmaxes = nodes.filter((n) => n.opType === 'Softmax');
    expect(softmaxes).toHaveLength(2 * 16);
    for (const sm of softmaxes) {
      let p = producer.get(sm.input![0]!);
      while (p && p.opType !== 'MatMul') p = producer.get(p.input![0]!);
      const q = producer.get(p?.input?.[0] ?? '');
      expect(q?.opType, sm.name ?? '').toBe('Slice');
      expect(producer.get(q!.input![0]!)?.opType).toBe('Pad');
    }

    expect(t.stages).toBeGreaterThan(1);
    expect(t.verify && 'outputs' in t.verify, JSON.stringify(t.verify)).toBe(true);
    if (t.verify && 'outputs' in t.verify) {
      console.log(`[attention-real] ${t.stages} stages; verify vs source: ${t.verify.outputs.map((o) => `${o.output} max abs ${o.maxAbs.toExponential(2)}, cos ${o.cosine.toFixed(7)}`).join('; ')}`);
      for (const o of t.verify.outputs) expect(o.maxAbs).toBeLessThanOrEqual(1e-4);
    }
  });
});
