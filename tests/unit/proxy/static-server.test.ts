import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAppServer } from '../../../server/app.js';
import { parseServerConfig } from '../../../server/config.js';
import { createStaticHandler, parseRange } from '../../../server/static.js';

const SECRET = 'TOP-SECRET-OUTSIDE-ROOT';
let base: string;
let root: string;
let server: Server;
let origin: string;
const logs: string[] = [];

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'flux-static-'));
  root = join(base, 'dist');
  await mkdir(join(root, 'assets'), { recursive: true });
  await mkdir(join(root, 'packs', 'tiny'), { recursive: true });
  await writeFile(join(base, 'secret.txt'), SECRET);
  await writeFile(join(root, 'index.html'), '<!doctype html><title>app</title>');
  await writeFile(join(root, 'assets', 'index-abc123.js'), 'console.log(1)');
  await writeFile(join(root, 'assets', 'worker.mjs'), 'export {}');
  await writeFile(join(root, 'assets', 'style.css'), 'body{}');
  await writeFile(join(root, 'assets', 'ort.wasm'), Buffer.from([0, 97, 115, 109]));
  await writeFile(join(root, 'favicon.svg'), '<svg/>');
  await writeFile(join(root, 'icon.png'), Buffer.from([137, 80, 78, 71]));
  await writeFile(join(root, 'app.webmanifest'), '{}');
  await writeFile(join(root, 'packs', 'tiny', 'manifest.json'), '{"a":1}');
  await writeFile(join(root, 'packs', 'tiny', 'model.onnx'), Buffer.from('0123456789'));
  await writeFile(join(root, 'packs', 'tiny', 'weights.data'), Buffer.alloc(0));
  await writeFile(join(root, '.env'), `FAL_KEY=${SECRET}`);
  await symlink(join(base, 'secret.txt'), join(root, 'link-out.txt'));
  await symlink(base, join(root, 'dir-out'));
  server = await createAppServer({ staticDir: root, proxy: { key: () => 'k', rateLimit: false, log: (l) => logs.push(l) } });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await rm(base, { recursive: true, force: true });
});

/** Raw path, not normalised by a URL parser (fetch would resolve `..` before sending). */
function rawGet(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const { port } = server.address() as AddressInfo;
    const req = httpRequest({ host: '127.0.0.1', port, path, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString(), headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('app server: static files', () => {
  it('serves index.html with cross-origin isolation headers', async () => {
    const res = await fetch(`${origin}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(res.headers.get('cross-origin-embedder-policy')).toBe('credentialless');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(await res.text()).toContain('<title>app</title>');
  });

  it.each([
    ['/assets/index-abc123.js', 'text/javascript; charset=utf-8'],
    ['/assets/worker.mjs', 'text/javascript; charset=utf-8'],
    ['/assets/style.css', 'text/css; charset=utf-8'],
    ['/assets/ort.wasm', 'application/wasm'],
    ['/favicon.svg', 'image/svg+xml'],
    ['/icon.png', 'image/png'],
    ['/app.webmanifest', 'application/manifest+json; charset=utf-8'],
    ['/packs/tiny/manifest.json', 'application/json; charset=utf-8'],
    ['/packs/tiny/model.onnx', 'application/octet-stream'],
    ['/packs/tiny/weights.data', 'application/octet-stream'],
  ])('%s is %s', async (path, type) => {
    const res = await fetch(origin + path);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(type);
    expect(res.headers.get('cross-origin-embedder-policy')).toBe('credentialless');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    await res.arrayBuffer();
  });

  it('caches hashed assets forever and revalidates the rest', async () => {
    expect((await fetch(`${origin}/assets/index-abc123.js`)).headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await fetch(`${origin}/packs/tiny/model.onnx`)).headers.get('cache-control')).toBe('no-cache');
  });

  it('falls back to index.html for app routes, not for missing files', async () => {
    for (const path of ['/generate', '/some/deep/route', '/route?x=1']) {
      const res = await fetch(origin + path);
      expect(res.status, path).toBe(200);
      expect(await res.text()).toContain('<title>app</title>');
    }
    for (const path of ['/missing.js', '/assets/missing-123.js', '/packs/tiny/nope.onnx', '/api/other', '/api/fal/proxy/extra']) {
      const res = await fetch(origin + path);
      expect(res.status, path).toBe(404);
      expect(await res.text()).not.toContain('<title>');
    }
  });

  it('never leaves the root (traversal, encoded traversal, backslashes, symlinks, dotfiles)', async () => {
    for (const path of [
      '/../secret.txt',
      '/assets/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/%2E%2E/%2E%2E/secret.txt',
      '/..%2fsecret.txt',
      '/assets/..%2f..%2fsecret.txt',
      '/..%5csecret.txt',
      '/%2e%2e%5csecret.txt',
      '/link-out.txt',
      '/dir-out/secret.txt',
      '/.env',
      '/%2eenv',
      '/%00',
      '/%E0%A4%A',
      '//../secret.txt',
    ]) {
      const r = await rawGet(path);
      expect(r.body, path).not.toContain(SECRET);
      expect([200, 400, 404], path).toContain(r.status);
      if (r.status === 200) expect(r.body, path).toContain('<title>app</title>');
    }
  });

  it('answers ranges for resumable pack downloads, honouring If-Range', async () => {
    const full = await fetch(`${origin}/packs/tiny/model.onnx`);
    const etag = full.headers.get('etag')!;
    expect(etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    expect(full.headers.get('accept-ranges')).toBe('bytes');
    expect(full.headers.get('content-length')).toBe('10');
    expect(full.headers.get('last-modified')).toBeTruthy();

    const part = await fetch(`${origin}/packs/tiny/model.onnx`, { headers: { range: 'bytes=4-' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 4-9/10');
    expect(await part.text()).toBe('456789');

    const mid = await fetch(`${origin}/packs/tiny/model.onnx`, { headers: { range: 'bytes=2-4', 'if-range': etag } });
    expect(mid.status).toBe(206);
    expect(await mid.text()).toBe('234');

    const changed = await fetch(`${origin}/packs/tiny/model.onnx`, { headers: { range: 'bytes=2-4', 'if-range': '"other"' } });
    expect(changed.status).toBe(200);
    expect(await changed.text()).toBe('0123456789');

    const tooFar = await fetch(`${origin}/packs/tiny/model.onnx`, { headers: { range: 'bytes=10-' } });
    expect(tooFar.status).toBe(416);
    expect(tooFar.headers.get('content-range')).toBe('bytes */10');

    const notModified = await fetch(`${origin}/packs/tiny/model.onnx`, { headers: { 'if-none-match': etag } });
    expect(notModified.status).toBe(304);
  });

  it('HEAD has headers only; other methods are refused', async () => {
    const head = await fetch(`${origin}/packs/tiny/model.onnx`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('10');
    expect((await fetch(`${origin}/`, { method: 'POST', body: 'x' })).status).toBe(405);
    expect((await fetch(`${origin}/`, { method: 'DELETE' })).status).toBe(405);
  });

  it('routes the exact proxy path to the fal proxy', async () => {
    for (const path of ['/api/fal/proxy', '/api/fal/proxy?x=1']) {
      const res = await fetch(origin + path, { method: 'POST', body: '{}' });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error_type: 'proxy_bad_target' });
    }
  });

  it('serves only the proxy without a static dir', async () => {
    const s = await createAppServer({ proxy: { key: () => 'k', log: false } });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const o = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    expect((await fetch(`${o}/`)).status).toBe(404);
    expect((await fetch(`${o}/api/fal/proxy`)).status).toBe(400);
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  });

  it('refuses a static root without index.html', async () => {
    await expect(createStaticHandler(join(root, 'assets'))).rejects.toThrow(/index\.html/);
    await expect(createStaticHandler(join(base, 'nope'))).rejects.toThrow();
  });
});

describe('parseRange', () => {
  it.each([
    ['bytes=0-0', 10, [0, 0]],
    ['bytes=0-', 10, [0, 9]],
    ['bytes=5-100', 10, [5, 9]],
    ['bytes=-3', 10, [7, 9]],
    ['bytes=-30', 10, [0, 9]],
    ['bytes=10-', 10, 'unsatisfiable'],
    ['bytes=-0', 10, 'unsatisfiable'],
    ['bytes=5-2', 10, null],
    ['bytes=0-1,3-4', 10, null],
    ['items=0-1', 10, null],
    ['bytes=-', 10, null],
  ] as const)('%s of %i -> %j', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});

describe('parseServerConfig', () => {
  it('defaults', () => {
    expect(parseServerConfig([], {})).toEqual({ port: 8787, host: '127.0.0.1', proxy: {} });
  });

  it('reads flags before env', () => {
    expect(parseServerConfig(['--static', 'dist', '--port=9000'], { PORT: '1', HOST: '0.0.0.0', STATIC_DIR: 'other' })).toEqual({
      port: 9000,
      host: '0.0.0.0',
      staticDir: 'dist',
      proxy: {},
    });
    expect(parseServerConfig([], { STATIC_DIR: 'build' })).toMatchObject({ staticDir: 'build' });
    expect(parseServerConfig(['--help'], {})).toBe('help');
  });

  it('reads proxy knobs from env', () => {
    const c = parseServerConfig([], {
      TRUST_PROXY: '1',
      FAL_PROXY_MAX_BODY_BYTES: '1000',
      FAL_PROXY_REQUESTS_PER_SECOND: '5',
      FAL_PROXY_BURST: '10',
      FAL_PROXY_SUBMITS_PER_MINUTE: '2',
      FAL_PROXY_SUBMIT_BURST: '3',
    });
    expect(c).toMatchObject({ proxy: { trustProxy: 1, maxBodyBytes: 1000, rateLimit: { requestsPerSecond: 5, burst: 10, submitsPerMinute: 2, submitBurst: 3 } } });
    expect(parseServerConfig([], { FAL_PROXY_RATE_LIMIT: 'off' })).toMatchObject({ proxy: { rateLimit: false } });
  });

  it('rejects bad input', () => {
    expect(() => parseServerConfig(['--nope'], {})).toThrow(/Unknown argument/);
    expect(() => parseServerConfig(['--static'], {})).toThrow(/needs a value/);
    expect(() => parseServerConfig([], { PORT: 'abc' })).toThrow(/PORT/);
    expect(() => parseServerConfig([], { PORT: '70000' })).toThrow(/PORT/);
    expect(() => parseServerConfig([], { FAL_PROXY_BURST: '-1' })).toThrow(/FAL_PROXY_BURST/);
  });
});
