/**
 * Quota. Chrome ≥ 138 reports `estimate().quota` as usage + 10 GiB whatever the real quota ("predictable
 * reported quota"); the enforced quota, which CDP's Storage.overrideQuotaForOrigin sets, is not disclosed. So:
 *  - with that report turned off (--disable-features=StaticStorageQuota,…: what Chrome < 138 and other browsers
 *    do, an honest estimate), a quota below the pack's size fails before any pack file is requested;
 *  - in stock Chromium the pre-check cannot see the quota, so the first chunk write past it fails; that too is a
 *    clear 'storage_quota' error, the stored bytes are kept, and the install resumes once there is room.
 */
import { chromium, expect, test, type Page } from '@playwright/test';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../support/chromium.js';
import { openApp } from './helpers.js';
import { CHUNK, makeServedPack, MiB, startPackServer, type PackServer, type ServedPack } from './install-server.js';

// Quotas are asserted: keep the service worker's precache out of this origin's usage.
test.use({ serviceWorkers: 'block' });

const SHARD = 'extra/shard-00.bin';

async function installError(page: Page, url: string) {
  return page.evaluate(async (u) => {
    try {
      await window.flux.installPack(u);
      return null;
    } catch (e) {
      const f = e as { code: string; message: string; details?: Record<string, unknown> };
      return { code: f.code, message: f.message, details: f.details ?? {} };
    }
  }, url);
}

let pack: ServedPack;
let server: PackServer;
test.beforeEach(async () => {
  pack = makeServedPack('e2e-quota', { [SHARD]: 20 * MiB });
  server = await startPackServer(pack);
});
test.afterEach(() => server.close());

test('with an honest estimate, a quota below the pack size fails before any pack file request', async ({ baseURL }) => {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: [...CHROMIUM_ARGS, '--disable-features=StaticStorageQuota,IncognitoStaticStorageQuota'] });
  try {
    // No service worker: its precache would use part of the 10 MiB quota this test sets.
    const page = await (await browser.newContext({ baseURL: baseURL!, serviceWorkers: 'block' })).newPage();
    await openApp(page);
    const origin = new URL(page.url()).origin;
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 10 * MiB });
    const est = await page.evaluate(() => window.flux.storageEstimate());
    expect(est).toMatchObject({ quota: 10 * MiB, quotaUndisclosed: false });

    const err = await installError(page, server.url);
    console.log(`quota pre-check: ${err?.message}`);
    expect(err?.code).toBe('storage_quota');
    expect(err?.message).toMatch(
      /^Not enough browser storage for pack "e2e-quota": it needs 23\.8 MB more, but only 10\.\d MB is available to this site \(quota 10\.5 MB, .* in use\)\. Free disk space, or delete other model packs from this site, then install again\.$/,
    );
    expect(err?.details).toMatchObject({ neededBytes: pack.totalBytes, quotaBytes: 10 * MiB });
    expect(server.log.map((l) => l.path)).toEqual(['manifest.json']); // no pack file was requested
    expect((await page.evaluate(() => window.flux.listPacks())).some((p) => p.id === 'e2e-quota')).toBe(false);

    // With the quota back, the same install succeeds.
    await cdp.send('Storage.overrideQuotaForOrigin', { origin }); // the browser's own quota again
    const info = await page.evaluate((u) => window.flux.installPack(u), server.url);
    expect(info).toMatchObject({ id: 'e2e-quota', state: 'complete', storedBytes: pack.totalBytes });
  } finally {
    await browser.close();
  }
});

test('in stock Chromium the quota is undisclosed: a full quota fails the write with a resumable storage_quota error', async ({ page }) => {
  await openApp(page);
  const origin = new URL(page.url()).origin;
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 12 * MiB });
  const est = await page.evaluate(() => window.flux.storageEstimate());
  expect(est.quotaUndisclosed).toBe(true); // usage + exactly 10 GiB, whatever the override says

  const err = await installError(page, server.url);
  console.log(`quota at write: ${err?.message}`);
  expect(err?.code).toBe('storage_quota');
  expect(err?.message).toMatch(/^Browser storage is full \(quota exceeded\) while installing pack "e2e-quota"\. Free disk space or delete other model packs\. The install can be resumed: 11\.2 MB of 23\.8 MB are stored; install the pack again to continue where it stopped\.$/);
  const stored = pack.baseBytes + CHUNK; // the tiny pack's files and the shard's first chunk fit in 12 MiB
  expect(err?.details).toMatchObject({ resumable: true, storedBytes: stored });
  expect((await page.evaluate(() => window.flux.listPacks())).find((p) => p.id === 'e2e-quota')).toMatchObject({ state: 'installing', storedBytes: stored });

  await cdp.send('Storage.overrideQuotaForOrigin', { origin });
  const before = server.log.length;
  const info = await page.evaluate((u) => window.flux.installPack(u), server.url);
  expect(info).toMatchObject({ state: 'complete', stats: { bytesFetched: 20 * MiB - CHUNK, resumedFiles: 1 } });
  expect(server.log.slice(before).map((l) => [l.path, l.range, l.status])).toEqual([
    ['manifest.json', null, 200],
    [SHARD, `bytes=${CHUNK}-`, 206],
  ]);
});
