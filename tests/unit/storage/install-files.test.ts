/** installPackFromFiles: a pack folder given as File objects (picked or dropped), through the same engine. */
import 'fake-indexeddb/auto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installPackFromFiles, matchPackFiles, type LocalPackFile } from '../../../src/storage/file-installer.js';
import { listPacks, openInstalledPack, PackStore } from '../../../src/storage/indexeddb-pack-store.js';
import type { InstallProgress } from '../../../src/storage/pack-installer.js';
import { toBytes } from '../../../src/storage/pack-source.js';
import { makePack, removePack, type TestPack } from './pack-fixture.js';
import { rejection } from '../../support/errors.js';

const CHUNK = 1024;
let dbCount = 0;
let pack: TestPack;
let store: PackStore;

/** The pack folder as `<input webkitdirectory>` gives it: Files whose webkitRelativePath starts with the folder name. */
function pickedFolder(p: TestPack, top = 'flux-pack-download', edit: (path: string, b: Uint8Array) => Uint8Array | null = (_, b) => b): File[] {
  const files: File[] = [];
  const add = (path: string, b: Uint8Array): void => {
    const file = new File([b as Uint8Array<ArrayBuffer>], path.split('/').at(-1)!);
    Object.defineProperty(file, 'webkitRelativePath', { value: `${top}/${path}` });
    files.push(file);
  };
  add('manifest.json', new TextEncoder().encode(JSON.stringify(p.manifest)));
  for (const [path, b] of p.bytes) {
    const e = edit(path, b);
    if (e) add(path, e);
  }
  add('README.txt', new TextEncoder().encode('not listed: ignored'));
  return files;
}

async function expectPackBytes(): Promise<void> {
  const src = await openInstalledPack('test-pack', { store });
  for (const [path, b] of pack.bytes) expect(await toBytes(await src.getFile(path)), path).toEqual(b);
}

beforeEach(async () => {
  pack = await makePack({ 'text_encoder/model.onnx.data': 5000, 'b.bin': 2500, 'empty.bin': 0 });
  store = new PackStore({ dbName: `files-${++dbCount}`, chunkBytes: CHUNK });
});
afterEach(async () => {
  await store.close();
  await removePack(pack);
});

describe('installPackFromFiles', () => {
  it('installs a picked folder (common top folder tolerated) with the same chunks, hashes and progress', async () => {
    const events: InstallProgress[] = [];
    const { manifest, stats } = await installPackFromFiles(pickedFolder(pack), { store, progressIntervalMs: 0, onProgress: (e) => events.push(e) });
    expect(manifest.id).toBe('test-pack');
    expect(stats).toMatchObject({ requests: pack.bytes.size, bytesFetched: 300 + 200 + 5000 + 2500, reusedFiles: 0, restarts: [] });
    expect(await listPacks({ store })).toMatchObject([{ id: 'test-pack', state: 'complete', source: 'files', sourceUrl: null, storedBytes: 8000 }]);
    await expectPackBytes();
    const rec = await store.getFileRecord('test-pack', manifest.files.find((f) => f.path === 'text_encoder/model.onnx.data')!);
    expect(rec).toMatchObject({ state: 'complete', chunkCount: 5, chunkBytes: CHUNK });
    expect(rec!.chunkSha256).toHaveLength(5);
    const loaded = events.filter((e) => e.status !== 'done').map((e) => (e as { loadedBytes: number }).loadedBytes);
    expect(loaded).toEqual([...loaded].sort((a, b) => a - b));
    expect(loaded.at(-1)).toBe(8000);
    expect(events.filter((e) => e.status === 'verify').map((e) => e.file)).toEqual([...pack.bytes.keys()]);

    // Again: everything is reused, nothing read.
    const again = await installPackFromFiles(pickedFolder(pack), { store });
    expect(again.stats).toMatchObject({ requests: 0, bytesFetched: 0, reusedFiles: pack.bytes.size });
  });

  it('accepts { path, file } pairs (a dropped folder) and files given relative to the pack', async () => {
    const pairs: LocalPackFile[] = [{ path: '/manifest.json', file: new Blob([JSON.stringify(pack.manifest)]) }];
    for (const [path, b] of pack.bytes) pairs.push({ path: `/${path}`, file: new Blob([b as Uint8Array<ArrayBuffer>]) });
    const matched = await matchPackFiles(pairs);
    expect(matched.prefix).toBe('');
    await installPackFromFiles(pairs, { store });
    await expectPackBytes();
  });

  it('names every missing file before writing anything', async () => {
    const files = pickedFolder(pack, 'dl', (path, b) => (path === 'b.bin' || path === 'vae_decoder.onnx' ? null : b));
    const e = await rejection(installPackFromFiles(files, { store }));
    expect(e.code).toBe('pack_file_missing');
    expect(e.message).toBe(
      'The folder "dl" lacks 2 of the 5 files its manifest.json lists: vae_decoder.onnx, b.bin. Choose the complete pack folder (finish downloading it first).',
    );
    expect(e.details).toMatchObject({ missing: ['vae_decoder.onnx', 'b.bin'] });
    expect(await listPacks({ store })).toEqual([]);

    const noManifest = files.filter((f) => !f.name.endsWith('manifest.json'));
    expect((await rejection(installPackFromFiles(noManifest, { store }))).message).toMatch(/No manifest\.json among the 4 chosen file\(s\)/);
  });

  it('a corrupt or wrong-sized local file is reported after the others are in; fixing it installs just that file', async () => {
    const files = pickedFolder(pack, 'dl', (path, b) => {
      if (path !== 'text_encoder/model.onnx.data') return path === 'b.bin' ? b.subarray(0, 2000) : b;
      const bad = b.slice();
      bad[4321]! ^= 0x80;
      return bad;
    });
    const e = await rejection(installPackFromFiles(files, { store }));
    expect(e.code).toBe('pack_file_corrupt');
    expect(e.details).toMatchObject({ files: ['text_encoder/model.onnx.data', 'b.bin'] });
    expect(e.message).toMatch(/local file "dl\/text_encoder\/model\.onnx\.data": sha256 is [0-9a-f]{64}, manifest says/);
    expect(e.message).toMatch(/2 files of pack "test-pack" did not verify/);
    const [info] = await listPacks({ store });
    expect(info).toMatchObject({ state: 'installing', storedBytes: 300 + 200 }); // the good files; bad ones dropped
    expect((await rejection(openInstalledPack('test-pack', { store }))).code).toBe('pack_not_installed');

    const { stats } = await installPackFromFiles(pickedFolder(pack, 'dl'), { store });
    expect(stats).toMatchObject({ requests: 2, bytesFetched: 5000 + 2500, reusedFiles: 3 });
    await expectPackBytes();
  });

  it('resumes an interrupted local install from the stored chunks', async () => {
    const ac = new AbortController();
    const e = await rejection(
      installPackFromFiles(pickedFolder(pack), {
        store,
        signal: ac.signal,
        progressIntervalMs: 0,
        onProgress: (ev) => ev.status === 'verify' && ev.file === 'vae_decoder.onnx' && ac.abort(),
      }),
    );
    expect(e.code).toBe('cancelled');
    expect((await listPacks({ store }))[0]).toMatchObject({ state: 'installing', source: 'files', storedBytes: 500 });
    let { stats } = await installPackFromFiles(pickedFolder(pack), { store });
    expect(stats).toMatchObject({ reusedFiles: 2, bytesFetched: 7500 });
    await expectPackBytes();

    // Mid-file: a failed write after two chunks of the 5000-byte file; the next run reads from byte 2048.
    await store.deletePackData('test-pack');
    const append = store.appendChunk.bind(store);
    let writes = 0;
    store.appendChunk = (rec, bytes, sha) =>
      rec.path === 'text_encoder/model.onnx.data' && ++writes === 3 ? Promise.reject(new Error('disk went away')) : append(rec, bytes, sha);
    const failed = await rejection(installPackFromFiles(pickedFolder(pack), { store }));
    expect(failed.code).toBe('pack_install_failed');
    expect(failed.message).toMatch(/disk went away.*can be resumed: 2\.55 KB of 8\.00 KB are stored; install from the same folder again/);
    ({ stats } = await installPackFromFiles(pickedFolder(pack), { store }));
    expect(stats).toMatchObject({ reusedFiles: 2, resumedFiles: 1, bytesReused: 500 + 2048, bytesFetched: 5000 - 2048 + 2500 });
    await expectPackBytes();
  });
});
