/**
 * The converter's attention pass (src/convert/attention.ts): every exporter variant it claims (scale on the scores,
 * on q and/or k, Div, a pre-transposed k, rank 3, fewer query rows than chunks) gives the unconverted output on
 * ORT CPU; patterns it must not touch (a bias before the Softmax) are left and reported; and the converted test
 * pack has no Softmax over S×S at run time, matches the unconverted graphs, and keeps the golden latents (1e-4).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeInlineGraph } from '../../../bench/attention.js';
import { main as cliMain } from '../../../src/cli/main.js';
import { parseNpy } from '../../../src/cli/npy.js';
import { attentionScoresBytes, rewriteAttention, type AttentionMode } from '../../../src/convert/attention.js';
import type { ComponentGraph } from '../../../src/convert/graph.js';
import { convertPack } from '../../../src/convert/index.js';
import { main as packMain } from '../../../src/convert/main.js';
import { DT, node, onnx, valueInfo, type NodeProto } from '../../../src/convert/onnx.js';
import { constInt64Init, constScalarInit } from '../../../src/convert/passes.js';
import { parseManifest } from '../../../src/pack/manifest.js';
import { captureCliOutput } from '../../support/cli-output.js';
import { maxAbsDiff, readNpyAny, REFERENCE_DIR, TEST_PACK_DIR } from '../../support/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-attention-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---- exporter variants on a bare attention graph ------------------------------------------------------------

type Variant = { name: string; rank: 3 | 4; nodes: (scale: string) => NodeProto[]; scaleValue: number; extraInits?: [string, number][] };
const H = 3;
const D = 8;
const VARIANTS: Variant[] = [
  {
    name: 'diffusers: MatMul(q, Transpose(k)) · scale',
    rank: 4,
    scaleValue: 1 / Math.sqrt(D),
    nodes: (c) => [node('Transpose', ['k'], ['kt'], { perm: [0, 1, 3, 2] }), node('MatMul', ['q', 'kt'], ['s']), node('Mul', ['s', c], ['s2']), node('Softmax', ['s2'], ['p'], { axis: -1 }), node('MatMul', ['p', 'v'], ['out'])],
  },
  {
    name: 'torch SDPA export: √scale on q and on kᵀ, no scale on the scores',
    rank: 4,
    scaleValue: Math.sqrt(1 / Math.sqrt(D)),
    nodes: (c) => [
      node('Mul', ['q', c], ['qs']), node('Transpose', ['k'], ['kt'], { perm: [0, 1, 3, 2] }), node('Mul', ['kt', c], ['kts']),
      node('MatMul', ['qs', 'kts'], ['s']), node('Softmax', ['s'], ['p'], { axis: 3 }), node('MatMul', ['p', 'v'], ['out']),
    ],
  },
  {
    name: 'Div by √d, scale first operand, Cast to float before the Softmax',
    rank: 4,
    scaleValue: Math.sqrt(D),
    nodes: (c) => [node('Transpose', ['k'], ['kt'], { perm: [0, 1, 3, 2] }), node('MatMul', ['q', 'kt'], ['s']), node('Div', ['s', c], ['s2']), node('Cast', ['s2'], ['s3'], { to: DT.FLOAT }), node('Softmax', ['s3'], ['p'], { axis: -1 }), node('MatMul', ['p', 'v'], ['out'])],
  },
  {
    name: 'k transposed from [B, S, H, d] with perm 0,2,3,1 (BSHD source)',
    rank: 4,
    scaleValue: 0.3,
    nodes: (c) => [
      node('Transpose', ['k'], ['k_bshd'], { perm: [0, 2, 1, 3] }), node('Transpose', ['k_bshd'], ['kt'], { perm: [0, 2, 3, 1] }),
      node('MatMul', ['q', 'kt'], ['s']), node('Mul', [c, 's'], ['s2']), node('Softmax', ['s2'], ['p'], { axis: -1 }), node('MatMul', ['p', 'v'], ['out']),
    ],
  },
  {
    name: 'rank 3 (VAE mid block as [B, HW, C])',
    rank: 3,
    scaleValue: 1 / Math.sqrt(D),
    nodes: (c) => [node('Transpose', ['k'], ['kt'], { perm: [0, 2, 1] }), node('MatMul', ['q', 'kt'], ['s']), node('Mul', ['s', c], ['s2']), node('Softmax', ['s2'], ['p'], { axis: -1 }), node('MatMul', ['p', 'v'], ['out'])],
  },
];

function graphOf(v: Variant): ComponentGraph {
  const dims = v.rank === 4 ? ['B', H, 'S', D] : ['B', 'S', D];
  return {
    name: 'attention',
    nodes: v.nodes('scale'),
    inputs: ['q', 'k', 'v'].map((n) => valueInfo(n, DT.FLOAT, dims)),
    outputs: [valueInfo('out', DT.FLOAT)],
    inits: new Map([['scale', constScalarInit('scale', v.scaleValue)]]),
    opsetImport: [{ domain: '', version: 17 }],
    irVersion: 8,
    jobs: [],
  };
}

async function run(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(model);
  try {
    return (await s.run(feeds)).out!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function qkv(rank: 3 | 4, S: number, B = 2): Record<string, ort.Tensor> {
  const dims = rank === 4 ? [B, H, S, D] : [B, S, D];
  const n = dims.reduce((a, b) => a * b, 1);
  const t = (ph: number) => new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.77 + ph) * 2), dims);
  return { q: t(0), k: t(1), v: t(2) };
}

describe('rewriteAttention on exporter variants', () => {
  for (const v of VARIANTS) {
    it(`${v.name}: one site, chunked output = unfused output (S = 3, 16, 50 with 16 chunks)`, async () => {
      const ref = encodeInlineGraph(graphOf(v));
      const g = graphOf(v);
      const r = rewriteAttention(g, 'chunked', 16);
      expect(r.sites).toHaveLength(1);
      expect(r.skipped).toEqual([]);
      expect(g.nodes.filter((n) => n.opType === 'Softmax')).toHaveLength(16);
      const conv = encodeInlineGraph(g);
      for (const S of [3, 16, 50]) {
        const feeds = qkv(v.rank, S);
        const a = await run(ref, feeds);
        const b = await run(conv, feeds);
        expect(b.length).toBe(a.length);
        expect(maxAbsDiff(a, b), `S = ${S}`).toBeLessThanOrEqual(1e-6);
      }
    });
  }

  it('leaves a Softmax with a bias/mask Add before it (T5, CLIP) and says why; unfused mode changes nothing', () => {
    const g = graphOf(VARIANTS[0]!);
    g.nodes = [node('Transpose', ['k'], ['kt'], { perm: [0, 1, 3, 2] }), node('MatMul', ['q', 'kt'], ['s']), node('Add', ['s', 'bias'], ['s2']), node('Softmax', ['s2'], ['p'], { axis: -1 }), node('MatMul', ['p', 'v'], ['out'])];
    g.inits.set('bias', constInt64Init('bias', [0, 0]));
    const before = JSON.stringify(g.nodes);
    const r = rewriteAttention(g, 'chunked', 8);
    expect(r.sites).toEqual([]);
    expect(r.skipped).toEqual([{ softmax: expect.any(String), reason: 'Add before the Softmax (mask or bias)' }]);
    expect(JSON.stringify(g.nodes)).toBe(before);

    const u = graphOf(VARIANTS[0]!);
    const ub = JSON.stringify(u.nodes);
    const ru = rewriteAttention(u, 'unfused' as AttentionMode, 8);
    expect(ru.sites).toHaveLength(1);
    expect(JSON.stringify(u.nodes)).toBe(ub);
  });

  it('refuses a chunk count outside 1–256 naming the field', () => {
    expect(() => rewriteAttention(graphOf(VARIANTS[0]!), 'chunked', 0)).toThrow('attentionChunks: must be an integer between 1 and 256, got 0');
    expect(() => rewriteAttention(graphOf(VARIANTS[0]!), 'chunked', 2.5)).toThrow(/got 2.5/);
  });

  it('scores bytes: 1024² FLUX attention is 1.82 GB unfused (over 1 GiB), ≤ 128 MiB in 16 chunks; the VAE mid block 1 GiB', () => {
    const S = 4096 + 256;
    expect(attentionScoresBytes({ batch: 1, heads: 24, queryTokens: S })).toBe(24 * S * S * 4);
    expect(attentionScoresBytes({ batch: 1, heads: 24, queryTokens: S })).toBeGreaterThan(2 ** 30);
    expect(attentionScoresBytes({ batch: 1, heads: 24, queryTokens: S, chunks: 16 })).toBeLessThanOrEqual(128 * 2 ** 20);
    // VAE mid block at 1024²: exactly 1 GiB at batch 1 (no headroom at all), 2 GiB at batch 2; 64 MiB per chunk.
    expect(attentionScoresBytes({ batch: 1, heads: 1, queryTokens: 128 * 128 })).toBe(2 ** 30);
    expect(attentionScoresBytes({ batch: 2, heads: 1, queryTokens: 128 * 128, chunks: 16 })).toBe(2 * 64 * 2 ** 20);
  });
});

// ---- the test pack ------------------------------------------------------------------------------------------

const src = (c: string) => join(TEST_PACK_DIR, c, 'model.onnx');

/** Run a converted graph with every Softmax output exposed, and return their shapes (the scores actually allocated). */
async function softmaxShapes(graphPath: string, feeds: Record<string, ort.Tensor>): Promise<number[][]> {
  const m = onnx.ModelProto.decode(readFileSync(graphPath));
  const names = (m.graph!.node ?? []).filter((n) => n.opType === 'Softmax').map((n) => n.output![0]!);
  m.graph!.output!.push(...names.map((n) => onnx.ValueInfoProto.create({ name: n })));
  const probe = graphPath.replace(/\.onnx$/, '.probe.onnx'); // beside it: the external data resolves
  writeFileSync(probe, onnx.ModelProto.encode(m).finish());
  const s = await ort.InferenceSession.create(probe);
  try {
    const out = await s.run(feeds);
    return names.map((n) => [...out[n]!.dims]);
  } finally {
    await s.release();
  }
}

const transformerFeeds = (S: number, L: number) => ({
  hidden_states: new ort.Tensor('float32', Float32Array.from({ length: S * 64 }, (_, i) => Math.sin(i)), [1, S, 64]),
  encoder_hidden_states: new ort.Tensor('float32', Float32Array.from({ length: L * 64 }, (_, i) => Math.cos(i)), [1, L, 64]),
  pooled_projections: new ort.Tensor('float32', Float32Array.from({ length: 32 }, (_, i) => Math.sin(i * 3)), [1, 32]),
  timestep: new ort.Tensor('float32', Float32Array.from([0.75]), [1]),
  img_ids: new ort.Tensor('float32', Float32Array.from({ length: S * 3 }, (_, i) => (i % 3 === 1 ? Math.floor(i / 24) : i % 3 === 2 ? Math.floor(i / 3) % 8 : 0)), [S, 3]),
  txt_ids: new ort.Tensor('float32', new Float32Array(L * 3), [L, 3]),
});

describe('converted test pack (default --attention chunked)', () => {
  const cli = captureCliOutput();
  const out = join(tmp, 'fp32');
  let converted: Awaited<ReturnType<typeof convertPack>> | undefined;
  const convertOnce = async () => (converted ??= await convertPack({ transformer: src('transformer'), vaeDecoder: src('vae_decoder'), quant: 'fp32', out, testPack: true }));

  it('reports the rewrite: 4 transformer sites and the VAE mid block, 16 chunks; outputs = unconverted (ORT CPU, ≤ 1e-4)', async () => {
    const r = await convertOnce();
    const t = r.report.components.find((c) => c.component === 'transformer')!;
    const v = r.report.components.find((c) => c.component === 'vae_decoder')!;
    expect(t.attention).toMatchObject({ mode: 'chunked', chunks: 16, skipped: [] });
    expect(t.attention!.sites).toHaveLength(4);
    expect(v.attention!.sites).toHaveLength(1);
    // The manifest tells the capacity check that no S×S buffer exists, and how many chunks the scores are cut in.
    expect(r.report.manifest.components.transformer).toMatchObject({ attention: 'fused', attentionChunks: 16 });
    expect(r.report.manifest.components.vae_decoder).toMatchObject({ attention: 'fused', attentionChunks: 16 });
    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    m.components.transformer.attention = 'chunked';
    expect(() => parseManifest(m)).toThrow(/components\.transformer\.attention.*must be "fused" or "unfused"/);
    m.components.transformer.attention = 'fused';
    m.components.transformer.attentionChunks = 0;
    expect(() => parseManifest(m)).toThrow(/components\.transformer\.attentionChunks.*between 1 and 256/);
    for (const c of [t, v]) {
      expect(c.verify && 'outputs' in c.verify).toBe(true);
      if (c.verify && 'outputs' in c.verify) for (const o of c.verify.outputs) expect(o.maxAbs).toBeLessThanOrEqual(1e-4);
    }
  });

  it('no Softmax over S×S at run time: every scores tensor has ≤ ⌈(S + 16) / 16⌉ query rows (transformer S = 64 + 32, VAE 16×16)', async () => {
    await convertOnce();
    const S = 64;
    const L = 32;
    const shapes = await softmaxShapes(join(out, 'transformer/model.onnx'), transformerFeeds(S, L));
    expect(shapes).toHaveLength(4 * 16);
    for (const d of shapes) {
      expect(d).toHaveLength(4);
      expect(d[3]).toBe(S + L);
      expect(d[2]).toBeLessThanOrEqual(Math.ceil((S + L + 16) / 16));
    }
    const vae = await softmaxShapes(join(out, 'vae_decoder/model.onnx'), { latent: new ort.Tensor('float32', Float32Array.from({ length: 16 * 256 }, (_, i) => Math.sin(i * 0.1)), [1, 16, 16, 16]) });
    expect(vae).toHaveLength(16);
    for (const d of vae) {
      expect(d[d.length - 1]).toBe(256);
      expect(d[d.length - 2]).toBeLessThanOrEqual(Math.ceil((256 + 16) / 16));
    }
  });

  it('golden parity through the converted fp32 pack: final latents within 1e-4 of the PyTorch reference (steps4_64x64_b1)', async () => {
    await convertOnce();
    const CASE = join(REFERENCE_DIR, 'steps4_64x64_b1');
    const latents = join(tmp, 'golden.npy');
    {
      const code = await cliMain([
        'generate', '--pack', out, '--latents', join(CASE, 'latents.npy'), '--prompt-embeds', join(CASE, 'prompt_embeds.npy'),
        '--pooled-prompt-embeds', join(CASE, 'pooled_prompt_embeds.npy'), '--steps', '4', '--width', '64', '--height', '64',
        '--save-latents', latents, '--out', join(tmp, 'golden.png'), '--no-verify',
      ]);
      expect(code, cli.stderr).toBe(0);
    }
    const got = parseNpy(new Uint8Array(readFileSync(latents))).data as Float32Array;
    const ref = readNpyAny(join(CASE, 'final_latents.npy')).data as Float32Array;
    expect(got.length).toBe(ref.length);
    expect(maxAbsDiff(got, ref)).toBeLessThanOrEqual(1e-4);
  });

  it('int4: chunked gives the unfused int4 output (same reconstruction figures); --attention unfused keeps the export', async () => {
    const a = join(tmp, 'int4-chunked');
    const b = join(tmp, 'int4-unfused');
    {
      expect(await packMain(['--transformer', src('transformer'), '--vae-decoder', src('vae_decoder'), '--quant', 'int4', '--out', a, '--verify-mb', '0', '--quiet']), cli.stderr).toBe(0);
      expect(await packMain(['--transformer', src('transformer'), '--vae-decoder', src('vae_decoder'), '--quant', 'int4', '--attention', 'unfused', '--out', b, '--verify-mb', '0', '--quiet']), cli.stderr).toBe(0);
      expect(cli.stdout).toMatch(/attention: chunked \(16 query chunks\), 4 site\(s\)/);
      expect(cli.stdout).toMatch(/attention: unfused, 4 site\(s\)/);
      expect(await packMain(['--transformer', src('transformer'), '--vae-decoder', src('vae_decoder'), '--quant', 'int4', '--attention', 'flash', '--out', join(tmp, 'x'), '--quiet'])).toBe(1);
      expect(cli.stderr).toMatch(/--attention must be one of chunked, unfused, got "flash"/);
      expect(await packMain(['--transformer', src('transformer'), '--vae-decoder', src('vae_decoder'), '--quant', 'int4', '--attention-chunks', '300', '--out', join(tmp, 'x'), '--quiet'])).toBe(1);
      expect(cli.stderr).toMatch(/--attention-chunks/);
    }
    const softmaxes = (p: string) => (onnx.ModelProto.decode(readFileSync(join(p, 'transformer/model.onnx'))).graph!.node ?? []).filter((n) => n.opType === 'Softmax').length;
    expect(softmaxes(a)).toBe(64);
    expect(softmaxes(b)).toBe(4);
    const manifest = (p: string) => parseManifest(JSON.parse(readFileSync(join(p, 'manifest.json'), 'utf8')));
    expect(manifest(a).components.transformer).toMatchObject({ attention: 'fused', attentionChunks: 16 });
    expect(manifest(b).components.transformer.attention).toBe('unfused');
    expect(manifest(b).components.transformer.attentionChunks).toBeUndefined();
    const feeds = transformerFeeds(16, 8);
    const run1 = async (p: string) => {
      const s = await ort.InferenceSession.create(join(p, 'transformer/model.onnx'));
      try {
        return (await s.run(feeds)).latent!.data as Float32Array;
      } finally {
        await s.release();
      }
    };
    expect(maxAbsDiff(await run1(a), await run1(b))).toBeLessThanOrEqual(1e-5);
  });
});
