/**
 * The fake fal upstream (tests/support/fake-fal) driven by the real @fal-ai/client, so the fake is checked
 * against the client's actual wire behaviour (docs/fal-protocol.md §2) rather than against itself.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ApiError, createFalClient, ValidationError, type FalClient, type QueueStatus } from '@fal-ai/client';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { renderImage, toDataUri } from '../../support/fake-fal/images.js';
import { startFakeFal, type FakeFal } from '../../support/fake-fal/server.js';

const KEY = 'fake-key-id:fake-key-secret';
// Typed as plain strings so the client accepts deliberately invalid inputs.
const SCHNELL: string = 'fal-ai/flux/schnell';
const DEV: string = 'fal-ai/flux/dev';
const I2I: string = 'fal-ai/flux/dev/image-to-image';
const SCHNELL_REDUX: string = 'fal-ai/flux/schnell/redux';
const DEV_REDUX: string = 'fal-ai/flux/dev/redux';

interface FluxOutput {
  images: { url: string; width: number; height: number; content_type: string }[];
  timings: { inference: number };
  seed: number;
  has_nsfw_concepts: boolean[];
  prompt: string;
}

let fake: FakeFal;

beforeAll(async () => {
  fake = await startFakeFal({ key: KEY });
});
afterAll(() => fake.close());
beforeEach(() => fake.reset());

/** A real client whose fal URLs are rewritten to the fake, the original host passed as our proxy does. */
function falClient(key = KEY): FalClient {
  return createFalClient({
    credentials: key,
    suppressLocalCredentialsWarning: true,
    requestMiddleware: async (req) => {
      const target = new URL(req.url);
      return { ...req, url: `${fake.url}${target.pathname}${target.search}`, headers: { ...req.headers, 'x-fal-test-host': target.host } };
    },
  });
}

/** Fetches (or reads a data URI) and decodes an image. */
async function loadImage(url: string): Promise<{ width: number; height: number; contentType: string; bytes: Buffer; headers?: Headers }> {
  let bytes: Buffer;
  let contentType: string;
  let headers: Headers | undefined;
  if (url.startsWith('data:')) {
    const m = /^data:([^;]+);base64,(.*)$/.exec(url)!;
    contentType = m[1]!;
    bytes = Buffer.from(m[2]!, 'base64');
  } else {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    headers = res.headers;
    contentType = res.headers.get('content-type') ?? '';
    bytes = Buffer.from(await res.arrayBuffer());
  }
  const { width, height } = contentType === 'image/png' ? PNG.sync.read(bytes) : jpeg.decode(bytes, { useTArray: true });
  return { width, height, contentType, bytes, ...(headers ? { headers } : {}) };
}

async function control(path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${fake.url}/__fake/${path}`, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

function raw(path: string, init: RequestInit & { host?: string } = {}): Promise<Response> {
  const { host, ...rest } = init;
  return fetch(`${fake.url}${path}`, {
    ...rest,
    headers: { authorization: `Key ${KEY}`, ...(host ? { 'x-fal-test-host': host } : {}), ...(rest.headers as Record<string, string> | undefined) },
  });
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.fail('expected a rejection'),
    (e: unknown) => e,
  );
}

const upstream = (method: string, pathEnd: string) => fake.requests.filter((r) => r.method === method && r.path.endsWith(pathEnd));

describe('fake fal: queue protocol through @fal-ai/client', () => {
  it('subscribe (polling) walks IN_QUEUE → IN_PROGRESS → COMPLETED and returns real images', async () => {
    const updates: QueueStatus[] = [];
    const result = await falClient().subscribe(DEV, {
      input: { prompt: 'a red fox', num_inference_steps: 8 },
      logs: true,
      pollInterval: 5,
      onQueueUpdate: (s) => void updates.push(s),
    });

    expect(updates.map((s) => s.status)).toEqual(['IN_QUEUE', 'IN_QUEUE', 'IN_PROGRESS', 'IN_PROGRESS', 'COMPLETED']);
    expect(updates.slice(0, 2).map((s) => (s.status === 'IN_QUEUE' ? s.queue_position : -1))).toEqual([1, 0]);
    const messages = (s: QueueStatus) => (s.status === 'IN_QUEUE' ? [] : s.logs.map((l) => l.message));
    expect(messages(updates[2]!)).toEqual(['step 1/8', 'step 2/8']);
    expect(messages(updates[3]!)).toHaveLength(5);
    expect(messages(updates[4]!)).toHaveLength(8);
    const done = updates[4]!;
    expect(done.status === 'COMPLETED' && done.metrics).toEqual({ inference_time: 0.4 });
    if (done.status !== 'IN_QUEUE') expect(done.logs[0]).toMatchObject({ level: 'INFO', source: 'USER', timestamp: expect.any(String) });

    const [job] = fake.jobs;
    expect(result.requestId).toBe(job!.id);
    const data = result.data as FluxOutput;
    expect(data).toMatchObject({ prompt: 'a red fox', has_nsfw_concepts: [false], timings: { inference: 0.4 }, seed: expect.any(Number) });
    expect(data.images).toHaveLength(1);
    expect(data.images[0]).toMatchObject({ width: 1024, height: 768, content_type: 'image/jpeg' });
    expect(data.images[0]!.url).toBe(`${fake.url}/files/${job!.id}-0.jpg`);
    const image = await loadImage(data.images[0]!.url);
    expect(image).toMatchObject({ width: 1024, height: 768, contentType: 'image/jpeg' });
    expect(image.headers!.get('access-control-allow-origin')).toBe('*');
    expect(image.headers!.get('cross-origin-resource-policy')).toBe('cross-origin');

    // What the upstream saw: the key, the queue host, the priority header, logs=1 polls on the owner/alias path.
    const [submit] = upstream('POST', '/fal-ai/flux/dev');
    expect(submit).toMatchObject({ host: 'queue.fal.run', status: 200, headers: { authorization: `Key ${KEY}`, 'x-fal-queue-priority': 'normal' } });
    expect(JSON.parse(submit!.body)).toEqual({ prompt: 'a red fox', num_inference_steps: 8 });
    expect(job).toMatchObject({ endpoint: 'fal-ai/flux/dev', priority: 'normal', status: 'COMPLETED', statusPolls: 5 });
    const polls = upstream('GET', '/status');
    expect(polls.map((r) => [r.path, r.query.logs, r.status])).toEqual([
      ...Array(4).fill([`/fal-ai/flux/requests/${job!.id}/status`, '1', 202]),
      [`/fal-ai/flux/requests/${job!.id}/status`, '1', 200],
    ]);
  });

  it('status without logs sends logs: null; submit records the webhook; result before completion is a 400', async () => {
    fake.configure({ queuePolls: 0, progressPolls: 1 });
    const fal = falClient();
    const { request_id: id, queue_position } = await fal.queue.submit(SCHNELL, { input: { prompt: 'x' }, webhookUrl: 'https://example.com/hook', priority: 'low' });
    expect(queue_position).toBe(0);
    const early = await raw(`/fal-ai/flux/requests/${id}`);
    expect([early.status, await early.json()]).toEqual([400, { detail: 'Request is still in progress' }]);
    expect(await fal.queue.status(SCHNELL, { requestId: id, logs: false })).toMatchObject({ status: 'IN_PROGRESS', logs: null });
    expect(await fal.queue.status(SCHNELL, { requestId: id, logs: false })).toMatchObject({ status: 'COMPLETED', logs: null, metrics: { inference_time: 0.2 } });
    expect(fake.jobs[0]).toMatchObject({ webhook: 'https://example.com/hook', priority: 'low' });
    expect(upstream('POST', '/fal-ai/flux/schnell')[0]!.query).toEqual({ fal_webhook: 'https://example.com/hook' });
  });

  it('honours output_format, image_size, num_images and seed; same seed+prompt → same image, otherwise different', async () => {
    fake.configure({ queuePolls: 0, progressPolls: 0 });
    const fal = falClient();
    const run = async (input: Record<string, unknown>) => (await fal.subscribe(SCHNELL, { input, pollInterval: 5 })).data as FluxOutput;

    const a = await run({ prompt: 'p', output_format: 'png', image_size: 'portrait_4_3', num_images: 2, seed: 42 });
    expect(a.seed).toBe(42);
    expect(a.has_nsfw_concepts).toEqual([false, false]);
    expect(a.images.map((i) => [i.width, i.height, i.content_type, i.url.endsWith('.png')])).toEqual([
      [768, 1024, 'image/png', true],
      [768, 1024, 'image/png', true],
    ]);
    const [a0, a1] = await Promise.all(a.images.map((i) => loadImage(i.url)));
    expect([a0!.width, a0!.height, a0!.contentType]).toEqual([768, 1024, 'image/png']);
    expect(a0!.bytes.equals(a1!.bytes)).toBe(false);

    const again = await run({ prompt: 'p', output_format: 'png', image_size: 'portrait_4_3', seed: 42 });
    expect((await loadImage(again.images[0]!.url)).bytes.equals(a0!.bytes)).toBe(true);
    const other = await run({ prompt: 'q', output_format: 'png', image_size: 'portrait_4_3', seed: 42 });
    expect((await loadImage(other.images[0]!.url)).bytes.equals(a0!.bytes)).toBe(false);

    const custom = await run({ prompt: 'p', image_size: { width: 320, height: 200 } });
    expect(await loadImage(custom.images[0]!.url)).toMatchObject({ width: 320, height: 200, contentType: 'image/jpeg' });
  });

  it('mode: streaming gets every state over SSE, logs accumulated by the client', async () => {
    const updates: QueueStatus[] = [];
    const result = await falClient().subscribe(SCHNELL, {
      input: { prompt: 'stream me' },
      logs: true,
      mode: 'streaming',
      onQueueUpdate: (s) => void updates.push(s),
    });
    expect(updates.map((s) => s.status)).toEqual(['IN_QUEUE', 'IN_QUEUE', 'IN_PROGRESS', 'IN_PROGRESS', 'COMPLETED']);
    const last = updates.at(-1)!;
    expect(last.status !== 'IN_QUEUE' && last.logs.map((l) => l.message)).toEqual(['step 1/4', 'step 2/4', 'step 3/4', 'step 4/4']);
    expect((result.data as FluxOutput).images[0]).toMatchObject({ width: 1024, height: 768 });
    const [stream] = upstream('GET', '/status/stream');
    expect(stream).toMatchObject({ query: { logs: '1' }, status: 200, headers: { accept: expect.stringContaining('text/event-stream') } });
    expect(upstream('GET', '/status')).toHaveLength(0);
  });

  it('the raw SSE stream: event-stream type, keepalive comments, only new logs per event, ends after COMPLETED', async () => {
    fake.configure({ queuePolls: 1, progressPolls: 1, streamIntervalMs: 5 });
    const { request_id: id } = await falClient().queue.submit(DEV, { input: { prompt: 'x', num_inference_steps: 2 } });
    const res = await raw(`/fal-ai/flux/requests/${id}/status/stream?logs=1`);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('x-fal-request-id')).toBe(id);
    const text = await res.text();
    expect(text.startsWith(': keepalive\n\n')).toBe(true);
    const events = text
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => JSON.parse(e.slice(6)) as { status: string; queue_position?: number; logs?: { message: string }[] });
    expect(events.map((e) => [e.status, e.queue_position ?? e.logs?.map((l) => l.message)])).toEqual([
      ['IN_QUEUE', 0],
      ['IN_PROGRESS', ['step 1/2']],
      ['COMPLETED', ['step 2/2']],
    ]);
  });

  it('sync_mode returns data URIs and stores no files; the fal.run host answers directly', async () => {
    fake.configure({ queuePolls: 0, progressPolls: 0 });
    const fal = falClient();
    const queued = (await fal.subscribe(SCHNELL, { input: { prompt: 'inline', sync_mode: true, image_size: 'square' }, pollInterval: 5 })).data as FluxOutput;
    expect(queued.images[0]!.url).toMatch(/^data:image\/jpeg;base64,/);
    expect(await loadImage(queued.images[0]!.url)).toMatchObject({ width: 512, height: 512, contentType: 'image/jpeg' });
    const file = await fetch(`${fake.url}/files/${fake.jobs[0]!.id}-0.jpg`);
    expect(file.status).toBe(404);

    const sync = await fal.run(DEV, { input: { prompt: 'now', output_format: 'png', image_size: 'landscape_16_9' } });
    const data = sync.data as FluxOutput;
    expect(sync.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await loadImage(data.images[0]!.url)).toMatchObject({ width: 1024, height: 576, contentType: 'image/png' });
    expect(upstream('POST', '/fal-ai/flux/dev')[0]).toMatchObject({ host: 'fal.run', status: 200 });
    expect(fake.jobs).toHaveLength(1); // the sync call made no queue job
  });
});

describe('fake fal: validation at result time', () => {
  beforeEach(() => void fake.configure({ queuePolls: 0, progressPolls: 0 }));

  it('schnell with 13 steps: submit succeeds, the result is a 422 ValidationError', async () => {
    const err = await rejection(falClient().subscribe(SCHNELL, { input: { prompt: 'x', num_inference_steps: 13 }, pollInterval: 5 }));
    expect(err).toBeInstanceOf(ValidationError);
    const v = err as ValidationError;
    expect(v.status).toBe(422);
    expect(v.requestId).toBe(fake.jobs[0]!.id);
    expect(v.getFieldErrors('num_inference_steps')).toEqual([
      { loc: ['body', 'num_inference_steps'], msg: 'Input should be less than or equal to 12', type: 'less_than_equal', input: 13, ctx: { le: 12 } },
    ]);
    expect(upstream('POST', '/fal-ai/flux/schnell')[0]!.status).toBe(200);
    expect(upstream('GET', `/requests/${v.requestId}`).map((r) => r.status)).toEqual([422]);
    // An invalid job never runs, so it logs no steps.
    expect(await falClient().queue.status(SCHNELL, { requestId: v.requestId, logs: true })).toMatchObject({ status: 'COMPLETED', logs: [] });
    const res = await raw(`/fal-ai/flux/requests/${v.requestId}`);
    expect(res.headers.get('x-fal-retryable')).toBe('false');
  });

  it('reports a missing prompt, a redux call without image_url, and every bad field at once', async () => {
    const fal = falClient();
    const missing = (await rejection(fal.subscribe(DEV, { input: { num_images: 1 }, pollInterval: 5 }))) as ValidationError;
    expect(missing.getFieldErrors('prompt')).toEqual([{ loc: ['body', 'prompt'], msg: 'Field required', type: 'missing', input: { num_images: 1 } }]);

    const redux = (await rejection(fal.subscribe(SCHNELL_REDUX, { input: {}, pollInterval: 5 }))) as ValidationError;
    expect(redux.fieldErrors.map((e) => [e.loc, e.type])).toEqual([[['body', 'image_url'], 'missing']]);

    const many = (await rejection(
      fal.run(DEV, { input: { prompt: 'x', num_images: 5, guidance_scale: 25, output_format: 'webp', image_size: 'huge', num_inference_steps: 0, seed: 1.5 } }),
    )) as ValidationError;
    expect(many).toBeInstanceOf(ValidationError);
    expect(many.fieldErrors.map((e) => [e.loc.at(-1), e.type])).toEqual([
      ['num_inference_steps', 'greater_than_equal'],
      ['num_images', 'less_than_equal'],
      ['guidance_scale', 'less_than_equal'],
      ['seed', 'int_from_float'],
      ['output_format', 'literal_error'],
      ['image_size', 'literal_error'],
    ]);
    expect(many.getFieldErrors('output_format')[0]).toMatchObject({ msg: "Input should be 'jpeg' or 'png'", ctx: { expected: "'jpeg' or 'png'" } });

    const sizes = (await rejection(fal.run(DEV, { input: { prompt: 'x', image_size: { width: 0, height: 20000 } } }))) as ValidationError;
    expect(sizes.fieldErrors.map((e) => [e.loc, e.type])).toEqual([
      [['body', 'image_size', 'width'], 'greater_than'],
      [['body', 'image_size', 'height'], 'less_than_equal'],
    ]);

    const i2i = (await rejection(fal.run(I2I, { input: { prompt: 'x', image_url: 'ftp://nope', strength: 0 } }))) as ValidationError;
    expect(i2i.fieldErrors.map((e) => [e.loc.at(-1), e.type])).toEqual([
      ['image_url', 'url_parsing'],
      ['strength', 'greater_than_equal'],
    ]);
  });

  it('image-to-image and redux take a data URI; image-to-image echoes its size, redux has prompt ""', async () => {
    const source = toDataUri(renderImage({ width: 320, height: 240 }, 'source', 'png'), 'image/png');
    const fal = falClient();
    const i2i = (await fal.subscribe(I2I, { input: { prompt: 'make it blue', image_url: source, strength: 0.8 }, pollInterval: 5 })).data as FluxOutput;
    expect(i2i.prompt).toBe('make it blue');
    expect(await loadImage(i2i.images[0]!.url)).toMatchObject({ width: 320, height: 240 });

    const redux = (await fal.subscribe(DEV_REDUX, { input: { image_url: source, image_size: 'square' }, pollInterval: 5 })).data as FluxOutput;
    expect(redux.prompt).toBe('');
    expect(redux.images[0]).toMatchObject({ width: 512, height: 512 });

    const broken = (await rejection(fal.run(I2I, { input: { prompt: 'x', image_url: 'data:image/png;base64,AAAA' } }))) as ValidationError;
    expect(broken.getFieldErrors('image_url')[0]).toMatchObject({ type: 'image_load_error' });
  });
});

describe('fake fal: errors, cancels, storage', () => {
  it('a wrong or missing key is a 401 ApiError, not retried, and creates no job', async () => {
    const err = await rejection(falClient('wrong').subscribe(DEV, { input: { prompt: 'x' } }));
    expect(err).toBeInstanceOf(ApiError);
    expect(err).not.toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ status: 401, body: { detail: 'Unauthorized' } });
    expect(fake.requests).toHaveLength(1);
    expect(fake.jobs).toHaveLength(0);
    const bare = await fetch(`${fake.url}/fal-ai/flux/dev`, { method: 'POST', body: '{}' });
    expect([bare.status, bare.headers.get('content-type'), await bare.json()]).toEqual([401, 'application/json', { detail: 'Unauthorized' }]);
  });

  it('429 on submit twice, then the client retry succeeds', async () => {
    fake.configure({ queuePolls: 0, progressPolls: 0 });
    fake.next({ on: 'submit', status: 429, body: { detail: 'Too many concurrent requests' }, times: 2 });
    const started = Date.now();
    const result = await falClient().subscribe(SCHNELL, { input: { prompt: 'x' }, pollInterval: 5 });
    expect((result.data as FluxOutput).images).toHaveLength(1);
    expect(upstream('POST', '/fal-ai/flux/schnell').map((r) => r.status)).toEqual([429, 429, 200]);
    expect(Date.now() - started).toBeGreaterThan(2000); // 1 s + 2 s backoff, ±25% jitter
    expect(fake.jobs).toHaveLength(1);
  });

  it('cancelling a held job: 202, then COMPLETED with an error, the result is a 499, a second cancel is a 400', async () => {
    fake.configure({ hold: true });
    const fal = falClient();
    const { request_id: id, queue_position } = await fal.queue.submit(DEV, { input: { prompt: 'slow' } });
    expect(queue_position).toBe(2);
    for (let i = 0; i < 4; i++) {
      expect(await fal.queue.status(DEV, { requestId: id })).toMatchObject({ status: 'IN_QUEUE', queue_position: 2 });
    }
    await fal.queue.cancel(DEV, { requestId: id });
    const [cancel] = upstream('PUT', '/cancel');
    expect(cancel).toMatchObject({ path: `/fal-ai/flux/requests/${id}/cancel`, status: 202, headers: { authorization: `Key ${KEY}` } });
    expect(fake.jobs[0]).toMatchObject({ cancelled: true, status: 'COMPLETED' });

    expect(await fal.queue.status(DEV, { requestId: id, logs: true })).toMatchObject({ status: 'COMPLETED', error: 'Request cancelled', error_type: 'client_cancelled' });
    const result = await rejection(fal.queue.result(DEV, { requestId: id }));
    expect(result).toMatchObject({ status: 499, requestId: id, body: { detail: 'Request cancelled', error_type: 'client_cancelled' } });
    expect(await rejection(fal.queue.cancel(DEV, { requestId: id }))).toMatchObject({ status: 400, body: { status: 'ALREADY_COMPLETED' } });
  });

  it('a subscribe timeout on a held job sends the cancel upstream; release lets another held job finish', async () => {
    fake.next({ on: 'submit', hold: true });
    const fal = falClient();
    const err = await rejection(fal.subscribe(DEV, { input: { prompt: 'stuck' }, pollInterval: 10, timeout: 150 }));
    expect(String(err)).toMatch(/timed out/);
    await expect.poll(() => upstream('PUT', '/cancel').map((r) => r.status)).toEqual([202]);
    expect(fake.jobs[0]).toMatchObject({ cancelled: true, held: false });

    // The held outcome was consumed: this job runs normally until held by config, then released over HTTP.
    fake.configure({ hold: true, queuePolls: 1, progressPolls: 0 });
    const { request_id: id } = await fal.queue.submit(DEV, { input: { prompt: 'later' } });
    expect(await fal.queue.status(DEV, { requestId: id })).toMatchObject({ status: 'IN_QUEUE', queue_position: 1 });
    expect(await control('release', { id })).toEqual({ status: 200, json: { released: [id] } });
    const done = await fal.queue.subscribeToStatus(DEV, { requestId: id, pollInterval: 5 });
    expect(done.status).toBe('COMPLETED');
    expect((await fal.queue.result(DEV, { requestId: id })).data).toMatchObject({ prompt: 'later' });
  });

  it('unknown request ids and endpoints are 404s', async () => {
    const fal = falClient();
    expect(await rejection(fal.queue.status(DEV, { requestId: 'nope' }))).toMatchObject({ status: 404, body: { detail: 'Request not found' } });
    expect(await rejection(fal.queue.result(DEV, { requestId: 'nope' }))).toMatchObject({ status: 404, body: { detail: 'Request not found' } });
    expect(await rejection(fal.queue.cancel(DEV, { requestId: 'nope' }))).toMatchObject({ status: 404, body: { status: 'NOT_FOUND' } });
    expect(await rejection(fal.queue.submit('fal-ai/flux/pro', { input: { prompt: 'x' } }))).toMatchObject({ status: 404 });
    expect((await raw('/fal-ai/flux/dev')).status).toBe(405);
    expect(upstream('GET', '/status').map((r) => r.status)).toEqual([404]);
  });

  it('storage: initiate on rest.fal.ai, unauthenticated PUT with CORS preflight, GET back, usable as image_url', async () => {
    fake.configure({ queuePolls: 0, progressPolls: 0 });
    const fal = falClient();
    const png = renderImage({ width: 200, height: 150 }, 'upload', 'png');
    const fileUrl = await fal.storage.upload(new Blob([new Uint8Array(png)], { type: 'image/png' }));
    expect(fileUrl).toMatch(new RegExp(`^${fake.url}/files/up-[0-9a-f-]{36}$`));

    const [initiate] = upstream('POST', '/storage/upload/initiate');
    expect(initiate).toMatchObject({ host: 'rest.fal.ai', query: { storage_type: 'fal-cdn-v3' }, status: 200 });
    expect(JSON.parse(initiate!.body)).toMatchObject({ content_type: 'image/png', file_name: expect.any(String) });
    const [put] = upstream('PUT', '');
    expect(put!.path).toMatch(/^\/__upload\//);
    expect(put).toMatchObject({ host: null, status: 200, body: `[${png.length} bytes]` });
    expect(put!.headers.authorization).toBeUndefined();

    const back = await fetch(fileUrl);
    expect(back.headers.get('content-type')).toBe('image/png');
    expect(back.headers.get('access-control-allow-origin')).toBe('*');
    expect(Buffer.from(await back.arrayBuffer()).equals(png)).toBe(true);

    const preflight = await fetch(`${fake.url}${put!.path}`, {
      method: 'OPTIONS',
      headers: { origin: 'http://app.test', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('PUT');
    expect(preflight.headers.get('access-control-allow-headers')).toBe('content-type');

    // image-to-image reads the uploaded file's size.
    const out = (await fal.subscribe(I2I, { input: { prompt: 'x', image_url: fileUrl }, pollInterval: 5 })).data as FluxOutput;
    expect(out.images[0]).toMatchObject({ width: 200, height: 150 });
    expect((await fetch(`${fake.url}/files/up-unknown`)).status).toBe(404);
  });

  it('a dropped SSE stream rejects the streaming subscribe before COMPLETED; polling then finishes the job', async () => {
    fake.configure({ dropStream: true, streamIntervalMs: 5 });
    const fal = falClient();
    const seen: string[] = [];
    const err = await rejection(fal.subscribe(SCHNELL, { input: { prompt: 'x' }, mode: 'streaming', onQueueUpdate: (s) => void seen.push(s.status) }));
    expect(err).toBeInstanceOf(ApiError);
    expect(seen).toEqual(['IN_QUEUE', 'IN_QUEUE', 'IN_PROGRESS']);
    const id = fake.jobs[0]!.id;
    expect((await fal.queue.subscribeToStatus(SCHNELL, { requestId: id, pollInterval: 5 })).status).toBe('COMPLETED');

    // The same cut for one stream only, injected with next.
    fake.configure({ dropStream: false });
    fake.next({ on: 'stream', drop: true });
    const { request_id: other } = await fal.queue.submit(SCHNELL, { input: { prompt: 'y' } });
    const cut = await raw(`/fal-ai/flux/requests/${other}/status/stream?logs=0`);
    expect(await rejection(cut.text())).toBeInstanceOf(TypeError); // undici: "terminated"
    const whole = await raw(`/fal-ai/flux/requests/${other}/status/stream?logs=0`);
    expect(await whole.text()).toContain('"status":"COMPLETED"');
  });
});

describe('fake fal: control routes', () => {
  it('next: canned responses per request kind (user timeout, 500, text/plain 502, 503 retried on status)', async () => {
    fake.configure({ queuePolls: 0, progressPolls: 0 });
    const fal = falClient();
    expect(await control('next', { on: 'submit', status: 504, body: { detail: 'Start timeout', error_type: 'startup_timeout' }, headers: { 'x-fal-request-timeout-type': 'user' } })).toEqual({
      status: 200,
      json: { pending: 1 },
    });
    const timeout = await rejection(fal.queue.submit(DEV, { input: { prompt: 'x' } }));
    expect(timeout).toMatchObject({ status: 504, isUserTimeout: true });

    await control('next', { on: 'submit', status: 500 });
    expect(await rejection(fal.queue.submit(DEV, { input: { prompt: 'x' } }))).toMatchObject({ status: 500, body: { detail: 'Internal Server Error' } });
    expect(upstream('POST', '/fal-ai/flux/dev').map((r) => r.status)).toEqual([504, 500]); // neither retried

    const { request_id: id } = await fal.queue.submit(DEV, { input: { prompt: 'x' } });
    await control('next', [
      { on: 'result', status: 502, contentType: 'text/plain', body: 'Bad Gateway from the runner' },
      { on: 'status', status: 503, body: { detail: 'No runner', error_type: 'runner_scheduling_failure' }, headers: { 'x-fal-error-type': 'runner_scheduling_failure' } },
    ]);
    const text = await raw(`/fal-ai/flux/requests/${id}`);
    expect([text.status, text.headers.get('content-type'), await text.text()]).toEqual([502, 'text/plain', 'Bad Gateway from the runner']);
    // The client retries status on 503 (after ~1 s) and sees the real state.
    expect(await fal.queue.status(DEV, { requestId: id })).toMatchObject({ status: 'COMPLETED' });
    expect(upstream('GET', '/status').map((r) => r.status)).toEqual([503, 200]);

    // delayMs alone slows the next response without changing it.
    fake.next({ on: 'status', delayMs: 150 });
    const before = Date.now();
    expect(await fal.queue.status(DEV, { requestId: id })).toMatchObject({ status: 'COMPLETED' });
    expect(Date.now() - before).toBeGreaterThanOrEqual(140);

    expect(await control('next', { on: 'nothing', status: 500 })).toMatchObject({ status: 400 });
    expect(await control('next', { on: 'status' })).toMatchObject({ status: 400 });
  });

  it('configure, jobs, requests, reset and the health check', async () => {
    expect(await control('configure', { queuePolls: 0, progressPolls: 3 })).toEqual({
      status: 200,
      json: { queuePolls: 0, progressPolls: 3, hold: false, streamIntervalMs: 50, dropStream: false },
    });
    expect(await control('configure', { queuePolls: -1 })).toMatchObject({ status: 400 });
    expect(await control('configure', { bogus: 1 })).toMatchObject({ status: 400 });

    const health = await fetch(`${fake.url}/`);
    expect([health.status, await health.text()]).toEqual([200, 'ok']);

    const { request_id: id } = await falClient().queue.submit(SCHNELL, { input: { prompt: 'x' } });
    const jobs = await control('jobs');
    expect(jobs.json).toEqual([expect.objectContaining({ id, endpoint: 'fal-ai/flux/schnell', status: 'IN_QUEUE', queuePosition: 0, input: { prompt: 'x' } })]);
    const requests = (await control('requests')).json as { method: string; path: string; headers: Record<string, string> }[];
    // Control routes and the health check are not recorded.
    expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /fal-ai/flux/schnell']);
    expect(requests[0]!.headers.authorization).toBe(`Key ${KEY}`);

    expect(await control('reset', {})).toEqual({ status: 200, json: { ok: true } });
    expect(fake.jobs).toEqual([]);
    expect(fake.requests).toEqual([]);
    expect(fake.config.progressPolls).toBe(2);
    expect((await control('nope')).status).toBe(404);
  });

  it('main.ts serves on the given port, prints its URL and exits cleanly on SIGTERM', async () => {
    const child = spawn('node_modules/.bin/tsx', ['tests/support/fake-fal/main.ts', '--port', '0', '--key', 'cli-key'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', () => reject(new Error('main.ts exited early')));
      });
      const url = /^fake fal listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line)![1]!;
      expect(await (await fetch(`${url}/`)).text()).toBe('ok');
      expect((await fetch(`${url}/fal-ai/flux/dev`, { method: 'POST', headers: { authorization: 'Key cli-key' }, body: '{}' })).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
