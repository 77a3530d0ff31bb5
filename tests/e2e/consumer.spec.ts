/**
 * flux-webgpu as a real npm package: `npm pack` (prepack builds dist-lib), a consumer app in its own temporary
 * folder with its own `npm install` of the tarball, type-checked against the package's types, built with Vite,
 * served by `vite preview` (with the test pack in its public/), and driven in Chromium on WebGPU: it creates the
 * client with its own three-line worker, installs the pack, generates. Also: the unpacked size (no inlined wasm),
 * no Node-only packages installed, wasmPaths reaching ORT, and a worker that fails to start rejecting in time.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, test } from '@playwright/test';
import { decodePng } from '../support/fixtures.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = join(ROOT, 'tests/consumer');
const PORT = 4183;
/** The unpacked package: JS (~0.3 MB, unminified) and .d.ts (~0.3 MB). One inlined ORT wasm alone is 14–28 MB. */
const MAX_UNPACKED_BYTES = 2 * 1024 * 1024;
const ENV = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', npm_config_audit: 'false', npm_config_fund: 'false' };

let dir = '';
let server: ChildProcess | null = null;

test.afterAll(() => {
  if (server && server.exitCode === null) server.kill('SIGTERM');
  if (dir && !process.env.KEEP_CONSUMER) rmSync(dir, { recursive: true, force: true });
});

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string; size: number }[];
}

async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  const r = await f();
  const line = `${label}: ${((Date.now() - t0) / 1000).toFixed(1)} s`;
  test.info().annotations.push({ type: 'timing', description: line });
  console.log(`[consumer] ${line}`);
  return r;
}

async function waitForServer(url: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (server?.exitCode !== null) throw new Error(`vite preview exited with ${server?.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`vite preview did not answer at ${url} within ${ms} ms`);
}

test('a Vite app using the npm pack tarball generates on WebGPU', async ({ page }) => {
  test.setTimeout(420_000);
  dir = mkdtempSync(join(tmpdir(), 'flux-consumer-'));

  // 1. The tarball, as `npm publish` would make it (prepack → build:lib).
  const pack = await timed('npm pack (prepack: build:lib)', async () => {
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, env: ENV, maxBuffer: 64 << 20, timeout: 180_000 });
    // Lifecycle scripts may print before the JSON: it is the last top-level array.
    return (JSON.parse(stdout.slice(stdout.lastIndexOf('\n[') + 1)) as PackResult[])[0]!;
  });
  const paths = pack.files.map((f) => f.path);
  const summary = `${pack.filename}: ${pack.size} B packed, ${pack.unpackedSize} B unpacked (bound ${MAX_UNPACKED_BYTES}), ${paths.length} files`;
  test.info().annotations.push({ type: 'package', description: summary });
  console.log(`[consumer] ${summary}`);
  expect(paths.filter((p) => p.endsWith('.wasm')), 'the package ships no wasm (onnxruntime-web stays external)').toEqual([]);
  expect(pack.unpackedSize, `unpacked size ${pack.unpackedSize} B over the bound: inlined assets?`).toBeLessThan(MAX_UNPACKED_BYTES);
  const largest = pack.files.reduce((a, b) => (b.size > a.size ? b : a));
  expect(largest.size, `${largest.path} is ${largest.size} B`).toBeLessThan(512 * 1024);
  expect(paths.filter((p) => !p.startsWith('dist-lib/') && !['package.json', 'README.md', 'LICENSE'].includes(p)), 'only dist-lib and the package basics').toEqual([]);
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { private?: boolean; exports: Record<string, string | { types: string; import: string }>; dependencies: Record<string, string> };
  expect(manifest.private).toBeUndefined();
  for (const [entry, target] of Object.entries(manifest.exports)) {
    if (typeof target === 'string') continue;
    expect(paths, `exports["${entry}"].import`).toContain(target.import.replace(/^\.\//, ''));
    expect(paths, `exports["${entry}"].types`).toContain(target.types.replace(/^\.\//, ''));
  }
  expect(Object.keys(manifest.exports)).toEqual(expect.arrayContaining(['.', './worker']));
  expect(Object.keys(manifest.dependencies), 'Node-only packages are not dependencies').not.toEqual(expect.arrayContaining(['onnxruntime-node']));
  expect(Object.keys(manifest.dependencies)).not.toContain('jpeg-js');

  // 2. The consumer app in its own folder with its own install: the tarball and the same Vite as this repo.
  const app = join(dir, 'app');
  cpSync(FIXTURE, app, { recursive: true });
  cpSync(join(ROOT, 'public/packs/flux-test-tiny'), join(app, 'public/packs/flux-test-tiny'), { recursive: true });
  const version = (name: string) => (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  // onnxruntime-web pinned to the version this repo tests with (the package allows ^1.30), as a lockfile would.
  const dependencies = { 'flux-webgpu': `file:${join(dir, pack.filename)}`, 'onnxruntime-web': version('onnxruntime-web') };
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'flux-consumer', private: true, type: 'module', dependencies, devDependencies: { vite: version('vite') } }, null, 2));
  await timed('consumer npm install', () => run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, env: ENV, maxBuffer: 64 << 20, timeout: 240_000 }));
  expect(existsSync(join(app, 'node_modules/flux-webgpu/dist-lib/worker.js'))).toBe(true);
  expect(existsSync(join(app, 'node_modules/onnxruntime-node')), 'onnxruntime-node is not installed for a browser consumer').toBe(false);
  expect(existsSync(join(app, 'node_modules/jpeg-js')), 'jpeg-js is not installed for a browser consumer').toBe(false);

  // 3. The consumer's code type-checks against the package's exported types ('flux-webgpu', 'flux-webgpu/worker').
  await timed('consumer type check', async () => {
    const tsc = join(ROOT, 'node_modules/.bin/tsc');
    const r = await run(tsc, ['-p', join(app, 'tsconfig.json')], { cwd: app, timeout: 120_000 }).catch((e: { stdout?: string; stderr?: string }) => e);
    expect('stdout' in r ? `${r.stdout ?? ''}${r.stderr ?? ''}` : '', 'tsc on the consumer').toBe('');
  });

  // 4. Its Vite build: the worker is the consumer's own chunk, ORT's wasm one of its assets.
  const vite = join(app, 'node_modules/vite/bin/vite.js');
  await timed('consumer vite build', () => run(process.execPath, [vite, 'build'], { cwd: app, env: ENV, maxBuffer: 64 << 20, timeout: 180_000 }));
  const assets = readdirSync(join(app, 'dist/assets'));
  expect(assets.filter((f) => /^flux\.worker-.*\.js$/.test(f)), `worker chunk in ${assets.join(', ')}`).toHaveLength(1);
  expect(assets.filter((f) => /^ort-wasm-simd-threaded\.asyncify-.*\.wasm$/.test(f)), 'ORT wasm emitted by the consumer build').toHaveLength(1);

  // 5. Serve it; serve ORT's wasm again at a second prefix for the wasmPaths worker.
  server = spawn(process.execPath, [vite, 'preview', '--host', '127.0.0.1', '--port', String(PORT), '--strictPort'], { cwd: app, env: ENV, stdio: 'ignore' });
  const origin = `http://127.0.0.1:${PORT}`;
  await waitForServer(`${origin}/`, 30_000);
  const elsewhere: string[] = [];
  await page.context().route(`${origin}/ort-elsewhere/**`, (route) => {
    const name = new URL(route.request().url()).pathname.split('/').pop()!;
    elsewhere.push(name);
    const file = join(app, 'node_modules/onnxruntime-web/dist', name);
    if (!/^ort-wasm-simd-threaded[.\w]*\.(wasm|mjs)$/.test(name) || !existsSync(file)) return route.fulfill({ status: 404 });
    return route.fulfill({
      body: readFileSync(file),
      contentType: name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript',
      headers: { 'Cross-Origin-Resource-Policy': 'same-origin' },
    });
  });

  await page.goto(`${origin}/`);
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  const pageAdapter = await page.evaluate(async () => !!(await navigator.gpu?.requestAdapter()));
  expect(pageAdapter, 'the page has no WebGPU adapter (launch flags?)').toBe(true);

  // 6. Create the client with the consumer's worker, install the test pack, generate locally on WebGPU.
  const r = await timed('install + generate in the consumer', () => page.evaluate(() => (window as unknown as { consumer: { generateOnce(): Promise<GenerateOnce> } }).consumer.generateOnce()));
  expect(r.webgpu, `the worker has no WebGPU adapter: ${r.webgpuError}`).not.toBeNull();
  test.info().annotations.push({ type: 'adapter', description: `${r.webgpu!.adapter.vendor} ${r.webgpu!.adapter.architecture}` });
  expect(r.route.target).toBe('local');
  expect(r.statuses.at(-1)).toBe('COMPLETED');
  expect([r.image.width, r.image.height, r.image.contentType]).toEqual([32, 32, 'image/png']);
  expect(r.shown).toEqual([32, 32]);
  const png = decodePng(Uint8Array.from(r.image.bytes));
  expect([png.width, png.height]).toEqual([32, 32]);
  expect(new Set(png.rgb).size, 'the image is not one flat colour').toBeGreaterThan(8);

  // 7. wasmPaths reaches ORT: a second worker loads the installed pack with its wasm from the other prefix.
  const loaded = await timed('load with wasmPaths', () => page.evaluate(() => (window as unknown as { consumer: { loadWithWasmPaths(): Promise<{ packId: string | null }> } }).consumer.loadWithWasmPaths()));
  expect(loaded.packId).toBe('flux-test-tiny');
  expect(elsewhere, 'ORT fetched its wasm from wasmPaths').toContain('ort-wasm-simd-threaded.asyncify.wasm');

  // 8. A worker that cannot start rejects with what went wrong, within the bound, instead of hanging.
  const broken = await page.evaluate(() => (window as unknown as { consumer: { brokenWorker(): Promise<{ rejected: boolean; message: string; code: string; ms: number }> } }).consumer.brokenWorker());
  expect(broken.rejected, 'info() on a worker that 404s rejects').toBe(true);
  expect(broken.message).toContain('worker failed to start');
  expect(broken.message).toContain('exposeFluxWorker()');
  expect(broken.ms).toBeLessThan(10_000);
  const none = await page.evaluate(() => (window as unknown as { consumer: { noWorker(): Promise<{ rejected: boolean; message: string; field: string }> } }).consumer.noWorker());
  expect(none).toMatchObject({ rejected: true, field: 'worker' });
  expect(none.message).toContain('flux-webgpu/worker');
});

interface GenerateOnce {
  webgpu: { adapter: { vendor: string; architecture: string } } | null;
  webgpuError: string | null;
  ortBuild: string | null;
  route: { target: string; reason: string };
  statuses: string[];
  image: { width: number; height: number; contentType: string; bytes: number[] };
  shown: number[];
}
