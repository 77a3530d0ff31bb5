/**
 * The same-origin fal proxy: the browser's stock @fal-ai/client (proxyUrl '/api/fal/proxy') sends every fal call
 * here with the real URL in `x-fal-target-url`; we check it against a FLUX-only allowlist, add the server's key
 * and stream fal's answer back unchanged (status, body, SSE). docs/proxy.md has the why; docs/fal-protocol.md §2–3
 * the wire contract and the stock proxy's defects this avoids.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { clientKey } from './client-address.js';
import { checkFalTarget, TARGET_URL_HEADER, type FalTargetKind } from './fal-target.js';
import { TokenBuckets } from './rate-limit.js';
import { checkRequestOrigin, parseAllowedHosts } from './request-guard.js';

export { checkFalTarget, FLUX_SUBMIT_PATHS, TARGET_URL_HEADER, type FalTargetCheck, type FalTargetKind } from './fal-target.js';

export const FAL_PROXY_ROUTE = '/api/fal/proxy';
/** `GET` → `{ configured: boolean }`: whether a key is set, so a page can leave fal out of Auto without spending. */
export const FAL_PROXY_STATUS_ROUTE = `${FAL_PROXY_ROUTE}/status`;

/** Whether a request path (query excluded) is one the proxy answers: the proxy route or its status probe. */
export function isFalProxyPath(path: string): boolean {
  return path === FAL_PROXY_ROUTE || path === FAL_PROXY_STATUS_ROUTE;
}
/** A 10 MiB data-URI input image plus the rest of the JSON. */
export const DEFAULT_MAX_BODY_BYTES = 12 * 1024 * 1024;
/** Generous enough for several tabs polling status every 500 ms; submits are what cost money. */
export const DEFAULT_RATE_LIMIT: Readonly<Required<FalProxyRateLimit>> = { requestsPerSecond: 20, burst: 60, submitsPerMinute: 10, submitBurst: 10 };
export const PROXY_ID = 'flux-webgpu';
/** After a refusal, how much of an unread request body is read and thrown away so the client gets to read the
 * answer (a client still uploading when the socket closes sees a reset, not the status). */
export const DEFAULT_MAX_DRAIN_BYTES = 64 * 1024 * 1024;

export interface FalProxyRateLimit {
  /** All requests, per client: sustained rate. @defaultValue 20 */
  requestsPerSecond?: number;
  /** All requests, per client: bucket size. @defaultValue 60 */
  burst?: number;
  /** POSTs (submits, upload initiations), per client: sustained rate. @defaultValue 10 */
  submitsPerMinute?: number;
  /** POSTs, per client: bucket size. @defaultValue 10 */
  submitBurst?: number;
}

export interface FalProxyOptions {
  /** The fal key. Falls back to FAL_KEY, else FAL_KEY_ID + ':' + FAL_KEY_SECRET; read per request. */
  key?: () => string | undefined;
  /** Request body cap, enforced from content-length and while reading. @defaultValue 12 MiB */
  maxBodyBytes?: number;
  /** Per-client token buckets; false turns limiting off. @defaultValue DEFAULT_RATE_LIMIT */
  rateLimit?: FalProxyRateLimit | false;
  /**
   * Identify clients by `x-forwarded-for` instead of the socket address: true trusts one proxy hop (the
   * rightmost entry), a number that many. Only behind a reverse proxy that sets the header. @defaultValue false
   */
  trustProxy?: boolean | number;
  /**
   * TEST ONLY: fetch from this origin (e.g. http://127.0.0.1:4180) instead of fal's. Validation still runs on
   * the original https fal URL; the original host goes along as `x-fal-test-host`. Env: FAL_TEST_UPSTREAM_ORIGIN.
   */
  upstreamOrigin?: string;
  /**
   * Host names this server answers to besides the defaults (localhost, 127.0.0.1 and [::1] on the port the request
   * came in on, and the address it came in on): `app.example` (any port) or `app.example:8443`. Requests with
   * another `Host` get 403 proxy_host_not_allowed. Env (standalone): FAL_PROXY_ALLOWED_HOSTS.
   */
  allowedHosts?: readonly string[];
  /**
   * Decides whether a request may spend the key (a session cookie, basic auth, an IP list…), like
   * `@fal-ai/server-proxy`'s isAuthenticated. false, or a throw, answers 401 proxy_unauthorized and forwards
   * nothing. Without it every client that passes the origin checks may use the key, and a warning is logged at
   * creation. Env (standalone): FAL_PROXY_AUTH_MODULE.
   */
  isAuthenticated?: (req: IncomingMessage) => boolean | Promise<boolean>;
  /** After a refusal, read and discard up to this many unread body bytes so the client can read the answer;
   * beyond that the connection is reset. @defaultValue 64 MiB */
  maxDrainBytes?: number;
  /** One line per request (`method host path -> status ms`), plus warnings; false for silence. @defaultValue console.log */
  log?: ((line: string) => void) | false;
}

export type FalProxyHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** `error_type` of the proxy's own JSON errors (fal's own errors pass through unchanged). */
export type FalProxyErrorType =
  | 'proxy_host_not_allowed'
  | 'proxy_cross_origin'
  | 'proxy_unauthorized'
  | 'proxy_bad_target'
  | 'proxy_forbidden'
  | 'proxy_method_not_allowed'
  | 'proxy_body_too_large'
  | 'proxy_bad_body'
  | 'proxy_rate_limited'
  | 'proxy_key_missing'
  | 'proxy_key_invalid'
  | 'proxy_upstream_unreachable'
  | 'proxy_internal_error';

const METHODS = new Set(['GET', 'POST', 'PUT']);
/** x-fal-* headers we set ourselves (or that only steer the proxy) and never take from the browser. */
const OWN_FAL_HEADERS = new Set([TARGET_URL_HEADER, 'x-fal-client-proxy', 'x-fal-test-host']);
/** Response headers not copied: hop-by-hop, re-framed by us (fetch already decoded the body), or meaningful
 * only for fal's own origin (cookies, HSTS, alt-svc, CORS). */
const DROPPED_RESPONSE_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'content-encoding',
  'set-cookie',
  'set-cookie2',
  'alt-svc',
  'strict-transport-security',
]);
/** Printable ASCII without spaces: what a fal key is, and what can safely go in a header. */
const HEADER_TOKEN = /^[\x21-\x7e]+$/;
const PRINTABLE_VALUE = /^[\x20-\x7e]*$/;
/** A GET/PUT body up to this size (declared by content-length) is ignored; a larger or chunked one is refused unread. */
const MAX_IGNORED_BODY_BYTES = 64;
/** After a refusal, how long an unread body may take to arrive (and be discarded) before the connection is dropped. */
const DRAIN_MS = 30_000;

interface RequestLog {
  method: string;
  host: string;
  path: string;
  note: string;
}

export function createFalProxy(options: FalProxyOptions = {}): FalProxyHandler {
  const sink = options.log === false ? noop : (options.log ?? ((line: string) => console.log(line)));
  const log = (line: string): void => {
    try {
      sink(line);
    } catch {
      // a throwing logger must not take a request (or the server) down
    }
  };
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(maxBody) || maxBody < 0) throw new RangeError(`maxBodyBytes must be a non-negative integer, got ${maxBody}`);
  const hops = options.trustProxy === true ? 1 : typeof options.trustProxy === 'number' ? options.trustProxy : 0;
  if (!Number.isSafeInteger(hops) || hops < 0) throw new RangeError(`trustProxy must be a boolean or a non-negative integer, got ${options.trustProxy}`);
  const maxDrain = options.maxDrainBytes ?? DEFAULT_MAX_DRAIN_BYTES;
  if (!Number.isSafeInteger(maxDrain) || maxDrain < 0) throw new RangeError(`maxDrainBytes must be a non-negative integer, got ${maxDrain}`);
  const allowedHosts = parseAllowedHosts(options.allowedHosts ?? [], 'allowedHosts');
  const isAuthenticated = options.isAuthenticated;
  if (isAuthenticated !== undefined && typeof isAuthenticated !== 'function') throw new TypeError('isAuthenticated must be a function (req) => boolean | Promise<boolean>');
  const limits = options.rateLimit === false ? undefined : createLimits({ ...DEFAULT_RATE_LIMIT, ...definedOnly(options.rateLimit ?? {}) });
  const upstreamOrigin = parseUpstreamOrigin(options.upstreamOrigin ?? process.env.FAL_TEST_UPSTREAM_ORIGIN);
  if (upstreamOrigin) {
    log(`[fal-proxy] WARNING: upstream override active (upstreamOrigin / FAL_TEST_UPSTREAM_ORIGIN): fal requests go to ${upstreamOrigin}, not to fal.ai. For tests only.`);
  }
  if (!isAuthenticated) {
    log('[fal-proxy] WARNING: no authentication check is configured (isAuthenticated / FAL_PROXY_AUTH_MODULE): anyone who can load this page can spend the fal key, within the rate limits.');
  }
  let warnedNoForwardedFor = false;

  return async function falProxy(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const entry: RequestLog = { method: safeToken(req.method ?? '?'), host: '-', path: '-', note: '' };
    let key: string | undefined;
    // Late socket errors must never become unhandled 'error' events.
    req.on('error', noop);
    res.on('error', noop);
    res.once('close', () => {
      const ms = Math.round(performance.now() - started);
      const status = res.headersSent ? String(res.statusCode) : '---';
      const aborted = res.writableFinished ? '' : ' (client closed)';
      log(redact(`[fal-proxy] ${entry.method} ${entry.host} ${entry.path} -> ${status} ${ms}ms${aborted}${entry.note}`, key));
    });
    try {
      key = resolveKey(options.key);
      await handle(req, res, entry, key);
    } catch (err) {
      entry.note = ` (internal error: ${describeError(err)})`;
      if (!res.headersSent) sendJson(res, 500, 'proxy_internal_error', 'Internal error in the fal proxy', key);
      else res.destroy();
    }
  };

  async function handle(req: IncomingMessage, res: ServerResponse, entry: RequestLog, key: string | undefined): Promise<void> {
    const refuse = (status: number, type: FalProxyErrorType, detail: string, headers: Record<string, string> = {}) => {
      entry.note = ` (${detail})`;
      refuseAndDrain(req, res, status, type, detail, key, headers, maxDrain, (why) => (entry.note += ` (${why}: connection dropped)`));
    };
    // The host (Vite's cors middleware) may have set CORS headers already; this route is same-origin only.
    for (const name of res.getHeaderNames()) if (name.startsWith('access-control-')) res.removeHeader(name);
    const guard = checkRequestOrigin(req, allowedHosts);
    if (guard) return refuse(guard.status, guard.errorType, guard.detail);
    const method = req.method ?? '';
    if (!METHODS.has(method)) {
      return refuse(405, 'proxy_method_not_allowed', `Method ${entry.method} is not allowed; the fal proxy accepts GET, POST and PUT`, { allow: 'GET, POST, PUT' });
    }
    if (hops > 0 && req.headers['x-forwarded-for'] === undefined && !warnedNoForwardedFor) {
      warnedNoForwardedFor = true;
      log(
        `[fal-proxy] WARNING: trustProxy / TRUST_PROXY is set, but a request from ${safeToken(req.socket?.remoteAddress ?? 'unknown')} came without x-forwarded-for: either the reverse proxy does not set it (all its clients then share one rate-limit bucket) or clients reach this server directly (and can choose their own address). Shown once.`,
      );
    }
    const client = clientKey(clientId(req, hops));
    if (limits) {
      const wait = limits.all.take(client);
      if (wait > 0) return refuse(429, 'proxy_rate_limited', `Too many requests to the fal proxy; retry in ${retryAfter(wait)} s`, { 'retry-after': String(retryAfter(wait)) });
    }
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if ((q === -1 ? url : url.slice(0, q)) === FAL_PROXY_STATUS_ROUTE) {
      // Nothing is forwarded: it says only whether a usable key is set, never anything about the key itself.
      if (method !== 'GET') return refuse(405, 'proxy_method_not_allowed', `Method ${entry.method} is not allowed on ${FAL_PROXY_STATUS_ROUTE}; use GET`, { allow: 'GET' });
      entry.path = FAL_PROXY_STATUS_ROUTE;
      const configured = key !== undefined && HEADER_TOKEN.test(key);
      const body = JSON.stringify(configured ? { configured } : { configured, detail: 'The fal proxy has no FAL_KEY configured on the server' });
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
      return;
    }
    if (isAuthenticated) {
      let ok = false;
      let why = '';
      try {
        ok = (await isAuthenticated(req)) === true;
      } catch (err) {
        why = ` (the check failed: ${describeError(err)})`;
      }
      if (!ok) return refuse(401, 'proxy_unauthorized', `This fal proxy needs authentication, and the request did not pass the server's check${why}`);
    }

    const target = checkFalTarget(method, req.headers[TARGET_URL_HEADER]);
    if (target.host !== undefined) entry.host = safeToken(target.host);
    if (target.ok) entry.path = target.url.pathname;
    else if (target.path !== undefined) entry.path = safeToken(target.path);
    if (!target.ok) return refuse(target.status, target.errorType, target.detail);

    if (key === undefined) return refuse(500, 'proxy_key_missing', 'The fal proxy has no FAL_KEY configured on the server');
    if (!HEADER_TOKEN.test(key)) return refuse(500, 'proxy_key_invalid', 'The fal proxy key configured on the server contains characters that cannot be sent in a header');

    if (method === 'POST' && limits) {
      const wait = limits.submit.take(client);
      if (wait > 0) return refuse(429, 'proxy_rate_limited', `Too many submits through the fal proxy; retry in ${retryAfter(wait)} s`, { 'retry-after': String(retryAfter(wait)) });
    }

    // Only submits and upload initiations carry input; GET/PUT (status, result, cancel) never do, so a body there
    // is refused from the headers alone instead of being read.
    const declared = Number(req.headers['content-length'] ?? 0);
    if (method !== 'POST' && hasBody(req)) {
      if (req.headers['transfer-encoding'] !== undefined || declared > MAX_IGNORED_BODY_BYTES) {
        return refuse(400, 'proxy_bad_body', `${method} requests to the fal proxy take no body (at most ${MAX_IGNORED_BODY_BYTES} bytes, with a content-length, are ignored)`);
      }
      req.resume(); // e.g. the "{}" some adapters send on cancel: discarded, never forwarded
    }
    const tooLarge = `Request body is larger than the fal proxy's limit of ${maxBody} bytes`;
    if (declared > maxBody) return refuse(413, 'proxy_body_too_large', tooLarge);
    const body = method === 'POST' ? await readBody(req, maxBody) : Buffer.alloc(0);
    if (body === 'aborted') {
      entry.note = ' (client closed while sending)';
      return;
    }
    if (body === 'too_large') return refuse(413, 'proxy_body_too_large', tooLarge);
    const forwardBody = body.length > 0 ? body : null;
    if (forwardBody && !isJson(forwardBody)) return refuse(400, 'proxy_bad_body', 'The request body must be JSON');

    await forward(req, res, entry, key, target.kind, target.host, (upstreamOrigin ?? target.url.origin) + target.pathAndQuery, forwardBody);
  }

  async function forward(
    req: IncomingMessage,
    res: ServerResponse,
    entry: RequestLog,
    key: string,
    kind: FalTargetKind,
    host: string,
    upstreamUrl: string,
    body: Buffer | null,
  ): Promise<void> {
    if (res.destroyed) return;
    const controller = new AbortController();
    // A client that goes away (closed tab, aborted poll, SSE closed) must not leave an upstream call running.
    res.once('close', () => {
      if (!res.writableFinished) controller.abort();
    });

    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!name.startsWith('x-fal-') || OWN_FAL_HEADERS.has(name) || value === undefined) continue;
      const v = Array.isArray(value) ? value.join(', ') : value;
      // fal's headers are ASCII; anything else (Node passes latin-1 through) is dropped, not sent mangled.
      if (PRINTABLE_VALUE.test(v)) headers[name] = v;
    }
    // Pass accept through so the status stream gets text/event-stream (the stock proxy forces JSON).
    const accept = req.headers.accept;
    headers.accept = typeof accept === 'string' && accept !== '' ? accept : 'application/json';
    if (body) headers['content-type'] = 'application/json';
    headers.authorization = `Key ${key}`;
    headers['x-fal-client-proxy'] = PROXY_ID;
    if (upstreamOrigin) headers['x-fal-test-host'] = host;

    let upstream: Response;
    try {
      upstream = await fetch(upstreamUrl, {
        method: req.method ?? 'GET',
        headers,
        body: body as Uint8Array<ArrayBuffer> | null,
        signal: controller.signal,
        // Never follow a redirect with our key attached; the client sees it as fal sent it.
        redirect: 'manual',
      });
    } catch (err) {
      if (controller.signal.aborted) {
        entry.note = ' (client closed before fal answered)';
        return;
      }
      const why = describeError(err);
      entry.note = ` (upstream: ${why})`;
      sendJson(res, 502, 'proxy_upstream_unreachable', `fal is unreachable: ${why}`, key);
      return;
    }

    const out: Record<string, string> = {};
    const connectionTokens = new Set((upstream.headers.get('connection') ?? '').toLowerCase().split(',').map((t) => t.trim()));
    upstream.headers.forEach((value, name) => {
      if (DROPPED_RESPONSE_HEADERS.has(name) || connectionTokens.has(name) || name.startsWith('access-control-')) return;
      out[name] = value;
    });
    const isStream = kind === 'status_stream' || (out['content-type'] ?? '').startsWith('text/event-stream');
    // Reverse proxies (nginx) buffer responses by default, which would hold SSE events back.
    if (isStream) out['x-accel-buffering'] = 'no';

    const reader = upstream.body?.getReader();
    try {
      res.writeHead(upstream.status, out);
      res.flushHeaders();
      if (reader) {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (res.destroyed) return;
          if (!res.write(value)) await drained(res);
        }
      }
      res.end();
    } catch (err) {
      if (controller.signal.aborted) return;
      entry.note = ` (upstream stream failed: ${describeError(err)})`;
      // Headers are out: cut the connection so the client sees a truncated response, not a clean end.
      if (res.headersSent) res.destroy();
      else sendJson(res, 502, 'proxy_upstream_unreachable', `fal's response could not be relayed: ${describeError(err)}`, key);
    } finally {
      reader?.cancel().catch(noop);
    }
  }
}

function createLimits(cfg: Required<FalProxyRateLimit>): { all: TokenBuckets; submit: TokenBuckets } {
  return {
    all: new TokenBuckets({ ratePerSecond: cfg.requestsPerSecond, burst: cfg.burst }),
    submit: new TokenBuckets({ ratePerSecond: cfg.submitsPerMinute / 60, burst: cfg.submitBurst }),
  };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function retryAfter(waitSeconds: number): number {
  return Math.max(1, Math.ceil(waitSeconds));
}

function parseUpstreamOrigin(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new Error(`fal proxy: upstream override ${JSON.stringify(value)} is not a URL (expected an origin such as http://127.0.0.1:4180)`);
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password || u.search || u.hash || (u.pathname !== '/' && u.pathname !== '')) {
    throw new Error(`fal proxy: upstream override ${JSON.stringify(value)} must be a bare http(s) origin such as http://127.0.0.1:4180`);
  }
  return u.origin;
}

function resolveKey(fromOptions: (() => string | undefined) | undefined): string | undefined {
  let key: string | undefined;
  try {
    key = fromOptions?.();
  } catch {
    key = undefined;
  }
  if (key) return key;
  if (process.env.FAL_KEY) return process.env.FAL_KEY;
  if (process.env.FAL_KEY_ID && process.env.FAL_KEY_SECRET) return `${process.env.FAL_KEY_ID}:${process.env.FAL_KEY_SECRET}`;
  return undefined;
}

/** Belt and braces: no message of ours should ever carry the key, whatever it was built from. */
function redact(text: string, key: string | undefined): string {
  if (!key) return text;
  let out = text.split(key).join('[redacted]');
  // An id:secret key: the secret alone is just as sensitive.
  const secret = key.includes(':') ? key.slice(key.indexOf(':') + 1) : '';
  if (secret.length >= 8) out = out.split(secret).join('[redacted]');
  return out;
}

function clientId(req: IncomingMessage, hops: number): string {
  if (hops > 0) {
    const xff = req.headers['x-forwarded-for'];
    const list = (Array.isArray(xff) ? xff.join(',') : (xff ?? ''))
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    // Entries left of the ones our own proxies appended are whatever the client claimed.
    const pick = list[Math.max(0, list.length - hops)];
    if (pick !== undefined) return pick;
  }
  return req.socket?.remoteAddress ?? 'unknown';
}

function sendJson(
  res: ServerResponse,
  status: number,
  type: FalProxyErrorType,
  detail: string,
  key: string | undefined,
  headers: Record<string, string> = {},
  { end = true }: { end?: boolean } = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (res.destroyed) return;
  const body = JSON.stringify({ detail: redact(detail, key), error_type: type });
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': String(Buffer.byteLength(body)),
  });
  if (end) res.end(body);
  else res.write(body);
}

function hasBody(req: IncomingMessage): boolean {
  if (req.readableEnded) return false;
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

/**
 * Answers a refusal. With a request body still unread, the answer goes out with `connection: close` but the
 * response is only ended once the body has been read and thrown away: closing first makes the socket reset while
 * the client still uploads, and then `fetch` (Node's and Chromium's) reports a network error instead of the status.
 * The drain is bounded (maxDrain bytes, DRAIN_MS); past that the connection is dropped.
 */
function refuseAndDrain(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  type: FalProxyErrorType,
  detail: string,
  key: string | undefined,
  headers: Record<string, string>,
  maxDrain: number,
  onDrop: (why: string) => void,
): void {
  if (!hasBody(req) || res.headersSent || res.destroyed) {
    sendJson(res, status, type, detail, key, headers);
    return;
  }
  sendJson(res, status, type, detail, key, { ...headers, connection: 'close' }, { end: false });
  let drained = 0;
  const drop = (why: string) => {
    cleanup();
    onDrop(why);
    req.socket?.destroy();
  };
  const timer = setTimeout(() => drop(`unread body still arriving after ${DRAIN_MS / 1000} s`), DRAIN_MS);
  timer.unref();
  const onData = (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > maxDrain) drop(`unread body over the ${maxDrain}-byte drain limit`);
  };
  const onEnd = () => {
    cleanup();
    res.end();
  };
  const cleanup = () => {
    clearTimeout(timer);
    req.off('data', onData);
    req.off('end', onEnd);
  };
  req.on('data', onData);
  req.once('end', onEnd);
  res.once('close', cleanup);
  req.resume();
}

/** The request body, capped; 'aborted' when the client went away first. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'too_large' | 'aborted'> {
  // Mounted behind a body parser (e.g. express.json()), the stream is already consumed.
  if (req.readableEnded) {
    const parsed = (req as IncomingMessage & { body?: unknown }).body;
    let buf: Buffer;
    if (parsed === undefined || parsed === null) buf = Buffer.alloc(0);
    else if (Buffer.isBuffer(parsed)) buf = parsed;
    else if (typeof parsed === 'string') buf = Buffer.from(parsed);
    else buf = Buffer.from(JSON.stringify(parsed));
    return Promise.resolve(buf.length > max ? 'too_large' : buf);
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let settled = false;
    const settle = (v: Buffer | 'too_large' | 'aborted') => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      resolve(v);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > max) {
        chunks.length = 0;
        settle('too_large');
      } else chunks.push(chunk);
    };
    const onEnd = () => settle(Buffer.concat(chunks, total));
    const onClose = () => settle('aborted');
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('close', onClose);
  });
}

function isJson(body: Buffer): boolean {
  try {
    JSON.parse(body.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve();
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

function describeError(err: unknown): string {
  const e = err as { message?: unknown; cause?: { message?: unknown; code?: unknown } } | null;
  const cause = e?.cause;
  const text = typeof cause?.message === 'string' && cause.message !== '' ? cause.message : typeof e?.message === 'string' ? e.message : String(err);
  return text.replace(/[\r\n]+/g, ' ').slice(0, 300);
}

/** For log lines: printable ASCII only, bounded. */
function safeToken(s: string): string {
  return s.replace(/[^\x21-\x7e]/g, '?').slice(0, 200);
}

function noop(): void {}
