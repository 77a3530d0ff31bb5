/** The fal availability probe: GET /api/fal/proxy/status says whether a key is set, spends nothing, leaks nothing. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createAppServer } from '../../../server/app.js';
import { falProxyMiddleware } from '../../../server/vite-plugin-fal-proxy.js';
import { createFalProxy, FAL_PROXY_STATUS_ROUTE } from '../../../server/fal-proxy.js';

const KEY = 'status-test-key-1234:secret-part-5678';
let server: Server | null = null;

afterEach(async () => {
  if (server) await new Promise<void>((r) => (server!.closeAllConnections(), server!.close(() => r())));
  server = null;
});

async function start(key: string | undefined): Promise<string> {
  // An upstream nothing listens on: a forwarded probe would answer 502, not 200.
  server = await createAppServer({ proxy: { key: () => key, log: false, rateLimit: false, upstreamOrigin: 'http://127.0.0.1:9' } });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('GET /api/fal/proxy/status', () => {
  it('says configured: true when a key is set, without the key in the answer', async () => {
    const base = await start(KEY);
    const res = await fetch(base + FAL_PROXY_STATUS_ROUTE);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ configured: true });
    expect(text).not.toContain('secret');
  });

  it('says configured: false with the reason when no key is set', async () => {
    const saved = { k: process.env.FAL_KEY, i: process.env.FAL_KEY_ID, s: process.env.FAL_KEY_SECRET };
    delete process.env.FAL_KEY;
    delete process.env.FAL_KEY_ID;
    delete process.env.FAL_KEY_SECRET;
    try {
      const base = await start(undefined);
      const res = await fetch(`${base}${FAL_PROXY_STATUS_ROUTE}?t=1`);
      expect(await res.json()).toEqual({ configured: false, detail: 'The fal proxy has no FAL_KEY configured on the server' });
    } finally {
      for (const [name, v] of [['FAL_KEY', saved.k], ['FAL_KEY_ID', saved.i], ['FAL_KEY_SECRET', saved.s]] as const) if (v !== undefined) process.env[name] = v;
    }
  });

  it('refuses other methods, and cross-site callers like the proxy itself', async () => {
    const base = await start(KEY);
    const post = await fetch(base + FAL_PROXY_STATUS_ROUTE, { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
    const cross = await fetch(base + FAL_PROXY_STATUS_ROUTE, { headers: { origin: 'http://evil.example' } });
    expect(cross.status).toBe(403);
  });

  it('is mounted by the Vite middleware, and nothing else under the route is', async () => {
    const mw = falProxyMiddleware(createFalProxy({ key: () => KEY, log: false, rateLimit: false }));
    const { createServer } = await import('node:http');
    server = createServer((req, res) => mw(req, res, () => void res.writeHead(404).end('next')));
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    expect(await (await fetch(base + FAL_PROXY_STATUS_ROUTE)).json()).toEqual({ configured: true });
    expect(await (await fetch(`${base}/api/fal/proxy/other`)).text()).toBe('next');
  });
});
