/**
 * Issue #12 items 3, 4, 6, 7 on the standalone server (server/app.ts, as `npm run proxy` builds it): who may call
 * the proxy (Host, Origin, Sec-Fetch-Site, the auth hook), how refused uploads end (a readable 413, not a reset),
 * GET/PUT bodies refused unread, and rate-limit keys that one client cannot multiply by respelling its address.
 * Each test names the sentence of docs/proxy.md it proves.
 */
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAppServer } from '../../../server/app.js';
import { canonicalIp, clientKey } from '../../../server/client-address.js';
import { loadAuthCheck, parseServerConfig } from '../../../server/config.js';
import { FAL_PROXY_ROUTE, type FalProxyOptions } from '../../../server/fal-proxy.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';

const KEY = 'fal-KEY-guard-test:s3cret-0ddba11-CANARY';
const SUBMIT = 'https://queue.fal.run/fal-ai/flux/schnell';
const STATUS = 'https://queue.fal.run/fal-ai/flux/requests/req-1/status?logs=0';
const MB50 = 50 * 1000 * 1000;

let fake: FakeUpstream;
const servers: Server[] = [];

interface Standalone {
  port: number;
  url: string;
  logs: string[];
}

async function standalone(options: FalProxyOptions = {}): Promise<Standalone> {
  const logs: string[] = [];
  const server = await createAppServer({ proxy: { key: () => KEY, upstreamOrigin: fake.origin, rateLimit: false, log: (l) => logs.push(l), ...options } });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { port, url: `http://127.0.0.1:${port}${FAL_PROXY_ROUTE}`, logs };
}

interface RawReply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  ms: number;
}

/** node:http, which (unlike fetch) lets a test set Host and Origin; `body` is sent whole, `declare` only announced. */
function raw(port: number, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; declare?: number; chunked?: boolean }): Promise<RawReply> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'x-fal-target-url': opts.method === 'POST' || opts.method === undefined ? SUBMIT : STATUS, ...opts.headers };
    if (opts.declare !== undefined) headers['content-length'] = String(opts.declare);
    if (opts.chunked) headers['transfer-encoding'] = 'chunked';
    // Node's client sends a GET body unframed unless told its length.
    if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
    const req = httpRequest({ host: '127.0.0.1', port, path: FAL_PROXY_ROUTE, method: opts.method ?? 'POST', headers });
    req.on('response', (res: IncomingMessage) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString('utf8'), ms: performance.now() - t0 });
        req.destroy();
      });
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.end(opts.body);
    else if (opts.declare !== undefined || opts.chunked) req.flushHeaders();
    else req.end();
  });
}

function errorType(r: { text: string }): unknown {
  return (JSON.parse(r.text) as { error_type?: unknown }).error_type;
}

beforeAll(async () => {
  fake = await startFakeUpstream(KEY);
});
beforeEach(() => {
  fake.requests.length = 0;
  fake.script.length = 0;
});
afterAll(async () => {
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  await fake.close();
});

describe('Host: only names this server answers to (DNS rebinding)', () => {
  it('refuses a foreign Host with 403 proxy_host_not_allowed and forwards nothing', async () => {
    const s = await standalone();
    for (const host of [`attacker.example:${s.port}`, 'attacker.example', `localhost.attacker.example:${s.port}`, `127.0.0.1.nip.io:${s.port}`, `localhost:${s.port + 1}`, `[::2]:${s.port}`, 'bad host']) {
      const r = await raw(s.port, { headers: { host }, body: '{}' });
      expect(r.status, host).toBe(403);
      expect(errorType(r), host).toBe('proxy_host_not_allowed');
      expect(r.headers['content-type']).toContain('application/json');
    }
    expect(fake.requests).toHaveLength(0);
  });

  it('allows localhost, 127.0.0.1, [::1] and the address it was reached on, with its own port', async () => {
    const s = await standalone();
    for (const host of [`localhost:${s.port}`, `LOCALHOST:${s.port}`, `127.0.0.1:${s.port}`, `[::1]:${s.port}`]) {
      const r = await raw(s.port, { method: 'GET', headers: { host } });
      expect(r.status, `${host}: ${r.text}`).toBe(200);
    }
    expect(fake.requests).toHaveLength(4);
  });

  it('allows configured names (any port, or the one given), from the option and from FAL_PROXY_ALLOWED_HOSTS / --host', async () => {
    const s = await standalone({ allowedHosts: ['app.example', 'other.example:8443'] });
    expect((await raw(s.port, { method: 'GET', headers: { host: 'app.example' } })).status).toBe(200);
    expect((await raw(s.port, { method: 'GET', headers: { host: 'app.example:9999' } })).status).toBe(200);
    expect((await raw(s.port, { method: 'GET', headers: { host: 'other.example:8443' } })).status).toBe(200);
    expect((await raw(s.port, { method: 'GET', headers: { host: 'other.example' } })).status).toBe(403);
    expect((await raw(s.port, { method: 'GET', headers: { host: 'sub.app.example' } })).status).toBe(403);

    expect(parseServerConfig([], { FAL_PROXY_ALLOWED_HOSTS: 'a.example, B.example:8443' }).valueOf()).toMatchObject({ proxy: { allowedHosts: ['a.example', 'b.example:8443'] } });
    expect(parseServerConfig(['--allowed-hosts', 'c.example', '--host', 'myhost.lan', '--port', '9000'], {})).toMatchObject({ proxy: { allowedHosts: ['c.example', 'myhost.lan:9000'] } });
    // A bound IP needs no entry: the address a request arrives on is allowed with its port.
    expect(parseServerConfig(['--host', '0.0.0.0'], {})).toMatchObject({ proxy: {} });
    expect(() => parseServerConfig([], { FAL_PROXY_ALLOWED_HOSTS: 'http://x.example/' })).toThrow(/FAL_PROXY_ALLOWED_HOSTS: "http:\/\/x.example\/" is not a host name/);
  });
});

describe('Origin and Sec-Fetch-Site: the page itself only', () => {
  it('refuses Sec-Fetch-Site cross-site and same-site; same-origin and none pass', async () => {
    const s = await standalone();
    for (const site of ['cross-site', 'same-site']) {
      const r = await raw(s.port, { headers: { 'sec-fetch-site': site }, body: '{}' });
      expect(r.status, site).toBe(403);
      expect(errorType(r)).toBe('proxy_cross_origin');
      expect(JSON.parse(r.text).detail).toContain(site);
    }
    expect(fake.requests).toHaveLength(0);
    for (const site of ['same-origin', 'none']) expect((await raw(s.port, { method: 'GET', headers: { 'sec-fetch-site': site } })).status, site).toBe(200);
  });

  it('refuses an Origin other than the Host it came to (another port, scheme-less, null), with no CORS headers', async () => {
    const s = await standalone();
    for (const origin of ['http://localhost:3000', `http://localhost:${s.port}`, 'https://evil.example', 'null', `127.0.0.1:${s.port}`, `http://127.0.0.1:${s.port}/path`, `ftp://127.0.0.1:${s.port}`]) {
      const r = await raw(s.port, { headers: { origin }, body: '{}' });
      expect(r.status, origin).toBe(403);
      expect(errorType(r), origin).toBe('proxy_cross_origin');
      expect(Object.keys(r.headers).filter((h) => h.startsWith('access-control-')), origin).toEqual([]);
    }
    expect(fake.requests).toHaveLength(0);
    const same = await raw(s.port, { headers: { origin: `http://127.0.0.1:${s.port}`, 'sec-fetch-site': 'same-origin' }, body: '{}' });
    expect(same.status, same.text).toBe(200);
    // Behind a TLS reverse proxy that passes Host on: https://app.example is the Host app.example.
    const tls = await standalone({ allowedHosts: ['app.example'] });
    expect((await raw(tls.port, { headers: { host: 'app.example', origin: 'https://app.example' }, body: '{}' })).status).toBe(200);
    expect((await raw(tls.port, { headers: { host: 'app.example', origin: 'https://app.example:8443' }, body: '{}' })).status).toBe(403);
  });
});

describe('refused uploads: the client reads the answer', () => {
  it('a 50 MB POST gets a readable 413 JSON in Node fetch (content-length declared)', async () => {
    const s = await standalone();
    const r = await fetch(s.url, { method: 'POST', headers: { 'x-fal-target-url': SUBMIT, 'content-type': 'application/json' }, body: Buffer.alloc(MB50, 0x20) });
    expect(r.status).toBe(413);
    expect(r.headers.get('connection')).toBe('close');
    expect(await r.json()).toMatchObject({ error_type: 'proxy_body_too_large', detail: expect.stringContaining(String(12 * 1024 * 1024)) });
    expect(fake.requests).toHaveLength(0);
  });

  it('a client that sends all of its 50 MB before reading (as Chromium does) still gets the 413: the server reads it off and closes only then', async () => {
    const s = await standalone();
    const reply = await new Promise<{ written: number; response: string; error?: string }>((resolve) => {
      const sock = connect(s.port, '127.0.0.1');
      const parts: Buffer[] = [];
      let written = 0;
      let error: string | undefined;
      sock.on('data', (c: Buffer) => parts.push(c));
      sock.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
      sock.on('close', () => resolve({ written, response: Buffer.concat(parts).toString('latin1'), ...(error ? { error } : {}) }));
      sock.write(`POST ${FAL_PROXY_ROUTE} HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nx-fal-target-url: ${SUBMIT}\r\ncontent-length: ${MB50}\r\n\r\n`);
      const chunk = Buffer.alloc(1000 * 1000, 0x20);
      // Paced so the upload outlasts any "linger, then drop" timer (about 2 s in all).
      const next = () => {
        if (sock.destroyed) return;
        if (written === MB50) return void sock.end();
        written += chunk.length;
        sock.write(chunk, () => setTimeout(next, 40));
      };
      next();
    });
    expect(reply.error, `the server cut the upload after ${reply.written} bytes`).toBeUndefined();
    expect(reply.written).toBe(MB50);
    expect(reply.response).toMatch(/^HTTP\/1\.1 413 /);
    expect(reply.response).toMatch(/\r\nconnection: close\r\n/i);
    expect(JSON.parse(reply.response.slice(reply.response.indexOf('\r\n\r\n') + 4))).toMatchObject({ error_type: 'proxy_body_too_large' });
    expect(fake.requests).toHaveLength(0);
  });

  it('a 50 MB chunked POST (no length) gets a readable 413 after the cap, and nothing is forwarded', async () => {
    const s = await standalone();
    const chunk = new Uint8Array(1024 * 1024).fill(0x20);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= 50) return c.close();
        sent++;
        c.enqueue(chunk);
      },
    });
    const r = await fetch(s.url, { method: 'POST', headers: { 'x-fal-target-url': SUBMIT }, body, duplex: 'half' } as RequestInit);
    expect(r.status).toBe(413);
    expect(await r.json()).toMatchObject({ error_type: 'proxy_body_too_large' });
    expect(fake.requests).toHaveLength(0);
  });

  it('other refusals with a large body are readable too (a 403 for a foreign target)', async () => {
    const s = await standalone();
    const r = await fetch(s.url, { method: 'POST', headers: { 'x-fal-target-url': 'https://evil.example/x' }, body: Buffer.alloc(20 * 1000 * 1000, 0x20) });
    expect(r.status).toBe(403);
    expect(await r.json()).toMatchObject({ error_type: 'proxy_forbidden' });
  });

  it('past maxDrainBytes the connection is dropped instead of reading on', async () => {
    const s = await standalone({ maxBodyBytes: 1024, maxDrainBytes: 1024 * 1024 });
    // A raw socket that keeps sending its declared 50 MB until the server cuts it off.
    const written = await new Promise<number>((resolve) => {
      const sock = connect(s.port, '127.0.0.1');
      let total = 0;
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (total < MB50 && !sock.destroyed) {
          total += chunk.length;
          if (!sock.write(chunk)) return void sock.once('drain', pump);
        }
      };
      sock.on('error', () => undefined);
      sock.on('close', () => resolve(total));
      sock.on('data', () => undefined);
      sock.write(`POST ${FAL_PROXY_ROUTE} HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nx-fal-target-url: ${SUBMIT}\r\ncontent-length: ${MB50}\r\n\r\n`);
      pump();
    });
    expect(written).toBeLessThan(MB50 / 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(s.logs.some((l) => l.includes('-> 413') && l.includes('unread body over the 1048576-byte drain limit: connection dropped'))).toBe(true);
    // Within the bound the same refusal is readable.
    const ok = await fetch(s.url, { method: 'POST', headers: { 'x-fal-target-url': SUBMIT }, body: Buffer.alloc(512 * 1024, 0x20) });
    expect(ok.status).toBe(413);
  });
});

describe('GET/PUT bodies are refused from the headers, unread', () => {
  it('a GET declaring 10 MiB is answered 400 at once, without waiting for (or holding) the body', async () => {
    const s = await standalone();
    // The body never comes: an answer that needed it would hang until the test times out.
    const r = await raw(s.port, { method: 'GET', declare: 10 * 1024 * 1024 });
    expect(r.status).toBe(400);
    expect(errorType(r)).toBe('proxy_bad_body');
    expect(JSON.parse(r.text).detail).toMatch(/GET requests to the fal proxy take no body/);
    expect(r.ms).toBeLessThan(2000);
    expect(fake.requests).toHaveLength(0);
  });

  it('a chunked PUT is refused the same way; a tiny declared body ("{}" on cancel) is ignored', async () => {
    const s = await standalone();
    const r = await raw(s.port, { method: 'PUT', chunked: true, headers: { 'x-fal-target-url': 'https://queue.fal.run/fal-ai/flux/requests/req-1/cancel' } });
    expect(r.status).toBe(400);
    expect(errorType(r)).toBe('proxy_bad_body');
    expect(fake.requests).toHaveLength(0);
    const cancel = await raw(s.port, { method: 'PUT', body: '{}', headers: { 'x-fal-target-url': 'https://queue.fal.run/fal-ai/flux/requests/req-1/cancel' } });
    expect(cancel.status).toBe(202);
    expect(fake.requests.map((q) => `${q.method} ${q.body.length}`)).toEqual(['PUT 0']);
  });

  it('a 20 MB GET body still being uploaded reads the 400, not a reset', async () => {
    const s = await standalone();
    const r = await raw(s.port, { method: 'GET', body: Buffer.alloc(20 * 1000 * 1000, 0x20) });
    expect(r.status).toBe(400);
    expect(errorType(r)).toBe('proxy_bad_body');
  });
});

describe('authentication hook', () => {
  it('false or a throw answers 401 proxy_unauthorized and forwards nothing; true forwards', async () => {
    const seen: string[] = [];
    const s = await standalone({
      isAuthenticated: async (req) => {
        seen.push(String(req.headers.cookie));
        if (req.headers.cookie === 'session=boom') throw new Error('session store down');
        return req.headers.cookie === 'session=good';
      },
    });
    const none = await raw(s.port, { body: '{}' });
    expect(none.status).toBe(401);
    expect(errorType(none)).toBe('proxy_unauthorized');
    const boom = await raw(s.port, { headers: { cookie: 'session=boom' }, body: '{}' });
    expect(boom.status).toBe(401);
    expect(JSON.parse(boom.text).detail).toContain('session store down');
    expect(fake.requests).toHaveLength(0);
    const good = await raw(s.port, { headers: { cookie: 'session=good' }, body: '{}' });
    expect(good.status).toBe(200);
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.headers.cookie).toBeUndefined();
    expect(seen).toEqual(['undefined', 'session=boom', 'session=good']);
  });

  it('warns at start-up when no check is set, and not when one is', async () => {
    const without = await standalone();
    expect(without.logs.filter((l) => l.includes('WARNING: no authentication check'))).toHaveLength(1);
    const withCheck = await standalone({ isAuthenticated: () => true });
    expect(withCheck.logs.some((l) => l.includes('no authentication check'))).toBe(false);
  });

  it('FAL_PROXY_AUTH_MODULE loads a default export; a module without one is a clear start-up error', async () => {
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'fal-auth-'));
    await writeFile(join(dir, 'ok.mjs'), "export default (req) => req.headers['x-team'] === 'yes';\n");
    await writeFile(join(dir, 'bad.mjs'), 'export const check = () => true;\n');
    expect(parseServerConfig([], { FAL_PROXY_AUTH_MODULE: join(dir, 'ok.mjs') })).toMatchObject({ authModule: join(dir, 'ok.mjs') });
    const check = await loadAuthCheck(join(dir, 'ok.mjs'));
    const s = await standalone({ isAuthenticated: check });
    expect((await raw(s.port, { body: '{}' })).status).toBe(401);
    expect((await raw(s.port, { headers: { 'x-team': 'yes' }, body: '{}' })).status).toBe(200);
    await expect(loadAuthCheck(join(dir, 'bad.mjs'))).rejects.toThrow(/must have a default export/);
    await expect(loadAuthCheck(join(dir, 'missing.mjs'))).rejects.toThrow(/could not be loaded/);
  });
});

describe('rate-limit keys: one bucket per client, however it spells its address', () => {
  it('canonicalizes IPv4-mapped, expanded and compressed spellings, and groups IPv6 by /64', () => {
    expect(canonicalIp('::ffff:1.2.3.4')).toBe('1.2.3.4');
    expect(canonicalIp('::FFFF:102:304')).toBe('1.2.3.4');
    expect(canonicalIp('0:0:0:0:0:ffff:1.2.3.4')).toBe('1.2.3.4');
    expect(canonicalIp('1.2.3.4:5678')).toBe('1.2.3.4');
    expect(canonicalIp('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(canonicalIp('[2001:db8::1]:443')).toBe('2001:db8::1');
    expect(canonicalIp('fe80::1%eth0')).toBe('fe80::1');
    expect(canonicalIp('2001:db8:0:1:0:0:0:0')).toBe('2001:db8:0:1::');
    expect(canonicalIp('not-an-ip')).toBeUndefined();
    expect(clientKey('::ffff:198.51.100.7')).toBe(clientKey('198.51.100.7'));
    expect(clientKey('2001:db8:1:2:aaaa::1')).toBe(clientKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'));
    expect(clientKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:3::1')).not.toBe(clientKey('2001:db8:1:2::1'));
    expect(clientKey('198.51.100.7')).not.toBe(clientKey('198.51.100.8'));
  });

  it('through the proxy: respelled or same-/64 addresses share a bucket; other /64s do not', async () => {
    const s = await standalone({ trustProxy: 1, rateLimit: { requestsPerSecond: 0.001, burst: 1 } });
    const get = (xff: string) => raw(s.port, { method: 'GET', headers: { 'x-forwarded-for': xff } }).then((r) => r.status);
    expect(await get('198.51.100.1')).toBe(200);
    expect(await get('::ffff:198.51.100.1')).toBe(429);
    expect(await get('2001:db8:0:1::1')).toBe(200);
    expect(await get('2001:0db8:0000:0001:0000:0000:0000:0002')).toBe(429);
    expect(await get('2001:db8:0:1:ffff:ffff:ffff:ffff')).toBe(429);
    expect(await get('2001:db8:0:2::1')).toBe(200);
  });

  it('warns (once) when TRUST_PROXY is set but a request has no x-forwarded-for', async () => {
    const s = await standalone({ trustProxy: 1 });
    expect((await raw(s.port, { method: 'GET' })).status).toBe(200);
    expect((await raw(s.port, { method: 'GET' })).status).toBe(200);
    const warnings = s.logs.filter((l) => l.includes('came without x-forwarded-for'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/TRUST_PROXY is set, but a request from (::ffff:)?127\.0\.0\.1 came without x-forwarded-for/);
    const quiet = await standalone({ trustProxy: 1 });
    await raw(quiet.port, { method: 'GET', headers: { 'x-forwarded-for': '203.0.113.5' } });
    expect(quiet.logs.some((l) => l.includes('x-forwarded-for'))).toBe(false);
    const untrusted = await standalone();
    await raw(untrusted.port, { method: 'GET' });
    expect(untrusted.logs.some((l) => l.includes('x-forwarded-for'))).toBe(false);
  });
});
