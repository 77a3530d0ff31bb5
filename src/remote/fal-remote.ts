/**
 * The remote path: fal's hosted FLUX endpoints through our same-origin proxy (server/fal-proxy.ts), with the stock
 * `@fal-ai/client` configured with `proxyUrl` and no credentials, so no key ever reaches the browser.
 *
 * It validates inputs per endpoint before sending, turns queue updates into the same progress events as local
 * generation, cancels on fal's side when the caller aborts (the client alone only stops polling), and explains
 * failures: fal's 422 per field, 401/403 as a key problem on the proxy, 429/5xx after the client's retries.
 */
import { ApiError, createFalClient, ValidationError, type FalClient, type QueueStatus, type StorageSettings } from '@fal-ai/client';
import { FluxError } from '../errors.js';
import { toDataUri } from '../image/encode.js';
import { ENDPOINT_SCHEMAS, MAX_DATA_URI_CHARS, validateRemoteInput, type FluxEndpointId, type FluxRemoteInput } from './endpoints.js';

/** fal's conventional proxy route (and ours). */
export const DEFAULT_PROXY_URL = '/api/fal/proxy';

export interface FalRemoteOptions {
  /** Same-origin proxy route. @defaultValue '/api/fal/proxy' */
  proxyUrl?: string;
  /** How often to poll the queue status, ms. @defaultValue 500 */
  pollIntervalMs?: number;
  /** For tests and Node: a fetch to use instead of the global one. */
  fetch?: typeof fetch;
}

/** Progress of a remote request, in the same stream as local generation's events. */
export type RemoteProgressEvent =
  | { target: 'remote'; stage: 'submitted'; requestId: string; elapsedMs: number }
  | { target: 'remote'; stage: 'queued'; requestId: string; queuePosition: number; elapsedMs: number }
  | { target: 'remote'; stage: 'in_progress'; requestId: string; logs: string[]; elapsedMs: number }
  | { target: 'remote'; stage: 'completed'; requestId: string; elapsedMs: number };

export interface RemoteImage {
  url: string;
  width: number;
  height: number;
  content_type: string;
}

/** fal's output (docs/fal-protocol.md §4.3), normalised: optional fields filled where they can be. */
export interface RemoteOutput {
  images: RemoteImage[];
  seed: number;
  timings: { inference?: number; total_ms: number };
  has_nsfw_concepts: boolean[];
  prompt: string;
}

/** `@fal-ai/client` subscribe options passed through unchanged (the rest FalRemote sets itself). */
export interface RemoteQueueOptions {
  mode?: 'polling' | 'streaming';
  /** Polling only. @defaultValue FalRemoteOptions.pollIntervalMs */
  pollInterval?: number;
  /** Streaming only: 'server' (the proxy streams fal's SSE) or 'client'. */
  connectionMode?: 'server' | 'client';
  startTimeout?: number;
  priority?: 'low' | 'normal';
  headers?: Record<string, string>;
  storageSettings?: StorageSettings;
}

export interface RemoteCallOptions {
  onProgress?: (e: RemoteProgressEvent) => void;
  /** fal's raw queue statuses, for callers that mirror `@fal-ai/client`. */
  onQueueUpdate?: (status: QueueStatus) => void;
  /** fal's request id, as soon as the request is queued. */
  onEnqueue?: (requestId: string) => void;
  signal?: AbortSignal;
  queue?: RemoteQueueOptions;
}

/** The request id of a submitted request, reported before any status. */
export interface RemoteResult {
  data: RemoteOutput;
  requestId: string;
}

export class FalRemote {
  readonly proxyUrl: string;
  private readonly fal: FalClient;
  private readonly pollIntervalMs: number;

  constructor(options: FalRemoteOptions = {}) {
    this.proxyUrl = options.proxyUrl ?? DEFAULT_PROXY_URL;
    this.pollIntervalMs = options.pollIntervalMs ?? 500;
    this.fal = createFalClient({
      // 'always': the proxy also applies in Node and workers (the default, 'browser', only where `document` exists).
      proxyUrl: { url: this.proxyUrl, when: 'always' },
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
  }

  /** Validate, send, follow the queue and return fal's output. */
  async subscribe(endpoint: FluxEndpointId, input: unknown, options: RemoteCallOptions = {}): Promise<RemoteResult> {
    const checked = validateRemoteInput(endpoint, input);
    const { signal, onProgress, onQueueUpdate, onEnqueue } = options;
    const { mode, pollInterval, connectionMode, ...passThrough } = options.queue ?? {};
    const modeOptions =
      mode === 'streaming' ? { mode: 'streaming' as const, ...(connectionMode ? { connectionMode } : {}) } : { mode: 'polling' as const, pollInterval: pollInterval ?? this.pollIntervalMs };
    if (signal?.aborted) throw cancelled();
    const wire = await toWireInput(checked);
    const t0 = performance.now();
    const elapsedMs = () => performance.now() - t0;
    let requestId: string | null = null;
    let logsSeen = 0;
    const onAbort = () => {
      // The client only stops polling on abort; tell fal to drop the request too (fire and forget).
      if (requestId) void this.fal.queue.cancel(endpoint, { requestId }).catch(() => undefined);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await this.fal.subscribe(endpoint, {
        input: wire as Record<string, unknown>,
        logs: true,
        ...modeOptions,
        ...passThrough,
        ...(signal ? { abortSignal: signal } : {}),
        onEnqueue: (id: string) => {
          requestId = id;
          onEnqueue?.(id);
          onProgress?.({ target: 'remote', stage: 'submitted', requestId: id, elapsedMs: elapsedMs() });
          if (signal?.aborted) onAbort();
        },
        onQueueUpdate: (s: QueueStatus) => {
          onQueueUpdate?.(s);
          if (!onProgress) return;
          const id = s.request_id ?? requestId ?? '';
          if (s.status === 'IN_QUEUE') onProgress({ target: 'remote', stage: 'queued', requestId: id, queuePosition: s.queue_position ?? 0, elapsedMs: elapsedMs() });
          else if (s.status === 'IN_PROGRESS') {
            const logs = (s.logs ?? []).map((l) => l.message);
            onProgress({ target: 'remote', stage: 'in_progress', requestId: id, logs: logs.slice(logsSeen), elapsedMs: elapsedMs() });
            logsSeen = Math.max(logsSeen, logs.length);
          } else onProgress({ target: 'remote', stage: 'completed', requestId: id, elapsedMs: elapsedMs() });
        },
      });
      if (signal?.aborted) throw cancelled();
      return { data: normaliseOutput(r.data, checked, elapsedMs()), requestId: r.requestId || requestId || '' };
    } catch (e) {
      throw remoteError(e, endpoint, signal);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The queue methods of `@fal-ai/client`, with the same validation and error mapping as subscribe. */
  readonly queue = {
    submit: async (endpoint: FluxEndpointId, options: { input: unknown }) => {
      const wire = await toWireInput(validateRemoteInput(endpoint, options.input));
      return this.fal.queue.submit(endpoint, { input: wire as Record<string, unknown> }).catch((e) => Promise.reject(remoteError(e, endpoint)));
    },
    status: (endpoint: FluxEndpointId, options: { requestId: string; logs?: boolean }) =>
      this.fal.queue.status(endpoint, { requestId: options.requestId, logs: options.logs ?? false }).catch((e) => Promise.reject(remoteError(e, endpoint))),
    result: async (endpoint: FluxEndpointId, options: { requestId: string }) => {
      try {
        const r = await this.fal.queue.result(endpoint, { requestId: options.requestId });
        return { data: normaliseOutput(r.data, {}, 0), requestId: r.requestId || options.requestId };
      } catch (e) {
        throw remoteError(e, endpoint);
      }
    },
    cancel: (endpoint: FluxEndpointId, options: { requestId: string }) =>
      this.fal.queue.cancel(endpoint, { requestId: options.requestId }).catch((e) => Promise.reject(remoteError(e, endpoint))),
  };
}

function cancelled(): FluxError {
  return new FluxError('cancelled', 'The request was cancelled.');
}

/** Blobs small enough go inline as data: URIs; larger ones stay Blobs, which the client uploads via the proxy. */
async function toWireInput(input: FluxRemoteInput): Promise<FluxRemoteInput> {
  const img = input.image_url;
  if (typeof Blob === 'undefined' || !(img instanceof Blob)) return input;
  // base64 grows 4/3; keep the whole URI under fal's limit.
  if (Math.ceil(img.size / 3) * 4 + 64 > MAX_DATA_URI_CHARS) return input;
  return { ...input, image_url: toDataUri(new Uint8Array(await img.arrayBuffer()), img.type) };
}

function normaliseOutput(raw: unknown, input: FluxRemoteInput, wallMs: number): RemoteOutput {
  const d = (raw ?? {}) as Partial<{ images: Partial<RemoteImage>[]; seed: number; timings: Record<string, unknown>; has_nsfw_concepts: boolean[]; prompt: string }>;
  if (!Array.isArray(d.images) || d.images.some((i) => typeof i?.url !== 'string')) {
    throw new FluxError('remote_error', `fal returned no images (got ${JSON.stringify(raw).slice(0, 200)})`);
  }
  const fmt = input.output_format ?? 'jpeg';
  const images = d.images.map((i) => ({
    url: i.url!,
    width: i.width ?? 0,
    height: i.height ?? 0,
    content_type: i.content_type ?? (fmt === 'png' ? 'image/png' : 'image/jpeg'),
  }));
  const inference = typeof d.timings?.inference === 'number' ? d.timings.inference : undefined;
  return {
    images,
    seed: typeof d.seed === 'number' ? d.seed : (input.seed ?? -1),
    timings: { ...(inference !== undefined ? { inference } : {}), total_ms: wallMs },
    has_nsfw_concepts: Array.isArray(d.has_nsfw_concepts) ? d.has_nsfw_concepts : images.map(() => false),
    prompt: typeof d.prompt === 'string' ? d.prompt : (input.prompt ?? ''),
  };
}

function detailText(body: unknown): string {
  const b = body as { detail?: unknown; error_type?: unknown } | undefined;
  if (typeof b?.detail === 'string') return b.detail;
  return '';
}

/** One FluxError per failure a user can act on; the message says what happened and what to do. */
export function remoteError(e: unknown, endpoint: FluxEndpointId, signal?: AbortSignal): FluxError {
  if (e instanceof FluxError) return e;
  const name = (e as { name?: string })?.name;
  if (signal?.aborted || name === 'AbortError') return cancelled();
  const title = ENDPOINT_SCHEMAS[endpoint].title;
  if (e instanceof ValidationError) {
    const errors = e.fieldErrors;
    const fields = errors.map((f) => ({ field: f.loc.filter((p) => p !== 'body').join('.') || 'input', message: f.msg }));
    const first = fields[0];
    const text = fields.map((f) => `${f.field}: ${f.message}`).join('; ') || 'the input was rejected';
    return new FluxError('invalid_input', `fal rejected the input for ${title}: ${text}`, {
      ...(first && first.field !== 'input' ? { field: first.field } : {}),
      details: { source: 'fal', status: e.status, body: e.body, fieldErrors: errors, ...(e.requestId ? { requestId: e.requestId } : {}) },
      cause: e,
    });
  }
  if (e instanceof ApiError) {
    const status = e.status;
    const body = e.body as { detail?: unknown; error_type?: string } | undefined;
    const type = body?.error_type;
    const detail = detailText(body);
    const details = { source: 'fal', status, ...(e.body !== undefined ? { body: e.body } : {}), ...(type ? { errorType: type } : {}), ...(e.requestId ? { requestId: e.requestId } : {}) };
    if (type?.startsWith('proxy_') && type !== 'proxy_key_missing' && type !== 'proxy_key_invalid' && type !== 'proxy_upstream_unreachable') {
      // The proxy itself refused (not fal): a bad target, a disallowed endpoint, too large, rate limited.
      const code = type === 'proxy_rate_limited' ? 'remote_rate_limited' : 'remote_error';
      return new FluxError(code, `The fal proxy refused the request (HTTP ${status}, ${type}${detail ? `: ${detail}` : ''}).`, { details, cause: e });
    }
    if (type === 'proxy_upstream_unreachable') {
      return new FluxError('remote_unavailable', `The fal proxy could not reach fal${detail ? ` (${detail})` : ''}. Try again later.`, { details, cause: e });
    }
    if (type === 'proxy_key_missing' || type === 'proxy_key_invalid') {
      const what = type === 'proxy_key_missing' ? 'has no FAL_KEY configured' : 'has a FAL_KEY that cannot be sent (stray characters?)';
      return new FluxError('remote_auth', `The fal proxy ${what}, so remote generation is unavailable. Fix FAL_KEY in the proxy server's environment (docs/proxy.md).`, { details, cause: e });
    }
    if (status === 401 || status === 403) {
      return new FluxError(
        'remote_auth',
        `fal refused the request (HTTP ${status}${detail ? `: ${detail}` : ''}): the proxy's FAL_KEY is missing, wrong, or has no access to ${endpoint}. This is a server setting, not something to enter in the page (docs/proxy.md).`,
        { details, cause: e },
      );
    }
    if (status === 499 || type === 'client_cancelled') return cancelled();
    if (status === 429) {
      return new FluxError('remote_rate_limited', `fal is limiting requests (HTTP 429${detail ? `: ${detail}` : ''}) and retrying did not help. Wait a minute and try again.`, { details, cause: e });
    }
    if (status === 404 && !e.requestId) {
      return new FluxError('remote_unavailable', `No fal proxy answered at this site's ${DEFAULT_PROXY_URL} (HTTP 404); remote generation needs the proxy server (docs/proxy.md).`, { details, cause: e });
    }
    if (status >= 500) {
      return new FluxError('remote_unavailable', `fal could not run ${title} (HTTP ${status}${type ? ` ${type}` : ''}${detail ? `: ${detail}` : ''}) after retries. Try again later.`, { details, cause: e });
    }
    return new FluxError('remote_error', `fal answered HTTP ${status} for ${title}${detail ? `: ${detail}` : ''}.`, { details, cause: e });
  }
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof TypeError) return new FluxError('remote_unavailable', `Could not reach the fal proxy (${msg}). Check your connection.`, { cause: e });
  return new FluxError('remote_error', `Remote generation failed: ${msg}`, { cause: e });
}
