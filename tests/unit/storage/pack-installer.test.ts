import 'fake-indexeddb/auto';
import { get, keys } from 'idb-keyval';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toBytes } from '../../../src/storage/pack-source.js';
import { deletePack, listPacks, openInstalledPack, PackStore, verifyInstalledPack } from '../../../src/storage/indexeddb-pack-store.js';
import { installPack, type InstallProgress } from '../../../src/storage/pack-installer.js';
import { makePack, removePack, startServer, updateFile, type PackServer, type TestPack } from './pack-fixture.js';
import { rejection } from '../../support/errors.js';

const CHUNK = 1024;
// Chunk boundaries: empty, one byte, exactly one chunk, one past, several chunks plus a remainder.
const SIZES = { 'zero.bin': 0, 'one.bin': 1, 'exact.bin': CHUNK, 'plus1.bin': CHUNK + 1, 'dir/several.bin': 5 * CHUNK + 7, 'big.bin': 40_000 };

let dbCount = 0;
let pack: TestPack;
let server: PackServer;
let store: PackStore;

async function chunkKeysOf(path: string): Promise<IDBValidKey[][]> {
  return (await keys<IDBValidKey[]>(store.chunks)).filter((k) => k[1] === path);
}

async function expectPackBytes(s: PackStore, p: TestPack): Promise<void> {
  const src = await openInstalledPack(p.manifest.id, { store: s });
  for (const [path, b] of p.bytes) {
    const data = await src.getFile(path);
    expect(data).toBeInstanceOf(Blob);
    expect(await toBytes(data)).toEqual(b);
  }
}

describe.each(['blob', 'arraybuffer'] as const)('installPack (%s chunks)', (chunkType) => {
  beforeEach(async () => {
    pack = await makePack(SIZES);
    server = await startServer(pack.dir);
    store = new PackStore({ dbName: `test-${++dbCount}`, chunkBytes: CHUNK, chunkType });
  });
  afterEach(async () => {
    await store.close();
    await server.close();
    await removePack(pack);
  });

  it('installs, lists and opens a pack whose files equal the source, chunked at chunkBytes', async () => {
    const events: InstallProgress[] = [];
    const { manifest: m } = await installPack(server.baseUrl, { store, onProgress: (e) => events.push(e), progressIntervalMs: 0 });
    expect(m.id).toBe('test-pack');

    const total = [...pack.bytes.values()].reduce((s, b) => s + b.byteLength, 0);
    const [info] = await listPacks({ store });
    expect(info).toMatchObject({ id: 'test-pack', state: 'complete', sizeBytes: total, storedBytes: total, testPack: true, updatePending: false });
    expect(info!.installedAt).toBeGreaterThan(0);

    await expectPackBytes(store, pack);
    for (const [path, b] of pack.bytes) {
      const chunks = await chunkKeysOf(path);
      expect(chunks.length, path).toBe(Math.ceil(b.byteLength / CHUNK));
      expect(chunks.map((k) => k[3]).sort((a, b) => Number(a) - Number(b))).toEqual(chunks.map((_, i) => i));
    }
    const value: unknown = await get((await chunkKeysOf('big.bin'))[0]!, store.chunks);
    expect(value).toBeInstanceOf(chunkType === 'blob' ? Blob : ArrayBuffer);
    const stored = await store.getFileRecord('test-pack', pack.manifest.files.find((f) => f.path === 'plus1.bin')!);
    expect(stored).toMatchObject({ state: 'complete', chunkCount: 2, bytesDone: CHUNK + 1, chunkBytes: CHUNK });

    const withLoaded = events.filter((e) => e.status !== 'done') as Exclude<InstallProgress, { status: 'done' }>[];
    const loaded = withLoaded.map((e) => e.loadedBytes);
    expect(loaded).toEqual([...loaded].sort((a, b) => a - b));
    expect(new Set(withLoaded.map((e) => e.totalBytes))).toEqual(new Set([total]));
    expect(events.at(-1)).toEqual({ status: 'done', packId: 'test-pack', totalBytes: total });
    expect(loaded.at(-1)).toBe(total);
    const downloads = events.filter((e) => e.status === 'download');
    expect(downloads.length).toBeGreaterThan(pack.bytes.size); // several reads for the big file
    for (const e of downloads) {
      expect(e.fileLoadedBytes).toBeLessThanOrEqual(e.fileTotalBytes);
      expect(e.bytesPerSecond).toBeGreaterThanOrEqual(0);
    }
    const big = downloads.filter((e) => e.file === 'big.bin');
    expect(big.at(-1)).toMatchObject({ fileLoadedBytes: 40_000, fileTotalBytes: 40_000 });
    expect(events.filter((e) => e.status === 'verify').map((e) => e.file)).toEqual([...pack.bytes.keys()]);
  });

  it('rejects a file whose sha256 does not match, deletes its chunks and leaves the pack incomplete', async () => {
    const good = pack.bytes.get('big.bin')!;
    const bad = good.slice();
    bad[12_345] ^= 0xff;
    server.overrides.set('big.bin', { body: bad });
    const e = await rejection(installPack(server.baseUrl, { store }));
    expect(e.code).toBe('pack_file_corrupt');
    expect(e.message).toContain('big.bin');
    expect(e.details).toMatchObject({ file: 'big.bin', expectedSha256: pack.manifest.files.find((f) => f.path === 'big.bin')!.sha256 });
    expect(e.details?.actualSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await chunkKeysOf('big.bin')).toEqual([]);
    expect((await listPacks({ store }))[0]!.state).toBe('installing');
    expect((await rejection(openInstalledPack('test-pack', { store }))).code).toBe('pack_not_installed');
  });

  it('rejects bodies longer or shorter than the manifest size', async () => {
    server.overrides.set('dir/several.bin', { body: new Uint8Array(5 * CHUNK + 8) });
    let e = await rejection(installPack(server.baseUrl, { store }));
    expect(e.code).toBe('pack_file_corrupt');
    expect(e.details).toMatchObject({ file: 'dir/several.bin', expectedSize: 5 * CHUNK + 7 });
    server.overrides.set('dir/several.bin', { body: new Uint8Array(5 * CHUNK) });
    e = await rejection(installPack(server.baseUrl, { store }));
    expect(e.code).toBe('pack_file_corrupt');
    expect(e.details).toMatchObject({ expectedSize: 5 * CHUNK + 7, actualSize: 5 * CHUNK });
    expect(await chunkKeysOf('dir/several.bin')).toEqual([]);
  });

  it('maps HTTP 404 to pack_file_missing and other statuses to pack_install_failed, naming URL and status', async () => {
    server.overrides.set('exact.bin', { status: 404 });
    let e = await rejection(installPack(server.baseUrl, { store }));
    expect(e.code).toBe('pack_file_missing');
    expect(e.message).toContain(`${server.baseUrl}/exact.bin`);
    expect(e.message).toContain('404');
    expect(e.details).toMatchObject({ status: 404 });

    server.overrides.set('exact.bin', { status: 503 });
    e = await rejection(installPack(server.baseUrl, { store }));
    expect(e.code).toBe('pack_install_failed');
    expect(e.message).toContain('503');

    server.overrides.set('manifest.json', { status: 404 });
    e = await rejection(installPack(server.baseUrl, { store }));
    expect(e.code).toBe('pack_file_missing');
    expect(e.message).toContain('manifest.json');
  });

  it('cancels mid-download, then a second install finishes without refetching complete files', async () => {
    const ac = new AbortController();
    const e = await rejection(
      installPack(server.baseUrl, {
        store,
        signal: ac.signal,
        progressIntervalMs: 0,
        onProgress: (ev) => {
          if (ev.status === 'download' && ev.file === 'big.bin' && ev.fileLoadedBytes > 0) ac.abort();
        },
      }),
    );
    expect(e.code).toBe('cancelled');
    expect((await listPacks({ store }))[0]!.state).toBe('installing');
    expect((await rejection(openInstalledPack('test-pack', { store }))).code).toBe('pack_not_installed');
    const bigRec = await store.getFileRecord('test-pack', pack.manifest.files.find((f) => f.path === 'big.bin')!);
    expect(bigRec?.state).toBe('partial');
    expect(bigRec!.bytesDone).toBeLessThan(40_000);

    const loaded: number[] = [];
    await installPack(server.baseUrl, { store, onProgress: (ev) => ev.status !== 'done' && loaded.push(ev.loadedBytes) });
    for (const path of pack.bytes.keys()) {
      // Files before big.bin completed in the first run; big.bin (partial) and later ones are fetched now.
      expect(server.count(path), path).toBe(path === 'big.bin' ? 2 : 1);
    }
    expect(loaded).toEqual([...loaded].sort((a, b) => a - b));
    await expectPackBytes(store, pack);
  });

  it('reports cancelled without any request when the signal is already aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    expect((await rejection(installPack(server.baseUrl, { store, signal: ac.signal }))).code).toBe('cancelled');
    expect(server.requests.size).toBe(0);
  });

  it('deletePack removes records and chunks', async () => {
    await installPack(server.baseUrl, { store });
    expect((await keys(store.chunks)).length).toBeGreaterThan(0);
    await deletePack('test-pack', { store });
    expect(await keys(store.packs)).toEqual([]);
    expect(await keys(store.files)).toEqual([]);
    expect(await keys(store.chunks)).toEqual([]);
    expect(await listPacks({ store })).toEqual([]);
    expect((await rejection(openInstalledPack('test-pack', { store }))).code).toBe('pack_not_installed');
  });

  it('reinstalling a complete pack fetches only the manifest and keeps it usable', async () => {
    await installPack(server.baseUrl, { store });
    server.requests.clear();
    const states: string[] = [];
    await installPack(server.baseUrl, {
      store,
      onProgress: () => void listPacks({ store }).then((l) => states.push(l[0]!.state)),
    });
    expect([...server.requests.keys()]).toEqual(['/pack/manifest.json']);
    expect(states.every((s) => s === 'complete')).toBe(true);
    await expectPackBytes(store, pack);
  });

  it('an update with a bad file leaves the complete pack intact; a good one replaces it and frees old data', async () => {
    await installPack(server.baseUrl, { store });
    const old = new Map(pack.bytes);
    const oldSha = pack.manifest.files.find((f) => f.path === 'big.bin')!.sha256;
    await updateFile(pack, 'big.bin', new Uint8Array(40_000).fill(7));
    server.overrides.set('big.bin', { body: new Uint8Array(40_000).fill(8) });

    expect((await rejection(installPack(server.baseUrl, { store }))).code).toBe('pack_file_corrupt');
    const [info] = await listPacks({ store });
    expect(info).toMatchObject({ state: 'complete', updatePending: true });
    await expectPackBytes(store, { ...pack, bytes: old });

    server.overrides.clear();
    await installPack(server.baseUrl, { store });
    expect(await listPacks({ store })).toMatchObject([{ state: 'complete', updatePending: false }]);
    await expectPackBytes(store, pack);
    const bigChunks = await chunkKeysOf('big.bin');
    expect(bigChunks.length).toBe(Math.ceil(40_000 / CHUNK));
    expect(bigChunks.some((k) => k[2] === oldSha)).toBe(false);
    expect(server.count('one.bin')).toBe(1); // unchanged files were reused across versions
  });

  it('verifyInstalledPack rehashes from storage and marks tampered files corrupt; reinstall repairs only them', async () => {
    await installPack(server.baseUrl, { store });
    const ok = await verifyInstalledPack('test-pack', { store });
    expect(ok.every((r) => r.ok)).toBe(true);
    expect(ok.map((r) => r.path)).toEqual([...pack.bytes.keys()]);

    const key = (await chunkKeysOf('dir/several.bin')).find((k) => k[3] === 2)!;
    const tampered = new Uint8Array(CHUNK);
    await store.chunks('readwrite', (s) => s.put(chunkType === 'blob' ? new Blob([tampered]) : tampered.buffer, key));
    const progress: number[] = [];
    const res = await verifyInstalledPack('test-pack', { store, onProgress: (e) => progress.push(e.loadedBytes) });
    expect(res.filter((r) => !r.ok)).toMatchObject([{ path: 'dir/several.bin', problem: 'sha256', actualSize: 5 * CHUNK + 7 }]);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect((await listPacks({ store }))[0]!.state).toBe('corrupt');
    expect((await rejection(openInstalledPack('test-pack', { store }))).code).toBe('pack_file_corrupt');

    server.requests.clear();
    await installPack(server.baseUrl, { store });
    expect([...server.requests.keys()].sort()).toEqual(['/pack/dir/several.bin', '/pack/manifest.json']);
    await expectPackBytes(store, pack);
  });

  it('getFile size-checks the stored chunks against the manifest', async () => {
    await installPack(server.baseUrl, { store });
    const key = (await chunkKeysOf('plus1.bin')).find((k) => k[3] === 1)!;
    await store.chunks('readwrite', (s) => s.delete(key));
    const src = await openInstalledPack('test-pack', { store });
    const e = await rejection(src.getFile('plus1.bin'));
    expect(e.code).toBe('pack_file_corrupt');
    expect(e.details).toMatchObject({ expectedSize: CHUNK + 1, actualSize: CHUNK });
    expect((await rejection(src.getFile('not-listed.bin'))).code).toBe('pack_file_missing');
  });

  it('refuses a second concurrent install of the same pack', async () => {
    let second: Promise<unknown> | undefined;
    const start = (): Promise<unknown> => installPack(server.baseUrl, { store }).then(() => 'resolved', (e: unknown) => e);
    await installPack(server.baseUrl, { store, onProgress: () => void (second ??= start()) });
    expect(await second).toMatchObject({ code: 'busy' });
    expect((await listPacks({ store }))[0]!.state).toBe('complete');
  });
});
