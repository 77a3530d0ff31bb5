/**
 * Same pack id, other source: an install whose manifest reuses a stored pack's id from another URL or folder
 * is refused before anything is written, naming both sources, unless `replace: true` (the UI asks first).
 * Plus the write-side guards that hold even for a writer that ignores the pack lock.
 */
import 'fake-indexeddb/auto';
import { keys } from 'idb-keyval';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installPackFromFiles } from '../../../src/storage/file-installer.js';
import { listPacks, openInstalledPack, PackStore } from '../../../src/storage/indexeddb-pack-store.js';
import { installPack } from '../../../src/storage/pack-installer.js';
import { toBytes } from '../../../src/storage/pack-source.js';
import { makePack, removePack, startServer, type PackServer, type TestPack } from './pack-fixture.js';
import { rejection } from '../../support/errors.js';

const CHUNK = 1024;
let dbCount = 0;
let packA: TestPack;
let packB: TestPack;
let serverA: PackServer;
let serverB: PackServer;
let store: PackStore;

function folder(p: TestPack, top: string): File[] {
  const entries: [string, Uint8Array][] = [['manifest.json', new TextEncoder().encode(JSON.stringify(p.manifest))], ...p.bytes];
  return entries.map(([path, b]) => {
    const file = new File([b as Uint8Array<ArrayBuffer>], path);
    Object.defineProperty(file, 'webkitRelativePath', { value: `${top}/${path}` });
    return file;
  });
}

async function expectBytesOf(p: TestPack): Promise<void> {
  const src = await openInstalledPack('test-pack', { store });
  expect(src.manifest).toEqual(p.manifest);
  for (const [path, b] of p.bytes) expect(await toBytes(await src.getFile(path)), path).toEqual(b);
}

beforeEach(async () => {
  // Two different packs that both call themselves "test-pack".
  packA = await makePack({ 'a.bin': 3000 });
  packB = await makePack({ 'b.bin': 2000 });
  serverA = await startServer(packA.dir);
  serverB = await startServer(packB.dir);
  store = new PackStore({ dbName: `same-id-${++dbCount}`, chunkBytes: CHUNK });
});
afterEach(async () => {
  await store.close();
  await serverA.close();
  await serverB.close();
  await removePack(packA);
  await removePack(packB);
});

describe('same id, other source', () => {
  it('another URL is refused naming both URLs, before any pack-file request; the stored pack is untouched', async () => {
    await installPack(serverA.baseUrl, { store, storage: null });
    const e = await rejection(installPack(serverB.baseUrl, { store, storage: null }));
    expect(e.code).toBe('pack_install_failed');
    expect(e.message).toBe(
      `Pack "test-pack" is already stored from ${serverA.baseUrl}; this install is from ${serverB.baseUrl}. ` +
        'Installing it would replace the stored pack (its files are deleted once the new ones verify). Delete the pack first, or confirm the replacement.',
    );
    expect(e.details).toEqual({ packId: 'test-pack', reason: 'other_source', installedSource: serverA.baseUrl, requestedSource: serverB.baseUrl });
    expect([...serverB.requests.keys()]).toEqual(['/pack/manifest.json']);
    expect(await listPacks({ store })).toMatchObject([{ state: 'complete', sourceUrl: serverA.baseUrl, updatePending: false }]);
    await expectBytesOf(packA);
  });

  it('an interrupted install from another URL is protected too (its stored bytes would be replaced)', async () => {
    serverA.overrides.set('a.bin', { cutAfter: 1500, times: 1 });
    expect((await rejection(installPack(serverA.baseUrl, { store, storage: null }))).details).toMatchObject({ resumable: true });
    const e = await rejection(installPack(serverB.baseUrl, { store, storage: null }));
    expect(e.details).toMatchObject({ reason: 'other_source' });
    expect(await listPacks({ store })).toMatchObject([{ state: 'installing', sourceUrl: serverA.baseUrl }]);
  });

  it('replace: true installs the other pack, then frees the old one; the same URL (with or without a trailing slash) needs no confirmation', async () => {
    await installPack(serverA.baseUrl, { store, storage: null });
    await installPack(`${serverA.baseUrl}/`, { store, storage: null }); // same source: just a reinstall
    await installPack(serverB.baseUrl, { store, storage: null, replace: true });
    expect(await listPacks({ store })).toMatchObject([{ state: 'complete', sourceUrl: serverB.baseUrl, storedBytes: 300 + 200 + 2000 }]);
    await expectBytesOf(packB);
    expect((await store.fileRecords('test-pack')).map((f) => f.path).sort()).toEqual(['b.bin', 'transformer.onnx', 'vae_decoder.onnx']);
  });

  it('another local folder is refused naming both folders; the same folder again is an update; a URL over a folder is refused', async () => {
    await installPackFromFiles(folder(packA, 'pack-a'), { store, storage: null });
    const e = await rejection(installPackFromFiles(folder(packB, 'pack-b'), { store, storage: null }));
    expect(e.message).toMatch(/^Pack "test-pack" is already stored from the local folder "pack-a"; this install is from the local folder "pack-b"\./);
    expect(e.details).toMatchObject({ reason: 'other_source', installedSource: 'the local folder "pack-a"', requestedSource: 'the local folder "pack-b"' });
    await expectBytesOf(packA);
    const e2 = await rejection(installPack(serverB.baseUrl, { store, storage: null }));
    expect(e2.message).toMatch(/already stored from the local folder "pack-a"; this install is from http:\/\/127\.0\.0\.1:\d+\/pack\./);
    // The same folder name with a changed manifest is the user updating that folder: allowed.
    await installPackFromFiles(folder(packB, 'pack-a'), { store, storage: null });
    await expectBytesOf(packB);
    expect(await listPacks({ store })).toMatchObject([{ source: 'files', sourceUrl: null }]);
    expect((await store.getPack('test-pack'))!.sourceFolder).toBe('pack-a');
  });
});

describe('writes re-read the records in their transaction (also against a writer without the lock)', () => {
  it('a pack deleted behind an install (no lock, no stop: an older app version in another tab) is not recreated', async () => {
    let deleted: Promise<void> | undefined;
    const e = await rejection(
      installPack(serverA.baseUrl, {
        store,
        storage: null,
        progressIntervalMs: 0,
        onProgress: (ev) => {
          if (ev.status === 'download' && ev.file === 'a.bin' && ev.fileLoadedBytes >= 1024) deleted ??= store.deletePackData('test-pack');
        },
      }),
    );
    await deleted;
    expect(e.code).toBe('cancelled');
    expect(e.message).toBe('Pack "test-pack" was deleted while it was being installed.');
    expect(await keys(store.packs)).toEqual([]);
    expect(await keys(store.chunks)).toEqual([]);
    // At most the one record of the file being written when the delete landed, with no chunks behind it.
    expect((await store.fileRecords('test-pack')).every((f) => f.chunkCount === 0 || f.state !== 'complete')).toBe(true);
  });

  it('commitPack refuses to mark a pack complete when a listed file is not complete in storage, and writes nothing', async () => {
    await installPack(serverA.baseUrl, { store, storage: null });
    const rec = (await store.getPack('test-pack'))!;
    const a = rec.manifest.files.find((f) => f.path === 'a.bin')!;
    await store.deleteFileData({ packId: 'test-pack', path: a.path, sha256: a.sha256 });
    await store.putPack({ ...rec, state: 'installing' });
    const e = await rejection(store.commitPack({ ...rec, state: 'complete' }));
    expect(e.code).toBe('pack_install_failed');
    expect(e.message).toBe('Pack "test-pack": a.bin is no longer complete in storage (changed while installing); install the pack again.');
    expect((await store.getPack('test-pack'))!.state).toBe('installing');
  });
});
