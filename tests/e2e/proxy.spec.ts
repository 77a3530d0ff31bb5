/**
 * The fal proxy as Chromium meets it under `vite preview` (playwright.config.ts): an oversized upload gets a
 * readable 413, another site's page cannot spend the key (by a CORS fetch or a blind no-cors POST), and a `run=1`
 * share link does not send a request to fal without a click. The fake fal upstream records what reached "fal".
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, test } from '@playwright/test';
import { FAKE_FAL_URL } from '../support/fal-e2e.js';
import { openApp } from './helpers.js';

const SUBMIT = 'https://queue.fal.run/fal-ai/flux/schnell';

async function fake(path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${FAKE_FAL_URL}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.ok, `fake ${path}: HTTP ${res.status}`).toBe(true);
  return res.json();
}
const upstreamRequests = async () => (await fake('/__fake/requests')) as { method: string; path: string }[];

test.beforeEach(async () => {
  await fake('/__fake/reset', {});
});

test('a 50 MB POST from the page is answered with a readable 413 JSON body', async ({ page }) => {
  await openApp(page); // asserts the real WebGPU adapter
  const r = await page.evaluate(async (target) => {
    const t0 = performance.now();
    try {
      const res = await fetch('/api/fal/proxy', { method: 'POST', headers: { 'x-fal-target-url': target, 'content-type': 'application/json' }, body: new Uint8Array(50 * 1000 * 1000).fill(0x20) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown>, ms: performance.now() - t0 };
    } catch (e) {
      return { error: String(e), ms: performance.now() - t0 };
    }
  }, SUBMIT);
  expect(r, JSON.stringify(r)).toMatchObject({ status: 413, body: { error_type: 'proxy_body_too_large' } });
  console.log(`50 MB POST -> 413 read by Chromium in ${Math.round(r.ms)} ms`);
  expect(await upstreamRequests()).toEqual([]);
});

test('another site’s page cannot use the proxy: neither a CORS fetch nor a blind no-cors POST reaches fal', async ({ page, baseURL }) => {
  await openApp(page);
  // The "attacker": a page on another origin (localhost vs 127.0.0.1 is cross-site), trying the app's proxy.
  const attacker: Server = createServer((_req, res) => void res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>other site</title>'));
  await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', r));
  try {
    // Chromium reports the status of a no-cors response to the test even though the page cannot read it.
    const seen: { method: string; status: number; acao: string | null }[] = [];
    page.on('response', (res) => {
      if (new URL(res.url()).pathname === '/api/fal/proxy') seen.push({ method: res.request().method(), status: res.status(), acao: res.headers()['access-control-allow-origin'] ?? null });
    });
    await page.goto(`http://localhost:${(attacker.address() as AddressInfo).port}/`);
    const outcome = await page.evaluate(
      async ({ proxy, target }) => {
        const out: string[] = [];
        // 1. A readable CORS request, as @fal-ai/client would send it (preflighted: custom header, JSON).
        try {
          const res = await fetch(proxy, { method: 'POST', headers: { 'x-fal-target-url': target, 'content-type': 'application/json' }, body: '{"prompt":"free credit"}' });
          out.push(`cors: read ${res.status}`);
        } catch (e) {
          out.push(`cors: blocked: ${String(e)}`);
        }
        // 2. A blind "simple" request (no preflight, like a form post): the target goes in the query string.
        try {
          const res = await fetch(`${proxy}?x-fal-target-url=${encodeURIComponent(target)}`, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{"prompt":"free credit"}' });
          out.push(`no-cors: ${res.type}`);
        } catch (e) {
          out.push(`no-cors: failed: ${String(e)}`);
        }
        return out;
      },
      { proxy: `${baseURL}/api/fal/proxy`, target: SUBMIT },
    );
    // Neither answer is readable by the other site; the blind POST reached the proxy and was refused there.
    expect(outcome[0]).toMatch(/^cors: blocked: TypeError/);
    expect(outcome[1]).toBe('no-cors: opaque');
    await expect.poll(() => seen.map((s) => `${s.method} ${s.status}`)).toContain('POST 403');
    expect(seen.every((s) => s.acao === null)).toBe(true);
    expect(await upstreamRequests()).toEqual([]);
  } finally {
    attacker.closeAllConnections();
    await new Promise((r) => attacker.close(r));
  }
});

test('a run=1 share link that would go to fal waits for a click', async ({ page }) => {
  await openApp(page);
  const proxied: string[] = [];
  // Calls through the proxy (its own /status probe, which spends nothing, does not count).
  page.on('request', (req) => {
    if (new URL(req.url()).pathname === '/api/fal/proxy') proxied.push(req.method());
  });
  // No pack in this fresh profile: the route is fal, so the link must not start by itself.
  await page.goto('/?prompt=a%20lighthouse&seed=5&image_size=square&run=1');
  await expect(page.locator('body')).toHaveAttribute('data-ready', 'true');
  await expect(page.getByTestId('route')).toHaveAttribute('data-target', 'remote');
  const status = page.getByTestId('run-status');
  await expect(status).toHaveAttribute('data-auto-run', 'needs-click');
  await expect(status).toContainText("spends the server's fal credit, so it did not start by itself");
  await page.waitForTimeout(1000);
  expect(proxied).toEqual([]);
  expect(await upstreamRequests()).toEqual([]);

  // The click is the consent: now it goes to fal.
  await page.getByTestId('generate').click();
  await expect.poll(async () => (await upstreamRequests()).filter((r) => r.method === 'POST').map((r) => r.path)).toEqual(['/fal-ai/flux/schnell']);
  await expect(status).not.toHaveAttribute('data-auto-run', 'needs-click');
});
