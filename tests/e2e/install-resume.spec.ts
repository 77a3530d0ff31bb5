/**
 * Resumable installs in Chromium: a generated pack (the tiny test pack + large random shards) served
 * cross-origin by a Node server that counts requests and bytes. Interrupted by a page reload and by a cut
 * connection, corrupted in transit and in IndexedDB: each time only the missing or bad bytes are fetched again.
 */
import { expect, test, type Page } from '@playwright/test';
import { formatBytes } from '../../src/app/format.js';
import type { InstalledPackInfo, InstallProgress, PackInfo } from '../../src/client/flux-client.js';
import { openApp } from './helpers.js';
import { CHUNK, makeServedPack, MiB, startPackServer, waitUntil, type PackServer, type ServedPack } from './install-server.js';

const SHARD = 'extra/shard-00.bin';
const TAIL = 'extra/shard-01.bin';
const TINY_FILES = 9;

let pack: ServedPack;
let server: PackServer;

test.afterEach(async () => {
  await server?.close();
});

async function serve(id: string): Promise<void> {
  pack = makeServedPack(id, { [SHARD]: 20 * MiB, [TAIL]: MiB });
  server = await startPackServer(pack);
}

async function packInfo(page: Page): Promise<PackInfo | undefined> {
  return (await page.evaluate(() => window.flux.listPacks())).find((p) => p.id === pack.id);
}

type Outcome = { ok: true; info: InstalledPackInfo; events: InstallProgress[] } | { ok: false; code: string; message: string; details: Record<string, unknown> };

/** Install through the page's client, collecting progress events. */
async function install(page: Page): Promise<Outcome> {
  return page.evaluate(async (url) => {
    const events: InstallProgress[] = [];
    try {
      const info = await window.flux.installPack(url, (e) => events.push(e));
      await new Promise((r) => setTimeout(r, 100)); // progress callbacks travel on their own port
      return { ok: true as const, info, events };
    } catch (e) {
      const f = e as { code: string; message: string; details?: Record<string, unknown> };
      return { ok: false as const, code: f.code, message: f.message, details: f.details ?? {} };
    }
  }, server.url);
}

function summary(log: PackServer['log']) {
  return log.map((l) => [l.path, l.range, l.status, l.bytesSent]);
}

test('an install interrupted mid-shard by a page reload resumes from the stored chunks (UI Resume)', async ({ page }) => {
  await openApp(page);
  await serve('e2e-reload');
  server.overrides.set(SHARD, { stallAfter: 17 * MiB, times: 1 });
  await page.evaluate((url) => void window.flux.installPack(url).catch(() => undefined), server.url);

  // Two 8 MiB chunks of the shard reach IndexedDB; the 17th MiB is still in the worker's buffer.
  const stored = pack.baseBytes + 2 * CHUNK;
  await waitUntil(async () => (await packInfo(page))?.storedBytes === stored, 'two chunks of the shard in IndexedDB');
  expect(server.bytesSent(SHARD)).toBe(17 * MiB);
  const firstRun = server.log.length;

  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  const row = page.locator(`li[data-pack="${pack.id}"]`);
  await expect(row.getByTestId('pack-state')).toHaveText(`installing — interrupted, ${formatBytes(stored)} of ${formatBytes(pack.totalBytes)} stored`);
  expect(await packInfo(page)).toMatchObject({ state: 'installing', storedBytes: stored, sourceUrl: server.url, source: 'http' });
  await expect(row.getByTestId('install-pack')).toHaveText('Resume');
  await expect(row.getByTestId('delete-pack')).toBeVisible();

  await row.getByTestId('install-pack').click();
  await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', pack.id, { timeout: 120_000 });
  await expect(row.getByTestId('pack-state')).toHaveText(/^installed/);

  const resumed = server.log.slice(firstRun);
  console.log(`reload resume: first run sent ${17 * MiB} bytes of the shard; resume requests ${JSON.stringify(summary(resumed))}`);
  expect(summary(resumed)).toEqual([
    ['manifest.json', null, 200, JSON.stringify(pack.manifest).length],
    [SHARD, `bytes=${2 * CHUNK}-`, 206, 20 * MiB - 2 * CHUNK],
    [TAIL, null, 200, MiB],
  ]);
  expect(resumed[1]!.ifRange).toMatch(/^"[0-9a-f]{32}"$/);
  // Every file of the pack was requested once, the shard twice: nothing stored was fetched again.
  for (const f of pack.manifest.files) expect(server.log.filter((l) => l.path === f.path).length, f.path).toBe(f.path === SHARD ? 2 : 1);
  expect(server.bytesSent(SHARD)).toBe(17 * MiB + 20 * MiB - 2 * CHUNK);
});

test('a connection lost mid-shard fails with a resumable error; installing again continues with monotone progress', async ({ page }) => {
  await openApp(page);
  await serve('e2e-netloss');
  server.overrides.set(SHARD, { cutAfter: 12 * MiB, times: 1 });
  const failed = await install(page);
  expect(failed.ok).toBe(false);
  if (failed.ok) return;
  expect(failed.code).toBe('pack_install_failed');
  expect(failed.message).toMatch(new RegExp(`${SHARD.replace(/[./]/g, '\\$&')} failed after \\d+ bytes: .*The install can be resumed: .* are stored; install the pack again to continue where it stopped\\.`));
  const stored = pack.baseBytes + CHUNK;
  expect(failed.details).toMatchObject({ resumable: true, storedBytes: stored });
  expect(await packInfo(page)).toMatchObject({ state: 'installing', storedBytes: stored });
  const before = server.log.length;

  const done = await install(page);
  expect(done.ok).toBe(true);
  if (!done.ok) return;
  const resumed = server.log.slice(before);
  console.log(`network-loss resume: ${JSON.stringify(summary(resumed))}, stats ${JSON.stringify(done.info.stats)}`);
  expect(summary(resumed)).toEqual([
    ['manifest.json', null, 200, JSON.stringify(pack.manifest).length],
    [SHARD, `bytes=${CHUNK}-`, 206, 20 * MiB - CHUNK],
    [TAIL, null, 200, MiB],
  ]);
  expect(done.info.stats).toMatchObject({ requests: 2, bytesFetched: 20 * MiB - CHUNK + MiB, bytesReused: stored, reusedFiles: TINY_FILES, resumedFiles: 1, restarts: [] });
  expect(done.info.state).toBe('complete');
  expect(typeof done.info.persisted === 'boolean' || done.info.persisted === null).toBe(true);

  const loaded = done.events.filter((e) => e.status !== 'done').map((e) => (e as { loadedBytes: number }).loadedBytes);
  expect(loaded[0]).toBe(stored); // progress starts from what is stored
  expect(loaded).toEqual([...loaded].sort((a, b) => a - b));
  expect(loaded.at(-1)).toBe(pack.totalBytes);
  expect(done.events.some((e) => e.status === 'rehash' && e.file === SHARD && e.fileTotalBytes === CHUNK)).toBe(true);
  const downloads = done.events.filter((e): e is Extract<InstallProgress, { status: 'download' }> => e.status === 'download');
  expect(downloads.some((d) => d.bytesPerSecond > 0 && d.etaSeconds !== null)).toBe(true);
});

test('a byte corrupted in transit is detected (pack not complete) and the next install refetches only that file', async ({ page }) => {
  await openApp(page);
  await serve('e2e-transit');
  server.overrides.set(SHARD, { corruptAt: 9 * MiB + 123, times: 1 });
  const failed = await install(page);
  expect(failed.ok).toBe(false);
  if (failed.ok) return;
  expect(failed.code).toBe('pack_file_corrupt');
  expect(failed.message).toMatch(/extra\/shard-00\.bin: sha256 is [0-9a-f]{64}, manifest says [0-9a-f]{64}\. Its bytes were dropped; install again/);
  expect(await packInfo(page)).toMatchObject({ state: 'installing', storedBytes: pack.totalBytes - 20 * MiB });
  const loadErr = await page.evaluate((id) => window.flux.loadPack(id).then(() => null, (e: { code: string }) => e.code), pack.id);
  expect(loadErr).toBe('pack_not_installed');
  const before = server.log.length;

  const done = await install(page);
  expect(done.ok).toBe(true);
  if (!done.ok) return;
  const again = server.log.slice(before);
  console.log(`transit repair: ${JSON.stringify(summary(again))}`);
  expect(summary(again)).toEqual([
    ['manifest.json', null, 200, JSON.stringify(pack.manifest).length],
    [SHARD, null, 200, 20 * MiB],
  ]);
  expect(done.info.stats).toMatchObject({ requests: 1, bytesFetched: 20 * MiB, reusedFiles: TINY_FILES + 1 });
  const checks = await page.evaluate((id) => window.flux.verifyPack(id), pack.id);
  expect(checks.every((c) => c.ok)).toBe(true);
});

test('a byte corrupted in IndexedDB is found by verify and repaired by refetching only its chunk (UI Repair)', async ({ page }) => {
  await openApp(page);
  await serve('e2e-storage');
  expect((await install(page)).ok).toBe(true);
  const sha = pack.manifest.files.find((f) => f.path === SHARD)!.sha256;

  // Flip one byte of chunk 1 of the shard, as disk corruption would.
  await page.evaluate(
    async ({ key }) => {
      const db = await new Promise<IDBDatabase>((res, rej) => {
        const r = indexedDB.open('flux-packs');
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      const get = db.transaction('chunks').objectStore('chunks').get(key);
      const blob = await new Promise<Blob>((res, rej) => {
        get.onsuccess = () => res(get.result as Blob);
        get.onerror = () => rej(get.error);
      });
      const bytes = new Uint8Array(await blob.arrayBuffer());
      bytes[4242]! ^= 0x10;
      const t = db.transaction('chunks', 'readwrite');
      t.objectStore('chunks').put(new Blob([bytes]), key);
      await new Promise((res, rej) => {
        t.oncomplete = res;
        t.onerror = () => rej(t.error);
      });
      db.close();
    },
    { key: [pack.id, SHARD, sha, 1] },
  );

  const checks = await page.evaluate((id) => window.flux.verifyPack(id), pack.id);
  expect(checks.filter((c) => !c.ok)).toEqual([expect.objectContaining({ path: SHARD, problem: 'sha256', badChunks: [1] })]);
  expect(await packInfo(page)).toMatchObject({ state: 'corrupt' });

  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  const row = page.locator(`li[data-pack="${pack.id}"]`);
  await expect(row.getByTestId('pack-state')).toHaveText(/^damaged/);
  const before = server.log.length;
  await row.getByTestId('install-pack').click(); // "Repair"
  await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', pack.id, { timeout: 120_000 });
  const repair = server.log.slice(before);
  console.log(`storage repair: ${JSON.stringify(summary(repair))}`);
  expect(summary(repair)).toEqual([
    ['manifest.json', null, 200, JSON.stringify(pack.manifest).length],
    [SHARD, `bytes=${CHUNK}-${2 * CHUNK - 1}`, 206, CHUNK],
  ]);
  expect((await page.evaluate((id) => window.flux.verifyPack(id), pack.id)).every((c) => c.ok)).toBe(true);
  expect(await packInfo(page)).toMatchObject({ state: 'complete' });
});
