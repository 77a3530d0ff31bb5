/**
 * The proxy mounted in real Vite servers from the project's vite.config.ts (`npm run dev` and `npm run preview`):
 * Vite's own CORS middleware answers a cross-origin preflight before any plugin sees it, so the proxy itself must
 * refuse the request that follows; and a foreign Host is refused even where Vite's host check is turned off.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, preview, type InlineConfig } from 'vite';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FAL_PROXY_ROUTE } from '../../../server/fal-proxy.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';

const KEY = 'fal-KEY-vite-servers:s3cret-5eed-CANARY';
const SUBMIT = 'https://queue.fal.run/fal-ai/flux/schnell';
const ROOT = join(import.meta.dirname, '../../..');

let fake: FakeUpstream;
let outDir: string;
const closers: (() => Promise<void>)[] = [];
const saved = { key: process.env.FAL_KEY, upstream: process.env.FAL_TEST_UPSTREAM_ORIGIN };

type Kind = 'dev' | 'preview';

/** A dev or preview server from vite.config.ts on a free port; `allowedHosts: true` turns Vite's host check off. */
async function start(kind: Kind, allowAnyHost = false): Promise<number> {
  const server = { port: 0, strictPort: false, host: '127.0.0.1', ...(allowAnyHost ? { allowedHosts: true as const } : {}) };
  const config: InlineConfig = { configFile: join(ROOT, 'vite.config.ts'), root: ROOT, logLevel: 'silent', clearScreen: false, build: { outDir }, server, preview: server };
  if (kind === 'dev') {
    const dev = await createServer({ ...config, server: { ...server, watch: null, hmr: false } });
    await dev.listen();
    closers.push(() => dev.close());
    return (dev.httpServer!.address() as AddressInfo).port;
  }
  const prev = await preview(config);
  closers.push(() => prev.close());
  return (prev.httpServer.address() as AddressInfo).port;
}

function send(port: number, method: string, headers: Record<string, string>, body?: string): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: FAL_PROXY_ROUTE, method, headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) } });
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  fake = await startFakeUpstream(KEY);
  // vite.config.ts mounts falProxyPlugin() with no options: key and upstream come from the environment.
  process.env.FAL_KEY = KEY;
  process.env.FAL_TEST_UPSTREAM_ORIGIN = fake.origin;
  outDir = await mkdtemp(join(tmpdir(), 'vite-preview-'));
  await writeFile(join(outDir, 'index.html'), '<!doctype html><title>t</title>');
}, 60_000);
beforeEach(() => {
  fake.requests.length = 0;
});
afterAll(async () => {
  for (const c of closers) await c();
  await fake.close();
  await rm(outDir, { recursive: true, force: true });
  for (const [name, v] of [['FAL_KEY', saved.key], ['FAL_TEST_UPSTREAM_ORIGIN', saved.upstream]] as const) {
    if (v === undefined) delete process.env[name];
    else process.env[name] = v;
  }
}, 60_000);

describe.each(['dev', 'preview'] as const)('vite %s with vite.config.ts', (kind) => {
  let port: number;
  beforeAll(async () => {
    port = await start(kind);
  }, 60_000);

  it('forwards the page’s own request (Origin = Host)', async () => {
    const r = await send(port, 'POST', { host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin', 'x-fal-target-url': SUBMIT }, '{"prompt":"x"}');
    expect(r.status, r.text).toBe(200);
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.headers.authorization).toBe(`Key ${KEY}`);
  });

  it('Vite answers a localhost preflight, but the POST that follows is refused by the proxy and forwarded nowhere', async () => {
    const evil = 'http://localhost:3000';
    const pre = await send(port, 'OPTIONS', { host: `127.0.0.1:${port}`, origin: evil, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-fal-target-url' });
    // What Vite's default server.cors does (documented in docs/proxy.md): the proxy never sees the preflight.
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe(evil);
    const r = await send(port, 'POST', { host: `127.0.0.1:${port}`, origin: evil, 'sec-fetch-site': 'same-site', 'x-fal-target-url': SUBMIT, 'content-type': 'application/json' }, '{"prompt":"x"}');
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text)).toMatchObject({ error_type: 'proxy_cross_origin' });
    // The CORS header Vite set is taken off again, so the other page cannot even read the refusal.
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
    const noSite = await send(port, 'POST', { host: `127.0.0.1:${port}`, origin: evil, 'x-fal-target-url': SUBMIT }, '{}');
    expect(noSite.status).toBe(403);
    expect(fake.requests).toHaveLength(0);
  });

  it('a foreign Host is refused (Vite’s own check first), and by the proxy itself where that check is off', async () => {
    const blocked = await send(port, 'POST', { host: `attacker.example:${port}`, 'x-fal-target-url': SUBMIT }, '{}');
    expect(blocked.status).toBe(403);
    const open = await start(kind, true);
    const r = await send(open, 'POST', { host: `attacker.example:${open}`, 'x-fal-target-url': SUBMIT }, '{}');
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text)).toMatchObject({ error_type: 'proxy_host_not_allowed' });
    expect(fake.requests).toHaveLength(0);
  }, 60_000);
});
