/**
 * Converted packs run the whole pipeline (the CLI, same engine as the worker) on the golden 4-step 64×64 case:
 * fp32 reproduces the reference image, int8/int4 stay within measured PSNR bounds, and a transformer split into
 * stages gives exactly the unsplit pack's output.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { parseNpy } from '../../../src/cli/npy.js';
import { convertPack, type QuantMode } from '../../../src/convert/index.js';
import { runGraphs } from '../../../src/convert/verify.js';
import * as ort from 'onnxruntime-node';
import { parseManifest } from '../../../src/pack/manifest.js';
import { decodePng, readNpyAny, REFERENCE_DIR, TEST_PACK_DIR } from '../../support/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-convert-pipe-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const CASE = join(REFERENCE_DIR, 'steps4_64x64_b1');

function psnr(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  const mse = se / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

async function convert(quant: QuantMode, out: string, extra: { maxStageMb?: number } = {}) {
  return convertPack({
    transformer: join(TEST_PACK_DIR, 'transformer/model.onnx'),
    vaeDecoder: join(TEST_PACK_DIR, 'vae_decoder/model.onnx'),
    quant,
    out,
    testPack: true,
    verifyMb: 0,
    ...extra,
  });
}

async function generate(pack: string, name: string): Promise<{ rgb: Uint8Array; latents: Float32Array }> {
  const image = join(tmp, `${name}.png`);
  const latents = join(tmp, `${name}.npy`);
  const code = await main([
    'generate', '--pack', pack,
    '--latents', join(CASE, 'latents.npy'),
    '--prompt-embeds', join(CASE, 'prompt_embeds.npy'),
    '--pooled-prompt-embeds', join(CASE, 'pooled_prompt_embeds.npy'),
    '--steps', '4', '--width', '64', '--height', '64',
    '--save-latents', latents, '--out', image, '--json', '--no-verify',
  ]);
  expect(code).toBe(0);
  return { rgb: decodePng(new Uint8Array(readFileSync(image))).rgb, latents: parseNpy(new Uint8Array(readFileSync(latents))).data as Float32Array };
}

const reference = () => readNpyAny(join(CASE, 'image.npy')).data as Uint8Array;

describe('converted packs through the whole pipeline (steps4_64x64_b1)', () => {
  // Measured on this case: fp32 ∞ dB (bit-identical image), int8 55.1 dB, int4 42.1 dB (default policy: int8 for the
  // conditioning/embedding/output layers), pure int4 (no int8 layers) printed below. The bounds leave ~7 dB of
  // margin for other CPUs/ORT builds; fp32 must be exact (a conversion bug shows up as < 30 dB immediately).
  const bounds: Record<string, number> = { fp32: Infinity, int8: 48, int4: 35 };
  const measured: Record<string, number> = {};
  for (const quant of ['fp32', 'int8', 'int4'] as const) {
    it(`${quant}: PSNR vs the reference image ≥ ${bounds[quant] === Infinity ? '∞' : bounds[quant]} dB`, async () => {
      const out = join(tmp, quant);
      await convert(quant, out);
      parseManifest(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')));
      const { rgb } = await generate(out, quant);
      const p = psnr(rgb, reference());
      measured[quant] = p;
      console.log(`[convert] ${quant} pack: PSNR ${p === Infinity ? '∞' : p.toFixed(2)} dB vs reference image`);
      expect(p).toBeGreaterThanOrEqual(bounds[quant]!);
    });
  }
  it('int8 is closer to the reference than int4; pure int4 (every MatMul 4-bit) still ≥ 30 dB', async () => {
    if (measured.int8 !== undefined && measured.int4 !== undefined) expect(measured.int8).toBeGreaterThan(measured.int4);
    const out = join(tmp, 'int4-pure');
    await convertPack({
      transformer: join(TEST_PACK_DIR, 'transformer/model.onnx'),
      vaeDecoder: join(TEST_PACK_DIR, 'vae_decoder/model.onnx'),
      quant: 'int4',
      int8Layers: '',
      out,
      verifyMb: 0,
    });
    const p = psnr((await generate(out, 'int4-pure')).rgb, reference());
    console.log(`[convert] int4 pack without int8 layers: PSNR ${p.toFixed(2)} dB vs reference image`);
    expect(p).toBeGreaterThanOrEqual(30);
  });
});

describe('--max-stage-mb', () => {
  it('splits the transformer into ≥ 2 stages whose chained output equals the unsplit graph', async () => {
    const whole = join(tmp, 'int4-whole');
    const split = join(tmp, 'int4-split');
    await convert('int4', whole);
    const r = await convert('int4', split, { maxStageMb: 0.03 });
    const m = parseManifest(JSON.parse(readFileSync(join(split, 'manifest.json'), 'utf8')));
    const stages = m.components.transformer.stages!;
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const tr = r.report.components.find((c) => c.component === 'transformer')!;
    console.log(`[convert] stages: ${stages.length}, weights per stage ${tr.stageWeightBytes.map((b) => (b / 1024).toFixed(1) + ' KiB').join(' / ')}`);
    for (const b of tr.stageWeightBytes.slice(0, -1)) expect(b).toBeLessThanOrEqual(0.03 * 2 ** 20);

    // Chain the stage graphs on ORT and compare with the unsplit graph on the same inputs.
    const S = 16;
    const L = 8;
    const feeds = {
      hidden_states: new ort.Tensor('float32', Float32Array.from({ length: S * 64 }, (_, i) => Math.sin(i)), [1, S, 64]),
      encoder_hidden_states: new ort.Tensor('float32', Float32Array.from({ length: L * 64 }, (_, i) => Math.cos(i)), [1, L, 64]),
      pooled_projections: new ort.Tensor('float32', Float32Array.from({ length: 32 }, (_, i) => Math.sin(i * 3)), [1, 32]),
      timestep: new ort.Tensor('float32', Float32Array.from([0.75]), [1]),
      img_ids: new ort.Tensor('float32', Float32Array.from({ length: S * 3 }, (_, i) => (i % 3 === 1 ? Math.floor(i / 12) : i % 3 === 2 ? Math.floor(i / 3) % 4 : 0)), [S, 3]),
      txt_ids: new ort.Tensor('float32', new Float32Array(L * 3), [L, 3]),
    };
    const a = await runGraphs([join(whole, 'transformer/model.onnx')], feeds);
    const b = await runGraphs(stages.map((s) => join(split, s.graph)), feeds, ['latent']);
    const x = a.latent!.data as Float32Array;
    const y = b.latent!.data as Float32Array;
    let maxDiff = 0;
    for (let i = 0; i < x.length; i++) maxDiff = Math.max(maxDiff, Math.abs(x[i]! - y[i]!));
    expect(maxDiff).toBeLessThanOrEqual(1e-6);

    // And through the CLI when the runtime runs stages.
    const whole4 = await generate(whole, 'int4-whole');
    let cli: { rgb: Uint8Array; latents: Float32Array } | null = null;
    try {
      cli = await generate(split, 'int4-split');
    } catch (e) {
      console.log(`[convert] CLI with stages not available: ${(e as Error).message}`);
    }
    if (cli) {
      let d = 0;
      for (let i = 0; i < cli.latents.length; i++) d = Math.max(d, Math.abs(cli.latents[i]! - whole4.latents[i]!));
      console.log(`[convert] CLI split vs unsplit: final latents max diff ${d}`);
      expect(d).toBeLessThanOrEqual(1e-6);
      expect(Buffer.from(cli.rgb).equals(Buffer.from(whole4.rgb))).toBe(true);
    }
  });
});
