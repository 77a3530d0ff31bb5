/**
 * `npm run pack --safety-checker`: the classifier is converted like the other components (int8 MatMulNBits by
 * default, norms/softmax left float), its config lands in a valid manifest, and the pack runs with it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { jpegJsEncoder } from '../../../src/cli/node-runtime.js';
import { convertPack } from '../../../src/convert/index.js';
import { main as packMain } from '../../../src/convert/main.js';
import { readModel } from '../../../src/convert/model-reader.js';
import { FluxEngine } from '../../../src/engine/flux-engine.js';
import { parseManifest } from '../../../src/pack/manifest.js';
import type { OrtApi } from '../../../src/runtime/ort-api.js';
import { openFsPack } from '../../../src/storage/fs-pack-source.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';
import { MIXED_BATCH, SAFETY_CHECKER_NAME, SAFETY_MODEL, SAFETY_REQUEST } from '../../support/safety-pack.js';
import { captureCliOutput } from '../../support/cli-output.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-convert-safety-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const src = (c: string) => join(TEST_PACK_DIR, c, 'model.onnx');

describe('a pack built with --safety-checker', () => {
  it('includes the quantized checker and its config, and runs', async () => {
    const out = join(tmp, 'pack');
    const result = await convertPack({
      transformer: src('transformer'),
      vaeDecoder: src('vae_decoder'),
      clip: src('clip'),
      t5: src('t5'),
      tokenizers: TEST_PACK_DIR,
      safetyChecker: SAFETY_MODEL,
      quant: 'fp32',
      out,
      testPack: true,
    });
    const manifest = parseManifest(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')));
    const spec = manifest.components.safety_checker!;
    expect(spec).toMatchObject({ graph: 'safety_checker/model.onnx', weights: 'int8', dtype: 'float32', model: SAFETY_CHECKER_NAME, labels: ['normal', 'nsfw'], unsafeLabels: ['nsfw'], threshold: 0.5 });
    expect(spec.preprocess).toMatchObject({ fit: 'stretch', height: 24, width: 24, resample: 'bilinear' });
    // The classifier head is int8 MatMulNBits; the patch embedding (Conv) and pooling stay float.
    const ops = (readModel(join(out, spec.graph!)).graph.node ?? []).map((n) => n.opType);
    expect(ops).toContain('MatMulNBits');
    expect(ops).toEqual(expect.arrayContaining(['Conv', 'ReduceMean']));
    const report = result.report.components.find((c) => c.component === 'safety_checker')!;
    expect(report.quantized.map((q) => q.params.bits)).toEqual([8]);
    expect(report.verify && 'outputs' in report.verify ? report.verify.inputs : null).toEqual({ pixel_values: [1, 3, 24, 24] });
    expect(report.verify && 'outputs' in report.verify ? report.verify.outputs[0]!.cosine : 0).toBeGreaterThan(0.9999);

    const engine = new FluxEngine({ runtime: { ort: ort as unknown as OrtApi, target: 'cpu' }, jpeg: jpegJsEncoder });
    await engine.loadPack(await openFsPack(out));
    const r = await engine.generate({ ...SAFETY_REQUEST, seed: MIXED_BATCH.seed, num_images: 4 });
    expect(r.has_nsfw_concepts).toEqual(MIXED_BATCH.flags);
    expect(r.safety).toMatchObject({ ran: true, checker: SAFETY_CHECKER_NAME });
    await engine.unload();
  });

  describe('npm run pack -- --safety-checker … --safety-config …', () => {
    const cli = captureCliOutput();

    it('overrides from a JSON file win over the Hugging Face configs; a bad one fails before converting', async () => {
      const cfg = join(tmp, 'override.json');
      writeFileSync(cfg, JSON.stringify({ model: 'renamed', threshold: 0.9, preprocess: { resample: 'bicubic' } }));
      const out = join(tmp, 'pack2');
      const args = ['--transformer', src('transformer'), '--vae-decoder', src('vae_decoder'), '--quant', 'fp32', '--safety-checker', SAFETY_MODEL, '--out', out, '--quiet'];
      expect(await packMain([...args, '--safety-config', cfg, '--safety-quant', 'fp32']), cli.stderr).toBe(0);
      const m = parseManifest(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')));
      expect(m.components.safety_checker).toMatchObject({ model: 'renamed', threshold: 0.9, weights: 'float32', preprocess: { resample: 'bicubic', height: 24 } });

      writeFileSync(cfg, JSON.stringify({ threshold: 2 }));
      expect(await packMain([...args, '--safety-config', cfg])).toBe(1);
      expect(cli.stderr).toMatch(/safety_checker\.threshold: must be a number in \(0, 1\]/);
      expect(existsSync(join(out, 'manifest.json')), 'the previous pack is untouched').toBe(true);
    });
  });
});
