/**
 * FalRemote end to end in Node: FalRemote → @fal-ai/client → our proxy (server/app.ts) → fake fal upstream.
 * Progress events, cancel on fal's side, input images (inline and uploaded), and every error mapping.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FalRemote, type RemoteProgressEvent } from '../../../src/remote/fal-remote.js';
import { createAppServer } from '../../../server/app.js';
import { rejection } from '../../support/errors.js';
import { startFakeFal, type FakeFal } from '../../support/fake-fal/server.js';

const KEY = 'unit-remote-key-5b1e';
let fake: FakeFal;
let proxy: Server;
let proxyUrl: string;
let keyNow: string | undefined = KEY;

beforeAll(async () => {
  fake = await startFakeFal({ key: KEY });
  proxy = await createAppServer({ proxy: { key: () => keyNow, upstreamOrigin: fake.url, log: false, rateLimit: false } });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/api/fal/proxy`;
});
afterAll(async () => {
  await new Promise((r) => proxy.close(r));
  await fake.close();
});
beforeEach(() => {
  fake.reset();
  keyNow = KEY;
});

function pngBlob(side: number, noise: boolean): Blob {
  const png = new PNG({ width: side, height: side });
  for (let i = 0; i < png.data.length; i++) png.data[i] = noise ? (Math.random() * 256) | 0 : (i * 37) & 0xff;
  return new Blob([new Uint8Array(PNG.sync.write(png))], { type: 'image/png' });
}

const remote = () => new FalRemote({ proxyUrl, pollIntervalMs: 10 });

describe('FalRemote', () => {
  it('reports submitted → queued (counting down) → in progress with logs → completed, and returns fal’s output', async () => {
    fake.configure({ queuePolls: 3, progressPolls: 2 });
    const events: RemoteProgressEvent[] = [];
    const r = await remote().subscribe('fal-ai/flux/dev', { prompt: 'fox', image_size: 'square', seed: 7, output_format: 'png' }, { onProgress: (e) => events.push(e) });
    expect(r.data).toMatchObject({ seed: 7, prompt: 'fox', has_nsfw_concepts: [false] });
    expect(r.data.images[0]).toMatchObject({ width: 512, height: 512, content_type: 'image/png' });
    expect(r.requestId).toMatch(/\S/);
    const stages = events.map((e) => e.stage);
    expect(stages[0]).toBe('submitted');
    expect(stages.at(-1)).toBe('completed');
    const positions = events.flatMap((e) => (e.stage === 'queued' ? [e.queuePosition] : []));
    expect(positions[0]).toBeGreaterThan(0);
    expect(positions).toEqual([...positions].sort((a, b) => b - a));
    const logs = events.flatMap((e) => (e.stage === 'in_progress' ? e.logs : []));
    expect(logs.length).toBeGreaterThan(0);
    expect(new Set(logs).size).toBe(logs.length); // each log line reported once
  });

  it('validates before sending: nothing reaches fal', async () => {
    const e = await rejection(remote().subscribe('fal-ai/flux/dev', { prompt: 'x', num_inference_steps: 51 }));
    expect(e).toMatchObject({ code: 'invalid_input', field: 'num_inference_steps' });
    expect(fake.requests).toHaveLength(0);
  });

  it('cancels on fal’s side when aborted while queued', async () => {
    fake.configure({ hold: true });
    const controller = new AbortController();
    const p = remote().subscribe('fal-ai/flux/dev', { prompt: 'x' }, { signal: controller.signal, onProgress: (e) => e.stage === 'queued' && controller.abort() });
    expect((await rejection(p)).code).toBe('cancelled');
    await expect.poll(() => fake.requests.some((r) => r.method === 'PUT' && r.path.endsWith('/cancel'))).toBe(true);
  });

  it('sends a small image file inline as a data: URI and uploads a large one through the proxy', async () => {
    const small = pngBlob(8, false);
    await remote().subscribe('fal-ai/flux/schnell/redux', { image_url: small });
    const first = fake.requests.find((r) => r.method === 'POST' && r.path === '/fal-ai/flux/schnell/redux')!;
    expect(JSON.parse(first.body).image_url).toBe(`data:image/png;base64,${Buffer.from(await small.arrayBuffer()).toString('base64')}`);

    fake.reset();
    const large = pngBlob(1500, true); // noise does not compress: > 7.5 MiB, over the data: URI budget
    expect(large.size).toBeGreaterThan(7.5 * 1024 * 1024);
    await remote().subscribe('fal-ai/flux/schnell/redux', { image_url: large });
    const initiate = fake.requests.find((r) => r.path === '/storage/upload/initiate');
    expect(initiate?.headers.authorization).toBe(`Key ${KEY}`);
    const submit = fake.requests.find((r) => r.method === 'POST' && r.path === '/fal-ai/flux/schnell/redux')!;
    expect(JSON.parse(submit.body).image_url).toMatch(new RegExp(`^${fake.url}/files/up-`));
  });

  it('maps fal’s 422 to the field it names', async () => {
    fake.next({ on: 'result', status: 422, body: { detail: [{ loc: ['body', 'image_size', 'width'], msg: 'too wide', type: 'less_than_equal' }] } });
    const e = await rejection(remote().subscribe('fal-ai/flux/dev', { prompt: 'x' }));
    expect(e).toMatchObject({ code: 'invalid_input', field: 'image_size.width' });
    expect(e.message).toBe('fal rejected the input for FLUX.1 [dev]: image_size.width: too wide');
  });

  it.each([
    [401, 'remote_auth', /fal refused the request \(HTTP 401: Unauthorized\): the proxy's FAL_KEY is missing, wrong/],
    [403, 'remote_auth', /HTTP 403/],
    [500, 'remote_unavailable', /fal could not run FLUX.1 \[dev\] \(HTTP 500/],
    [400, 'remote_error', /fal answered HTTP 400/],
  ])('explains HTTP %i on submit', async (status, code, message) => {
    fake.next({ on: 'submit', status, body: { detail: status === 401 ? 'Unauthorized' : 'nope' } });
    const e = await rejection(remote().subscribe('fal-ai/flux/dev', { prompt: 'x' }));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
  });

  it('explains a proxy without a key, and one that cannot reach fal', async () => {
    keyNow = undefined;
    const e = await rejection(remote().subscribe('fal-ai/flux/dev', { prompt: 'x' }));
    expect(e.code).toBe('remote_auth');
    expect(e.message).toMatch(/The fal proxy has no FAL_KEY configured/);
    expect(fake.requests).toHaveLength(0);

    const unreachable = await createAppServer({ proxy: { key: () => KEY, upstreamOrigin: 'http://127.0.0.1:9', log: false } });
    await new Promise<void>((r) => unreachable.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(unreachable.address() as AddressInfo).port}/api/fal/proxy`;
      // (the client retries 502 three times with backoff first: ~7 s)
      const e2 = await rejection(new FalRemote({ proxyUrl: url }).queue.cancel('fal-ai/flux/dev', { requestId: 'x' }));
      expect(e2.code).toBe('remote_unavailable');
    } finally {
      await new Promise((r) => unreachable.close(r));
    }
  }, 60_000);

  it('explains a missing proxy', async () => {
    const e = await rejection(new FalRemote({ proxyUrl: proxyUrl.replace('/api/fal/proxy', '/nothing-here') }).subscribe('fal-ai/flux/dev', { prompt: 'x' }));
    expect(e.code).toBe('remote_unavailable');
    expect(e.message).toMatch(/No fal proxy answered/);
  });

  it('mirrors @fal-ai/client’s queue methods', async () => {
    const r = remote();
    const { request_id } = await r.queue.submit('fal-ai/flux/schnell', { input: { prompt: 'q' } });
    let s = await r.queue.status('fal-ai/flux/schnell', { requestId: request_id });
    while (s.status !== 'COMPLETED') s = await r.queue.status('fal-ai/flux/schnell', { requestId: request_id });
    const out = await r.queue.result('fal-ai/flux/schnell', { requestId: request_id });
    expect(out.data.images).toHaveLength(1);
    expect((await rejection(r.queue.cancel('fal-ai/flux/schnell', { requestId: request_id }))).code).toBe('remote_error'); // ALREADY_COMPLETED
  });
});
