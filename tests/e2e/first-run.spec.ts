/**
 * First run (#11): a fresh profile with no usable fal opens a `run=1` share link → the embedded test pack installs
 * with progress and the image appears, generated on this device. With the fake fal available under Auto, the
 * route the page shows is the route each request takes (checked on the fake fal's own request log).
 */
import { expect, test, type Page } from '@playwright/test';
import { FAKE_FAL_URL } from '../support/fal-e2e.js';
import { installTestPack, openApp, TEST_PACK_ID } from './helpers.js';

const SHARE = '/?prompt=a%20red%20fox&seed=7&num_inference_steps=2&image_size=128x128';

interface UpstreamRequest {
  method: string;
  path: string;
}
async function upstreamRequests(): Promise<UpstreamRequest[]> {
  return (await (await fetch(`${FAKE_FAL_URL}/__fake/requests`)).json()) as UpstreamRequest[];
}
test.beforeEach(async () => {
  const res = await fetch(`${FAKE_FAL_URL}/__fake/reset`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  expect(res.ok).toBe(true);
});

declare global {
  interface Window {
    uiLog: string[];
  }
}

/** From the first paint: every text the install progress, the empty-state line and the route line show. */
async function recordUi(page: Page): Promise<void> {
  await page.addInitScript(() => {
    window.uiLog = [];
    document.addEventListener('DOMContentLoaded', () => {
      for (const id of ['model-progress-text', 'models-empty', 'route', 'model-status']) {
        const el = document.getElementById(id)!;
        new MutationObserver(() => window.uiLog.push(`${id}|${el.textContent}`)).observe(el, { childList: true, characterData: true, subtree: true });
      }
    });
  });
}

/** Every request the page sends to the fal proxy (the status probe included). */
function proxyCalls(page: Page): string[] {
  const calls: string[] = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/fal/proxy')) calls.push(`${r.method()} ${u.pathname} ${r.headers()['x-fal-target-url'] ?? ''}`.trim());
  });
  return calls;
}

async function firstRunWithoutFal(page: Page, why: RegExp): Promise<void> {
  const calls = proxyCalls(page);
  await recordUi(page);
  await openApp(page, `${SHARE}&run=1`);
  // The test pack was installed from the app's own files, with progress, and loaded.
  await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', TEST_PACK_ID);
  const log = await page.evaluate(() => window.uiLog);
  expect(log.some((l) => /^models-empty\|Nothing is installed: the built-in test pack \(2\.\d+ MiB.*installed on first use.*install a FLUX\.1 \[schnell\] pack from a URL/.test(l)), log.join('\n')).toBe(true);
  expect(log.some((l) => /^model-status\|First run: installing Test pack/.test(l))).toBe(true);
  expect(log.some((l) => /^model-progress-text\|Downloading .+ of 2\.\d+ MiB/.test(l)), log.join('\n')).toBe(true);
  // run=1 started by itself on this device; the image is the link's request.
  const fig = page.locator('figure.result[data-target="local"][data-endpoint="fal-ai/flux/schnell"]');
  await expect(fig.locator('img')).toHaveCount(1, { timeout: 120_000 });
  const size = await fig.locator('img').first().evaluate(async (img: HTMLImageElement) => {
    await img.decode();
    return [img.naturalWidth, img.naturalHeight];
  });
  expect(size).toEqual([128, 128]);
  await expect(page.getByTestId('run-status')).toContainText('seed 7');
  await expect(page.getByTestId('route')).toHaveAttribute('data-target', 'local');
  // The empty state now says how to get real pictures.
  await expect(page.getByTestId('models-empty')).toContainText('Only the test pack is installed');
  // fal was asked whether it is available, and why not shows on the page when fal is needed.
  expect(calls.every((c) => c === 'GET /api/fal/proxy/status'), calls.join('\n')).toBe(true);
  expect(calls.length).toBeGreaterThan(0);
  await page.getByTestId('endpoint').selectOption('fal-ai/flux/dev');
  await expect(page.getByTestId('route')).toHaveAttribute('data-target', 'none');
  await expect(page.getByTestId('route')).toContainText(why);
  expect((await upstreamRequests()).filter((r) => r.path.startsWith('/fal-ai/'))).toEqual([]);
}

test('a run=1 link in a fresh profile with no FAL_KEY on the proxy installs the test pack and generates here', async ({ page }) => {
  await page.route('**/api/fal/proxy/status', (r) => r.fulfill({ json: { configured: false, detail: 'The fal proxy has no FAL_KEY configured on the server' } }));
  await firstRunWithoutFal(page, /FLUX\.1 \[dev\] runs only on fal's servers, and fal is unavailable: the fal proxy has no FAL_KEY configured on the server/);
});

test('a run=1 link in a fresh profile with no fal proxy (404) installs the test pack and generates here', async ({ page }) => {
  await page.route(/\/api\/fal\/proxy(\/.*)?$/, (r) => r.fulfill({ status: 404, body: 'Not Found' }));
  await firstRunWithoutFal(page, /fal is unavailable: there is no fal proxy at \/api\/fal\/proxy \(HTTP 404\)/);
});

test('with the fake fal available and Auto, the route shown is the route taken', async ({ page }) => {
  await openApp(page, SHARE);
  // Nothing is installed behind the user's back when fal can serve; the page says what Generate will do.
  await expect(page.getByTestId('models-empty')).toContainText('Nothing is installed: Generate sends FLUX.1 [schnell] to fal until a model is installed');
  expect(await page.evaluate(() => window.flux.listPacks())).toEqual([]);
  const route = page.getByTestId('route');
  const figures = page.locator('figure.result');

  // schnell with local unavailable (no model here): shown as fal, sent to fal.
  await expect(route).toHaveAttribute('data-target', 'remote');
  await expect(route).toContainText('fal (remote) — Sent to fal because no FLUX.1 [schnell] model is installed in this browser');
  await page.getByTestId('generate').click();
  await expect(figures).toHaveCount(1, { timeout: 60_000 });
  await expect(figures.first()).toHaveAttribute('data-target', 'remote');
  await expect(figures.first()).toHaveAttribute('data-endpoint', 'fal-ai/flux/schnell');
  expect((await upstreamRequests()).filter((r) => r.method === 'POST').map((r) => r.path)).toEqual(['/fal-ai/flux/schnell']);

  // dev: shown as fal, sent to fal.
  await page.getByTestId('endpoint').selectOption('fal-ai/flux/dev');
  await expect(route).toHaveAttribute('data-target', 'remote');
  await expect(route).toContainText("fal (remote) — FLUX.1 [dev] runs on fal's servers");
  await page.getByTestId('generate').click();
  await expect(figures).toHaveCount(2, { timeout: 60_000 });
  await expect(figures.first()).toHaveAttribute('data-endpoint', 'fal-ai/flux/dev');
  await expect(figures.first()).toHaveAttribute('data-target', 'remote');
  expect((await upstreamRequests()).filter((r) => r.method === 'POST').map((r) => r.path)).toEqual(['/fal-ai/flux/schnell', '/fal-ai/flux/dev']);

  // With a model installed, schnell is shown as this device and nothing more reaches fal.
  await page.getByTestId('endpoint').selectOption('fal-ai/flux/schnell');
  await installTestPack(page);
  await expect(route).toHaveAttribute('data-target', 'local');
  await expect(route).toContainText('This device — Runs on this device');
  await page.getByTestId('generate').click();
  await expect(figures).toHaveCount(3, { timeout: 120_000 });
  await expect(figures.first()).toHaveAttribute('data-target', 'local');
  expect((await upstreamRequests()).filter((r) => r.method === 'POST')).toHaveLength(2);
});
