/**
 * A tiny stand-in for fal's queue API (docs/fal-protocol.md §6, only what the proxy tests need): records every
 * request it receives, answers fal-shaped JSON, and lets a test script the next reply or hold an SSE stream open.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  method: string;
  path: string;
  /** The raw query string including `?`, or ''. */
  search: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A scripted reply; `body` is sent as given. */
export interface Scripted {
  status: number;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
}

export interface SseControl {
  /** Resolves the hold: the rest of the events are sent and the stream ends. */
  release(): void;
  /** True once the fake has ended the stream. */
  ended: boolean;
  /** Resolves when the client side of the fake's response closed before the stream ended. */
  clientGone: Promise<void>;
}

export interface FakeUpstream {
  origin: string;
  requests: Recorded[];
  /** The key the fake accepts (`Authorization: Key <key>`), like fal's 401 otherwise. */
  expectedKey: string;
  /** Replies used (and removed) before the default routes. */
  script: Scripted[];
  /** The last status-stream request's control. */
  sse: SseControl | undefined;
  close(): Promise<void>;
}

const json = { 'content-type': 'application/json' };

export async function startFakeUpstream(expectedKey: string): Promise<FakeUpstream> {
  const state: FakeUpstream = {
    origin: '',
    requests: [],
    expectedKey,
    script: [],
    sse: undefined,
    close: async () => {},
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      state.requests.push({ method: req.method ?? '', path: url.pathname, search: url.search, headers: req.headers, body: Buffer.concat(chunks) });
      const scripted = state.script.shift();
      if (scripted) {
        res.writeHead(scripted.status, scripted.headers ?? json);
        res.end(scripted.body ?? '');
        return;
      }
      if (req.headers.authorization !== `Key ${state.expectedKey}`) {
        res.writeHead(401, json).end(JSON.stringify({ detail: 'Unauthorized' }));
        return;
      }
      route(req.method ?? '', url, res, state);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return state;
}

const urls = (id: string) => ({
  response_url: `https://queue.fal.run/fal-ai/flux/requests/${id}`,
  status_url: `https://queue.fal.run/fal-ai/flux/requests/${id}/status`,
  cancel_url: `https://queue.fal.run/fal-ai/flux/requests/${id}/cancel`,
});

function route(method: string, url: URL, res: ServerResponse, state: FakeUpstream): void {
  const send = (status: number, body: unknown, id?: string) => {
    res.writeHead(status, { ...json, ...(id ? { 'x-fal-request-id': id } : {}) });
    res.end(JSON.stringify(body));
  };
  const m = /^\/fal-ai\/flux\/requests\/([^/]+)(\/status|\/status\/stream|\/cancel)?$/.exec(url.pathname);
  if (method === 'POST' && !m) return send(200, { status: 'IN_QUEUE', request_id: 'req-1', ...urls('req-1'), queue_position: 0 }, 'req-1');
  if (method === 'POST' && url.pathname === '/storage/upload/initiate') return send(200, { upload_url: 'https://upload.example/x', file_url: 'https://v3.fal.media/files/x' });
  if (!m) return send(404, { detail: 'Not found' });
  const id = m[1]!;
  const logs = url.searchParams.get('logs') === '1' ? [{ message: 'step 1/4', level: 'INFO', source: 'USER', timestamp: '2026-01-01T00:00:00Z' }] : null;
  if (method === 'GET' && m[2] === '/status') return send(200, { status: 'COMPLETED', request_id: id, ...urls(id), logs, metrics: { inference_time: 1.5 } }, id);
  if (method === 'PUT' && m[2] === '/cancel') return send(202, { status: 'CANCELLATION_REQUESTED' });
  if (method === 'GET' && m[2] === '/status/stream') return stream(id, res, state);
  if (method === 'GET' && m[2] === undefined) {
    if (id === 'req-bad') {
      res.writeHead(422, { ...json, 'x-fal-request-id': id, 'x-fal-retryable': 'false' });
      res.end(JSON.stringify({ detail: [{ loc: ['body', 'num_inference_steps'], msg: 'Input should be less than or equal to 12', type: 'less_than_equal', input: 28, ctx: { le: 12 } }] }));
      return;
    }
    return send(200, { images: [{ url: 'https://v3.fal.media/files/a.jpg', width: 1024, height: 768, content_type: 'image/jpeg' }], timings: { inference: 1.5 }, seed: 42, has_nsfw_concepts: [false], prompt: 'a cat' }, id);
  }
  send(405, { detail: 'Method not allowed' });
}

function stream(id: string, res: ServerResponse, state: FakeUpstream): void {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let gone!: () => void;
  const control: SseControl = { release, ended: false, clientGone: new Promise<void>((r) => (gone = r)) };
  state.sse = control;
  res.on('close', () => {
    if (!control.ended) gone();
  });
  const event = (status: string, extra: object = {}) => `data: ${JSON.stringify({ status, request_id: id, ...urls(id), ...extra })}\n\n`;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-fal-request-id': id });
  res.write(event('IN_QUEUE', { queue_position: 0 }));
  void held.then(() => {
    if (res.destroyed) return;
    res.write(': keepalive\n\n');
    res.write(event('IN_PROGRESS', { logs: [] }));
    res.write(event('COMPLETED', { logs: [], metrics: { inference_time: 1.5 } }));
    control.ended = true;
    res.end();
  });
}
