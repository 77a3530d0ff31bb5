/**
 * Converting the test pack's graphs (the transformer with external data, the VAE, CLIP and T5): accuracy vs fp32
 * on random inputs, MatMul weight shrink computed from the written files, shard sizes, manifest, sha256.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { convertPack, DEFAULT_INT8_LAYERS, defaultInt8Layers, OUTPUT_INT8_LAYERS, type ConvertResult } from '../../../src/convert/index.js';
import { main as packMain } from '../../../src/convert/main.js';
import { readModel } from '../../../src/convert/model-reader.js';
import { attrInt } from '../../../src/convert/onnx.js';
import { parseManifest, type PackManifest } from '../../../src/pack/manifest.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-convert-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const SHARD_MB = 0.04; // 41 KiB: several shards even for the int4 transformer; above the VAE's largest tensor (36 KiB)
const src = (c: string) => join(TEST_PACK_DIR, c, 'model.onnx');

/** MatMul/Gemm weight bytes of the original graph; MatMulNBits B+scales+zp bytes of the converted one (by bits). */
function matmulBytes(original: string, converted: string[]) {
  const o = readModel(original);
  let before = 0;
  for (const n of o.graph.node ?? []) {
    if ((n.opType === 'MatMul' || n.opType === 'Gemm') && o.initializers.has(n.input?.[1] ?? '')) before += o.initializers.get(n.input![1]!)!.byteLength;
  }
  const after = { 4: 0, 8: 0 } as Record<number, number>;
  let fpMatMuls = 0;
  for (const path of converted) {
    const c = readModel(path);
    for (const n of c.graph.node ?? []) {
      if (n.opType === 'MatMulNBits') {
        const bits = attrInt(n, 'bits', 4);
        for (const x of (n.input ?? []).slice(1)) after[bits]! += c.initializers.get(x)!.byteLength;
      } else if ((n.opType === 'MatMul' || n.opType === 'Gemm') && c.initializers.has(n.input?.[1] ?? '')) fpMatMuls++;
    }
  }
  return { before, after, fpMatMuls };
}

function checkFiles(dir: string, m: PackManifest): void {
  const listed = new Set(m.files.map((f) => f.path));
  for (const f of m.files) {
    const bytes = readFileSync(join(dir, f.path));
    expect(bytes.length, f.path).toBe(f.size);
    expect(createHash('sha256').update(bytes).digest('hex'), f.path).toBe(f.sha256);
  }
  // Every file in the folder is listed.
  const walk = (d: string, rel: string): string[] =>
    readdirSync(d).flatMap((e) => (statSync(join(d, e)).isDirectory() ? walk(join(d, e), `${rel}${e}/`) : [`${rel}${e}`]));
  for (const f of walk(dir, '')) if (f !== 'manifest.json') expect(listed.has(f), f).toBe(true);
}

const results: Record<string, ConvertResult> = {};

describe.each([
  { quant: 'int8' as const, minCos: 0.999, minShrink: 3.5 },
  { quant: 'int4' as const, minCos: 0.99, minShrink: 6.0 },
])('--quant $quant (block 32)', ({ quant, minCos, minShrink }) => {
  const out = join(tmp, quant);
  it('converts the test pack graphs; manifest valid, every file listed with matching size and sha256', async () => {
    const r = await convertPack({ transformer: src('transformer'), vaeDecoder: src('vae_decoder'), quant, out, shardMb: SHARD_MB, testPack: true, id: `tiny-${quant}` });
    results[quant] = r;
    const m = parseManifest(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')));
    checkFiles(out, m);
    expect(m.components.transformer.weights).toBe(quant);
    expect(m.components.transformer.dtype).toBe('float32');
    expect(m.components.transformer.requiredFeatures).toEqual([]);
    expect(m.components.vae_decoder.weights).toBe('float32');
    console.log(`[convert] ${quant}: peak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB, ${r.seconds.toFixed(2)} s`);
  });

  it(`transformer output vs fp32 on random inputs: cosine ≥ ${minCos}`, () => {
    const t = results[quant]!.report.components.find((c) => c.component === 'transformer')!;
    expect(t.verify && 'outputs' in t.verify).toBe(true);
    const v = (t.verify as { outputs: { output: string; cosine: number; maxAbs: number; meanAbs: number }[] }).outputs[0]!;
    console.log(`[convert] ${quant} transformer vs fp32: cos ${v.cosine.toFixed(6)}, max abs ${v.maxAbs.toExponential(2)}, mean abs ${v.meanAbs.toExponential(2)}`);
    expect(v.cosine).toBeGreaterThanOrEqual(minCos);
    const vae = results[quant]!.report.components.find((c) => c.component === 'vae_decoder')!;
    expect((vae.verify as { outputs: { maxAbs: number }[] }).outputs[0]!.maxAbs).toBe(0); // VAE stays fp32, bit-exact
  });

  it('MatMul weight bytes shrink (from the written files, scales and zero points included)', () => {
    const { before, after, fpMatMuls } = matmulBytes(src('transformer'), [join(out, 'transformer/model.onnx')]);
    expect(fpMatMuls).toBe(0);
    const total = after[4]! + after[8]!;
    console.log(`[convert] ${quant}: MatMul weights ${before} → ${total} bytes (${(before / total).toFixed(2)}×; 4-bit ${after[4]}, 8-bit ${after[8]})`);
    expect(before / total).toBeGreaterThanOrEqual(minShrink);
    if (quant === 'int8') expect(after[4]).toBe(0);
  });

  it(`every external-data shard is ≤ --shard-mb ${SHARD_MB} and the transformer has several`, () => {
    const m = parseManifest(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')));
    const shards = m.files.filter((f) => /\.data\.\d{3}$/.test(f.path));
    for (const f of shards) expect(f.size).toBeLessThanOrEqual(SHARD_MB * 2 ** 20);
    expect(m.components.transformer.externalData!.length).toBeGreaterThanOrEqual(2);
    for (const x of m.components.transformer.externalData!) expect(x.file).toBe(`transformer/${x.path}`);
  });
});

describe('default int8 layers of an int4 transformer', () => {
  const fake = (layers: [string, number][]) =>
    ({
      nodes: layers.map(([n]) => ({ opType: 'MatMul', name: `/${n}/MatMul`, input: ['x', `${n}.weight`] })),
      inits: new Map(layers.map(([n, size]) => [`${n}.weight`, { name: `${n}.weight`, dims: [size, 1] }])),
    }) as unknown as Parameters<typeof defaultInt8Layers>[0];
  it('keeps conditioning, embedders and the output projection in int8 when they are a small share (FLUX.1: ~0.4%)', () => {
    const flux = fake([['time_text_embed.linear_1', 22e6], ['context_embedder', 12.6e6], ['proj_out', 0.2e6], ['transformer_blocks.0.attn.to_q', 9e9]]);
    expect(defaultInt8Layers(flux)).toBe(DEFAULT_INT8_LAYERS);
  });
  it('keeps only the output projection when they would be a large share (tiny models), so int4 keeps its size', () => {
    const tiny = fake([['time_text_embed.linear_1', 10e3], ['context_embedder', 2e3], ['proj_out', 2e3], ['transformer_blocks.0.attn.to_q', 100e3]]);
    expect(defaultInt8Layers(tiny)).toBe(OUTPUT_INT8_LAYERS);
  });
});

describe('pure int4 (no int8 layers)', () => {
  it('4-bit matrices shrink ≥ 6× with scales and zero points; output cos ≥ 0.98', async () => {
    const out = join(tmp, 'int4-pure');
    const r = await convertPack({ transformer: src('transformer'), vaeDecoder: src('vae_decoder'), quant: 'int4', int8Layers: '', out, shardMb: SHARD_MB });
    const { before, after } = matmulBytes(src('transformer'), [join(out, 'transformer/model.onnx')]);
    expect(after[8]).toBe(0);
    console.log(`[convert] pure int4: MatMul weights ${before} → ${after[4]} bytes (${(before / after[4]!).toFixed(2)}×)`);
    expect(before / after[4]!).toBeGreaterThanOrEqual(6);
    const t = r.report.components.find((c) => c.component === 'transformer')!;
    const v = (t.verify as { outputs: { cosine: number }[] }).outputs[0]!;
    console.log(`[convert] pure int4 transformer vs fp32: cos ${v.cosine.toFixed(6)}`);
    expect(v.cosine).toBeGreaterThanOrEqual(0.98);
  });
});

describe('text encoders and tokenizers', () => {
  it('int8 CLIP/T5 with int8 embedding tables stay close to fp32; tokenizers are copied and listed', async () => {
    const out = join(tmp, 'text');
    const r = await convertPack({
      transformer: src('transformer'), vaeDecoder: src('vae_decoder'), clip: src('clip'), t5: src('t5'), tokenizers: TEST_PACK_DIR,
      quant: 'int8', embeddingMinElements: 50_000, out, shardMb: 1,
    });
    const m = parseManifest(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')));
    checkFiles(out, m);
    expect(m.tokenizers?.clip?.tokenizer).toBe('tokenizer/tokenizer.json');
    expect(m.tokenizers?.t5?.config).toBe('tokenizer_2/tokenizer_config.json');
    expect(m.components.clip?.outputs).toEqual({ pooled: 'pooler_output' });
    for (const c of ['clip', 't5'] as const) {
      const rep = r.report.components.find((x) => x.component === c)!;
      expect(rep.embeddings.length).toBe(1);
      for (const o of (rep.verify as { outputs: { output: string; cosine: number }[] }).outputs) {
        console.log(`[convert] int8 ${c}.${o.output} vs fp32: cos ${o.cosine.toFixed(6)}`);
        expect(o.cosine).toBeGreaterThanOrEqual(0.999);
      }
    }
  });

  it('the CLI refuses text encoders without tokenizers and oversize tensors, with clear messages', async () => {
    const err: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
    try {
      expect(await packMain(['--transformer', src('transformer'), '--vae-decoder', src('vae_decoder'), '--clip', src('clip'), '--t5', src('t5'), '--quant', 'int4', '--out', join(tmp, 'x')])).toBe(1);
      expect(err.join('')).toMatch(/--tokenizers/);
      err.length = 0;
      expect(await packMain(['--transformer', src('transformer'), '--vae-decoder', src('vae_decoder'), '--quant', 'fp32', '--shard-mb', '0.01', '--out', join(tmp, 'y'), '--quiet'])).toBe(1);
      expect(err.join('')).toMatch(/larger than --shard-mb/);
      err.length = 0;
      expect(await packMain(['--transformer', src('transformer'), '--quant', 'int4', '--out', join(tmp, 'z')])).toBe(1);
      expect(err.join('')).toMatch(/--vae-decoder is required/);
    } finally {
      process.stderr.write = write;
    }
  });
});
