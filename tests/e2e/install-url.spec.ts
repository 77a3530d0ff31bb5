/**
 * "Install from URL" (#11): a pack served by a second local origin installs when the host sends CORS headers, and
 * fails with its own message when it does not, when nothing is there (404), when the manifest is invalid, when
 * this GPU cannot run the pack, and when the host does not answer.
 */
import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { generate, openApp, TEST_PACK_ID } from './helpers.js';

const PACK_DIR = 'public/packs/flux-test-tiny';
const manifest = JSON.parse(readFileSync(join(PACK_DIR, 'manifest.json'), 'utf8')) as Record<string, unknown> & { components: Record<string, Record<string, unknown>> };
const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-headers': 'range, if-range',
  'access-control-expose-headers': 'content-length, content-range, etag, accept-ranges',
  'cross-origin-resource-policy': 'cross-origin',
};

/**
 * The second origin: /cors/ the test pack with CORS, /nocors/ the same files without CORS headers, /bad/ a
 * manifest without files, /nogpu/ a manifest needing a WebGPU feature no adapter has; anything else 404.
 */
let server: Server;
let origin: string;
const served: string[] = [];
test.beforeAll(async () => {
  server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    served.push(path);
    const [, area, ...rest] = path.split('/');
    const file = rest.join('/');
    const headers = area === 'nocors' ? {} : CORS;
    if (req.method === 'OPTIONS') return void res.writeHead(204, headers).end();
    const json = (body: unknown) => void res.writeHead(200, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (area === 'bad' && file === 'manifest.json') return json({ ...manifest, files: [] });
    if (area === 'nogpu' && file === 'manifest.json') {
      return json({ ...manifest, components: { ...manifest.components, transformer: { ...manifest.components.transformer, requiredFeatures: ['no-such-gpu-feature'] } } });
    }
    if ((area === 'cors' || area === 'nocors') && file && !file.includes('..')) {
      try {
        const p = join(PACK_DIR, file);
        res.writeHead(200, { ...headers, 'content-length': String(statSync(p).size), 'content-type': 'application/octet-stream' });
        return void res.end(readFileSync(p));
      } catch {
        /* fall through to 404 */
      }
    }
    res.writeHead(404, { ...CORS, 'content-type': 'text/plain' }).end('Not Found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
test.afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

async function installFrom(page: Page, url: string): Promise<void> {
  await page.getByTestId('install-url').fill(url);
  await page.getByTestId('install-url-button').click();
}

test('a pack on another origin with CORS installs from its URL, loads and generates', async ({ page }) => {
  await openApp(page);
  expect(new URL(page.url()).origin).not.toBe(origin);
  await installFrom(page, `${origin}/cors/`);
  await expect(page.getByTestId('model-status')).toHaveAttribute('data-loaded', TEST_PACK_ID, { timeout: 120_000 });
  await expect(page.getByTestId('install-error')).toBeHidden();
  const packs = await page.evaluate(() => window.flux.listPacks());
  expect(packs).toMatchObject([{ id: TEST_PACK_ID, state: 'complete', sourceUrl: `${origin}/cors/` }]);
  const files = (manifest.files as { path: string }[]).map((f) => `/cors/${f.path}`);
  expect(files.every((f) => served.includes(f))).toBe(true);
  const out = await generate(page, { prompt: 'from another origin', image_size: { width: 64, height: 64 }, num_inference_steps: 1, seed: 1, output_format: 'png' });
  expect(out.images[0]).toMatchObject({ width: 64, height: 64, contentType: 'image/png' });
});

test('without CORS headers, a 404, a bad manifest, a pack this GPU cannot run and a dead host each say what is wrong', async ({ page }) => {
  await openApp(page);
  const error = page.getByTestId('install-error');
  const cases: [string, RegExp][] = [
    [`${origin}/nocors/`, new RegExp(`^The server at ${origin} does not allow cross-origin requests \\(no Access-Control-Allow-Origin\\)`)],
    [`${origin}/missing/`, new RegExp(`^No pack manifest at ${origin}/missing/manifest\\.json \\(HTTP 404\\): the URL must be the pack's folder`)],
    [`${origin}/bad/manifest.json`, new RegExp(`^Invalid pack manifest at ${origin}/bad/manifest\\.json: manifest\\.json: files: must be a non-empty array`)],
    [`${origin}/nogpu/`, /cannot run on this GPU, so it was not downloaded\. This device cannot run the pack locally: the GPU lacks no-such-gpu-feature/],
    ['http://127.0.0.1:9/pack/', /^Could not reach http:\/\/127\.0\.0\.1:9 to fetch .*the network is down, or the server does not answer/],
  ];
  for (const [url, message] of cases) {
    await installFrom(page, url);
    await expect(error).toBeVisible();
    await expect(error).toHaveText(message);
    await expect(page.getByTestId('install-url')).toHaveAttribute('aria-invalid', 'true');
  }
  // Nothing was downloaded or stored by any of them.
  expect(await page.evaluate(() => window.flux.listPacks())).toEqual([]);
  expect(served.filter((p) => !p.endsWith('/manifest.json') && !p.startsWith('/cors/'))).toEqual([]);
});
