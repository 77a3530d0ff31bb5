/**
 * The fal fallback end to end: UI → FluxApiClient → @fal-ai/client → same-origin proxy (vite preview) → fake fal
 * upstream (tests/support/fake-fal). Queue position, progress, cancel, fal's errors, routing and its reasons.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, expect, test, type Page } from '@playwright/test';
import type { FluxApiClient } from '../../src/client/flux-api.js';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../support/chromium.js';
import { FAKE_FAL_URL, FAL_E2E_KEY } from '../support/fal-e2e.js';
import { installTestPack, openApp } from './helpers.js';

declare global {
  interface Window {
    fluxApi: FluxApiClient;
    statusLog: string[];
  }
}

interface UpstreamRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

async function fake(path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${FAKE_FAL_URL}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.ok, `fake ${path}: HTTP ${res.status}`).toBe(true);
  return res.headers.get('content-type')?.includes('json') ? res.json() : res.text();
}
const upstreamRequests = async () => (await fake('/__fake/requests')) as UpstreamRequest[];

test.beforeEach(async () => {
  await fake('/__fake/reset', {});
});

/** Record every text the run-status line shows (progress is transient). */
async function recordStatus(page: Page): Promise<void> {
  await page.evaluate(() => {
    window.statusLog = [];
    const el = document.querySelector('[data-testid="run-status"]')!;
    new MutationObserver(() => window.statusLog.push(`${(el as HTMLElement).dataset.stage ?? ''}|${(el as HTMLElement).dataset.queuePosition ?? ''}|${el.textContent}`)).observe(el, {
      childList: true,
      characterData: true,
      subtree: true,
      attributes: true,
    });
  });
}

async function chooseEndpoint(page: Page, id: string): Promise<void> {
  await page.getByTestId('endpoint').selectOption(id);
  await expect(page.getByTestId('route')).toHaveAttribute('data-target', 'remote');
}

test('a FLUX.1 [dev] request goes through the proxy to fal; the image appears with queue position and progress', async ({ page }) => {
  await fake('/__fake/configure', { queuePolls: 3, progressPolls: 2 });
  await openApp(page);
  await chooseEndpoint(page, 'fal-ai/flux/dev');
  await expect(page.getByTestId('route')).toContainText("FLUX.1 [dev] runs on fal's servers");
  await page.getByLabel('Prompt').fill('a red fox in snow');
  await page.getByLabel('Size').selectOption('square');
  await recordStatus(page);
  await page.getByTestId('generate').click();
  const img = page.locator('figure.result[data-target="remote"] img[data-testid="result-image"]');
  await expect(img).toHaveCount(1, { timeout: 30_000 });
  await expect.poll(() => img.evaluate((i: HTMLImageElement) => i.complete && i.naturalWidth)).toBe(512);
  // Shown from the copy kept in history (fal's files expire), fetched once from fal's file URL.
  expect(await img.getAttribute('src')).toMatch(/^blob:/);
  await expect(page.getByTestId('run-status')).toContainText('on fal');

  const log = await page.evaluate(() => window.statusLog);
  const positions = log.filter((l) => l.startsWith('queued|')).map((l) => Number(l.split('|')[1]));
  expect(positions.length, log.join('\n')).toBeGreaterThan(0);
  expect(Math.max(...positions)).toBeGreaterThan(0); // a real position, counting down
  expect(log.some((l) => l.startsWith('queued|') && /In fal's queue, position \d/.test(l))).toBe(true);
  expect(log.some((l) => l.startsWith('in_progress|') && /Running on fal/.test(l))).toBe(true);

  const reqs = await upstreamRequests();
  expect(reqs.some((r) => r.method === 'GET' && r.path.startsWith('/files/'))).toBe(true);
  const submit = reqs.find((r) => r.method === 'POST' && r.path === '/fal-ai/flux/dev');
  expect(submit, JSON.stringify(reqs.map((r) => `${r.method} ${r.path}`))).toBeDefined();
  expect(JSON.parse(submit!.body!)).toMatchObject({ prompt: 'a red fox in snow', image_size: 'square', num_inference_steps: 28 });
  // Every API request upstream carried the server's key, and only it (image files are fetched by the page).
  const api = reqs.filter((r) => r.path.startsWith('/fal-ai/'));
  expect(api.length).toBeGreaterThanOrEqual(4); // submit, status polls, result
  for (const r of api) expect(r.headers.authorization).toBe(`Key ${FAL_E2E_KEY}`);
});

test('cancel while queued stops the request and fal is told to cancel it', async ({ page }) => {
  await fake('/__fake/configure', { hold: true });
  await openApp(page);
  await chooseEndpoint(page, 'fal-ai/flux/dev');
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('run-status')).toHaveAttribute('data-stage', 'queued', { timeout: 30_000 });
  await page.getByTestId('cancel').click();
  await expect(page.getByTestId('run-status')).toHaveText('Cancelled.');
  await expect(page.getByTestId('generate')).toBeEnabled();
  await expect.poll(async () => (await upstreamRequests()).some((r) => r.method === 'PUT' && /^\/fal-ai\/flux\/requests\/[^/]+\/cancel$/.test(r.path))).toBe(true);
  await expect(page.locator('figure.result')).toHaveCount(0);
});

test('fal’s 422 is shown on the field it names', async ({ page }) => {
  await fake('/__fake/next', {
    on: 'result',
    status: 422,
    body: { detail: [{ loc: ['body', 'num_inference_steps'], msg: 'Input should be less than or equal to 50', type: 'less_than_equal', ctx: { le: 50 } }] },
    headers: { 'x-fal-retryable': 'false' },
  });
  await openApp(page);
  await chooseEndpoint(page, 'fal-ai/flux/dev');
  await page.getByTestId('generate').click();
  const error = page.getByTestId('error');
  await expect(error).toBeVisible({ timeout: 30_000 });
  await expect(error).toContainText('num_inference_steps: Input should be less than or equal to 50');
  await expect(page.getByLabel('Steps')).toHaveAttribute('aria-invalid', 'true');
});

test('a 401 from fal is explained as a key problem on the proxy', async ({ page }) => {
  await fake('/__fake/next', { on: 'submit', status: 401, body: { detail: 'Unauthorized' } });
  await openApp(page);
  await chooseEndpoint(page, 'fal-ai/flux/dev');
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('error')).toContainText(/fal refused the request \(HTTP 401: Unauthorized\): the proxy's FAL_KEY is missing, wrong/, { timeout: 30_000 });
});

test('a 429 from fal is retried with backoff and the request completes', async ({ page }) => {
  await fake('/__fake/next', { on: 'submit', status: 429, body: { detail: 'Too many requests' }, times: 2 });
  await openApp(page);
  const r = await page.evaluate(() => window.fluxApi.subscribe('fal-ai/flux/dev', { input: { prompt: 'retry me', image_size: 'square' } }));
  expect(r.route.target).toBe('remote');
  expect(r.data.images).toHaveLength(1);
  const submits = (await upstreamRequests()).filter((q) => q.method === 'POST' && q.path === '/fal-ai/flux/dev');
  expect(submits).toHaveLength(3); // two 429s, then accepted
});

test('a device the capacity probe rejects sends schnell to fal, and says so', async ({ page }) => {
  await openApp(page);
  await installTestPack(page);
  await expect(page.getByTestId('route')).toHaveAttribute('data-target', 'local');
  await expect(page.getByTestId('route')).toContainText('This device — Runs on this device');
  // Too little GPU memory for any plan: what a small GPU looks like to the probe.
  await page.evaluate(() => window.flux.setGpuMemoryLimit(1024));
  await page.getByTestId('endpoint').selectOption('fal-ai/flux/schnell'); // re-route
  await page.getByTestId('endpoint').dispatchEvent('change');
  await expect(page.getByTestId('route')).toHaveAttribute('data-target', 'remote');
  await expect(page.getByTestId('route')).toContainText('Sent to fal because this device lacks the capacity');
  await page.getByTestId('generate').click();
  await expect(page.locator('figure.result[data-target="remote"][data-endpoint="fal-ai/flux/schnell"] img')).toHaveCount(1, { timeout: 30_000 });
  expect((await upstreamRequests()).some((r) => r.method === 'POST' && r.path === '/fal-ai/flux/schnell')).toBe(true);
});

test('a browser without WebGPU sends schnell to fal, and says so', async ({ baseURL }) => {
  // Chromium on Linux exposes no adapter without --enable-unsafe-webgpu.
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS.filter((a) => a !== '--enable-unsafe-webgpu') });
  try {
    const page = await browser.newPage({ baseURL: baseURL! });
    await page.goto('/');
    await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
    await expect(page.getByTestId('device')).toContainText('WebGPU unavailable');
    await expect(page.getByTestId('route')).toHaveAttribute('data-target', 'remote');
    await expect(page.getByTestId('route')).toContainText('Sent to fal because this browser has no usable WebGPU');
    const r = await page.evaluate(() => window.fluxApi.subscribe('fal-ai/flux/schnell', { input: { prompt: 'no gpu here', image_size: 'square', num_inference_steps: 2 } }));
    expect(r.route).toMatchObject({ target: 'remote', endpoint: 'fal-ai/flux/schnell' });
    expect(r.data.images[0]).toMatchObject({ width: 512, height: 512 });
  } finally {
    await browser.close();
  }
});

test('the route preference persists across reloads, and forced local is never sent away', async ({ page }) => {
  await openApp(page);
  await page.getByTestId('route-preference').selectOption('remote');
  await page.reload();
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  await expect(page.getByTestId('route-preference')).toHaveValue('remote');
  await expect(page.getByTestId('route')).toContainText('fal (remote) — Remote was chosen');
  await page.getByTestId('route-preference').selectOption('local');
  await page.getByTestId('endpoint').selectOption('fal-ai/flux/dev');
  await expect(page.getByTestId('route')).toHaveAttribute('data-target', 'none');
  await expect(page.getByTestId('route')).toContainText('FLUX.1 [dev] cannot run in this browser');
  await expect(page.getByTestId('generate')).toBeDisabled();
  await page.getByTestId('route-preference').selectOption('auto');
});

test('Redux takes its input image from a file or from a result in the gallery', async ({ page }) => {
  await openApp(page);
  await page.getByTestId('endpoint').selectOption('fal-ai/flux/schnell/redux');
  await expect(page.getByTestId('image-input')).toBeVisible();
  await expect(page.locator('#prompt-field')).toBeHidden();
  // No image yet: a clear error on the image field, nothing sent.
  await page.getByTestId('generate').click();
  await expect(page.getByTestId('error')).toContainText('image_url: is required');
  // From a file.
  const png = readFileSync(join('public', 'favicon.svg'));
  await page.getByTestId('image-file').setInputFiles({ name: 'in.svg', mimeType: 'image/svg+xml', buffer: png });
  await page.getByTestId('generate').click();
  await expect(page.locator('figure.result[data-endpoint="fal-ai/flux/schnell/redux"]')).toHaveCount(1, { timeout: 30_000 });
  let submit = (await upstreamRequests()).filter((r) => r.method === 'POST' && r.path === '/fal-ai/flux/schnell/redux').pop()!;
  expect(JSON.parse(submit.body!).image_url).toMatch(/^data:image\/svg\+xml;base64,/);
  // From the gallery: the result just made.
  await page.getByTestId('use-as-input').first().click();
  await page.getByTestId('generate').click();
  await expect(page.locator('figure.result[data-endpoint="fal-ai/flux/schnell/redux"]')).toHaveCount(2, { timeout: 30_000 });
  submit = (await upstreamRequests()).filter((r) => r.method === 'POST' && r.path === '/fal-ai/flux/schnell/redux').pop()!;
  expect(JSON.parse(submit.body!).image_url).toMatch(new RegExp(`^${FAKE_FAL_URL}/files/`));
});

test('the FAL key is nowhere in the built app', () => {
  const hits: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (readFileSync(p).includes(FAL_E2E_KEY)) hits.push(p);
    }
  };
  walk('dist');
  expect(hits).toEqual([]);
});
