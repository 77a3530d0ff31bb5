/** The catalog as data (src/app/catalog.json): validated, true to the packs it lists; URL input; pre-install GPU checks. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CATALOG, checkEntryForDevice, FIRST_RUN_PACK, normalizePackUrl, parseCatalog } from '../../../src/app/catalog.js';
import { checkManifestForDevice } from '../../../src/runtime/capacity.js';
import data from '../../../src/app/catalog.json';
import { isFluxError, type FluxError } from '../../../src/errors.js';
import { parseManifest } from '../../../src/pack/manifest.js';

function fails(f: () => unknown): FluxError {
  try {
    f();
  } catch (e) {
    if (isFluxError(e)) return e;
    throw e;
  }
  throw new Error('expected a FluxError');
}
const clone = (): Record<string, unknown> & { packs: Record<string, unknown>[] } => JSON.parse(JSON.stringify(data));
const testManifest = parseManifest(JSON.parse(readFileSync('public/packs/flux-test-tiny/manifest.json', 'utf8')));

describe('catalog.json', () => {
  it('lists the embedded test pack with its real size and license, as the first-run pack', () => {
    expect(FIRST_RUN_PACK.id).toBe('flux-test-tiny');
    const m = JSON.parse(readFileSync('public/packs/flux-test-tiny/manifest.json', 'utf8')) as { id: string; license: string; testPack: boolean; files: { size: number }[] };
    expect(FIRST_RUN_PACK).toMatchObject({ id: m.id, license: m.license, testPack: m.testPack, sizeBytes: m.files.reduce((s, f) => s + f.size, 0) });
    expect(CATALOG.map((c) => c.id)).toContain(FIRST_RUN_PACK.id);
  });

  it.each([
    [(c: ReturnType<typeof clone>) => (c.version = 2), 'catalog.json: version: unsupported version 2'],
    [(c: ReturnType<typeof clone>) => (c.packs[0]!.url = './packs/x'), 'catalog.json: packs[0].url: must be the pack\'s folder URL ending in "/"'],
    [(c: ReturnType<typeof clone>) => (c.packs[0]!.url = 'http://example.com/p/'), 'catalog.json: packs[0].url: must be relative to the app'],
    [(c: ReturnType<typeof clone>) => (c.packs[0]!.sizeBytes = -1), 'catalog.json: packs[0].sizeBytes: must be a positive integer'],
    [(c: ReturnType<typeof clone>) => (c.packs[0]!.requiredFeatures = 'shader-f16'), 'catalog.json: packs[0].requiredFeatures: must be an array'],
    [(c: ReturnType<typeof clone>) => delete c.packs[0]!.license, 'catalog.json: packs[0].license: must be a non-empty string'],
    [(c: ReturnType<typeof clone>) => (c.packs[0]!.id = 'Bad Id'), 'catalog.json: packs[0].id: must match'],
    [(c: ReturnType<typeof clone>) => c.packs.push({ ...c.packs[0]! }), 'catalog.json: packs[1].id: duplicate id "flux-test-tiny"'],
    [(c: ReturnType<typeof clone>) => (c.firstRun = 'nope'), 'catalog.json: firstRun: must be the id of a listed pack, got "nope"'],
  ])('refuses a bad entry, naming the field (%#)', (mutate, message) => {
    const c = clone();
    mutate(c);
    const e = fails(() => parseCatalog(c));
    expect(e.code).toBe('invalid_input');
    expect(e.message.startsWith(message)).toBe(true);
  });
});

describe('normalizePackUrl', () => {
  const page = 'http://127.0.0.1:4173/app/';
  it('makes a folder URL absolute with a trailing slash, and accepts a pasted manifest URL', () => {
    expect(normalizePackUrl(' https://huggingface.co/u/r/resolve/main ', page)).toBe('https://huggingface.co/u/r/resolve/main/');
    expect(normalizePackUrl('https://host.example/p/manifest.json?x=1#y', page)).toBe('https://host.example/p/');
    expect(normalizePackUrl('./packs/flux-test-tiny/', page)).toBe('http://127.0.0.1:4173/app/packs/flux-test-tiny/');
  });
  it('refuses empty, non-http and credentialed URLs with field pack_url', () => {
    expect(fails(() => normalizePackUrl('  ', page)).field).toBe('pack_url');
    expect(fails(() => normalizePackUrl('ftp://h/p/', page)).message).toMatch(/must be http\(s\), got ftp:/);
    expect(fails(() => normalizePackUrl('https://u:p@h/p/', page)).message).toMatch(/user name or password/);
  });
});

describe('pre-install GPU checks', () => {
  const gpu = (features: string[], limits: Record<string, number> = {}) => ({ webgpu: { features, limits }, gpuMemoryLimitBytes: null });
  it('passes the test pack on a baseline adapter', () => {
    expect(() => checkManifestForDevice(testManifest, 'u', gpu([]))).not.toThrow();
    expect(() => checkEntryForDevice(FIRST_RUN_PACK, gpu([]))).not.toThrow();
  });
  it('refuses an fp16 pack without shader-f16, naming the feature, before any download', () => {
    const fp16 = { ...testManifest, components: { ...testManifest.components, transformer: { ...testManifest.components.transformer!, dtype: 'float16' as const } } };
    const e = fails(() => checkManifestForDevice(fp16, 'https://h/p/', gpu([])));
    expect(e.code).toBe('missing_gpu_feature');
    expect(e.message).toMatch(/^Pack ".*" \(https:\/\/h\/p\/\) cannot run on this GPU, so it was not downloaded\. .*the GPU lacks shader-f16/);
    expect(() => checkManifestForDevice(fp16, 'https://h/p/', gpu(['shader-f16']))).not.toThrow();
    const entry = { ...FIRST_RUN_PACK, requiredFeatures: ['shader-f16'] };
    expect(fails(() => checkEntryForDevice(entry, gpu([]))).message).toMatch(/needs the WebGPU feature shader-f16/);
  });
  it('refuses a pack over the GPU memory limit as insufficient_capacity', () => {
    const e = fails(() => checkManifestForDevice(testManifest, 'u', { webgpu: { features: [], limits: {} }, gpuMemoryLimitBytes: 1024 }));
    expect(e.code).toBe('insufficient_capacity');
    expect(e.message).toMatch(/it needs at least .* of GPU memory/);
  });
});
