/**
 * Attention on a real WebGPU adapter (SwiftShader here), after the converter's attention pass
 * (src/convert/attention.ts, graphs from bench/attention.ts), on a device with WebGPU's default limits (128 MiB
 * storage bindings, 256 MiB buffers: what many real adapters grant): the transformer's joint attention at 512²
 * (24 heads, S = 1024 + 256) and the VAE mid-block attention at 640² (1 head, 6400 tokens) run with no device
 * error and match a float64 reference on sampled rows, though their unfused scores would be over the binding limit.
 * The same property at 1024² on the adapter's 1 GiB limits is `npm run bench:attention -- --over-limit` (minutes on
 * SwiftShader; docs/attention.md has the figures).
 *
 * Only the attention-bearing subgraph runs, not the model. SwiftShader multiplies at well under 1 GFLOP/s on this
 * CPU, so the head width is cut to HEAD_DIM: the scores and probabilities — the buffers the limit is about — keep
 * their real shapes [B, heads, S/16, S], only q/k/v/out are narrower.
 */
import { expect, test } from '@playwright/test';
import { adapterFacts, attentionGraphs, openOrtPage, runAttention, transformerAttention, vaeMidAttention, type AttentionShape } from '../../bench/attention.js';
import { attentionScoresBytes, DEFAULT_ATTENTION_CHUNKS } from '../../src/convert/attention.js';

const HEAD_DIM = 8;
const DEFAULT_BINDING = 128 * 2 ** 20;
const scores = (s: AttentionShape, chunks = 1) => attentionScoresBytes({ batch: s.batch, heads: s.heads, queryTokens: s.tokens, chunks });

test.use({ trace: 'off' });

test('chunked attention (transformer at 512², VAE mid block at 640²) runs on WebGPU within default 128 MiB bindings', async ({ browser }) => {
  test.setTimeout(6 * 60_000);
  const page = await openOrtPage(browser);
  const adapter = await adapterFacts(page);
  expect(adapter, 'no WebGPU adapter (launch flags?)').not.toBeNull();
  console.log(`[attention] adapter ${adapter!.vendor}/${adapter!.architecture}`);

  const cases: [string, AttentionShape][] = [
    // Fewer query rows than chunks: the zero-row padding keeps every chunk non-empty (an empty one fails on WebGPU).
    ['S = 5 < 16 chunks', { batch: 2, heads: 2, tokens: 5, headDim: HEAD_DIM }],
    ['transformer 512×512', transformerAttention(512, 512)],
    ['VAE mid block 640×640', vaeMidAttention(640, 640)],
  ];
  // The control: as exported, these scores are one buffer over the default binding limit; chunked, 1/16 of it.
  expect(scores(cases[1]![1])).toBeGreaterThan(DEFAULT_BINDING);
  expect(scores(cases[2]![1])).toBeGreaterThan(DEFAULT_BINDING);

  const graphs = attentionGraphs(HEAD_DIM);
  expect(graphs.rewrite.sites).toHaveLength(1);
  // Baseline read-backs of the graph as exported (the output only); the chunked graph must add none.
  const baseline = await runAttention(page, graphs.unfused, cases[0]![1], { runs: 1, warmup: 0, checkRows: 2, defaultLimits: true });
  expect(baseline.error).toBeUndefined();
  expect(baseline.deviceLimits?.maxStorageBufferBindingSize).toBe(DEFAULT_BINDING);
  expect(baseline.gpuReadsPerRun).toBeGreaterThanOrEqual(1);
  for (const [name, real] of cases) {
    const shape = { ...real, headDim: HEAD_DIM };
    const chunk = scores(shape, DEFAULT_ATTENTION_CHUNKS);
    expect(chunk).toBeLessThanOrEqual(DEFAULT_BINDING / 8);
    const r = await runAttention(page, graphs.chunked, shape, { runs: 1, warmup: 0, checkRows: 2, defaultLimits: true });
    console.log(`[attention] ${name}: S = ${shape.tokens}, ${shape.heads} head(s) × ${HEAD_DIM}, chunk scores ${(chunk / 2 ** 20).toFixed(1)} MiB (unfused ${(scores(shape) / 2 ** 20).toFixed(0)} MiB): ${r.ok ? `${r.runMs[0]!.toFixed(0)} ms to GPU completion (first run), max err ${r.maxAbsError!.toExponential(2)} over ${r.checkedRows} rows, ${r.gpuReadsPerRun} GPU read(s) per run` : r.error}`);
    expect(r.error, name).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.deviceLimits?.maxStorageBufferBindingSize).toBe(DEFAULT_BINDING);
    expect(r.checkedRows).toBe(2 * shape.batch * shape.heads);
    expect(r.maxAbsError!).toBeLessThan(1e-4);
    expect(r.gpuReadsPerRun, 'the chunk bounds must stay on the host: only the output is read back').toBe(baseline.gpuReadsPerRun);
  }
  await page.close();
});
