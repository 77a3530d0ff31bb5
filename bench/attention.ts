/**
 * Attention at real FLUX dimensions on onnxruntime-web's WebGPU EP, as exported (unfused) and after the converter's
 * attention pass (src/convert/attention.ts): the graphs, a page that runs them, and `benchAttention`, which prints
 * both times at the largest size where the unfused scores still fit the adapter's buffer limits. Used by the e2e
 * test (tests/e2e/attention.spec.ts) and callable from the scale benchmark.
 *
 * Times are to GPU completion: every run reads its output back (session.run alone returns once work is queued).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { attentionScoresBytes, DEFAULT_ATTENTION_CHUNKS, rewriteAttention, type AttentionRewrite } from '../src/convert/attention.js';
import type { ComponentGraph } from '../src/convert/graph.js';
import { constScalarInit } from '../src/convert/passes.js';
import { DT, node, onnx, valueInfo, type TensorProto } from '../src/convert/onnx.js';

const ORT_DIST = join(import.meta.dirname, '..', 'node_modules', 'onnxruntime-web', 'dist');
/** A localhost origin (a secure context, so navigator.gpu exists) served entirely by request interception. */
export const ORT_ORIGIN = 'http://localhost:9';

export interface AttentionShape {
  batch: number;
  heads: number;
  /** Query = key tokens (image + text for the transformer, latent pixels for the VAE). */
  tokens: number;
  headDim: number;
}

/** FLUX.1 transformer attention at an image size (24 × 128 heads, 256 text tokens), and the VAE mid block. */
export function transformerAttention(width: number, height: number, batch = 1, textTokens = 256): AttentionShape {
  return { batch, heads: 24, headDim: 128, tokens: (width / 16) * (height / 16) + textTokens };
}
export function vaeMidAttention(width: number, height: number, batch = 1): AttentionShape {
  return { batch, heads: 1, headDim: 512, tokens: (width / 8) * (height / 8) };
}

/** A ComponentGraph whose initializers are all inline (no weights files) as ONNX model bytes. */
export function encodeInlineGraph(g: ComponentGraph): Uint8Array {
  const initializer: TensorProto[] = [...g.inits.values()].map((i) => {
    const src = i.job.source.source;
    if (src.kind !== 'inline') throw new Error(`attention bench graphs hold inline constants only (${i.name})`);
    return { name: i.name, dims: i.dims, dataType: i.dataType, rawData: src.bytes };
  });
  return onnx.ModelProto.encode({
    irVersion: g.irVersion,
    opsetImport: g.opsetImport.map((o) => ({ domain: o.domain, version: o.version })),
    graph: { name: g.name, node: g.nodes, initializer, input: g.inputs, output: g.outputs },
  }).finish();
}

/**
 * The attention as torch/diffusers export it — q, k, v [B, H, S, d] → MatMul(q, Transpose(k)) · scale → Softmax →
 * MatMul(·, v) — and the same graph after the converter's pass.
 */
export function attentionGraphs(headDim: number, chunks = DEFAULT_ATTENTION_CHUNKS): { unfused: Uint8Array; chunked: Uint8Array; rewrite: AttentionRewrite } {
  const make = (): ComponentGraph => ({
    name: 'attention',
    nodes: [
      node('Transpose', ['k'], ['kt'], { perm: [0, 1, 3, 2] }, { name: 'Transpose' }),
      node('MatMul', ['q', 'kt'], ['scores'], {}, { name: 'MatMul' }),
      node('Mul', ['scores', 'scale'], ['scaled'], {}, { name: 'Mul' }),
      node('Softmax', ['scaled'], ['probs'], { axis: -1 }, { name: 'Softmax' }),
      node('MatMul', ['probs', 'v'], ['out'], {}, { name: 'MatMul_1' }),
    ],
    inputs: ['q', 'k', 'v'].map((n) => valueInfo(n, DT.FLOAT, ['B', 'H', 'S', headDim])),
    outputs: [valueInfo('out', DT.FLOAT, ['B', 'H', 'S', headDim])],
    inits: new Map([['scale', constScalarInit('scale', 1 / Math.sqrt(headDim))]]),
    opsetImport: [{ domain: '', version: 17 }],
    irVersion: 8,
    jobs: [],
  });
  const unfused = encodeInlineGraph(make());
  const g = make();
  const rewrite = rewriteAttention(g, 'chunked', chunks);
  return { unfused, chunked: encodeInlineGraph(g), rewrite };
}

/** A blank page on ORT_ORIGIN that can import onnxruntime-web from node_modules. */
export async function openOrtPage(browser: Browser): Promise<Page> {
  const page = await browser.newPage();
  await page.route(`${ORT_ORIGIN}/**`, (route) => {
    const path = new URL(route.request().url()).pathname.slice(1);
    if (path === '') return route.fulfill({ body: '<!doctype html><title>attention</title>', contentType: 'text/html' });
    if (!/^ort[\w.-]*\.(mjs|wasm)$/.test(path)) return route.fulfill({ status: 404, body: 'not found' });
    return route.fulfill({ body: readFileSync(join(ORT_DIST, path)), contentType: path.endsWith('.wasm') ? 'application/wasm' : 'text/javascript' });
  });
  await page.goto(`${ORT_ORIGIN}/`);
  return page;
}

export interface AdapterFacts {
  architecture: string;
  vendor: string;
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

export async function adapterFacts(page: Page): Promise<AdapterFacts | null> {
  return page.evaluate(`(async () => {
    const a = await navigator.gpu?.requestAdapter();
    return a ? { architecture: a.info.architecture, vendor: a.info.vendor, maxBufferSize: a.limits.maxBufferSize, maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize } : null;
  })()`);
}

export interface AttentionRun {
  ok: boolean;
  /** ORT's or WebGPU's error, when the run failed. */
  error?: string;
  /** Per timed run, to GPU completion (output read back), after the warm-up runs (default 1; 0: the first run is timed, shader compilation included). */
  runMs: number[];
  /** Largest |out − reference| over the checked rows (all heads), reference computed in float64 in JS. */
  maxAbsError?: number;
  checkedRows: number;
  /** GPU→CPU buffer reads (mapAsync READ) in the last run: 1 = only the output came back. */
  gpuReadsPerRun?: number;
  /** The device's limits, when it was created with WebGPU's defaults (`defaultLimits`). */
  deviceLimits?: { maxBufferSize: number; maxStorageBufferBindingSize: number };
}

// Plain JS (a string, so no bundler helper leaks into the page). Inputs are made in the page: deterministic, and
// nothing of their size crosses the DevTools protocol.
const RUN_IN_PAGE = `async ({ origin, model, shape, runs, warmup, checkRows, defaultLimits }) => {
  const ort = await import(origin + '/ort.webgpu.min.mjs');
  ort.env.wasm.wasmPaths = origin + '/';
  ort.env.wasm.numThreads = 1;
  const { batch: B, heads: H, tokens: S, headDim: D } = shape;
  const n = B * H * S * D;
  const mk = (phase) => { const x = new Float32Array(n); for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.61 + phase) * (1 + (i % 7) / 7); return x; };
  const q = mk(0), k = mk(1.3), v = mk(2.9);
  // Count GPU→CPU reads (mapAsync for reading) per run: only the output should come back, never shape values.
  if (!GPUBuffer.prototype.__countedMap) {
    const orig = GPUBuffer.prototype.mapAsync;
    globalThis.__gpuReads = 0;
    GPUBuffer.prototype.mapAsync = function (mode, ...rest) { if (mode & GPUMapMode.READ) globalThis.__gpuReads++; return orig.call(this, mode, ...rest); };
    GPUBuffer.prototype.__countedMap = true;
  }
  let session;
  try {
    // defaultLimits: a device with WebGPU's default limits (128 MiB bindings), what many real adapters grant.
    let ep = 'webgpu', deviceLimits;
    if (defaultLimits) {
      const device = await (await navigator.gpu.requestAdapter()).requestDevice();
      ep = { name: 'webgpu', device };
      deviceLimits = { maxBufferSize: device.limits.maxBufferSize, maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize };
    }
    session = await ort.InferenceSession.create(new Uint8Array(model), { executionProviders: [ep] });
    const feeds = { q: new ort.Tensor('float32', q, [B, H, S, D]), k: new ort.Tensor('float32', k, [B, H, S, D]), v: new ort.Tensor('float32', v, [B, H, S, D]) };
    const runMs = [];
    let out, gpuReadsPerRun = 0;
    for (let r = 0; r < warmup + runs; r++) {
      const t = performance.now();
      const reads0 = globalThis.__gpuReads;
      const res = await session.run(feeds);
      out = res.out.data;
      gpuReadsPerRun = globalThis.__gpuReads - reads0;
      if (r >= warmup) runMs.push(performance.now() - t);
    }
    let maxAbsError = 0, checkedRows = 0;
    const scale = 1 / Math.sqrt(D);
    for (let b = 0; b < B * H; b++) {
      for (let c = 0; c < checkRows; c++) {
        const i = Math.min(S - 1, Math.floor((c * (S - 1)) / Math.max(1, checkRows - 1)));
        const base = b * S * D, sc = new Float64Array(S);
        let m = -Infinity;
        for (let j = 0; j < S; j++) { let t = 0; for (let e = 0; e < D; e++) t += q[base + i * D + e] * k[base + j * D + e]; sc[j] = t * scale; if (sc[j] > m) m = sc[j]; }
        let z = 0;
        for (let j = 0; j < S; j++) { sc[j] = Math.exp(sc[j] - m); z += sc[j]; }
        for (let e = 0; e < D; e++) { let t = 0; for (let j = 0; j < S; j++) t += sc[j] * v[base + j * D + e]; maxAbsError = Math.max(maxAbsError, Math.abs(t / z - out[base + i * D + e])); }
        checkedRows++;
      }
    }
    return { ok: true, runMs, maxAbsError, checkedRows, gpuReadsPerRun, deviceLimits };
  } catch (e) {
    return { ok: false, error: String(e && e.message || e).slice(0, 600), runMs: [], checkedRows: 0 };
  } finally {
    await session?.release();
  }
}`;

/** Run one attention graph on the page's WebGPU adapter; never throws for ORT/WebGPU errors (they come back in `error`). */
export async function runAttention(page: Page, model: Uint8Array, shape: AttentionShape, opts: { runs?: number; warmup?: number; checkRows?: number; defaultLimits?: boolean } = {}): Promise<AttentionRun> {
  const arg = { origin: ORT_ORIGIN, model: Array.from(model), shape, runs: Math.max(1, opts.runs ?? 1), warmup: opts.warmup ?? 1, checkRows: opts.checkRows ?? 4, defaultLimits: opts.defaultLimits ?? false };
  return page.evaluate(`(${RUN_IN_PAGE})(${JSON.stringify(arg)})`) as Promise<AttentionRun>;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

export interface AttentionBench {
  adapter: AdapterFacts;
  size: string;
  shape: AttentionShape;
  unfusedScoresBytes: number;
  chunkedScoresBytes: number;
  unfused: AttentionRun;
  chunked: AttentionRun;
  speedup: number;
}

/**
 * Fused (chunked) vs unfused attention at the largest FLUX size whose unfused scores fit the adapter's
 * maxBufferSize and maxStorageBufferBindingSize (square, landscape_4_3 and square_hd candidates, largest first).
 */
export async function benchAttention(browser: Browser, opts: { runs?: number; log?: (line: string) => void; chunks?: number; size?: [number, number]; headDim?: number } = {}): Promise<AttentionBench> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const page = await openOrtPage(browser);
  try {
    const adapter = await adapterFacts(page);
    if (!adapter) throw new Error('no WebGPU adapter in the attention bench page');
    const limit = Math.min(adapter.maxBufferSize, adapter.maxStorageBufferBindingSize);
    const sizes: [string, number, number][] = [['1024×1024', 1024, 1024], ['1024×768', 1024, 768], ['768×768', 768, 768], ['512×512', 512, 512], ['256×256', 256, 256]];
    const scoresAt = (s: AttentionShape, chunks = 1) => attentionScoresBytes({ batch: s.batch, heads: s.heads, queryTokens: s.tokens, chunks });
    // A given size (a CPU adapter cannot afford the largest one in reasonable time) must still fit unfused.
    const fit = opts.size ? ([`${opts.size[0]}×${opts.size[1]}`, ...opts.size] as [string, number, number]) : sizes.find(([, w, h]) => scoresAt(transformerAttention(w, h)) <= limit);
    if (!fit) throw new Error(`even 256×256 attention scores exceed this adapter's ${limit} B buffer limit`);
    const [size, w, h] = fit;
    if (scoresAt(transformerAttention(w, h)) > limit) throw new Error(`${size}: the unfused scores (${scoresAt(transformerAttention(w, h))} B) exceed this adapter's ${limit} B buffer limit`);
    const shape = { ...transformerAttention(w, h), headDim: opts.headDim ?? 128 };
    const chunks = opts.chunks ?? DEFAULT_ATTENTION_CHUNKS;
    const g = attentionGraphs(shape.headDim, chunks);
    const runs = opts.runs ?? 2;
    const unfused = await runAttention(page, g.unfused, shape, { runs, checkRows: 2 });
    const chunked = await runAttention(page, g.chunked, shape, { runs, checkRows: 2 });
    const r: AttentionBench = {
      adapter, size, shape, unfusedScoresBytes: scoresAt(shape), chunkedScoresBytes: scoresAt(shape, chunks), unfused, chunked,
      speedup: median(unfused.runMs) / median(chunked.runMs),
    };
    const fmt = (x: AttentionRun) => (x.ok ? `${median(x.runMs).toFixed(0)} ms (max err ${x.maxAbsError?.toExponential(1)})` : `failed: ${x.error}`);
    log(`attention ${r.size} (${shape.heads} heads × ${shape.headDim}, S = ${shape.tokens}) on ${adapter.vendor}/${adapter.architecture}, median of ${runs}, to GPU completion:`);
    log(`  unfused: ${fmt(unfused)}, scores buffer ${(r.unfusedScoresBytes / 2 ** 20).toFixed(0)} MiB`);
    log(`  chunked ×${chunks}: ${fmt(chunked)}, scores buffer ${(r.chunkedScoresBytes / 2 ** 20).toFixed(0)} MiB`);
    log(`  speed-up fused (chunked) vs unfused: ${r.speedup.toFixed(2)}×`);
    return r;
  } finally {
    await page.close();
  }
}

/**
 * The sizes whose unfused scores do not fit (square_hd, landscape_4_3, the VAE mid block at 1024²), chunked, on the
 * adapter's own limits: each must run with no device error and match the float64 reference. Minutes on SwiftShader.
 */
export async function benchOverLimit(browser: Browser, opts: { headDim?: number; log?: (line: string) => void } = {}): Promise<{ name: string; run: AttentionRun }[]> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const headDim = opts.headDim ?? 8;
  const page = await openOrtPage(browser);
  try {
    const adapter = await adapterFacts(page);
    if (!adapter) throw new Error('no WebGPU adapter in the attention bench page');
    const limit = Math.min(adapter.maxBufferSize, adapter.maxStorageBufferBindingSize);
    const g = attentionGraphs(headDim);
    const out: { name: string; run: AttentionRun }[] = [];
    for (const [name, real] of [['transformer 1024×1024', transformerAttention(1024, 1024)], ['transformer 1024×768', transformerAttention(1024, 768)], ['VAE mid block 1024×1024', vaeMidAttention(1024, 1024)]] as const) {
      const shape = { ...real, headDim };
      const unfused = attentionScoresBytes({ batch: shape.batch, heads: shape.heads, queryTokens: shape.tokens, chunks: 1 });
      const run = await runAttention(page, g.chunked, shape, { runs: 1, warmup: 0, checkRows: 2 });
      log(`${name} on ${adapter.vendor}/${adapter.architecture} (buffer limit ${(limit / 2 ** 20).toFixed(0)} MiB, unfused scores ${(unfused / 2 ** 20).toFixed(0)} MiB), ${shape.heads} head(s) × ${headDim}: ${run.ok ? `${run.runMs[0]!.toFixed(0)} ms to GPU completion, max err ${run.maxAbsError!.toExponential(2)}` : `failed: ${run.error}`}`);
      out.push({ name, run });
    }
    return out;
  } finally {
    await page.close();
  }
}

// `npx tsx bench/attention.ts [--runs N] [--chunks N] [--size WxH] [--head-dim D] [--over-limit]`: the comparison alone,
// in headless Chromium on WebGPU (default size: the largest FLUX size whose unfused scores fit the adapter);
// --over-limit: the chunked graph at the sizes whose unfused scores do not fit (benchOverLimit).
if (process.argv[1] && import.meta.filename === (await import('node:path')).resolve(process.argv[1])) {
  const { parseArgs } = await import('node:util');
  const { chromium } = await import('playwright-core');
  const { CHROMIUM_ARGS, CHROMIUM_PATH } = await import('../tests/support/chromium.js');
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '2' }, chunks: { type: 'string', default: String(DEFAULT_ATTENTION_CHUNKS) }, size: { type: 'string' }, 'head-dim': { type: 'string' }, 'over-limit': { type: 'boolean', default: false } } });
  const size = values.size?.match(/^(\d+)x(\d+)$/);
  if (values.size && !size) throw new Error(`--size must be WxH, got "${values.size}"`);
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  try {
    if (values['over-limit']) {
      const runs = await benchOverLimit(browser, values['head-dim'] ? { headDim: Number(values['head-dim']) } : {});
      if (runs.some((r) => !r.run.ok || !(r.run.maxAbsError! < 1e-4))) process.exitCode = 1;
    } else await benchAttention(browser, { runs: Number(values.runs), chunks: Number(values.chunks), ...(size ? { size: [Number(size[1]), Number(size[2])] as [number, number] } : {}), ...(values['head-dim'] ? { headDim: Number(values['head-dim']) } : {}) });
  } finally {
    await browser.close();
  }
}
