/**
 * A FluxClient whose worker never starts (script 404, load-time throw, not a flux worker) rejects with what went
 * wrong instead of leaving calls pending; a worker that answers the handshake is used normally.
 */
import * as Comlink from 'comlink';
import { describe, expect, it } from 'vitest';
import { FluxClient } from '../../../src/client/flux-client.js';
import { waitForWorkerStart } from '../../../src/client/worker-start.js';
import { WORKER_PING, WORKER_PONG, WORKER_PROTOCOL } from '../../../src/worker/handshake.js';
import { rejection } from '../../support/errors.js';

/** A Worker stand-in that does nothing unless a test makes it: stays silent, fails, or answers pings. */
class FakeWorker extends EventTarget {
  posted: unknown[] = [];
  terminated = false;
  constructor(private readonly onPost: (w: FakeWorker, data: unknown) => void = () => undefined) {
    super();
  }
  postMessage(data: unknown): void {
    this.posted.push(data);
    queueMicrotask(() => this.onPost(this, data));
  }
  terminate(): void {
    this.terminated = true;
  }
  reply(data: unknown): void {
    this.dispatchEvent(new MessageEvent('message', { data }));
  }
}
const asWorker = (w: EventTarget) => w as unknown as Worker;
const answering = (protocol = WORKER_PROTOCOL) =>
  new FakeWorker((w, data) => {
    if ((data as { type?: string }).type === WORKER_PING) w.reply({ type: WORKER_PONG, protocol });
  });

describe('waitForWorkerStart', () => {
  it('resolves when the worker answers the ping', async () => {
    const w = answering();
    await waitForWorkerStart(asWorker(w), 1000);
    expect(w.posted).toEqual([{ type: WORKER_PING }]);
  });

  it('rejects at once when the script cannot load (an error event without a message: 404)', async () => {
    const w = new FakeWorker((w) => w.dispatchEvent(new Event('error')));
    const t0 = Date.now();
    const e = await rejection(waitForWorkerStart(asWorker(w), 10_000));
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(e).toMatchObject({ code: 'runtime_error', details: { phase: 'worker_start' } });
    expect(e.message).toContain('worker failed to start: its script could not be loaded');
    expect(e.message).toContain("exposeFluxWorker() from 'flux-webgpu/worker'");
  });

  it('names the error a worker threw while loading', async () => {
    const w = new FakeWorker((w) => w.dispatchEvent(Object.assign(new Event('error'), { message: 'Uncaught SyntaxError: Unexpected token' })));
    const e = await rejection(waitForWorkerStart(asWorker(w), 10_000));
    expect(e.message).toContain('it threw while loading: Uncaught SyntaxError: Unexpected token');
  });

  it('times out on a worker that never answers (not a flux worker)', async () => {
    const e = await rejection(waitForWorkerStart(asWorker(new FakeWorker()), 50));
    expect(e).toMatchObject({ code: 'runtime_error', details: { timeoutMs: 50 } });
    expect(e.message).toContain('did not answer within 50 ms');
  });

  it('refuses a worker of another protocol version', async () => {
    const e = await rejection(waitForWorkerStart(asWorker(answering(WORKER_PROTOCOL + 1)), 1000));
    expect(e.message).toContain(`protocol ${WORKER_PROTOCOL + 1}`);
  });

  it('ignores other messages (Comlink replies) until the answer comes', async () => {
    const w = new FakeWorker((w) => {
      w.reply({ id: 'x', type: 'RETURN' });
      setTimeout(() => w.reply({ type: WORKER_PONG, protocol: WORKER_PROTOCOL }), 10);
    });
    await expect(waitForWorkerStart(asWorker(w), 1000)).resolves.toBeUndefined();
  });
});

describe('FluxClient start-up', () => {
  it('a call on a worker that 404s rejects instead of hanging', async () => {
    const client = await FluxClient.create({ worker: () => asWorker(new FakeWorker((w) => w.dispatchEvent(new Event('error')))) });
    const e = await rejection(client.info());
    expect(e.message).toContain('worker failed to start');
    // Every later call says the same, at once.
    expect((await rejection(client.listPacks())).message).toContain('worker failed to start');
  });

  it('a call on a silent worker rejects after startTimeoutMs', async () => {
    const client = await FluxClient.create({ worker: asWorker(new FakeWorker()) as Worker, startTimeoutMs: 50 });
    expect((await rejection(client.info())).message).toContain('did not answer within 50 ms');
  });

  it('calls go through once the worker has answered', async () => {
    // A real Comlink endpoint on a MessageChannel, answering the handshake the way exposeFluxWorker() does.
    const { port1, port2 } = new MessageChannel();
    port2.addEventListener('message', (e) => {
      if ((e.data as { type?: string }).type === WORKER_PING) port2.postMessage({ type: WORKER_PONG, protocol: WORKER_PROTOCOL });
    });
    Comlink.expose({ listPacks: async () => [{ id: 'p' }] }, port2);
    const worker = Object.assign(port1, { terminate: () => port1.close() });
    const client = await FluxClient.create({ worker: () => asWorker(worker) });
    await expect(client.listPacks()).resolves.toEqual([{ id: 'p' }]);
    client.terminate();
    port2.close();
  });

  it('refuses a worker option that is neither a Worker nor a function, naming the field', async () => {
    const e = await rejection(FluxClient.create({ worker: 'flux.worker.js' as unknown as Worker }));
    expect(e).toMatchObject({ code: 'invalid_input', field: 'worker' });
  });
});
