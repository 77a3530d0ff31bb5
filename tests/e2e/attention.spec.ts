/**
 * Attention at real FLUX sizes on a real WebGPU adapter (SwiftShader here: maxBufferSize 1 GiB), after the
 * converter's attention pass (src/convert/attention.ts, graphs from bench/attention.ts): the transformer's joint
 * attention at 1024×1024 and 1024×768 (24 heads, S = 4096 + 256 and 3072 + 256) and the VAE mid-block attention at
 * 1024² (1 head, 16384 tokens) run with no device error and match a float64 reference on sampled rows. The control:
 * the unfused scores at 1024² would be a 1.82 GB buffer, over the adapter's limit.
 *
 * Only the attention-bearing subgraph runs, not the model. SwiftShader multiplies at well under 1 GFLOP/s on this
 * CPU, so the head width is cut to HEAD_DIM: the scores and probabilities — the buffers the limit is about — keep
 * their real shapes [B, heads, S/16, S], only q/k/v/out are narrower than 128 (docs/attention.md has the timings).
 */
import { expect, test } from '@playwright/test';
import { adapterFacts, attentionGraphs, openOrtPage, runAttention, transformerAttention, vaeMidAttention, type AttentionShape } from '../../bench/attention.js';
import { attentionScoresBytes, DEFAULT_ATTENTION_CHUNKS } from '../../src/convert/attention.js';

const HEAD_DIM = 8;
const scores = (s: AttentionShape, chunks = 1) => attentionScoresBytes({ batch: s.batch, heads: s.heads, queryTokens: s.tokens, chunks });

test.use({ trace: 'off' });

test('chunked attention at 1024×1024 and 1024×768 (24 heads) and the VAE mid block at 1024² runs on WebGPU within 1 GiB buffers', async ({ browser }) => {
  test.setTimeout(20 * 60_000);
  const page = await openOrtPage(browser);
  const adapter = await adapterFacts(page);
  expect(adapter, 'no WebGPU adapter (launch flags?)').not.toBeNull();
  const limit = Math.min(adapter!.maxBufferSize, adapter!.maxStorageBufferBindingSize);
  console.log(`[attention] adapter ${adapter!.vendor}/${adapter!.architecture}, maxBufferSize ${adapter!.maxBufferSize}, maxStorageBufferBindingSize ${adapter!.maxStorageBufferBindingSize}`);

  const cases: [string, AttentionShape][] = [
    // Fewer query rows than chunks: the zero-row padding keeps every chunk non-empty (an empty one fails on WebGPU).
    ['S = 5 < 16 chunks', { batch: 2, heads: 2, tokens: 5, headDim: HEAD_DIM }],
    ['transformer 1024×1024', transformerAttention(1024, 1024)],
    ['transformer 1024×768', transformerAttention(1024, 768)],
    ['VAE mid block 1024×1024', vaeMidAttention(1024, 1024)],
  ];
  // The control: as exported, the 1024² scores are one 1.82 GB buffer, over this adapter's limit (and the VAE's are
  // exactly 1 GiB, landscape's 99% of it); chunked, the largest is 1/16 of that.
  expect(scores(cases[1]![1])).toBeGreaterThan(limit);
  expect(scores(cases[2]![1])).toBeGreaterThan(0.95 * 2 ** 30);
  expect(scores(cases[3]![1])).toBe(2 ** 30);

  const graphs = attentionGraphs(HEAD_DIM);
  expect(graphs.rewrite.sites).toHaveLength(1);
  // Baseline read-backs of the graph as exported (the output only); the chunked graph must add none.
  const baseline = await runAttention(page, graphs.unfused, cases[0]![1], { runs: 1, warmup: 0, checkRows: 2 });
  expect(baseline.error).toBeUndefined();
  expect(baseline.gpuReadsPerRun).toBeGreaterThanOrEqual(1);
  for (const [name, real] of cases) {
    const shape = { ...real, headDim: HEAD_DIM };
    const chunk = scores(shape, DEFAULT_ATTENTION_CHUNKS);
    expect(chunk).toBeLessThanOrEqual(limit / 8);
    const r = await runAttention(page, graphs.chunked, shape, { runs: 1, warmup: 0, checkRows: 2 });
    console.log(`[attention] ${name}: S = ${shape.tokens}, ${shape.heads} head(s) × ${HEAD_DIM}, chunk scores ${(chunk / 2 ** 20).toFixed(0)} MiB (unfused ${(scores(shape) / 2 ** 20).toFixed(0)} MiB): ${r.ok ? `${r.runMs[0]!.toFixed(0)} ms to GPU completion (first run), max err ${r.maxAbsError!.toExponential(2)} over ${r.checkedRows} rows, ${r.gpuReadsPerRun} GPU read(s) per run` : r.error}`);
    expect(r.error, name).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.checkedRows).toBe(2 * shape.batch * shape.heads);
    expect(r.maxAbsError!).toBeLessThan(1e-4);
    expect(r.gpuReadsPerRun, 'the chunk bounds must stay on the host: only the output is read back').toBe(baseline.gpuReadsPerRun);
  }
  await page.close();
});
