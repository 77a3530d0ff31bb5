/**
 * The worker API without a worker (web-llm's habit): the same object the Comlink worker exposes, on
 * onnxruntime-node's CPU EP and fake-indexeddb, serving the test pack over a local HTTP server.
 */
import 'fake-indexeddb/auto';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jpegJsEncoder } from '../../../src/cli/node-runtime.js';
import type { GenerateProgressEvent } from '../../../src/engine/flux-engine.js';
import type { OrtApi } from '../../../src/runtime/ort-api.js';
import { PackStore } from '../../../src/storage/indexeddb-pack-store.js';
import { createFluxWorkerApi, type FluxWorkerApi } from '../../../src/worker/flux-worker-api.js';
import { decodePng, TEST_PACK_DIR } from '../../support/fixtures.js';
import { startServer, type PackServer } from '../storage/pack-fixture.js';
import { rejection } from '../../support/errors.js';

let server: PackServer;
let api: FluxWorkerApi;
const small = { image_size: { width: 32, height: 32 }, num_inference_steps: 3, output_format: 'png' as const };

beforeAll(async () => {
  server = await startServer(TEST_PACK_DIR);
  api = createFluxWorkerApi({ ort: ort as unknown as OrtApi, target: 'cpu', store: new PackStore({ dbName: `worker-api-${Date.now()}` }), jpeg: jpegJsEncoder });
});
afterAll(() => server.close());

describe('worker API', () => {
  it('refuses to generate before a pack is loaded', async () => {
    expect((await rejection(api.generate({ prompt: 'x' }))).code).toBe('not_loaded');
    expect((await rejection(api.loadPack('flux-test-tiny'))).code).toBe('pack_not_installed');
  });

  it('installs over HTTP with monotone byte progress, then loads from IndexedDB', async () => {
    const loaded: number[] = [];
    const info = await api.installPack(server.baseUrl, (e) => {
      if (e.status === 'download') loaded.push(e.loadedBytes);
    });
    expect(info).toMatchObject({ id: 'flux-test-tiny', state: 'complete', testPack: true });
    expect(loaded.length).toBeGreaterThan(1);
    expect(loaded.every((v, i) => i === 0 || v >= loaded[i - 1]!)).toBe(true);
    expect(loaded.at(-1)).toBe(info.sizeBytes);
    const requestsAfterInstall = [...server.requests.values()].reduce((a, b) => a + b, 0);
    const model = await api.loadPack('flux-test-tiny');
    expect(model).toMatchObject({ packId: 'flux-test-tiny', testPack: true, hasTextEncoders: true });
    expect(Object.keys(model.components).sort()).toEqual(['clip', 't5', 'transformer', 'vae_decoder']);
    expect([...server.requests.values()].reduce((a, b) => a + b, 0)).toBe(requestsAfterInstall); // no network
    expect((await api.info()).loaded?.packId).toBe('flux-test-tiny');
  });

  it('generates with progress per stage and per step, returning fal-shaped bytes', async () => {
    const events: GenerateProgressEvent[] = [];
    const r = await api.generate({ prompt: 'a cat', seed: 3, ...small }, (e) => events.push(e));
    expect(events.map((e) => (e.stage === 'denoise' ? `step${e.step}` : e.stage))).toEqual(['encode_text', 'step1', 'step2', 'step3', 'decode', 'postprocess', 'encode_image']);
    expect(events.every((e, i) => i === 0 || e.elapsedMs >= events[i - 1]!.elapsedMs)).toBe(true);
    expect(r).toMatchObject({ seed: 3, prompt: 'a cat', has_nsfw_concepts: [false], safety: { ran: false } });
    expect(r.images[0]).toMatchObject({ width: 32, height: 32, contentType: 'image/png' });
    expect(decodePng(r.images[0]!.bytes).width).toBe(32);
    expect(r.timings.step_ms).toHaveLength(3);
  });

  it('cancels at a step boundary and stays usable', async () => {
    const p = api.generate({ prompt: 'a cat', seed: 4, ...small }, (e) => {
      if (e.stage === 'denoise' && e.step === 1) api.cancel();
    });
    const err = await rejection(p);
    expect(err.code).toBe('cancelled');
    const r = await api.generate({ prompt: 'a cat', seed: 4, ...small });
    expect(r.images).toHaveLength(1);
  });

  it('queues concurrent generations in order and validates before queueing', async () => {
    const order: number[] = [];
    const a = api.generate({ prompt: 'one', seed: 1, ...small }).then(() => order.push(1));
    const bad = rejection(api.generate({ prompt: 'two', num_images: 9 }));
    const c = api.generate({ prompt: 'three', seed: 3, ...small }).then(() => order.push(3));
    expect((await bad).field).toBe('num_images');
    await Promise.all([a, c]);
    expect(order).toEqual([1, 3]);
  });

  it('deleting the loaded pack unloads it', async () => {
    await api.deletePack('flux-test-tiny');
    expect(await api.listPacks()).toEqual([]);
    expect((await rejection(api.generate({ prompt: 'x' }))).code).toBe('not_loaded');
  });
});
