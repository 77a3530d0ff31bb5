import { ApiError, createFalClient, ValidationError } from '@fal-ai/client';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createFalProxy, FAL_PROXY_ROUTE, type FalProxyOptions } from '../../../server/fal-proxy.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';

/** Distinctive, so any leak is found by a plain substring search. */
const KEY = 'fal-KEY-7c1e9d2b-aa55:s3cret-7f00ba11-LEAK-CANARY';
const QUEUE = 'https://queue.fal.run';

interface ProxyServer {
  url: string;
  logs: string[];
  close(): Promise<void>;
}

interface Reply {
  status: number;
  headers: Headers;
  body: Buffer;
  text: string;
  json: () => Record<string, unknown>;
}

let fake: FakeUpstream;
const servers: ProxyServer[] = [];
/** Every response any test saw, checked for the key at the end. */
const allResponses: { headers: string; body: string }[] = [];
const allLogs: string[] = [];

async function startProxy(options: FalProxyOptions = {}, mount?: (req: IncomingMessage, next: () => void) => void): Promise<ProxyServer> {
  const logs: string[] = [];
  const handler = createFalProxy({
    key: () => KEY,
    upstreamOrigin: fake.origin,
    // Off unless a test is about it: the suites send far more than a real client would.
    rateLimit: false,
    log: (line) => {
      logs.push(line);
      allLogs.push(line);
    },
    ...options,
  });
  const server: Server = createServer((req, res) => {
    if ((req.url ?? '').split('?')[0] !== FAL_PROXY_ROUTE) return void res.writeHead(404).end();
    if (mount) mount(req, () => void handler(req, res));
    else void handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const p: ProxyServer = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${FAL_PROXY_ROUTE}`,
    logs,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  servers.push(p);
  return p;
}

async function call(proxy: ProxyServer, method: string, target: string | undefined, init: { body?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { accept: 'application/json', 'content-type': 'application/json', ...init.headers };
  if (target !== undefined) headers['x-fal-target-url'] = target;
  const res = await fetch(proxy.url, { method, headers, ...(init.body !== undefined ? { body: init.body } : {}), redirect: 'manual' });
  const body = Buffer.from(await res.arrayBuffer());
  record(res.headers, body);
  const text = body.toString('utf8');
  return { status: res.status, headers: res.headers, body, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

function record(headers: Headers | IncomingHttpHeaders, body: Buffer | string): void {
  const h = headers instanceof Headers ? [...headers].map(([k, v]) => `${k}: ${v}`).join('\n') : JSON.stringify(headers);
  allResponses.push({ headers: h, body: body.toString() });
}

/** A request through node:http, for what fetch will not send (chunked bodies, latin-1 and repeated headers). */
function raw(
  proxy: ProxyServer,
  opts: { method: string; headers: Record<string, string | string[]>; chunks?: Buffer[]; chunkDelayMs?: number; endBody?: boolean },
): Promise<{ status: number; headers: IncomingHttpHeaders; text: string; chunksWritten: number }> {
  return new Promise((resolve, reject) => {
    let chunksWritten = 0;
    let responded = false;
    const req = httpRequest(proxy.url, { method: opts.method, headers: opts.headers });
    req.on('response', (res) => {
      responded = true;
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        record(res.headers, text);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, chunksWritten });
        req.destroy();
      });
      res.on('error', reject);
    });
    req.on('error', (e) => {
      if (!responded) reject(e);
    });
    const chunks = opts.chunks ?? [];
    const writeNext = () => {
      if (responded || req.destroyed) return;
      const c = chunks[chunksWritten];
      if (c === undefined) {
        if (opts.endBody !== false) req.end();
        return;
      }
      chunksWritten++;
      req.write(c);
      setTimeout(writeNext, opts.chunkDelayMs ?? 0);
    };
    if (chunks.length === 0 && opts.endBody !== false) req.end();
    else if (chunks.length === 0) req.flushHeaders();
    else writeNext();
  });
}

function expectRefused(r: Reply, status: number): void {
  expect(r.status, r.text).toBe(status);
  expect(r.headers.get('content-type')).toContain('application/json');
  const body = r.json();
  expect(typeof body.detail).toBe('string');
  expect((body.detail as string).length).toBeGreaterThan(10);
  expect(fake.requests).toHaveLength(0);
}

beforeAll(async () => {
  fake = await startFakeUpstream(KEY);
});

beforeEach(() => {
  fake.requests.length = 0;
  fake.script.length = 0;
  fake.expectedKey = KEY;
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await fake.close();
});

describe('forwarding allowed calls', () => {
  let proxy: ProxyServer;
  beforeAll(async () => {
    proxy = await startProxy();
  });

  it('forwards a submit: same body bytes, server key, x-fal-* headers; nothing else from the browser', async () => {
    const body = JSON.stringify({ prompt: 'a cat — ünïcødé', num_inference_steps: 4, seed: 7 });
    const r = await call(proxy, 'POST', `${QUEUE}/fal-ai/flux/schnell`, {
      body,
      headers: {
        authorization: 'Key stolen',
        cookie: 'session=abc',
        'user-agent': 'browser-ua/1.0',
        'x-fal-queue-priority': 'low',
        'x-fal-runner-hint': 'hint-1',
        'x-fal-client-proxy': 'spoofed',
        'x-fal-test-host': 'evil.example',
        'x-forwarded-for': '203.0.113.9',
        // What a browser sends on the page's own POST; the proxy compares it with Host and drops it.
        origin: new URL(proxy.url).origin,
      },
    });
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ status: 'IN_QUEUE', request_id: 'req-1' });
    expect(r.headers.get('x-fal-request-id')).toBe('req-1');
    expect(fake.requests).toHaveLength(1);
    const up = fake.requests[0]!;
    expect(up.method).toBe('POST');
    expect(up.path).toBe('/fal-ai/flux/schnell');
    expect(up.search).toBe('');
    expect(up.body.toString('utf8')).toBe(body);
    expect(up.headers.authorization).toBe(`Key ${KEY}`);
    expect(up.headers['content-type']).toBe('application/json');
    expect(up.headers.accept).toBe('application/json');
    expect(up.headers['x-fal-queue-priority']).toBe('low');
    expect(up.headers['x-fal-runner-hint']).toBe('hint-1');
    expect(up.headers['x-fal-client-proxy']).toBe('flux-webgpu');
    expect(up.headers['x-fal-test-host']).toBe('queue.fal.run');
    for (const h of ['x-fal-target-url', 'cookie', 'x-forwarded-for', 'origin']) expect(up.headers[h], h).toBeUndefined();
    expect(up.headers['user-agent']).not.toBe('browser-ua/1.0');
  });

  it('forwards every FLUX endpoint on queue.fal.run and fal.run, and a Bearer token never reaches fal', async () => {
    const paths = ['/fal-ai/flux/schnell', '/fal-ai/flux/dev', '/fal-ai/flux/schnell/redux', '/fal-ai/flux/dev/redux', '/fal-ai/flux/dev/image-to-image'];
    for (const host of ['queue.fal.run', 'fal.run']) {
      for (const path of paths) {
        const r = await call(proxy, 'POST', `https://${host}${path}`, { body: '{"prompt":"x"}', headers: { authorization: 'Bearer x' } });
        expect(r.status, `${host}${path}`).toBe(200);
      }
    }
    expect(fake.requests.map((q) => `${q.headers['x-fal-test-host']}${q.path}`)).toEqual(['queue.fal.run', 'fal.run'].flatMap((h) => paths.map((p) => h + p)));
    expect(fake.requests.every((q) => q.headers.authorization === `Key ${KEY}`)).toBe(true);
  });

  it('accepts an upper-case host (URL lower-cases it) and an explicit :443', async () => {
    expect((await call(proxy, 'POST', 'https://QUEUE.FAL.RUN/fal-ai/flux/dev', { body: '{}' })).status).toBe(200);
    expect((await call(proxy, 'POST', 'https://queue.fal.run:443/fal-ai/flux/dev', { body: '{}' })).status).toBe(200);
    expect(fake.requests.map((q) => q.headers['x-fal-test-host'])).toEqual(['queue.fal.run', 'queue.fal.run']);
  });

  it('forwards status (with logs), result and cancel without a body', async () => {
    const s = await call(proxy, 'GET', `${QUEUE}/fal-ai/flux/requests/req-1/status?logs=1`);
    expect(s.status).toBe(200);
    expect(s.json()).toMatchObject({ status: 'COMPLETED', logs: [{ message: 'step 1/4' }] });
    const s0 = await call(proxy, 'GET', `${QUEUE}/fal-ai/flux/requests/req-1/status?logs=0`);
    expect(s0.json()).toMatchObject({ logs: null });
    const result = await call(proxy, 'GET', `${QUEUE}/fal-ai/flux/requests/9b2c1f4e-77aa-4c1d-9e0f-123456789abc`);
    expect(result.status).toBe(200);
    expect(result.json()).toMatchObject({ seed: 42 });
    // A body on cancel (Express's adapter sends "{}") is not forwarded: cancel takes none.
    const cancel = await call(proxy, 'PUT', `${QUEUE}/fal-ai/flux/requests/req-1/cancel`, { body: '{}' });
    expect(cancel.status).toBe(202);
    expect(cancel.json()).toEqual({ status: 'CANCELLATION_REQUESTED' });
    expect(fake.requests.map((q) => `${q.method} ${q.path}${q.search} ${q.body.length}`)).toEqual([
      'GET /fal-ai/flux/requests/req-1/status?logs=1 0',
      'GET /fal-ai/flux/requests/req-1/status?logs=0 0',
      'GET /fal-ai/flux/requests/9b2c1f4e-77aa-4c1d-9e0f-123456789abc 0',
      'PUT /fal-ai/flux/requests/req-1/cancel 0',
    ]);
    expect(fake.requests.every((q) => q.headers['content-type'] === undefined)).toBe(true);
  });

  it('forwards the storage upload initiation to rest.fal.ai', async () => {
    const r = await call(proxy, 'POST', 'https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3', { body: '{"content_type":"image/png","file_name":"a.png"}' });
    expect(r.status).toBe(200);
    expect(fake.requests[0]).toMatchObject({ path: '/storage/upload/initiate', search: '?storage_type=fal-cdn-v3' });
    expect(fake.requests[0]!.headers['x-fal-test-host']).toBe('rest.fal.ai');
  });

  it.each([200, 202, 401, 422, 429, 500, 503, 504])('preserves upstream status %i and the body byte for byte', async (status) => {
    const body = Buffer.from(`{"detail":[{"loc":["body","x"],"msg":"é ✓ ${status}","type":"t"}],"n":${status}}\n  `);
    fake.script.push({ status, headers: { 'content-type': 'application/json', 'x-fal-request-id': 'req-9', 'x-fal-retryable': 'false', 'x-fal-error-type': 'runner_scheduling_failure' }, body });
    const r = await call(proxy, 'GET', `${QUEUE}/fal-ai/flux/requests/req-9`);
    expect(r.status).toBe(status);
    expect(r.body.equals(body)).toBe(true);
    expect(r.headers.get('x-fal-request-id')).toBe('req-9');
    expect(r.headers.get('x-fal-retryable')).toBe('false');
    expect(r.headers.get('x-fal-error-type')).toBe('runner_scheduling_failure');
  });

  it('passes a text/plain error through as is', async () => {
    fake.script.push({ status: 502, headers: { 'content-type': 'text/plain' }, body: 'Bad Gateway from fal' });
    const r = await call(proxy, 'GET', `${QUEUE}/fal-ai/flux/requests/req-1/status`);
    expect(r.status).toBe(502);
    expect(r.headers.get('content-type')).toBe('text/plain');
    expect(r.text).toBe('Bad Gateway from fal');
  });

  it('drops hop-by-hop, framing, cookie and CORS headers from the response; decodes a gzip body', async () => {
    const body = JSON.stringify({ images: [], seed: 1 });
    fake.script.push({
      status: 200,
      headers: {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'set-cookie': ['a=1', 'b=2'],
        'access-control-allow-origin': '*',
        'alt-svc': 'h3=":443"',
        'strict-transport-security': 'max-age=1',
        connection: 'keep-alive, x-hop',
        'x-hop': 'secret-hop',
        'keep-alive': 'timeout=99',
        'x-fal-request-id': 'req-1',
      },
      body: gzipSync(Buffer.from(body)),
    });
    const r = await call(proxy, 'GET', `${QUEUE}/fal-ai/flux/requests/req-1`);
    expect(r.status).toBe(200);
    expect(r.text).toBe(body);
    for (const h of ['content-encoding', 'set-cookie', 'access-control-allow-origin', 'alt-svc', 'strict-transport-security', 'x-hop']) {
      expect(r.headers.get(h), h).toBeNull();
    }
    // Node adds its own keep-alive to our connection; fal's must not come through.
    expect(r.headers.get('keep-alive')).not.toContain('99');
    expect(r.headers.get('x-fal-request-id')).toBe('req-1');
  });

  it('does not follow an upstream redirect (the key would go along); the 3xx reaches the client', async () => {
    fake.script.push({ status: 302, headers: { location: `${fake.origin}/elsewhere`, 'content-type': 'application/json' }, body: '{}' });
    const r = await call(proxy, 'GET', `${QUEUE}/fal-ai/flux/requests/req-1`);
    expect(r.status).toBe(302);
    expect(fake.requests).toHaveLength(1);
  });

  it('streams the SSE status stream event by event, with the browser accept header', async () => {
    const res = await withTimeout(
      fetch(proxy.url, { headers: { accept: 'text/event-stream', 'x-fal-target-url': `${QUEUE}/fal-ai/flux/requests/req-1/status/stream?logs=1` } }),
      5000,
      'the SSE response headers were not relayed before the upstream finished',
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    const reader = res.body!.getReader();
    const first = await withTimeout(reader.read(), 5000, 'the first SSE event was not relayed before the upstream finished');
    const firstText = new TextDecoder().decode(first.value);
    expect(firstText).toContain('"IN_QUEUE"');
    expect(fake.sse!.ended).toBe(false);
    expect(fake.requests[0]!.headers.accept).toBe('text/event-stream');
    expect(fake.requests[0]!.search).toBe('?logs=1');
    fake.sse!.release();
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toContain('"IN_PROGRESS"');
    expect(rest).toContain('"COMPLETED"');
    record(res.headers, firstText + rest);
  });

  it('aborts the upstream request when the client disconnects', async () => {
    const ac = new AbortController();
    const res = await fetch(proxy.url, {
      headers: { accept: 'text/event-stream', 'x-fal-target-url': `${QUEUE}/fal-ai/flux/requests/req-2/status/stream?logs=0` },
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    const sse = fake.sse!;
    ac.abort();
    await withTimeout(sse.clientGone, 5000, 'upstream stream was not closed after the client left');
    expect(sse.ended).toBe(false);
    sse.release();
    await waitFor(() => proxy.logs.some((l) => l.includes('/status/stream') && l.includes('client closed')));
  });

  it('logs one line per request: method host path -> status ms', async () => {
    proxy.logs.length = 0;
    await call(proxy, 'GET', `${QUEUE}/fal-ai/flux/requests/req-1/status?logs=0`);
    await call(proxy, 'GET', 'https://evil.example/x');
    await waitFor(() => proxy.logs.length === 2);
    expect(proxy.logs[0]).toMatch(/^\[fal-proxy\] GET queue\.fal\.run \/fal-ai\/flux\/requests\/req-1\/status -> 200 \d+ms$/);
    expect(proxy.logs[1]).toMatch(/^\[fal-proxy\] GET evil\.example \/x -> 403 \d+ms \(Host evil\.example is not allowed/);
  });
});

describe('refusals (never forwarded)', () => {
  let proxy: ProxyServer;
  beforeAll(async () => {
    proxy = await startProxy({ maxBodyBytes: 64 * 1024 });
  });

  it('400 without x-fal-target-url', async () => {
    const r = await call(proxy, 'POST', undefined, { body: '{}' });
    expectRefused(r, 400);
    expect(r.json()).toMatchObject({ error_type: 'proxy_bad_target' });
    expect(r.json().detail).toContain('x-fal-target-url');
  });

  it.each([
    ['not a url', 400],
    ['/fal-ai/flux/dev', 400],
    ['https://', 400],
    ['https://[::1/fal-ai/flux/dev', 400],
    ['https://queue.fal.run:99999/fal-ai/flux/dev', 400],
    ['http://queue.fal.run/fal-ai/flux/dev', 400],
    ['ftp://queue.fal.run/fal-ai/flux/dev', 400],
    ['javascript:alert(1)', 400],
    ['https:queue.fal.run/fal-ai/flux/dev', 400],
    ['https://queue.fal.run:8443/fal-ai/flux/dev', 400],
    ['https://queue.fal.run:80/fal-ai/flux/dev', 400],
    ['https://queue.fal.run@evil.example/fal-ai/flux/dev', 400],
    ['https://user:pass@queue.fal.run/fal-ai/flux/dev', 400],
    ['https://evil.example/fal-ai/flux/dev', 403],
    ['https://fal.run.evil.example/fal-ai/flux/dev', 403],
    ['https://queue.fal.run.evil.example/fal-ai/flux/dev', 403],
    ['https://evil.example/?https://queue.fal.run/fal-ai/flux/dev', 403],
    ['https://queue.fal.run./fal-ai/flux/dev', 403],
    ['https://fal.run./fal-ai/flux/dev', 403],
    ['https://queue.fal.ai/fal-ai/flux/dev', 403],
    ['https://fal.ai/fal-ai/flux/dev', 403],
    ['https://queue.falrun.com/fal-ai/flux/dev', 403],
    ['https://127.0.0.1/fal-ai/flux/dev', 403],
    ['https://[::1]/fal-ai/flux/dev', 403],
    ['https://queue%2efal%2erun/fal-ai/flux/dev', 400],
    ['https://queue.fal.run\\@evil.example/fal-ai/flux/dev', 400],
    ['https://queue.fal.run/fal-ai/flux/dev#frag', 400],
  ])('POST %s -> %i', async (target, status) => {
    expectRefused(await call(proxy, 'POST', target, { body: '{}' }), status);
  });

  it.each([
    ['POST', `${QUEUE}/fal-ai/flux-pro/v1.1`, 403],
    ['POST', `${QUEUE}/fal-ai/flux`, 403],
    ['POST', `${QUEUE}/fal-ai/flux/dev/`, 403],
    ['POST', `${QUEUE}/fal-ai/flux/dev/stream`, 403],
    ['POST', `${QUEUE}/fal-ai/flux-lora`, 403],
    ['POST', `${QUEUE}/fal-ai/fast-sdxl`, 403],
    ['POST', `${QUEUE}/Fal-AI/flux/dev`, 403],
    ['POST', `${QUEUE}/fal-ai/flux/dev/../../other`, 400],
    ['POST', `${QUEUE}/fal-ai/flux/dev/../x`, 400],
    ['POST', `${QUEUE}/fal-ai/flux/requests/x/../../dev`, 400],
    ['POST', `${QUEUE}/fal-ai/flux/dev/%2e%2e/%2e%2e/other`, 400],
    ['POST', `${QUEUE}/fal-ai/flux/dev/%2E%2E/x`, 400],
    ['POST', `${QUEUE}/fal-ai/flux/dev/./`, 400],
    ['POST', `${QUEUE}/fal-ai/flux/dev%2f..%2fother`, 403],
    ['POST', `${QUEUE}//fal-ai/flux/dev`, 403],
    ['POST', `${QUEUE}/fal-ai//flux/dev`, 403],
    ['POST', `${QUEUE}/fal-ai/flux\\dev`, 400],
    ['POST', `${QUEUE}/fal-ai/flux/%64ev`, 403],
    ['GET', `${QUEUE}/fal-ai/flux/requests/a/b/status`, 403],
    ['GET', `${QUEUE}/fal-ai/flux/requests/a%2Fb/status`, 403],
    ['GET', `${QUEUE}/fal-ai/flux/requests/../status`, 400],
    ['GET', `${QUEUE}/fal-ai/flux-pro/requests/abc/status`, 403],
    ['GET', `${QUEUE}/fal-ai/flux/requests/abc/logs`, 403],
    ['GET', `${QUEUE}/fal-ai/flux/requests/${'a'.repeat(200)}`, 403],
    ['GET', 'https://fal.run/fal-ai/flux/requests/abc/status', 403],
    ['POST', 'https://rest.fal.ai/tokens/', 403],
    ['POST', 'https://rest.fal.ai/storage/upload/initiate-multipart?storage_type=fal-cdn-v3', 403],
    ['GET', 'https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3', 403],
  ])('%s %s -> %i', async (method, target, status) => {
    expectRefused(await call(proxy, method, target, method === 'GET' ? {} : { body: '{}' }), status);
  });

  it.each([
    ['GET', `${QUEUE}/fal-ai/flux/dev`],
    ['PUT', `${QUEUE}/fal-ai/flux/dev`],
    ['POST', `${QUEUE}/fal-ai/flux/requests/abc/status`],
    ['POST', `${QUEUE}/fal-ai/flux/requests/abc`],
    ['PUT', `${QUEUE}/fal-ai/flux/requests/abc/status`],
    ['GET', `${QUEUE}/fal-ai/flux/requests/abc/cancel`],
    ['POST', `${QUEUE}/fal-ai/flux/requests/abc/cancel`],
  ])('403 for %s on %s (method not allowed for that path)', async (method, target) => {
    const r = await call(proxy, method, target, method === 'GET' ? {} : { body: '{}' });
    expectRefused(r, 403);
    expect(r.json()).toMatchObject({ error_type: 'proxy_forbidden' });
  });

  it.each(['DELETE', 'PATCH', 'OPTIONS', 'HEAD'])('405 for %s', async (method) => {
    const res = await fetch(proxy.url, { method, headers: { 'x-fal-target-url': `${QUEUE}/fal-ai/flux/requests/abc` } });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, POST, PUT');
    if (method !== 'HEAD') expect(await res.json()).toMatchObject({ error_type: 'proxy_method_not_allowed' });
    expect(fake.requests).toHaveLength(0);
  });

  it.each([
    ['POST', `${QUEUE}/fal-ai/flux/dev?fal_webhook=https%3A%2F%2Fevil.example%2Fhook`],
    ['POST', `${QUEUE}/fal-ai/flux/dev?fal_max_queue_length=3`],
    ['POST', `${QUEUE}/fal-ai/flux/dev?x=1`],
    ['GET', `${QUEUE}/fal-ai/flux/requests/abc/status?logs=2`],
    ['GET', `${QUEUE}/fal-ai/flux/requests/abc/status?logs=1&logs=0`],
    ['GET', `${QUEUE}/fal-ai/flux/requests/abc/status?logs=1&fal_webhook=x`],
    ['GET', `${QUEUE}/fal-ai/flux/requests/abc/status/stream?logs=1&x=1`],
    ['GET', `${QUEUE}/fal-ai/flux/requests/abc?logs=1`],
    ['PUT', `${QUEUE}/fal-ai/flux/requests/abc/cancel?force=1`],
    ['POST', 'https://rest.fal.ai/storage/upload/initiate'],
    ['POST', 'https://rest.fal.ai/storage/upload/initiate?storage_type=gcs'],
    ['POST', 'https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3&x=1'],
  ])('400 for query on %s %s', async (method, target) => {
    expectRefused(await call(proxy, method, target, method === 'GET' ? {} : { body: '{}' }), 400);
  });

  it('names fal_webhook in the refusal', async () => {
    const r = await call(proxy, 'POST', `${QUEUE}/fal-ai/flux/dev?fal_webhook=https%3A%2F%2Fx`, { body: '{}' });
    expect(r.json().detail).toContain('fal_webhook');
    // The unread body is not drained at any length: the connection is closed instead.
    expect(r.headers.get('connection')).toBe('close');
  });

  it('400 for a non-JSON submit body', async () => {
    const r = await call(proxy, 'POST', `${QUEUE}/fal-ai/flux/dev`, { body: 'prompt=cat' });
    expectRefused(r, 400);
    expect(r.json()).toMatchObject({ error_type: 'proxy_bad_body' });
  });

  it('400 for targets with spaces, non-ASCII bytes or repeated headers', async () => {
    for (const headers of [
      { 'x-fal-target-url': 'https://queue.fal.run/fal-ai/flux/d\u00e9v' },
      { 'x-fal-target-url': 'https://queue.fal.run/fal-ai/flux/dev https://evil.example/' },
      { 'x-fal-target-url': ['https://queue.fal.run/fal-ai/flux/dev', 'https://evil.example/x'] },
      { 'x-fal-target-url': `https://queue.fal.run/fal-ai/flux/dev?${'a'.repeat(5000)}` },
    ]) {
      const r = await raw(proxy, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, chunks: [Buffer.from('{}')] });
      expect(r.status).toBe(400);
    }
    expect(fake.requests).toHaveLength(0);
  });

  it('413 by content-length, before reading the body', async () => {
    const r = await raw(proxy, {
      method: 'POST',
      headers: { 'x-fal-target-url': `${QUEUE}/fal-ai/flux/dev`, 'content-type': 'application/json', 'content-length': String(10 * 1024 * 1024) },
      endBody: false,
    });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.text)).toMatchObject({ error_type: 'proxy_body_too_large' });
    expect(r.headers.connection).toBe('close');
    expect(fake.requests).toHaveLength(0);
  });

  it('413 while streaming a chunked body without a length, and stops reading', async () => {
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    const r = await raw(proxy, {
      method: 'POST',
      headers: { 'x-fal-target-url': `${QUEUE}/fal-ai/flux/dev`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      chunks: Array.from({ length: 64 }, () => chunk),
      chunkDelayMs: 10,
    });
    expect(r.status).toBe(413);
    expect(r.chunksWritten).toBeLessThan(64);
    expect(fake.requests).toHaveLength(0);
  });

  it('accepts a body right at the cap', async () => {
    const body = JSON.stringify({ prompt: 'x'.repeat(64 * 1024 - 13) });
    expect(Buffer.byteLength(body)).toBe(64 * 1024);
    const r = await call(proxy, 'POST', `${QUEUE}/fal-ai/flux/dev`, { body });
    expect(r.status).toBe(200);
    expect(fake.requests[0]!.body.length).toBe(64 * 1024);
  });

  it('does not echo the key even when the target contains it', async () => {
    const r = await call(proxy, 'POST', `${QUEUE}/fal-ai/${KEY}`, { body: '{}' });
    expectRefused(r, 403);
    expect(r.text).toContain('[redacted]');
    await waitFor(() => proxy.logs.some((l) => l.includes('[redacted]')));
  });
});

describe('the key', () => {
  const saved = { FAL_KEY: process.env.FAL_KEY, FAL_KEY_ID: process.env.FAL_KEY_ID, FAL_KEY_SECRET: process.env.FAL_KEY_SECRET };
  let envProxy: ProxyServer;
  beforeAll(async () => {
    // No `key` option: the env is read per request.
    envProxy = await startProxy({ key: () => undefined });
  });
  beforeEach(() => {
    delete process.env.FAL_KEY;
    delete process.env.FAL_KEY_ID;
    delete process.env.FAL_KEY_SECRET;
  });
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('fails closed with 500 proxy_key_missing when no key is configured, forwarding nothing', async () => {
    for (const [method, target] of [
      ['POST', `${QUEUE}/fal-ai/flux/dev`],
      ['GET', `${QUEUE}/fal-ai/flux/requests/abc/status?logs=0`],
      ['PUT', `${QUEUE}/fal-ai/flux/requests/abc/cancel`],
    ] as const) {
      const r = await call(envProxy, method, target, { ...(method === 'GET' ? {} : { body: '{}' }), headers: { authorization: 'Key stolen' } });
      expectRefused(r, 500);
      expect(r.json()).toEqual({ detail: 'The fal proxy has no FAL_KEY configured on the server', error_type: 'proxy_key_missing' });
    }
    process.env.FAL_KEY_ID = 'id-only';
    expectRefused(await call(envProxy, 'POST', `${QUEUE}/fal-ai/flux/dev`, { body: '{}' }), 500);
  });

  it('reads FAL_KEY, else FAL_KEY_ID:FAL_KEY_SECRET', async () => {
    process.env.FAL_KEY = fake.expectedKey = 'env-key-1';
    expect((await call(envProxy, 'POST', `${QUEUE}/fal-ai/flux/dev`, { body: '{}', headers: { authorization: 'Key stolen' } })).status).toBe(200);
    expect(fake.requests[0]!.headers.authorization).toBe('Key env-key-1');
    delete process.env.FAL_KEY;
    process.env.FAL_KEY_ID = 'kid';
    process.env.FAL_KEY_SECRET = 'ksecret';
    fake.expectedKey = 'kid:ksecret';
    expect((await call(envProxy, 'GET', `${QUEUE}/fal-ai/flux/requests/abc/status?logs=0`)).status).toBe(200);
    expect(fake.requests[1]!.headers.authorization).toBe('Key kid:ksecret');
  });

  it('refuses a key that cannot go in a header without echoing it', async () => {
    const p = await startProxy({ key: () => 'bad key\twith spaces' });
    const r = await call(p, 'POST', `${QUEUE}/fal-ai/flux/dev`, { body: '{}' });
    expectRefused(r, 500);
    expect(r.json()).toMatchObject({ error_type: 'proxy_key_invalid' });
    expect(r.text).not.toContain('with spaces');
  });

  it('passes fal 401 through when the key is wrong', async () => {
    const p = await startProxy({ key: () => 'wrong-key' });
    const r = await call(p, 'POST', `${QUEUE}/fal-ai/flux/dev`, { body: '{}' });
    expect(r.status).toBe(401);
    expect(r.json()).toEqual({ detail: 'Unauthorized' });
  });
});

describe('rate limiting', () => {
  it('gives 429 with retry-after once the bucket is empty, and recovers', async () => {
    const p = await startProxy({ rateLimit: { requestsPerSecond: 10, burst: 3 } });
    const status = `${QUEUE}/fal-ai/flux/requests/abc/status?logs=0`;
    for (let i = 0; i < 3; i++) expect((await call(p, 'GET', status)).status).toBe(200);
    const limited = await call(p, 'GET', status);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(limited.json()).toMatchObject({ error_type: 'proxy_rate_limited' });
    expect(fake.requests).toHaveLength(3);
    await sleep(150);
    expect((await call(p, 'GET', status)).status).toBe(200);
  });

  it('limits submits separately from polling', async () => {
    const p = await startProxy({ rateLimit: { submitsPerMinute: 600, submitBurst: 2 } });
    const submit = () => call(p, 'POST', `${QUEUE}/fal-ai/flux/dev`, { body: '{}' });
    expect((await submit()).status).toBe(200);
    expect((await submit()).status).toBe(200);
    const limited = await submit();
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Polling is not affected by the submit bucket.
    expect((await call(p, 'GET', `${QUEUE}/fal-ai/flux/requests/abc/status?logs=0`)).status).toBe(200);
    await sleep(150);
    expect((await submit()).status).toBe(200);
    expect(fake.requests.filter((q) => q.method === 'POST')).toHaveLength(3);
  });

  it('the defaults allow several tabs polling every 500 ms', async () => {
    const p = await startProxy({ rateLimit: {} });
    const replies = await Promise.all(Array.from({ length: 40 }, () => call(p, 'GET', `${QUEUE}/fal-ai/flux/requests/abc/status?logs=0`)));
    expect(replies.every((r) => r.status === 200)).toBe(true);
  });

  it('keys clients by x-forwarded-for only when trustProxy is set', async () => {
    const opts = { rateLimit: { requestsPerSecond: 0.001, burst: 1 } };
    const status = `${QUEUE}/fal-ai/flux/requests/abc/status?logs=0`;
    const untrusted = await startProxy(opts);
    expect((await call(untrusted, 'GET', status, { headers: { 'x-forwarded-for': '198.51.100.1' } })).status).toBe(200);
    expect((await call(untrusted, 'GET', status, { headers: { 'x-forwarded-for': '198.51.100.2' } })).status).toBe(429);
    const trusted = await startProxy({ ...opts, trustProxy: true });
    expect((await call(trusted, 'GET', status, { headers: { 'x-forwarded-for': '198.51.100.1' } })).status).toBe(200);
    expect((await call(trusted, 'GET', status, { headers: { 'x-forwarded-for': '198.51.100.2' } })).status).toBe(200);
    // The client-supplied left part is ignored; the entry our (one) proxy appended counts.
    expect((await call(trusted, 'GET', status, { headers: { 'x-forwarded-for': '10.9.9.9, 198.51.100.1' } })).status).toBe(429);
  });

  it('rejects bad limits at creation', () => {
    expect(() => createFalProxy({ rateLimit: { burst: 0 }, log: false })).toThrow(RangeError);
    expect(() => createFalProxy({ rateLimit: { submitsPerMinute: -1 }, log: false })).toThrow(RangeError);
    expect(() => createFalProxy({ maxBodyBytes: -5, log: false })).toThrow(RangeError);
    expect(() => createFalProxy({ upstreamOrigin: 'http://127.0.0.1:1/path', log: false })).toThrow(/bare http/);
  });
});

describe('robustness', () => {
  it('answers 502 proxy_upstream_unreachable when fal cannot be reached', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const p = await startProxy({ upstreamOrigin: `http://127.0.0.1:${port}` });
    const r = await call(p, 'GET', `${QUEUE}/fal-ai/flux/requests/abc/status?logs=0`);
    expect(r.status).toBe(502);
    expect(r.json()).toMatchObject({ error_type: 'proxy_upstream_unreachable' });
    expect(r.json().detail).toMatch(/^fal is unreachable: /);
  });

  it('cuts the response when the upstream dies mid-stream', async () => {
    const p = await startProxy();
    const res = await fetch(p.url, { headers: { accept: 'text/event-stream', 'x-fal-target-url': `${QUEUE}/fal-ai/flux/requests/req-3/status/stream?logs=0` } });
    const reader = res.body!.getReader();
    await reader.read();
    await fake.close();
    await expect(
      (async () => {
        for (;;) if ((await reader.read()).done) return 'clean end';
      })(),
    ).rejects.toThrow();
    fake = await startFakeUpstream(KEY);
  });

  it('survives hostile input and keeps answering', async () => {
    const p = await startProxy();
    const port = Number(new URL(p.url).port);
    const garbage = [
      'GARBAGE\r\n\r\n',
      'POST /api/fal/proxy HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
      'POST /api/fal/proxy HTTP/1.1\r\nHost: x\r\nx-fal-target-url: https://queue.fal.run/fal-ai/flux/dev\r\nContent-Length: 100\r\n\r\n{"partial":',
      'GET /api/fal/proxy HTTP/1.1\r\nHost: x\r\nx-fal-target-url: https://queue.fal.run/fal-ai/flux/requests/a/status\r\nx-fal-target-url: https://evil.example/\r\n\r\n',
      'GET /api/fal/proxy HTTP/1.1\r\nHost: x\r\nx-fal-target-url: \r\n\r\n',
      'POST /api/fal/proxy HTTP/1.1\r\nHost: x\r\nx-fal-target-url: https://queue.fal.run/fal-ai/flux/dev\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      `GET /api/fal/proxy HTTP/1.1\r\nHost: x\r\nx-fal-target-url: https://queue.fal.run/${'%'.repeat(3000)}\r\n\r\n`,
    ];
    for (const g of garbage) {
      await new Promise<void>((resolve) => {
        const s = connect(port, '127.0.0.1', () => s.write(g));
        s.on('data', () => s.destroy());
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        setTimeout(() => s.destroy(), 300);
      });
    }
    // A logger that throws must not break anything either.
    const q = await startProxy({
      log: () => {
        throw new Error('logger broke');
      },
    });
    expect((await call(q, 'GET', `${QUEUE}/fal-ai/flux/requests/abc/status?logs=0`)).status).toBe(200);
    expect((await call(p, 'GET', `${QUEUE}/fal-ai/flux/requests/abc/status?logs=0`)).status).toBe(200);
    expect(fake.requests.every((r) => r.headers['x-fal-test-host'] === 'queue.fal.run' && r.path.startsWith('/fal-ai/flux/requests/'))).toBe(true);
  });

  it('drops x-fal-* header values that are not ASCII instead of failing the request', async () => {
    const p = await startProxy();
    const r = await raw(p, {
      method: 'POST',
      headers: { 'x-fal-target-url': `${QUEUE}/fal-ai/flux/dev`, 'content-type': 'application/json', 'x-fal-runner-hint': 'h\u00e9', 'x-fal-queue-priority': 'low' },
      chunks: [Buffer.from('{}')],
    });
    expect(r.status).toBe(200);
    expect(fake.requests[0]!.headers['x-fal-runner-hint']).toBeUndefined();
    expect(fake.requests[0]!.headers['x-fal-queue-priority']).toBe('low');
  });

  it('works behind a body parser that already consumed the stream (express.json style)', async () => {
    const p = await startProxy({}, (req, next) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        (req as IncomingMessage & { body?: unknown }).body = JSON.parse(Buffer.concat(parts).toString() || '{}');
        next();
      });
    });
    const r = await call(p, 'POST', `${QUEUE}/fal-ai/flux/dev`, { body: '{"prompt":"parsed"}' });
    expect(r.status).toBe(200);
    expect(JSON.parse(fake.requests[0]!.body.toString())).toEqual({ prompt: 'parsed' });
  });

  it('warns once that the upstream override is active', async () => {
    const lines: string[] = [];
    const h = createFalProxy({ upstreamOrigin: fake.origin, log: (l) => lines.push(l), key: () => KEY, isAuthenticated: () => true });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/WARNING: upstream override active.*For tests only/);
    expect(typeof h).toBe('function');
    const saved = process.env.FAL_TEST_UPSTREAM_ORIGIN;
    process.env.FAL_TEST_UPSTREAM_ORIGIN = fake.origin;
    try {
      const envLines: string[] = [];
      createFalProxy({ log: (l) => envLines.push(l) });
      expect(envLines[0]).toContain(fake.origin);
    } finally {
      if (saved === undefined) delete process.env.FAL_TEST_UPSTREAM_ORIGIN;
      else process.env.FAL_TEST_UPSTREAM_ORIGIN = saved;
    }
  });
});

describe('end to end with the stock @fal-ai/client', () => {
  const savedKey = process.env.FAL_KEY;
  let proxy: ProxyServer;
  beforeAll(async () => {
    // The client must hold no credentials (as in the browser).
    delete process.env.FAL_KEY;
    proxy = await startProxy();
  });
  afterAll(() => {
    if (savedKey !== undefined) process.env.FAL_KEY = savedKey;
  });
  const client = () => createFalClient({ proxyUrl: { url: proxy.url, when: 'always' } });

  it('submit, status, result, cancel', async () => {
    const fal = client();
    const submitted = await fal.queue.submit('fal-ai/flux/dev', { input: { prompt: 'a cat', num_inference_steps: 28 } });
    expect(submitted).toMatchObject({ status: 'IN_QUEUE', request_id: 'req-1' });
    const status = await fal.queue.status('fal-ai/flux/dev', { requestId: 'req-1', logs: true });
    expect(status).toMatchObject({ status: 'COMPLETED', logs: [{ message: 'step 1/4' }] });
    const result = await fal.queue.result('fal-ai/flux/dev', { requestId: 'req-1' });
    expect(result.requestId).toBe('req-1');
    expect(result.data).toMatchObject({ seed: 42, images: [{ width: 1024, height: 768 }] });
    await fal.queue.cancel('fal-ai/flux/dev', { requestId: 'req-1' });

    expect(fake.requests.map((q) => `${q.method} ${q.path}${q.search}`)).toEqual([
      'POST /fal-ai/flux/dev',
      'GET /fal-ai/flux/requests/req-1/status?logs=1',
      'GET /fal-ai/flux/requests/req-1',
      'PUT /fal-ai/flux/requests/req-1/cancel',
    ]);
    expect(JSON.parse(fake.requests[0]!.body.toString())).toEqual({ prompt: 'a cat', num_inference_steps: 28 });
    expect(fake.requests[0]!.headers['x-fal-queue-priority']).toBe('normal');
    expect(fake.requests.every((q) => q.headers.authorization === `Key ${KEY}`)).toBe(true);
  });

  it('streams status updates through the proxy (mode: streaming)', async () => {
    const fal = client();
    const updates: string[] = [];
    const done = fal.queue.subscribeToStatus('fal-ai/flux/dev', {
      requestId: 'req-4',
      mode: 'streaming',
      logs: true,
      onQueueUpdate: (u) => {
        updates.push(u.status);
        if (u.status === 'IN_QUEUE') fake.sse?.release();
      },
    });
    const final = await withTimeout(done, 10_000, 'stream did not complete');
    expect(final.status).toBe('COMPLETED');
    expect(updates).toEqual(['IN_QUEUE', 'IN_PROGRESS', 'COMPLETED']);
  });

  it('a 422 result surfaces as ValidationError with field errors', async () => {
    const fal = client();
    const err = await fal.queue.result('fal-ai/flux/schnell', { requestId: 'req-bad' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    const v = err as ValidationError;
    expect(v.status).toBe(422);
    expect(v.fieldErrors).toHaveLength(1);
    expect(v.getFieldErrors('num_inference_steps')[0]).toMatchObject({ type: 'less_than_equal', ctx: { le: 12 } });
    expect(fake.requests).toHaveLength(1);
  });

  it('proxy refusals surface as ApiError with our detail', async () => {
    const fal = client();
    const err = await fal.queue.submit('fal-ai/fast-sdxl', { input: { prompt: 'x' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError<{ error_type: string }>).status).toBe(403);
    expect((err as ApiError<{ error_type: string }>).body.error_type).toBe('proxy_forbidden');
    expect(fake.requests).toHaveLength(0);
  });
});

describe('key hygiene', () => {
  it('the key never appeared in any response or log line', async () => {
    expect(allResponses.length).toBeGreaterThan(100);
    expect(allLogs.length).toBeGreaterThan(100);
    const secret = KEY.slice(KEY.indexOf(':') + 1);
    for (const r of allResponses) {
      expect(r.headers).not.toContain(secret);
      expect(r.body).not.toContain(secret);
    }
    for (const l of allLogs) expect(l).not.toContain(secret);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('waitFor timed out');
    await sleep(10);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]).finally(() => clearTimeout(timer));
}
