/**
 * Resumable installs over HTTP: Range continuation after a cut connection, servers that ignore Range or
 * changed the file, storage corruption found by chunk hashes (partial and complete files), transit
 * corruption, the quota check, and first-version records.
 */
import 'fake-indexeddb/auto';
import { keys } from 'idb-keyval';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FluxError } from '../../../src/errors.js';
import { deletePack, listPacks, openInstalledPack, PackStore, verifyInstalledPack, type FileRecord } from '../../../src/storage/indexeddb-pack-store.js';
import { installPack, type InstallProgress, type InstallResult } from '../../../src/storage/pack-installer.js';
import { toBytes } from '../../../src/storage/pack-source.js';
import { checkQuota, storageStatus, type StorageLike } from '../../../src/storage/storage-status.js';
import { makePack, removePack, startServer, type PackServer, type TestPack } from './pack-fixture.js';
import { rejection } from '../../support/errors.js';

const CHUNK = 1024;
const BIG = 40_000; // 39 full chunks + 64 bytes
// Manifest order: transformer.onnx, vae_decoder.onnx, small.bin, big.bin, after.bin.
const SIZES = { 'small.bin': 3000, 'big.bin': BIG, 'after.bin': 500 };
const BEFORE_BIG = 300 + 200 + 3000;
const TOTAL = BEFORE_BIG + BIG + 500;
const CUT = 20_500; // the connection drops here: 20 full chunks (20 480 bytes) are stored

let dbCount = 0;
let pack: TestPack;
let server: PackServer;
let store: PackStore;

const fileOf = (path: string) => pack.manifest.files.find((f) => f.path === path)!;
const record = (path: string): Promise<FileRecord | undefined> => store.getFileRecord('test-pack', fileOf(path));

async function expectPackBytes(): Promise<void> {
  const src = await openInstalledPack('test-pack', { store });
  for (const [path, b] of pack.bytes) expect(await toBytes(await src.getFile(path)), path).toEqual(b);
}

/** Flip one byte of a stored chunk, as disk or browser corruption would. */
async function corruptStoredChunk(path: string, index: number, at = 3): Promise<void> {
  const rec = (await record(path))!;
  const bytes = (await store.readChunk(rec, index))!.slice();
  bytes[at]! ^= 0x01;
  await store.chunks('readwrite', (s) => s.put(new Blob([bytes]), ['test-pack', path, rec.sha256, index]));
}

/** Install with big.bin's connection cut at CUT; returns the error. */
async function interruptedInstall(): Promise<FluxError> {
  server.overrides.set('big.bin', { cutAfter: CUT, times: 1 });
  return rejection(installPack(server.baseUrl, { store }));
}

async function install(extra: { storage?: StorageLike | null } = {}): Promise<{ result: InstallResult; events: InstallProgress[] }> {
  const events: InstallProgress[] = [];
  const result = await installPack(server.baseUrl, { store, progressIntervalMs: 0, onProgress: (e) => events.push(e), ...extra });
  return { result, events };
}

function loadedOf(events: InstallProgress[]): number[] {
  return events.filter((e) => e.status !== 'done').map((e) => (e as { loadedBytes: number }).loadedBytes);
}

beforeEach(async () => {
  pack = await makePack(SIZES);
  server = await startServer(pack.dir);
  store = new PackStore({ dbName: `resume-${++dbCount}`, chunkBytes: CHUNK });
});
afterEach(async () => {
  await store.close();
  await server.close();
  await removePack(pack);
});

describe('resume over HTTP', () => {
  it('a cut connection keeps the stored chunks; the next install fetches only the missing bytes with Range + If-Range', async () => {
    const e = await interruptedInstall();
    expect(e.code).toBe('pack_install_failed');
    expect(e.message).toMatch(/big\.bin failed after 20500 bytes/);
    expect(e.message).toMatch(/can be resumed: 24\.0 KB of 44\.0 KB are stored; install the pack again/);
    expect(e.details).toMatchObject({ resumable: true, storedBytes: BEFORE_BIG + 20 * CHUNK, totalBytes: TOTAL });
    expect(server.logOf('big.bin')).toMatchObject([{ range: null, status: 200, bytesSent: CUT }]);
    expect(server.count('after.bin')).toBe(0);

    // Visible as a partial install, with what is stored.
    expect(await listPacks({ store })).toMatchObject([{ id: 'test-pack', state: 'installing', storedBytes: BEFORE_BIG + 20 * CHUNK, sizeBytes: TOTAL, sourceUrl: server.baseUrl, source: 'http' }]);
    expect((await rejection(openInstalledPack('test-pack', { store }))).code).toBe('pack_not_installed');
    const partial = (await record('big.bin'))!;
    expect(partial).toMatchObject({ state: 'partial', chunkCount: 20, bytesDone: 20 * CHUNK });
    expect(partial.chunkSha256).toHaveLength(20);
    expect(partial.validator?.etag).toMatch(/^"[0-9a-f]{32}"$/);

    server.log.length = 0;
    const { result, events } = await install();
    // Exactly one request for big.bin: the missing tail. Nothing stored is fetched again.
    expect(server.log.map((l) => l.path)).toEqual(['manifest.json', 'big.bin', 'after.bin']);
    expect(server.logOf('big.bin')).toEqual([{ path: 'big.bin', range: `bytes=${20 * CHUNK}-`, ifRange: partial.validator!.etag!, status: 206, bytesSent: BIG - 20 * CHUNK }]);
    expect(server.bytesSent()).toBe(BIG - 20 * CHUNK + 500 + JSON.stringify(pack.manifest).length);
    expect(result.stats).toEqual({
      requests: 2,
      bytesFetched: BIG - 20 * CHUNK + 500,
      bytesReused: BEFORE_BIG + 20 * CHUNK,
      reusedFiles: 3,
      resumedFiles: 1,
      restarts: [],
      repairedChunks: 0,
    });
    // Progress starts from what was stored and never goes back.
    const loaded = loadedOf(events);
    expect(loaded[0]).toBe(BEFORE_BIG + 20 * CHUNK);
    expect(Math.min(...loaded)).toBeGreaterThanOrEqual(BEFORE_BIG + 20 * CHUNK);
    expect(loaded).toEqual([...loaded].sort((a, b) => a - b));
    expect(loaded.at(-1)).toBe(TOTAL);
    expect(events.filter((e) => e.status === 'rehash').at(-1)).toMatchObject({ file: 'big.bin', fileLoadedBytes: 20 * CHUNK, fileTotalBytes: 20 * CHUNK });
    const downloads = events.filter((e): e is Extract<InstallProgress, { status: 'download' }> => e.status === 'download');
    expect(downloads.find((d) => d.file === 'big.bin')!.fileLoadedBytes).toBeGreaterThan(20 * CHUNK);
    for (const d of downloads) {
      expect(d.bytesPerSecond).toBeGreaterThanOrEqual(0);
      if (d.etaSeconds !== null) expect(d.etaSeconds).toBeGreaterThanOrEqual(0);
    }
    expect((await listPacks({ store }))[0]).toMatchObject({ state: 'complete', storedBytes: TOTAL });
    await expectPackBytes();
  });

  it('a 200 answer to the Range request restarts that file only (counted), from the same response', async () => {
    await interruptedInstall();
    server.log.length = 0;
    server.overrides.set('big.bin', { ignoreRange: true });
    const { result, events } = await install();
    expect(server.logOf('big.bin')).toMatchObject([{ range: `bytes=${20 * CHUNK}-`, status: 200, bytesSent: BIG }]);
    expect(server.log.map((l) => l.path)).toEqual(['manifest.json', 'big.bin', 'after.bin']);
    expect(result.stats.restarts).toEqual([{ file: 'big.bin', reason: 'range_ignored', fromByte: 0, droppedBytes: 20 * CHUNK }]);
    expect(result.stats).toMatchObject({ requests: 2, bytesFetched: BIG + 500, resumedFiles: 0, reusedFiles: 3 });
    expect(events.filter((e) => e.status === 'restart')).toMatchObject([{ file: 'big.bin', reason: 'range_ignored' }]);
    const loaded = loadedOf(events);
    expect(loaded).toEqual([...loaded].sort((a, b) => a - b)); // a restart does not move progress back
    await expectPackBytes();
  });

  it('a changed ETag (If-Range fails → 200) restarts the file; a 416 restarts it with a plain GET', async () => {
    await interruptedInstall();
    server.overrides.set('big.bin', { etag: '"changed-on-the-server"' });
    let { result } = await install();
    expect(result.stats.restarts).toMatchObject([{ file: 'big.bin', reason: 'validator_changed', fromByte: 0 }]);
    expect(server.logOf('big.bin').at(-1)).toMatchObject({ range: `bytes=${20 * CHUNK}-`, status: 200, bytesSent: BIG });
    await expectPackBytes();

    await deletePack('test-pack', { store });
    await interruptedInstall();
    server.log.length = 0;
    server.overrides.set('big.bin', { status: 416, times: 1 });
    ({ result } = await install());
    expect(server.logOf('big.bin')).toMatchObject([
      { range: `bytes=${20 * CHUNK}-`, status: 416 },
      { range: null, status: 200, bytesSent: BIG },
    ]);
    expect(result.stats.restarts).toMatchObject([{ file: 'big.bin', reason: 'range_not_satisfiable', fromByte: 0, droppedBytes: 20 * CHUNK }]);
    await expectPackBytes();
  });

  it('a stored chunk of a partial file that fails its hash is found on resume: the file continues from that chunk', async () => {
    await interruptedInstall();
    await corruptStoredChunk('big.bin', 5);
    server.log.length = 0;
    const { result } = await install();
    expect(server.logOf('big.bin')).toMatchObject([{ range: `bytes=${5 * CHUNK}-`, status: 206, bytesSent: BIG - 5 * CHUNK }]);
    expect(result.stats.restarts).toEqual([{ file: 'big.bin', reason: 'stored_chunk_corrupt', fromByte: 5 * CHUNK, droppedBytes: 15 * CHUNK }]);
    expect(result.stats.resumedFiles).toBe(1);
    await expectPackBytes();
  });

  it('when the first stored chunk is bad the file starts over with a plain GET, not a resume', async () => {
    await interruptedInstall();
    await corruptStoredChunk('big.bin', 0);
    server.log.length = 0;
    const { result } = await install();
    expect(server.logOf('big.bin')).toMatchObject([{ range: null, status: 200, bytesSent: BIG }]);
    expect(result.stats).toMatchObject({ resumedFiles: 0, restarts: [{ file: 'big.bin', reason: 'stored_chunk_corrupt', fromByte: 0, droppedBytes: 20 * CHUNK }] });
    expect((await record('big.bin'))!.validator?.etag).toMatch(/^"/);
    await expectPackBytes();
  });

  it('a corrupted chunk of a complete file: verify names the chunk, the next install refetches only it', async () => {
    await install();
    await corruptStoredChunk('big.bin', 7);
    const checks = await verifyInstalledPack('test-pack', { store });
    expect(checks.filter((c) => !c.ok)).toMatchObject([{ path: 'big.bin', problem: 'sha256', badChunks: [7] }]);
    expect((await listPacks({ store }))[0]!.state).toBe('corrupt');
    expect((await rejection(openInstalledPack('test-pack', { store }))).code).toBe('pack_file_corrupt');

    server.log.length = 0;
    const { result, events } = await install();
    expect(server.log.map((l) => [l.path, l.range, l.status, l.bytesSent])).toEqual([
      ['manifest.json', null, 200, JSON.stringify(pack.manifest).length],
      ['big.bin', `bytes=${7 * CHUNK}-${8 * CHUNK - 1}`, 206, CHUNK],
    ]);
    expect(result.stats).toMatchObject({ requests: 1, bytesFetched: CHUNK, repairedChunks: 1, restarts: [], reusedFiles: 4 });
    expect(events.filter((e) => e.status === 'repair')).toMatchObject([{ file: 'big.bin', chunks: [7] }]);
    expect((await verifyInstalledPack('test-pack', { store })).every((c) => c.ok)).toBe(true);
    expect((await listPacks({ store }))[0]!.state).toBe('complete');
    await expectPackBytes();
  });

  it('chunk repair falls back to refetching the file when the server ignores Range', async () => {
    await install();
    await corruptStoredChunk('big.bin', 39, 10); // the short last chunk
    await verifyInstalledPack('test-pack', { store });
    server.log.length = 0;
    server.overrides.set('big.bin', { ignoreRange: true });
    const { result } = await install();
    expect(server.logOf('big.bin')).toMatchObject([
      { range: `bytes=${39 * CHUNK}-${BIG - 1}`, status: 200 },
      { range: null, status: 200, bytesSent: BIG },
    ]);
    expect(result.stats.restarts).toMatchObject([{ file: 'big.bin', reason: 'repair_failed', fromByte: 0 }]);
    await expectPackBytes();
  });

  it('a byte corrupted in transit fails the whole-file hash: the file is dropped, the rest installed, and the next install repairs it', async () => {
    server.overrides.set('big.bin', { corruptAt: 12_345, times: 1 });
    const e = await rejection(install());
    expect(e.code).toBe('pack_file_corrupt');
    expect(e.details).toMatchObject({ file: 'big.bin', expectedSha256: fileOf('big.bin').sha256 });
    expect(e.message).toMatch(/big\.bin: sha256 is [0-9a-f]{64}, manifest says .* install again/);
    expect(await record('big.bin')).toBeUndefined();
    expect((await record('after.bin'))?.state).toBe('complete'); // later files still installed
    expect((await listPacks({ store }))[0]).toMatchObject({ state: 'installing', storedBytes: TOTAL - BIG });
    expect((await rejection(openInstalledPack('test-pack', { store }))).code).toBe('pack_not_installed');

    server.log.length = 0;
    const { result } = await install();
    expect(server.log.map((l) => [l.path, l.range, l.bytesSent])).toEqual([
      ['manifest.json', null, JSON.stringify(pack.manifest).length],
      ['big.bin', null, BIG],
    ]);
    expect(result.stats).toMatchObject({ requests: 1, bytesFetched: BIG, reusedFiles: 4 });
    await expectPackBytes();
  });

  it('continues records of the first version (no chunk hashes, no validator) and records hashes for them', async () => {
    await interruptedInstall();
    const rec = (await record('big.bin'))!;
    const { chunkSha256: _h, validator: _v, ...legacy } = rec;
    await store.putFileRecord(legacy);
    const small = (await record('small.bin'))!;
    const { chunkSha256: _s, ...legacySmall } = small;
    await store.putFileRecord(legacySmall);

    server.log.length = 0;
    await install();
    expect(server.logOf('big.bin')).toMatchObject([{ range: `bytes=${20 * CHUNK}-`, ifRange: null, status: 206 }]);
    expect((await record('big.bin'))!.chunkSha256).toHaveLength(40);
    await expectPackBytes();
    // verify fills in the hashes of a complete first-version file, so later corruption is localised.
    expect((await record('small.bin'))!.chunkSha256).toBeUndefined();
    await verifyInstalledPack('test-pack', { store });
    expect((await record('small.bin'))!.chunkSha256).toHaveLength(3);
  });

  it('deletePack during an install stops it and frees everything', async () => {
    let deleting: Promise<void> | undefined;
    const e = await rejection(
      installPack(server.baseUrl, {
        store,
        progressIntervalMs: 0,
        onProgress: (ev) => {
          if (ev.status === 'download' && ev.file === 'big.bin' && ev.fileLoadedBytes > 8 * CHUNK) deleting ??= deletePack('test-pack', { store });
        },
      }),
    );
    await deleting;
    expect(e.code).toBe('cancelled');
    expect(await keys(store.packs)).toEqual([]);
    expect(await keys(store.files)).toEqual([]);
    expect(await keys(store.chunks)).toEqual([]);
  });
});

describe('stopping an install', () => {
  it('an install stopped between body reads always settles with cancelled (12 deletes at different points)', async () => {
    // Node's fetch could leave the pending body read hanging after the abort, so the install never let go.
    for (let k = 0; k < 12; k++) {
      const db = new PackStore({ dbName: `stop-${dbCount}-${k}`, chunkBytes: CHUNK });
      let deleting: Promise<void> | undefined;
      const at = 2 * CHUNK + k * 2500;
      const settled = installPack(server.baseUrl, {
        store: db,
        storage: null,
        progressIntervalMs: 0,
        onProgress: (ev) => {
          if (ev.status === 'download' && ev.file === 'big.bin' && ev.fileLoadedBytes > at) deleting ??= deletePack('test-pack', { store: db });
        },
      }).then(
        () => 'resolved',
        (e: FluxError) => e.code,
      );
      const timeout = new Promise((r) => setTimeout(() => r('hung'), 5000));
      expect(await Promise.race([settled, timeout]), `run ${k}`).toBe('cancelled');
      await deleting;
      expect(await keys(db.chunks)).toEqual([]);
      await db.close();
    }
  });
});

describe('quota and persistence', () => {
  it('refuses before any pack-file request when quota − usage is below what is still needed', async () => {
    const storage: StorageLike = { estimate: async () => ({ quota: 30_000_000, usage: 29_500_000 }), persisted: async () => false };
    const e = await rejection(install({ storage }));
    expect(e.code).toBe('storage_quota');
    expect(e.message).toBe(
      'Not enough browser storage for pack "test-pack": it needs 44.0 KB more, but only 500 KB is available to this site (quota 30.0 MB, 29.5 MB in use). ' +
        'Free disk space, or delete other model packs from this site, then install again.',
    );
    expect(e.details).toMatchObject({ neededBytes: TOTAL, availableBytes: 500_000 });
    expect([...server.requests.keys()]).toEqual(['/pack/manifest.json']);
    expect(await listPacks({ store })).toEqual([]);
  });

  it('counts only the bytes still missing, so a nearly done install resumes within a tight quota; reports persistence', async () => {
    await interruptedInstall();
    const missing = TOTAL - (BEFORE_BIG + 20 * CHUNK);
    const room = missing + 16 * 1024 * 1024 + Math.ceil(missing * 0.01);
    let asked = 0;
    const storage: StorageLike = {
      estimate: async () => ({ quota: 1e9, usage: 1e9 - room }),
      persist: async () => (++asked, true),
    };
    const { result } = await install({ storage });
    expect(result.persisted).toBe(true);
    expect(asked).toBe(1);
    await expectPackBytes();
    // One byte less room and the same resume would have been refused.
    await deletePack('test-pack', { store });
    await interruptedInstall();
    const e = await rejection(install({ storage: { estimate: async () => ({ quota: 1e9, usage: 1e9 - room + 1 }) } }));
    expect(e.code).toBe('storage_quota');
  });

  it("does not refuse on Chrome's artificial headroom (usage + exactly 10 GiB), which says nothing about the real quota", async () => {
    const GiB = 1024 ** 3;
    const chrome: StorageLike = { estimate: async () => ({ usage: 123_456, quota: 123_456 + 10 * GiB }) };
    await expect(checkQuota('p', 11 * GiB, chrome)).resolves.toBeUndefined();
    expect(await storageStatus(chrome)).toEqual({ usage: 123_456, quota: 123_456 + 10 * GiB, quotaUndisclosed: true, persisted: null });
    // Any other figure is taken at its word (Firefox, Safari, Chrome with a disk under 10 GiB).
    const honest: StorageLike = { estimate: async () => ({ usage: 0, quota: 10 * GiB - 1 }) };
    expect((await rejection(checkQuota('p', 11 * GiB, honest))).message).toMatch(/needs 11\.8 GB more, but only 10\.7 GB is available/);
  });

  it('maps QuotaExceededError from a write to storage_quota, saying the install resumes', async () => {
    await interruptedInstall();
    const append = store.appendChunk.bind(store);
    let writes = 0;
    store.appendChunk = (rec, bytes, sha) => {
      if (rec.path === 'big.bin' && ++writes === 3) return Promise.reject(Object.assign(new Error('The quota has been exceeded.'), { name: 'QuotaExceededError' }));
      return append(rec, bytes, sha);
    };
    const e = await rejection(install());
    expect(e.code).toBe('storage_quota');
    expect(e.message).toMatch(/storage is full .* can be resumed: 26\.0 KB of 44\.0 KB are stored/);
    expect(e.details).toMatchObject({ resumable: true });
  });
});
