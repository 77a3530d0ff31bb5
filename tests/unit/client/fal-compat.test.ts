/**
 * `createFluxClient` as a drop-in for `@fal-ai/client` (docs/fal-compat.md), end to end in Node: the real client,
 * Comlink over a MessageChannel (what a Worker is to Comlink), and the real worker API on onnxruntime-node's CPU EP
 * with the test pack; remote calls go through our proxy to the fake fal upstream.
 */
import 'fake-indexeddb/auto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import * as Comlink from 'comlink';
import * as ort from 'onnxruntime-node';
import type { QueueStatus } from '@fal-ai/client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createAppServer } from '../../../server/app.js';
import { jpegJsEncoder } from '../../../src/cli/node-runtime.js';
import { createFluxClient, type FluxApiClient } from '../../../src/client/flux-api.js';
import { FluxClient } from '../../../src/client/flux-client.js';
import type { PreferenceStore, RoutePreference } from '../../../src/client/routing.js';
import { FluxError } from '../../../src/errors.js';
import type { OrtApi } from '../../../src/runtime/ort-api.js';
import { PackStore } from '../../../src/storage/indexeddb-pack-store.js';
import { registerErrorTransfer } from '../../../src/worker/error-transfer.js';
import { createFluxWorkerApi } from '../../../src/worker/flux-worker-api.js';
import { WORKER_PING, WORKER_PONG, WORKER_PROTOCOL } from '../../../src/worker/handshake.js';
import { rejection } from '../../support/errors.js';
import { startFakeFal, type FakeFal } from '../../support/fake-fal/server.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';
import { startServer, type PackServer } from '../storage/pack-fixture.js';

const KEY = 'unit-compat-key-7c2d';
let packServer: PackServer;
let fake: FakeFal;
let proxy: Server;
let proxyUrl: string;
let local: FluxClient;
let fal: FluxApiClient;

function memoryStore(initial: RoutePreference | null = null): PreferenceStore {
  let v = initial;
  return { get: () => v, set: (p) => void (v = p) };
}

beforeAll(async () => {
  packServer = await startServer(TEST_PACK_DIR);
  fake = await startFakeFal({ key: KEY });
  proxy = await createAppServer({ proxy: { key: () => KEY, upstreamOrigin: fake.url, log: false, rateLimit: false } });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/api/fal/proxy`;
  registerErrorTransfer();
  const worker = createFluxWorkerApi({ ort: ort as unknown as OrtApi, target: 'cpu', store: new PackStore({ dbName: `fal-compat-${Date.now()}` }), jpeg: jpegJsEncoder });
  local = await FluxClient.create({
    createWorker: () => {
      const { port1, port2 } = new MessageChannel();
      // What exposeFluxWorker() does in a real worker: answer the start-up handshake, serve the API over Comlink.
      port2.addEventListener('message', (e) => (e.data as { type?: string })?.type === WORKER_PING && port2.postMessage({ type: WORKER_PONG, protocol: WORKER_PROTOCOL }));
      Comlink.expose(worker, port2);
      port1.start();
      return Object.assign(port1, { terminate: () => port1.close() }) as unknown as Worker;
    },
  });
  await local.installPack(packServer.baseUrl);
  fal = await createFluxClient({ local, proxyUrl: null, preferenceStore: memoryStore('local') });
}, 120_000);
afterAll(async () => {
  packServer.close();
  await new Promise((r) => proxy.close(r));
  await fake.close();
});
beforeEach(() => fake.reset());

const small = { image_size: { width: 16, height: 16 }, num_inference_steps: 2, output_format: 'png' as const };

describe('local runs speak fal', () => {
  it("fal's schnell snippet: IN_QUEUE → IN_PROGRESS (with logs) → COMPLETED; onEnqueue gets the request id", async () => {
    const statuses: QueueStatus[] = [];
    let enqueued: string | undefined;
    const result = await fal.subscribe('fal-ai/flux/schnell', {
      input: { prompt: 'a photo of a cat sitting on a red sofa', seed: 1, ...small },
      logs: true,
      onEnqueue: (id) => (enqueued = id),
      onQueueUpdate: (update) => {
        statuses.push(update);
        if (update.status === 'IN_PROGRESS') update.logs.map((log) => log.message).forEach(() => undefined);
      },
    });
    expect(statuses[0]).toMatchObject({ status: 'IN_QUEUE', queue_position: 0, request_id: result.requestId });
    expect(statuses.at(-1)).toMatchObject({ status: 'COMPLETED', request_id: result.requestId });
    const inProgress = statuses.filter((s) => s.status === 'IN_PROGRESS');
    expect(inProgress.length).toBeGreaterThan(2);
    expect(statuses.map((s) => s.status).join(' ')).toMatch(/^IN_QUEUE( IN_PROGRESS)+ COMPLETED$/);
    const last = inProgress.at(-1) as Extract<QueueStatus, { status: 'IN_PROGRESS' }>;
    expect(last.logs.length).toBeGreaterThan(0);
    expect(last.logs.every((l) => l.level === 'INFO' && l.source === 'USER' && typeof l.message === 'string')).toBe(true);
    expect(enqueued).toBe(result.requestId);
    expect(result.data.images).toHaveLength(1);
    expect(result.route.target).toBe('local');
  });

  it('without logs: true the statuses carry no logs, as on fal', async () => {
    const statuses: QueueStatus[] = [];
    await fal.subscribe('fal-ai/flux/schnell', { input: { prompt: 'x', seed: 2, ...small }, onQueueUpdate: (s) => statuses.push(s) });
    expect(statuses.map((s) => s.status)).toContain('IN_PROGRESS');
    expect(statuses.every((s) => !('logs' in s) || s.logs.length === 0)).toBe(true);
  });

  it('run() returns the same result without queue updates', async () => {
    const a = await fal.run('fal-ai/flux/schnell', { input: { prompt: 'boats', seed: 9, ...small } });
    const b = await fal.subscribe('fal-ai/flux/schnell', { input: { prompt: 'boats', seed: 9, ...small } });
    expect(a.data.seed).toBe(9);
    const bytes = async (url: string) => Buffer.from(await (await fetch(url)).arrayBuffer()).toString('hex');
    expect(await bytes(a.data.images[0]!.url)).toBe(await bytes(b.data.images[0]!.url));
  });

  it('12 steps, fal’s maximum for schnell, generate locally; 13 are refused with fal’s range', async () => {
    const r = await fal.subscribe('fal-ai/flux/schnell', { input: { prompt: 'x', seed: 3, ...small, num_inference_steps: 12 } });
    expect((r.data.timings as { step_ms?: number[] }).step_ms).toHaveLength(12);
    const e = await rejection(fal.subscribe('fal-ai/flux/schnell', { input: { prompt: 'x', ...small, num_inference_steps: 13 } }));
    expect(e.message).toBe('num_inference_steps: must be an integer between 1 and 12, got 13');
  });

  it('an abort rejects with name AbortError (code cancelled), and the worker stays usable', async () => {
    const controller = new AbortController();
    const p = fal.subscribe('fal-ai/flux/schnell', {
      input: { prompt: 'x', seed: 4, ...small, num_inference_steps: 6 },
      abortSignal: controller.signal,
      onQueueUpdate: (s) => s.status === 'IN_PROGRESS' && controller.abort(),
    });
    const e = await rejection(p);
    expect(e).toBeInstanceOf(FluxError);
    expect([e.name, e.code]).toEqual(['AbortError', 'cancelled']);
    expect((await fal.subscribe('fal-ai/flux/schnell', { input: { prompt: 'x', seed: 4, ...small } })).data.images).toHaveLength(1);
  });

  it('timeout cancels the run and rejects with code timeout', async () => {
    const e = await rejection(fal.subscribe('fal-ai/flux/schnell', { input: { prompt: 'x', seed: 5, ...small, num_inference_steps: 12 }, timeout: 1 }));
    expect([e.code, e.field]).toEqual(['timeout', 'timeout']);
    expect(e.message).toMatch(/within timeout: 1 ms/);
    const bad = await rejection(fal.subscribe('fal-ai/flux/schnell', { input: { prompt: 'x' }, timeout: -5 }));
    expect([bad.code, bad.field]).toEqual(['invalid_input', 'timeout']);
  });

  it('refused input reads like fal’s ValidationError: status 422, body.detail and fieldErrors', async () => {
    const e = (await rejection(fal.subscribe('fal-ai/flux/schnell', { input: { prompt: 'x', guidance_scale: 0 } }))) as FluxError;
    expect(e.status).toBe(422);
    expect(e.fieldErrors).toEqual([{ loc: ['body', 'guidance_scale'], msg: 'must be a number from 1 to 20, got 0', type: 'value_error' }]);
    expect(e.body).toEqual({ detail: e.fieldErrors });
    const size = (await rejection(fal.subscribe('fal-ai/flux/schnell', { input: { prompt: 'x', image_size: { width: 8, height: 64 } } }))) as FluxError;
    expect(size.fieldErrors[0]!.loc).toEqual(['body', 'image_size', 'width']);
  });

  it('webhookUrl is refused with a clear error instead of being ignored', async () => {
    const e = await rejection(fal.subscribe('fal-ai/flux/schnell', { input: { prompt: 'x' }, webhookUrl: 'https://example.com/hook' }));
    expect([e.code, e.field]).toEqual(['invalid_input', 'webhookUrl']);
    expect(e.message).toMatch(/webhooks are not supported/);
  });
});

describe('remote runs through the proxy', () => {
  let remote: FluxApiClient;
  beforeAll(async () => {
    remote = await createFluxClient({ local: false, proxyUrl, preferenceStore: memoryStore() });
  });

  it('logs only with logs: true; onEnqueue gets fal’s request id; pollInterval is honoured', async () => {
    const withLogs: QueueStatus[] = [];
    let enqueued: string | undefined;
    const a = await remote.subscribe('fal-ai/flux/dev', { input: { prompt: 'x' }, logs: true, pollInterval: 20, onEnqueue: (id) => (enqueued = id), onQueueUpdate: (s) => withLogs.push(s) });
    expect(enqueued).toBe(a.requestId);
    expect(withLogs.some((s) => s.status === 'IN_PROGRESS' && s.logs.length > 0)).toBe(true);
    const noLogs: QueueStatus[] = [];
    await remote.subscribe('fal-ai/flux/dev', { input: { prompt: 'x' }, pollInterval: 20, onQueueUpdate: (s) => noLogs.push(s) });
    expect(noLogs.some((s) => s.status === 'IN_PROGRESS')).toBe(true);
    expect(noLogs.every((s) => !('logs' in s) || s.logs.length === 0)).toBe(true);
  });

  it('an abort rejects with name AbortError and still cancels on fal', async () => {
    fake.configure({ hold: true });
    const controller = new AbortController();
    const p = remote.subscribe('fal-ai/flux/dev', {
      input: { prompt: 'x' },
      pollInterval: 20,
      abortSignal: controller.signal,
      onQueueUpdate: () => controller.abort(),
    });
    const e = await rejection(p);
    expect(e.name).toBe('AbortError');
    await expect.poll(() => fake.requests.some((r) => r.method === 'PUT' && r.path.endsWith('/cancel'))).toBe(true);
  });

  it('fal’s own 422 keeps fal’s status, body and fieldErrors', async () => {
    // A request our validator accepts, which fal refuses anyway.
    fake.next({ on: 'result', status: 422, body: { detail: [{ loc: ['body', 'prompt'], msg: 'prompt is not allowed', type: 'value_error' }] } });
    const e = (await rejection(remote.subscribe('fal-ai/flux/dev', { input: { prompt: 'x' }, pollInterval: 20 }))) as FluxError;
    expect(e.status).toBe(422);
    expect(e.fieldErrors).toEqual([{ loc: ['body', 'prompt'], msg: 'prompt is not allowed', type: 'value_error' }]);
    expect((e.body as { detail: unknown[] }).detail).toHaveLength(1);
  });
});
