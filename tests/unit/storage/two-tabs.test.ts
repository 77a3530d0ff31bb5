/**
 * Two tabs of one origin: two independent copies of the storage modules (vi.resetModules + dynamic import, so
 * each "tab" has its own install registry, PackStore and connection) over one fake-indexeddb and one shared
 * lock manager, as two tabs share an origin's IndexedDB and `navigator.locks`. Node 20 has no
 * `navigator.locks`; the storage code then uses its in-process LockManager, kept on globalThis so that module
 * copies share it (tests below check it behaves as Web Locks do).
 */
import 'fake-indexeddb/auto';
import { keys } from 'idb-keyval';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalLockManager } from '../../../src/storage/pack-locks.js';
import { makePack, removePack, startServer, updateFile, sha256, type PackServer, type TestPack } from './pack-fixture.js';
import { randomBytes } from 'node:crypto';

type StoreModule = typeof import('../../../src/storage/indexeddb-pack-store.js');
type InstallerModule = typeof import('../../../src/storage/pack-installer.js');

interface Tab {
  store: InstanceType<StoreModule['PackStore']>;
  mod: StoreModule;
  installer: InstallerModule;
}

const CHUNK = 1024;
const BIG = 200_000; // ~50 server writes of 4 KiB with a pause each: the other tab acts while this one streams

let dbCount = 0;
let dbName: string;
let pack: TestPack;
let server: PackServer;
const tabs: Tab[] = [];

/** A fresh copy of the storage modules: what a second tab of the same origin runs. */
async function openTab(): Promise<Tab> {
  vi.resetModules();
  const mod = await import('../../../src/storage/indexeddb-pack-store.js');
  const installer = await import('../../../src/storage/pack-installer.js');
  const tab = { mod, installer, store: new mod.PackStore({ dbName, chunkBytes: CHUNK }) };
  tabs.push(tab);
  return tab;
}

/** Settle a promise into its outcome; errors come from another module copy, so FluxError is matched by shape. */
async function outcome(p: Promise<unknown>): Promise<{ ok: true } | { ok: false; code: string; message: string }> {
  try {
    await p;
    return { ok: true };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    return { ok: false, code: String(err.code), message: String(err.message) };
  }
}

/** Start an install in `tab`; `when` fires once, while it streams big.bin. */
function installWhile(tab: Tab, url: string, when: () => void, extra: Record<string, unknown> = {}): Promise<unknown> {
  let fired = false;
  return tab.installer.installPack(url, {
    store: tab.store,
    storage: null,
    progressIntervalMs: 0,
    ...extra,
    onProgress: (e) => {
      if (!fired && e.status === 'download' && e.file === 'big.bin' && e.fileLoadedBytes > 16 * CHUNK) {
        fired = true;
        when();
      }
    },
  });
}

/** The pack as a fresh tab sees it: every manifest file readable, with the manifest's bytes; verify passes. */
async function expectIntact(expected: Map<string, Uint8Array>): Promise<void> {
  const tab = await openTab();
  const [info] = await tab.mod.listPacks({ store: tab.store });
  expect(info?.state).toBe('complete');
  const src = await tab.mod.openInstalledPack('test-pack', { store: tab.store });
  expect(src.manifest.files.map((f) => f.path).sort()).toEqual([...expected.keys()].sort());
  for (const [path, b] of expected) {
    const blob = (await src.getFile(path)) as Blob;
    expect(sha256(new Uint8Array(await blob.arrayBuffer())), path).toBe(sha256(b));
  }
  const checks = await tab.mod.verifyInstalledPack('test-pack', { store: tab.store });
  expect(checks.filter((c) => !c.ok)).toEqual([]);
  // No orphans: every stored file version is one the manifest lists.
  const listed = new Set(src.manifest.files.map((f) => `${f.path}:${f.sha256}`));
  for (const r of await tab.store.fileRecords('test-pack')) expect(listed.has(`${r.path}:${r.sha256}`), `${r.path} ${r.sha256}`).toBe(true);
}

beforeEach(async () => {
  dbName = `two-tabs-${++dbCount}`;
  pack = await makePack({ 'small.bin': 3000, 'big.bin': BIG, 'after.bin': 500 });
  server = await startServer(pack.dir);
});
afterEach(async () => {
  for (const t of tabs.splice(0)) await t.store.close();
  await server.close();
  await removePack(pack);
});

describe('two tabs, one IndexedDB', () => {
  it('the tabs really are separate module copies', async () => {
    const a = await openTab();
    const b = await openTab();
    expect(a.mod.PackStore).not.toBe(b.mod.PackStore);
    expect(a.installer.installPack).not.toBe(b.installer.installPack);
  });

  it('delete in tab B during an install in tab A: A stops, nothing is resurrected, the pack is gone', async () => {
    const a = await openTab();
    const b = await openTab();
    let deleting: Promise<unknown> | undefined;
    const installA = outcome(installWhile(a, server.baseUrl, () => (deleting = outcome(b.mod.deletePack('test-pack', { store: b.store })))));
    const ra = await installA;
    expect(deleting).toBeDefined();
    expect(await deleting).toEqual({ ok: true });
    expect(ra).toMatchObject({ ok: false, code: 'cancelled' });
    expect(await b.mod.listPacks({ store: b.store })).toEqual([]);
    expect(await keys(b.store.files)).toEqual([]);
    expect(await keys(b.store.chunks)).toEqual([]);
    const e = await outcome(b.mod.openInstalledPack('test-pack', { store: b.store }));
    expect(e).toMatchObject({ ok: false, code: 'pack_not_installed' });
  });

  it('v1 in tab A and v2 in tab B at once: B is refused as busy; the pack A installed is complete and verifies', async () => {
    const v1 = new Map(pack.bytes);
    const v1Manifest = JSON.stringify(pack.manifest);
    // The server publishes v2 (a new big.bin) after tab A fetched v1's manifest and started v1's big.bin.
    const v1Big = pack.bytes.get('big.bin')!;
    await updateFile(pack, 'big.bin', new Uint8Array(randomBytes(BIG)));
    server.overrides.set('manifest.json', { body: new TextEncoder().encode(v1Manifest), times: 1 });
    server.overrides.set('big.bin', { body: v1Big, times: 1 });
    const a = await openTab();
    const b = await openTab();
    let installB: Promise<Awaited<ReturnType<typeof outcome>>> | undefined;
    const ra = await outcome(installWhile(a, server.baseUrl, () => (installB = outcome(b.installer.installPack(server.baseUrl, { store: b.store, storage: null })))));
    const rb = await installB!;
    expect(ra).toEqual({ ok: true });
    expect(rb).toMatchObject({ ok: false, code: 'busy' });
    expect(rb.ok === false && rb.message).toMatch(/Pack "test-pack" is already being installed, verified or deleted \(in this tab or another one\)/);
    await expectIntact(v1);
    // Once A is done, B's update goes through and is complete too.
    expect(await outcome(b.installer.installPack(server.baseUrl, { store: b.store, storage: null }))).toEqual({ ok: true });
    await expectIntact(pack.bytes);
  });

  it("a corrupt source in tab A and a good one in tab B at once: A's cleanup cannot delete B's chunks; B installs after A", async () => {
    const good = server;
    const bad = await startServer(pack.dir);
    bad.overrides.set('big.bin', { corruptAt: BIG - 10 });
    try {
      const a = await openTab();
      const b = await openTab();
      let installB: Promise<Awaited<ReturnType<typeof outcome>>> | undefined;
      const startB = (): void => void (installB = outcome(b.installer.installPack(good.baseUrl, { store: b.store, storage: null, replace: true })));
      const ra = await outcome(installWhile(a, bad.baseUrl, startB));
      const rb = await installB!;
      expect(ra).toMatchObject({ ok: false, code: 'pack_file_corrupt' });
      expect(rb).toMatchObject({ ok: false, code: 'busy' });
      // A's failed big.bin was dropped; everything it verified stays and B reuses it.
      expect(await outcome(b.installer.installPack(good.baseUrl, { store: b.store, storage: null, replace: true }))).toEqual({ ok: true });
      await expectIntact(pack.bytes);
    } finally {
      await bad.close();
    }
  });

  it('verify in tab B while tab A installs is refused as busy and changes nothing', async () => {
    const a = await openTab();
    const b = await openTab();
    let verifyB: Promise<Awaited<ReturnType<typeof outcome>>> | undefined;
    const ra = await outcome(installWhile(a, server.baseUrl, () => (verifyB = outcome(b.mod.verifyInstalledPack('test-pack', { store: b.store })))));
    expect(ra).toEqual({ ok: true });
    expect(await verifyB!).toMatchObject({ ok: false, code: 'busy' });
    await expectIntact(pack.bytes);
  });

  it('a pack deleted in tab B while tab A has it open: A gets pack_file_missing naming the file, never partial bytes', async () => {
    const a = await openTab();
    const b = await openTab();
    await a.installer.installPack(server.baseUrl, { store: a.store, storage: null });
    const src = await a.mod.openInstalledPack('test-pack', { store: a.store });
    expect(((await src.getFile('small.bin')) as Blob).size).toBe(3000);
    await b.mod.deletePack('test-pack', { store: b.store });
    const e = await outcome(src.getFile('big.bin'));
    expect(e).toMatchObject({ ok: false, code: 'pack_file_missing' });
    expect(e.ok === false && e.message).toBe('Pack "test-pack": file "big.bin" is not in storage (no record); reinstall the pack.');
  });
});

describe('LocalLockManager (the Web Locks stand-in where navigator.locks is missing)', () => {
  it('grants one exclusive holder at a time, in request order, and releases when the callback settles', async () => {
    const locks = new LocalLockManager();
    const order: string[] = [];
    let release!: () => void;
    const first = locks.request('x', async () => {
      order.push('1 start');
      await new Promise<void>((r) => (release = r));
      order.push('1 end');
      return 1;
    });
    const second = locks.request('x', async () => void order.push('2'));
    const other = locks.request('y', async () => void order.push('y'));
    await other;
    expect(order).toEqual(['1 start', 'y']);
    release();
    expect(await first).toBe(1);
    await second;
    expect(order).toEqual(['1 start', 'y', '1 end', '2']);
  });

  it('ifAvailable calls back with null while the lock is held, and a throwing holder still releases', async () => {
    const locks = new LocalLockManager();
    let release!: () => void;
    const held = locks.request('x', () => new Promise<void>((r) => (release = r)));
    expect(await locks.request('x', { ifAvailable: true }, async (l) => l)).toBeNull();
    release();
    await held;
    await expect(locks.request('x', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await locks.request('x', { ifAvailable: true }, async (l) => l?.name)).toBe('x');
  });

  it('an aborted waiting request rejects with AbortError and never runs', async () => {
    const locks = new LocalLockManager();
    let release!: () => void;
    const held = locks.request('x', () => new Promise<void>((r) => (release = r)));
    const ac = new AbortController();
    let ran = false;
    const waiting = locks.request('x', { signal: ac.signal }, async () => void (ran = true));
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    release();
    await held;
    expect(ran).toBe(false);
  });
});
