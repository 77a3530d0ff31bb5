/**
 * The synthetic FLUX generator (tools/synthetic-flux) at test size: a runnable graph with the schnell I/O; the
 * converter handles it (int8 + stages), and a bf16 copy (like the official transformer.opt/bf16 export, which no
 * browser can run) converts to an fp32 graph equal to the fp32 model up to bf16 weight rounding.
 * The whole set (T5-XXL, CLIP-L, FLUX VAE, toy tokenizers): the real dimensions give the published parameter
 * counts, the test-size set converts with the README's recommended settings and generates through the CLI, and the
 * written weights are the counter-based values bench/device/flux_torch.py regenerates.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { convertPack } from '../../../src/convert/index.js';
import { readModel, readTensorBytes } from '../../../src/convert/model-reader.js';
import { DT } from '../../../src/convert/onnx.js';
import { compareArrays, inputMetadata, makeInputs, runGraphs } from '../../../src/convert/verify.js';
import { parseManifest } from '../../../src/pack/manifest.js';
import { buildSyntheticFlux, buildSyntheticSet, SMALL_FLUX_DIMS } from '../../../tools/synthetic-flux/build.js';
import { tensorSeed, toBf16, weightValue } from '../../../tools/synthetic-flux/graph.js';
import { decodePng, ROOT, TEST_PACK_DIR } from '../../support/fixtures.js';

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

describe('synthetic FLUX.1 [schnell] set', () => {
  it('real dimensions give the published parameter counts (dry run, nothing written)', () => {
    const full = buildSyntheticSet(join(tmp, 'dry-full'), { depth: 'full', dryRun: true });
    expect(existsSync(join(tmp, 'dry-full'))).toBe(false);
    expect(full.t5.params).toBe(4_762_310_656); // T5EncoderModel google/t5-v1_1-xxl
    expect(full.clip.params).toBe(123_060_480); // CLIPTextModel openai/clip-vit-large-patch14
    expect(full.vae_decoder.params).toBeGreaterThan(49.4e6); // AutoencoderKL decoder of FLUX.1 (49.49 M)
    expect(full.vae_decoder.params).toBeLessThan(49.6e6);
    expect(full.transformer.params).toBeGreaterThan(11.85e9); // FluxTransformer2DModel schnell (11.9 B)
    expect(full.transformer.params).toBeLessThan(11.95e9);
    expect(full.weightBytes).toBe(2 * full.params); // bf16 like BFL's export
    const slice = buildSyntheticSet(join(tmp, 'dry-slice'), { depth: 'slice', dryRun: true });
    expect(slice.config.transformer).toMatchObject({ double: 1, single: 1, hidden: 3072 });
    expect(slice.config.t5.layers).toBe(1);
    expect(slice.clip.params).toBe(full.clip.params);
    expect(slice.vae_decoder.params).toBe(full.vae_decoder.params);
  });

  it('refuses to start when the disk lacks the space, naming what it needs', () => {
    expect(() => buildSyntheticSet(join(tmp, 'nospace'), { depth: 'slice', small: true, reserveBytes: 2 ** 60 })).toThrow(/GiB free; the slice set needs .* GiB reserve/);
  });

  const set = buildSyntheticSet(join(tmp, 'set'), { depth: 'slice', small: true, dtype: 'bfloat16', seed: 3 });

  it('the written weights are the counter-based values weights.json describes (bf16, round to nearest even)', () => {
    const index = JSON.parse(readFileSync(join(set.dir, 'weights.json'), 'utf8')) as { seeds: Record<string, number>; components: Record<string, { name: string; dims: number[]; std: number; mean: number }[]> };
    expect(Object.keys(index.components).sort()).toEqual(['clip', 't5', 'transformer', 'vae_decoder']);
    for (const [component, specs] of Object.entries(index.components)) {
      const m = readModel(join(set.dir, component, 'model.onnx'));
      const external = [...m.initializers.values()].filter((t) => t.source.kind === 'file');
      expect(specs.map((w) => w.name).sort(), component).toEqual(external.map((t) => t.name).sort());
      for (const w of [specs[0]!, specs[specs.length - 1]!]) {
        const bytes = readTensorBytes(m.initializers.get(w.name)!);
        const got = new Uint16Array(Uint8Array.from(bytes).buffer);
        const n = got.length;
        const ts = tensorSeed(index.seeds[component]!, w.name);
        const want = toBf16(Float32Array.from({ length: n }, (_, i) => weightValue(ts, i, w.std, w.mean)));
        expect(got, `${component} ${w.name}`).toEqual(want);
      }
    }
  });

  it('each component runs on ORT with the FLUX.1 interface', async () => {
    const fp32 = buildSyntheticSet(join(tmp, 'set32'), { depth: 'slice', small: true, dtype: 'float32', seed: 3 });
    const ids = new ort.Tensor('int64', BigInt64Array.from({ length: 77 }, (_, i) => BigInt(i < 5 ? 100 + i : i === 5 ? 2013 : 0)), [1, 77]);
    const clip = await runGraphs([fp32.clip.modelPath], { input_ids: ids });
    expect(clip.last_hidden_state!.dims).toEqual([1, 77, 64]);
    expect(clip.pooler_output!.dims).toEqual([1, 64]);
    // Pooled = the final-LN row at the argmax id (position 5 here).
    expect(Array.from(clip.pooler_output!.data as Float32Array)).toEqual(Array.from((clip.last_hidden_state!.data as Float32Array).subarray(5 * 64, 6 * 64)));
    const t5 = await runGraphs([fp32.t5.modelPath], { input_ids: new ort.Tensor('int32', Int32Array.from({ length: 12 }, (_, i) => 7 * i + 1), [1, 12]) });
    expect(t5.last_hidden_state!.dims).toEqual([1, 12, 128]);
    const vae = await runGraphs([fp32.vae_decoder.modelPath], { latent: new ort.Tensor('float32', Float32Array.from({ length: 16 * 4 * 6 }, (_, i) => Math.sin(i)), [1, 16, 4, 6]) });
    expect(vae.images!.dims).toEqual([1, 3, 32, 48]);
    for (const o of [clip.last_hidden_state!, t5.last_hidden_state!, vae.images!]) {
      const v = o.data as Float32Array;
      expect(v.every(Number.isFinite)).toBe(true);
      expect(Math.max(...v.map(Math.abs))).toBeGreaterThan(1e-3);
    }
  });

  it('converts with the recommended settings (bf16 source) and the CLI generates with the pack', async () => {
    const out = join(tmp, 'set-pack');
    const r = await convertPack({
      transformer: set.transformer.modelPath, t5: set.t5.modelPath, clip: set.clip.modelPath, vaeDecoder: set.vae_decoder.modelPath, tokenizers: set.tokenizers,
      quant: 'int4', clipQuant: 'int8', blockSize: 32, shardMb: 512, out,
    });
    const c = r.report.manifest.components;
    expect([c.transformer.weights, c.t5!.weights, c.clip!.weights, c.vae_decoder.weights]).toEqual(['int4', 'int4', 'int8', 'float32']);
    for (const comp of r.report.components) {
      expect(comp.sourceHadBf16, comp.component).toBe(true);
      // (ORT CPU cannot run the bf16 source, so the whole-graph comparison is skipped; the per-MatMul error is not.)
      if (comp.quantized.length) expect(comp.recon.cosine, comp.component).toBeGreaterThan(0.99);
    }
    const png = join(tmp, 'set.png');
    const cli = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'generate', '--pack', out, '--prompt', 'a lighthouse at dusk', '--seed', '1', '--steps', '1', '--image-size', '64x48', '--out', png], { cwd: ROOT, encoding: 'utf8' });
    expect(cli.status, cli.stderr).toBe(0);
    const img = decodePng(readFileSync(png));
    expect([img.width, img.height]).toEqual([64, 48]);
    expect(new Set(img.rgb).size).toBeGreaterThan(8); // an image, not a constant
  }, 120_000);
});
