/**
 * A fake fal.ai upstream for tests: the HTTP layer over the job state machine (jobs.ts), the fake model
 * (model.ts) and fault injection (outcomes.ts). It imitates queue.fal.run, fal.run and rest.fal.ai storage on
 * one origin; the host a request was meant for comes in `x-fal-test-host` (set by our proxy's test origin
 * override, or by a test's client middleware), defaulting to queue.fal.run. Contract: docs/fal-protocol.md §6.
 */
import { randomUUID } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { JobStore, phaseOf, queuePosition, requestUrls, statusBody } from './jobs.js';
import { inferenceSeconds, plannedSteps, runModel, type ModelReply, type StoredFile } from './model.js';
import { OutcomeQueue, parseConfig, parseOutcome } from './outcomes.js';
import { DEFAULT_CONFIG, type FakeFalConfig, type JobView, type Outcome, type OutcomeTarget, type RecordedRequest } from './types.js';
import { isFluxEndpoint, type FluxEndpoint } from './validate.js';

export type { FakeFalConfig, JobView, Outcome, OutcomeTarget, RecordedRequest } from './types.js';

export interface FakeFalOptions {
  /** Requests must carry `authorization: Key <key>`. */
  key: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Initial config; `reset()` returns to it. */
  config?: Partial<FakeFalConfig>;
}

export interface FakeFal {
  /** Origin, e.g. `http://127.0.0.1:4180`. */
  readonly url: string;
  /** Everything received except the control routes and the health check, oldest first (live array). */
  readonly requests: readonly RecordedRequest[];
  /** Snapshot of all jobs. */
  readonly jobs: JobView[];
  readonly config: Readonly<FakeFalConfig>;
  /** Queues injected outcomes (same as `POST /__fake/next`); throws on an invalid one. */
  next(outcome: Outcome | Outcome[]): void;
  /** Merges into the config (same as `POST /__fake/configure`); affects jobs submitted afterwards. */
  configure(config: Partial<FakeFalConfig>): FakeFalConfig;
  /** Releases one held job, or all; returns the ids released. */
  release(id?: string): string[];
  /** Drops jobs, files, uploads, recorded requests and pending outcomes; restores the initial config. */
  reset(): void;
  close(): Promise<void>;
}

const QUEUE_HOSTS = new Set(['queue.fal.run', 'queue.falrun.com']);
const REQUEST_ROUTE = /^\/fal-ai\/flux\/requests\/([^/]+)(\/status|\/status\/stream|\/cancel)?$/;

/** On every response: images and uploads are fetched cross-origin by the page; the rest does no harm. */
const BASE_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'x-fal-request-id, x-fal-retryable, x-fal-error-type, x-fal-request-timeout-type',
};

export async function startFakeFal(options: FakeFalOptions): Promise<FakeFal> {
  const fake = new FakeFalServer(options);
  await fake.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  return fake;
}

/** Writes responses and notes their status in the request record. */
class Reply {
  constructor(
    readonly res: ServerResponse,
    private readonly record: RecordedRequest | null,
  ) {}

  head(status: number, headers: Record<string, string>): void {
    if (this.record) this.record.status = status;
    this.res.writeHead(status, { ...BASE_HEADERS, ...headers });
  }

  json(status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.send(status, JSON.stringify(body), { 'content-type': 'application/json', ...headers });
  }

  send(status: number, body: string | Buffer, headers: Record<string, string>): void {
    this.head(status, { 'content-length': String(Buffer.byteLength(body)), ...headers });
    this.res.end(body);
  }
}

interface Upload {
  contentType: string;
  fileName: string;
  file?: StoredFile;
}

class FakeFalServer implements FakeFal {
  url = '';
  readonly requests: RecordedRequest[] = [];
  private readonly key: string;
  private readonly initialConfig: FakeFalConfig;
  config: FakeFalConfig;
  private readonly store = new JobStore();
  private readonly outcomes = new OutcomeQueue();
  private readonly files = new Map<string, StoredFile>();
  private readonly uploads = new Map<string, Upload>();
  /** Stoppers for open SSE streams, so close() does not wait on them. */
  private readonly streams = new Set<() => void>();
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) new Reply(res, null).json(500, { detail: `fake fal: ${(err as Error).message}` });
      else res.destroy();
    });
  });

  constructor(options: FakeFalOptions) {
    this.key = options.key;
    this.initialConfig = { ...DEFAULT_CONFIG, ...parseConfig(options.config ?? {}) };
    this.config = { ...this.initialConfig };
  }

  async listen(port: number, host: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    const { port: bound } = this.server.address() as AddressInfo;
    const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    this.url = `http://${shown}:${bound}`;
  }

  get jobs(): JobView[] {
    return this.store.views();
  }

  next(outcome: Outcome | Outcome[]): void {
    for (const o of Array.isArray(outcome) ? outcome : [outcome]) this.outcomes.push(parseOutcome(o));
  }

  configure(config: Partial<FakeFalConfig>): FakeFalConfig {
    Object.assign(this.config, parseConfig(config));
    return { ...this.config };
  }

  release(id?: string): string[] {
    return this.store.release(id);
  }

  reset(): void {
    for (const stop of [...this.streams]) stop();
    this.store.clear();
    this.outcomes.clear();
    this.files.clear();
    this.uploads.clear();
    this.requests.length = 0;
    this.config = { ...this.initialConfig };
  }

  async close(): Promise<void> {
    for (const stop of [...this.streams]) stop();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    const body = await readBody(req);
    if (url.pathname.startsWith('/__fake/')) {
      if (method === 'OPTIONS') return preflight(new Reply(res, null), req.headers['access-control-request-headers']);
      return this.control(method, url.pathname, body, new Reply(res, null));
    }
    if (url.pathname === '/' && (method === 'GET' || method === 'HEAD')) {
      return new Reply(res, null).send(200, 'ok', { 'content-type': 'text/plain' });
    }

    const headers = flattenHeaders(req);
    const record: RecordedRequest = {
      method,
      host: headers['x-fal-test-host'] ?? null,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      body: url.pathname.startsWith('/__upload/') ? `[${body.length} bytes]` : body.toString('utf8'),
      time: Date.now(),
      status: null,
    };
    this.requests.push(record);
    const reply = new Reply(res, record);

    // Preflight for the browser's direct upload PUT (and anything else a page may call).
    if (method === 'OPTIONS') return preflight(reply, headers['access-control-request-headers']);
    if (url.pathname.startsWith('/files/')) return this.serveFile(method, url.pathname.slice('/files/'.length), reply);
    if (url.pathname.startsWith('/__upload/')) return this.receiveUpload(method, url.pathname.slice('/__upload/'.length), headers, body, reply);

    // fal's API proper.
    if (headers.authorization !== `Key ${this.key}`) return reply.json(401, { detail: 'Unauthorized' });
    const host = record.host ?? 'queue.fal.run';
    const path = url.pathname;
    if (host === 'rest.fal.ai') {
      if (path !== '/storage/upload/initiate') return notFound(reply);
      if (method !== 'POST') return notAllowed(reply);
      return this.initiateUpload(body.toString('utf8'), reply);
    }
    if (host === 'fal.run') {
      const endpoint = path.slice(1);
      if (!isFluxEndpoint(endpoint)) return notFound(reply);
      if (method !== 'POST') return notAllowed(reply);
      return this.runSync(endpoint, body.toString('utf8'), reply);
    }
    if (!QUEUE_HOSTS.has(host)) return reply.json(404, { detail: `fake fal does not serve host ${host}` });

    const route = REQUEST_ROUTE.exec(path);
    if (route) {
      const id = decodeURIComponent(route[1]!);
      const action = route[2] ?? '';
      if (method !== (action === '/cancel' ? 'PUT' : 'GET')) return notAllowed(reply);
      const logs = url.searchParams.get('logs') === '1';
      if (action === '/status') return this.status(id, logs, reply);
      if (action === '/status/stream') return this.stream(id, logs, reply);
      if (action === '/cancel') return this.cancel(id, reply);
      return this.result(id, reply);
    }
    const endpoint = path.slice(1);
    if (!isFluxEndpoint(endpoint)) return notFound(reply);
    if (method !== 'POST') return notAllowed(reply);
    return this.submit(endpoint, host, headers, url.searchParams.get('fal_webhook'), body.toString('utf8'), reply);
  }

  /**
   * Applies the next injected outcome for `on`: waits its delay, then answers with its canned response if it
   * has one (returning null: handled). Otherwise returns it (or undefined) for the normal handler's modifiers.
   */
  private async intercept(on: OutcomeTarget, reply: Reply, requestId?: string): Promise<Outcome | undefined | null> {
    const outcome = this.outcomes.take(on);
    if (!outcome) return undefined;
    if (outcome.delayMs) await sleep(outcome.delayMs);
    if (outcome.status === undefined) return outcome;
    const contentType = outcome.contentType ?? 'application/json';
    const headers = { 'content-type': contentType, ...(requestId ? { 'x-fal-request-id': requestId } : {}), ...outcome.headers };
    const fallback = STATUS_CODES[outcome.status] ?? 'Error';
    const text = contentType.includes('json')
      ? JSON.stringify(outcome.body ?? { detail: fallback })
      : typeof outcome.body === 'string'
        ? outcome.body
        : fallback;
    reply.send(outcome.status, text, headers);
    return null;
  }

  private async submit(endpoint: FluxEndpoint, host: string, headers: Record<string, string>, webhook: string | null, bodyText: string, reply: Reply): Promise<void> {
    const outcome = await this.intercept('submit', reply);
    if (outcome === null) return;
    // Input is not validated here: fal accepts the job and the model's 422 comes back as the result.
    const steps = plannedSteps(endpoint, bodyText);
    const job = this.store.create({
      endpoint,
      host,
      bodyText,
      priority: headers['x-fal-queue-priority'] ?? null,
      webhook,
      held: this.config.hold || outcome?.hold === true,
      queuePolls: this.config.queuePolls,
      progressPolls: this.config.progressPolls,
      steps,
      inferenceTime: steps > 0 ? inferenceSeconds(steps) : null,
    });
    reply.json(200, { status: 'IN_QUEUE', request_id: job.id, ...requestUrls(job), queue_position: queuePosition(job) }, { 'x-fal-request-id': job.id });
  }

  private async status(id: string, withLogs: boolean, reply: Reply): Promise<void> {
    if ((await this.intercept('status', reply, id)) === null) return;
    const job = this.store.get(id);
    if (!job) return requestNotFound(reply, id);
    this.store.advance(job);
    const body = statusBody(job, withLogs ? [...job.logs] : null);
    reply.json(body.status === 'COMPLETED' ? 200 : 202, body, { 'x-fal-request-id': id });
  }

  /** SSE: each tick advances the job like a poll and sends an event when its state changed, a comment otherwise. */
  private async stream(id: string, withLogs: boolean, reply: Reply): Promise<void> {
    const outcome = await this.intercept('stream', reply, id);
    if (outcome === null) return;
    const job = this.store.get(id);
    if (!job) return requestNotFound(reply, id);
    const drop = this.config.dropStream || outcome?.drop === true;
    const { res } = reply;
    reply.head(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-fal-request-id': id });
    res.write(': keepalive\n\n');

    let timer: NodeJS.Timeout | undefined;
    const stop = () => {
      clearTimeout(timer);
      this.streams.delete(stop);
      if (!res.writableEnded && !res.destroyed) res.end();
    };
    this.streams.add(stop);
    res.on('close', stop);
    // Cut the connection without the chunked terminator, so the client sees a network error, not an end.
    const cut = () => {
      this.streams.delete(stop);
      clearTimeout(timer);
      res.socket?.destroy();
    };

    let logsSent = 0;
    let lastState = '';
    const tick = () => {
      this.store.advance(job);
      const phase = phaseOf(job);
      if (drop && phase === 'COMPLETED') return cut();
      const state = `${phase}|${queuePosition(job)}|${job.logs.length}`;
      if (state !== lastState) {
        lastState = state;
        const logs = withLogs ? job.logs.slice(logsSent) : null;
        logsSent = job.logs.length;
        const event = `data: ${JSON.stringify(statusBody(job, logs))}\n\n`;
        if (drop && phase === 'IN_PROGRESS') return void res.write(event, cut);
        res.write(event);
      } else {
        res.write(': keepalive\n\n');
      }
      if (phase === 'COMPLETED') return stop();
      timer = setTimeout(tick, this.config.streamIntervalMs);
    };
    tick();
  }

  private async result(id: string, reply: Reply): Promise<void> {
    if ((await this.intercept('result', reply, id)) === null) return;
    const job = this.store.get(id);
    if (!job) return requestNotFound(reply, id);
    if (phaseOf(job) !== 'COMPLETED') return reply.json(400, { detail: 'Request is still in progress' }, { 'x-fal-request-id': id });
    if (job.cancelled) {
      return reply.json(499, { detail: 'Request cancelled', error_type: 'client_cancelled' }, { 'x-fal-request-id': id, 'x-fal-error-type': 'client_cancelled' });
    }
    const out = (job.result ??= this.model(job.endpoint, job.bodyText, id));
    reply.json(out.status, out.body, { ...out.headers, 'x-fal-request-id': id });
  }

  private async cancel(id: string, reply: Reply): Promise<void> {
    if ((await this.intercept('cancel', reply, id)) === null) return;
    const job = this.store.get(id);
    if (!job) return reply.json(404, { status: 'NOT_FOUND' }, { 'x-fal-request-id': id });
    const outcome = this.store.cancel(job);
    reply.json(outcome === 'CANCELLATION_REQUESTED' ? 202 : 400, { status: outcome }, { 'x-fal-request-id': id });
  }

  /** fal.run: no queue, the model's answer directly. */
  private async runSync(endpoint: FluxEndpoint, bodyText: string, reply: Reply): Promise<void> {
    const id = randomUUID();
    if ((await this.intercept('run', reply, id)) === null) return;
    const out = this.model(endpoint, bodyText, id);
    reply.json(out.status, out.body, { ...out.headers, 'x-fal-request-id': id });
  }

  private model(endpoint: FluxEndpoint, bodyText: string, requestId: string): ModelReply {
    return runModel(endpoint, bodyText, {
      origin: this.url,
      requestId,
      lookupFile: (url) => (url.startsWith(`${this.url}/files/`) ? this.file(url.slice(this.url.length + '/files/'.length)) : undefined),
      saveFile: (name, file) => void this.files.set(name, file),
    });
  }

  private async initiateUpload(bodyText: string, reply: Reply): Promise<void> {
    if ((await this.intercept('upload', reply)) === null) return;
    let body: { content_type?: unknown; file_name?: unknown } = {};
    try {
      body = JSON.parse(bodyText) as typeof body;
    } catch {
      // fal's exact answer is unknown; treat as no metadata
    }
    const id = randomUUID();
    this.uploads.set(id, {
      contentType: typeof body.content_type === 'string' ? body.content_type : 'application/octet-stream',
      fileName: typeof body.file_name === 'string' ? body.file_name : id,
    });
    reply.json(200, { upload_url: `${this.url}/__upload/${id}`, file_url: `${this.url}/files/up-${id}` });
  }

  /** The signed-URL PUT: no auth, as with fal's CDN. */
  private receiveUpload(method: string, id: string, headers: Record<string, string>, body: Buffer, reply: Reply): void {
    const upload = this.uploads.get(id);
    if (!upload) return notFound(reply);
    if (method !== 'PUT') return notAllowed(reply);
    upload.file = { bytes: body, contentType: headers['content-type'] ?? upload.contentType };
    reply.send(200, '', {});
  }

  private file(name: string): StoredFile | undefined {
    return name.startsWith('up-') ? this.uploads.get(name.slice(3))?.file : this.files.get(name);
  }

  private serveFile(method: string, name: string, reply: Reply): void {
    if (method !== 'GET' && method !== 'HEAD') return notAllowed(reply);
    const file = this.file(decodeURIComponent(name));
    if (!file) return notFound(reply);
    const headers = { 'content-type': file.contentType, 'content-length': String(file.bytes.length), 'cross-origin-resource-policy': 'cross-origin' };
    if (method === 'HEAD') {
      reply.head(200, headers);
      return void reply.res.end();
    }
    reply.send(200, file.bytes, headers);
  }

  private control(method: string, path: string, body: Buffer, reply: Reply): void {
    const route = `${method} ${path}`;
    try {
      const input: unknown = body.length > 0 ? JSON.parse(body.toString('utf8')) : {};
      switch (route) {
        case 'GET /__fake/requests':
          return reply.json(200, this.requests);
        case 'GET /__fake/jobs':
          return reply.json(200, this.jobs);
        case 'GET /__fake/config':
          return reply.json(200, this.config);
        case 'POST /__fake/next':
          this.next(input as Outcome | Outcome[]);
          return reply.json(200, { pending: this.outcomes.size });
        case 'POST /__fake/configure':
          return reply.json(200, this.configure(input as Partial<FakeFalConfig>));
        case 'POST /__fake/release': {
          const id = (input as { id?: unknown }).id;
          if (id !== undefined && typeof id !== 'string') throw new Error('"id" must be a string');
          return reply.json(200, { released: this.release(id) });
        }
        case 'POST /__fake/reset':
          this.reset();
          return reply.json(200, { ok: true });
        default:
          return reply.json(404, { detail: `no control route ${route}` });
      }
    } catch (err) {
      return reply.json(400, { detail: (err as Error).message });
    }
  }
}

function preflight(reply: Reply, requestedHeaders: string | undefined): void {
  reply.send(204, '', {
    'access-control-allow-methods': 'GET, HEAD, POST, PUT, OPTIONS',
    'access-control-allow-headers': requestedHeaders ?? 'content-type',
    'access-control-max-age': '600',
  });
}

function notFound(reply: Reply): void {
  reply.json(404, { detail: 'Not Found' });
}

function notAllowed(reply: Reply): void {
  reply.json(405, { detail: 'Method Not Allowed' });
}

function requestNotFound(reply: Reply, id: string): void {
  reply.json(404, { detail: 'Request not found' }, { 'x-fal-request-id': id });
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}
