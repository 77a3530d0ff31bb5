/**
 * --quant int4 --activations fp16: MatMulNBits with fp16 activations and fp16 scales, fp32 islands (norms, softmax,
 * RMSNorm, timestep/RoPE trig, T5 `wo` + residual), fp16 Adds of two activations clamped to ±65504, the pack needs
 * shader-f16; on ORT CPU the golden cases give the same images as int4 + fp32 activations. (The same on a real
 * shader-f16 WebGPU adapter: tests/f16/fp16-golden.test.ts.)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as generateMain } from '../../../src/cli/main.js';
import { clampResidualAdds, FP16_MAX } from '../../../src/convert/fp16-activations.js';
import { OVERFLOW_INPUT, writeOverflowModels } from '../../f16/overflow-model.js';
import { inferTypes, producerMap } from '../../../src/convert/graph.js';
import { convertPack, type ConvertResult } from '../../../src/convert/index.js';
import { main as packMain } from '../../../src/convert/main.js';
import { readModel } from '../../../src/convert/model-reader.js';
import { DT } from '../../../src/convert/onnx.js';
import { buildComponentGraph } from '../../../src/convert/passes.js';
import { parseManifest } from '../../../src/pack/manifest.js';
import { captureCliOutput } from '../../support/cli-output.js';
import { decodePng, referenceCases, TEST_PACK_DIR } from '../../support/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-convert-fp16act-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const src = (c: string) => join(TEST_PACK_DIR, c, 'model.onnx');
const packs = { int4: join(tmp, 'int4'), half: join(tmp, 'half') };
let half: ConvertResult;

function load(component: string) {
  const g = buildComponentGraph(readModel(join(packs.half, component, 'model.onnx')));
  return { g, types: inferTypes(g), producers: producerMap(g.nodes) };
}

beforeAll(async () => {
  const common = { transformer: src('transformer'), vaeDecoder: src('vae_decoder'), clip: src('clip'), t5: src('t5'), tokenizers: TEST_PACK_DIR, quant: 'int4' as const, testPack: true };
  await convertPack({ ...common, out: packs.int4, verifyMb: 0 });
  half = await convertPack({ ...common, activations: 'fp16', out: packs.half });
}, 120_000);

describe('--quant int4 --activations fp16', () => {
  it('manifest: int4 weights, fp32 I/O, needs shader-f16; the VAE (fp32) does not', () => {
    const m = parseManifest(JSON.parse(readFileSync(join(packs.half, 'manifest.json'), 'utf8')));
    for (const c of ['transformer', 'clip', 't5'] as const) {
      expect(m.components[c]!.weights).toBe('int4');
      expect(m.components[c]!.dtype).toBe('float32');
      expect(m.components[c]!.requiredFeatures).toEqual(['shader-f16']);
    }
    expect(m.components.vae_decoder.requiredFeatures).toEqual([]);
    const plain = parseManifest(JSON.parse(readFileSync(join(packs.int4, 'manifest.json'), 'utf8')));
    expect(plain.components.transformer.requiredFeatures).toEqual([]);
  });

  it('MatMulNBits take fp16 activations and fp16 scales (half the fp32 scale bytes); T5 wo stays fp32', () => {
    for (const c of ['transformer', 'clip', 't5']) {
      const { g, types } = load(c);
      const nbits = g.nodes.filter((n) => n.opType === 'MatMulNBits');
      expect(nbits.length, c).toBeGreaterThan(0);
      for (const n of nbits) {
        const isWo = c === 't5' && /\/wo\//.test(n.name ?? '');
        const want = isWo ? DT.FLOAT : DT.FLOAT16;
        expect(types.get(n.input![0]!), `${c} ${n.name} A`).toBe(want);
        const scales = g.inits.get(n.input![2]!)!;
        expect(scales.dataType, `${c} ${n.name} scales`).toBe(want);
        const K = Number(n.attribute!.find((a) => a.name === 'K')!.i);
        const N = Number(n.attribute!.find((a) => a.name === 'N')!.i);
        expect(scales.byteLength).toBe((N * K) / 32 * (want === DT.FLOAT16 ? 2 : 4));
      }
      if (c === 't5') expect(nbits.filter((n) => /\/wo\//.test(n.name ?? '')).length).toBe(2);
    }
    const t = half.report.components.find((r) => r.component === 'transformer')!.fp16!;
    expect('nbitsFp16' in t && t.nbitsFp16).toBe(48);
  });

  it('norms, softmax, RMSNorm and the timestep/RoPE trig compute in fp32', () => {
    for (const c of ['transformer', 'clip', 't5']) {
      const { g, types } = load(c);
      let checked = 0;
      for (const n of g.nodes) {
        if (!['LayerNormalization', 'Softmax', 'ReduceMean', 'Pow', 'Sqrt', 'Cos', 'Sin'].includes(n.opType ?? '')) continue;
        expect(types.get(n.input![0]!), `${c}: ${n.name} (${n.opType})`).toBe(DT.FLOAT);
        checked++;
      }
      expect(checked, c).toBeGreaterThan(0);
    }
  });

  it('every fp16 Add of two activations is clamped to ±65504; fp32 Adds are not', () => {
    const { g, types, producers } = load('transformer');
    const clips = g.nodes.filter((n) => n.opType === 'Clip' && /_fp16_clamp$/.test(n.name ?? ''));
    expect(clips.length).toBe(36);
    for (const c of clips) {
      expect(producers.get(c.input![0]!)!.opType).toBe('Add');
      expect(types.get(c.output![0]!)).toBe(DT.FLOAT16);
      for (const [slot, v] of [[1, -FP16_MAX], [2, FP16_MAX]] as const) {
        const init = g.inits.get(c.input![slot]!)!;
        expect(init.dataType).toBe(DT.FLOAT16);
        const bytes = (init.job.source.source as { bytes: Uint8Array }).bytes;
        expect(new DataView(bytes.buffer, bytes.byteOffset).getUint16(0, true)).toBe(v < 0 ? 0xfbff : 0x7bff);
      }
    }
    const consts = new Set(g.inits.keys());
    for (const n of g.nodes) for (const o of n.opType === 'Constant' ? n.output ?? [] : []) consts.add(o);
    const unclamped = g.nodes.filter(
      (n) => n.opType === 'Add' && types.get(n.output![0]!) === DT.FLOAT16 && !consts.has(n.input![0]!) && !consts.has(n.input![1]!) && !n.output![0]!.endsWith('_unclamped'),
    );
    expect(unclamped.map((n) => n.name)).toEqual([]);
  });

  it('the golden cases on ORT CPU: the same images as int4 + fp32 activations (PSNR ≥ 55 dB, ≤ 2/255)', async () => {
    for (const c of referenceCases().filter((x) => x.batch === 1).slice(0, 2)) {
      const img: Record<string, Uint8Array> = {};
      for (const [name, dir] of Object.entries(packs)) {
        const file = join(tmp, `${c.name}-${name}.png`);
        const code = await generateMain([
          'generate', '--pack', dir, '--latents', join(c.dir, 'latents.npy'), '--prompt-embeds', join(c.dir, 'prompt_embeds.npy'),
          '--pooled-prompt-embeds', join(c.dir, 'pooled_prompt_embeds.npy'), '--steps', String(c.steps), '--width', String(c.width),
          '--height', String(c.height), '--out', file, '--json',
        ]);
        expect(code).toBe(0);
        img[name] = decodePng(new Uint8Array(readFileSync(file))).rgb;
      }
      let se = 0;
      let max = 0;
      for (let i = 0; i < img.half!.length; i++) {
        const d = img.half![i]! - img.int4![i]!;
        se += d * d;
        max = Math.max(max, Math.abs(d));
      }
      const db = se === 0 ? Infinity : 10 * Math.log10((255 * 255 * img.half!.length) / se);
      console.log(`[fp16 activations, ORT CPU] ${c.name}: PSNR vs int4 fp32-activations ${db.toFixed(1)} dB, max diff ${max}`);
      expect(db).toBeGreaterThanOrEqual(55);
      expect(max).toBeLessThanOrEqual(2);
    }
  }, 120_000);
});

describe('residual clamp', () => {
  it('saturates at ±65504 and leaves in-range values unchanged (on ORT CPU, whose fp16 Add runs in fp32; real f16 overflow: tests/f16)', async () => {
    const { clamped, unclamped } = writeOverflowModels(tmp);
    const run = async (path: string, x: Float32Array) => {
      const s = await ort.InferenceSession.create(path);
      const r = await s.run({ x: new ort.Tensor('float32', x, [1, 8]) });
      await s.release();
      return Array.from(r.y!.data as Float32Array);
    };
    expect(buildComponentGraph(readModel(clamped)).nodes.filter((n) => n.opType === 'Clip').length).toBe(1);
    // x·600 for x = 117…120 is 70200…72000: all four clamp to 65504 and normalize to the same value.
    const y = await run(clamped, OVERFLOW_INPUT);
    expect(new Set(y.slice(0, 4)).size).toBe(1);
    expect(y.every(Number.isFinite)).toBe(true);
    // In range (≤ 36000) the clamp changes nothing beyond fp16 rounding of the Add (which the CPU skips without it).
    const small = OVERFLOW_INPUT.map((v) => v / 2);
    const [a, b] = [await run(clamped, small), await run(unclamped, small)];
    a.forEach((v, i) => expect(Math.abs(v - b[i]!), `y[${i}]`).toBeLessThan(2e-3));
  });

  it('graphs below opset 11 are refused (Clip has no min/max inputs there)', () => {
    const g = buildComponentGraph(readModel(join(TEST_PACK_DIR, 'vae_decoder', 'model.onnx')));
    g.opsetImport = [{ domain: '', version: 10 }];
    expect(() => clampResidualAdds(g)).toThrow(/needs an opset ≥ 11 graph \(this one is opset 10\)/);
  });
});

describe('--activations flag', () => {
  const cli = captureCliOutput();
  const base = ['--transformer', src('transformer'), '--vae-decoder', src('vae_decoder'), '--out', join(tmp, 'bad')];
  it.each([
    [['--quant', 'int4', '--activations', 'bf16'], /--activations must be fp32 or fp16/],
    [['--quant', 'fp32', '--activations', 'fp16'], /--activations fp16 goes with an int4\/int8 transformer \(got fp32\); for fp16 weights and activations use --quant fp16/],
    [['--quant', 'fp16', '--activations', 'fp16'], /got fp16\)/],
  ])('%j is refused', async (args, msg) => {
    expect(await packMain([...base, ...args])).toBe(1);
    expect(cli.stderr).toMatch(msg);
  });
});
