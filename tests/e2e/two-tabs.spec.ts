/**
 * Two real tabs of one browser profile (one IndexedDB, one navigator.locks): the pack lock taken in one tab's
 * worker is seen and honoured by the other's; a delete in one tab stops the other's install. And the model
 * manager's confirmation before replacing a pack of the same id from another source (docs/storage.md).
 */
import { expect, test, type Page } from '@playwright/test';
import { TEST_PACK_DIR } from '../support/fixtures.js';
import { installTestPack, openApp, TEST_PACK_ID } from './helpers.js';
import { CHUNK, makeServedPack, MiB, startPackServer, waitUntil, type PackServer } from './install-server.js';

type Outcome = { ok: true } | { ok: false; code: string; message: string };

let server: PackServer | undefined;
test.afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** Run a client call in the page and report how it ended (FluxErrors keep their code across the worker). */
function settle(page: Page, call: 'install' | 'verify' | 'delete', arg: string): Promise<Outcome> {
  return page.evaluate(
    async ([c, a]) => {
      try {
        if (c === 'install') await window.flux.installPack(a);
        else if (c === 'verify') await window.flux.verifyPack(a);
        else await window.flux.deletePack(a);
        return { ok: true as const };
      } catch (e) {
        const f = e as { code: string; message: string };
        return { ok: false as const, code: f.code, message: f.message };
      }
    },
    [call, arg] as const,
  );
}

test('two tabs: while tab A installs, tab B sees the Web Lock, its install and verify are busy, and its delete stops A and leaves nothing', async ({ context }) => {
  const a = await context.newPage();
  const b = await context.newPage();
  await openApp(a);
  await openApp(b);
  const shard = 'extra/shard-00.bin';
  const pack = makeServedPack('e2e-two-tabs', { [shard]: 20 * MiB });
  server = await startPackServer(pack);
  server.overrides.set(shard, { stallAfter: 17 * MiB, times: 1 }); // A's download hangs mid-shard
  const url = server.url;
  await a.evaluate((u) => {
    (window as unknown as { installA: Promise<unknown> }).installA = window.flux.installPack(u).then(
      () => ({ ok: true }),
      (e: { code: string; message: string }) => ({ ok: false, code: e.code, message: e.message }),
    );
  }, url);
  const listed = async (page: Page) => (await page.evaluate(() => window.flux.listPacks())).find((p) => p.id === pack.id);
  await waitUntil(async () => (await listed(b))?.storedBytes === pack.baseBytes + 2 * CHUNK, 'two chunks of the shard stored by tab A');

  // The real Web Locks API, held by tab A's worker, as tab B sees it.
  const held = await b.evaluate(async () => ((await navigator.locks.query()).held ?? []).map((l) => l.name));
  expect(held).toContain('flux-webgpu/pack/flux-packs/e2e-two-tabs');

  const busy = 'Pack "e2e-two-tabs" is already being installed, verified or deleted (in this tab or another one); wait until that finishes, then try again.';
  expect(await settle(b, 'install', url)).toEqual({ ok: false, code: 'busy', message: busy });
  expect(await settle(b, 'verify', pack.id)).toEqual({ ok: false, code: 'busy', message: busy });
  expect((await listed(b))?.storedBytes).toBe(pack.baseBytes + 2 * CHUNK);

  expect(await settle(b, 'delete', pack.id)).toEqual({ ok: true });
  expect(await a.evaluate(() => (window as unknown as { installA: Promise<Outcome> }).installA)).toEqual({ ok: false, code: 'cancelled', message: 'Pack install was cancelled.' });
  expect(await listed(a)).toBeUndefined();
  expect(await listed(b)).toBeUndefined();
  expect(await b.evaluate(async () => ((await navigator.locks.query()).held ?? []).map((l) => l.name))).not.toContain('flux-webgpu/pack/flux-packs/e2e-two-tabs');
});

test('same id from another URL or folder: the model manager asks, naming both sources; No keeps the stored pack, Yes replaces it', async ({ page }) => {
  await openApp(page);
  await installTestPack(page); // from the catalog URL
  const catalogUrl = new URL(`/packs/${TEST_PACK_ID}/`, page.url()).href;
  const source = async () => (await page.evaluate(() => window.flux.listPacks())).find((p) => p.id === TEST_PACK_ID);
  expect(await source()).toMatchObject({ source: 'http', sourceUrl: catalogUrl });

  const asked: string[] = [];
  let answer = false;
  page.on('dialog', (d) => {
    asked.push(d.message());
    void (answer ? d.accept() : d.dismiss());
  });
  const question =
    `Pack "${TEST_PACK_ID}" is already stored from ${catalogUrl}; this install is from the local folder "${TEST_PACK_ID}". ` +
    'Installing it would replace the stored pack (its files are deleted once the new ones verify). Delete the pack first, or confirm the replacement.';

  await page.getByTestId('folder-input').setInputFiles(TEST_PACK_DIR);
  await expect(page.getByTestId('error')).toContainText(question);
  expect(asked).toEqual([`${question}\n\nReplace the stored pack?`]);
  expect(await source()).toMatchObject({ state: 'complete', source: 'http', sourceUrl: catalogUrl });

  answer = true;
  await page.getByTestId('folder-input').setInputFiles(TEST_PACK_DIR);
  await expect.poll(async () => (await source())?.source).toBe('files');
  expect(asked).toHaveLength(2);
  expect(await source()).toMatchObject({ state: 'complete', source: 'files', sourceUrl: null });
  await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', TEST_PACK_ID, { timeout: 120_000 });
});
