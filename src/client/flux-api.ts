/**
 * One API for every FLUX request, shaped like `@fal-ai/client` so a demo can swap one for the other:
 * `subscribe(endpointId, { input, onQueueUpdate })` resolves `{ data, requestId }`. FLUX.1 [schnell] runs in this
 * browser (FluxClient → worker → WebGPU) when the device can; everything else goes to fal through the same-origin
 * proxy (FalRemote). The routing decision and its reason come back with every result.
 *
 * @example
 * const flux = await createFluxClient();                       // local worker + remote via /api/fal/proxy
 * const { data, route } = await flux.subscribe('fal-ai/flux/schnell', {
 *   input: { prompt: 'a lighthouse at dusk', image_size: 'square' },
 *   onQueueUpdate: (s) => console.log(s.status),
 * });
 * console.log(route.target, route.reason, data.images[0].url);
 */
import type { FalClient, QueueStatus, RequestLog, RunOptions } from '@fal-ai/client';
import { FluxError, isFluxError } from '../errors.js';
import type { SafetyReport } from '../engine/flux-engine.js';
import type { FluxSchnellInput } from '../pipeline/request.js';
import { isFluxEndpoint, type FluxEndpointId, type FluxRemoteInput } from '../remote/endpoints.js';
import { DEFAULT_PROXY_URL, FalRemote, type RemoteProgressEvent, type RemoteQueueOptions } from '../remote/fal-remote.js';
import { FluxClient, type FluxClientOptions, type FluxImage, type FluxOutput, type GenerateProgressEvent } from './flux-client.js';
import { describeProgress } from './progress-text.js';
import { decideRoute, defaultPreferenceStore, LOCAL_ENDPOINT, type LocalAvailability, type PreferenceStore, type RemoteAvailability, type RouteDecision, type RoutePreference } from './routing.js';

export type { FluxEndpointId, FluxRemoteInput, QueueStatus, RemoteAvailability, RouteDecision, RoutePreference };

/** Progress of either path: local stages and steps, or fal's queue position and logs. */
export type FluxProgressEvent = ({ target: 'local' } & GenerateProgressEvent) | RemoteProgressEvent;

/** fal's output shape, from either path. */
export interface FluxResultData {
  images: FluxImage[];
  seed: number;
  /** `inference` in seconds (fal's field); `total_ms` wall time as this page saw it; local runs add per-stage times. */
  timings: Partial<FluxOutput['timings']> & { total_ms: number };
  has_nsfw_concepts: boolean[];
  prompt: string;
  /** Whether a safety checker ran, and which. */
  safety: SafetyReport;
}

export interface FluxResult {
  data: FluxResultData;
  requestId: string;
  route: RouteDecision;
}

/** `@fal-ai/client`'s subscribe options (its QueueSubscribeOptions type is not exported). */
type FalSubscribeOptions = Parameters<FalClient['subscribe']>[1];
/** Omit over each member of a union (fal's polling/streaming variants keep their own fields). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * Every option of `@fal-ai/client`'s `subscribe` (RunOptions + QueueSubscribeOptions), so fal's own snippets
 * type-check and run unchanged, plus `onProgress` and `route`. Where the local path differs: docs/fal-compat.md.
 */
export type SubscribeOptions = DistributiveOmit<FalSubscribeOptions, 'input' | 'abortSignal'> & {
    input: FluxSchnellInput | FluxRemoteInput;
    /** Cancels locally, or on fal's queue; the promise rejects with `name === 'AbortError'`. */
    abortSignal?: AbortSignal;
    onProgress?: (e: FluxProgressEvent) => void;
    /** Override the stored preference for this call. */
    route?: RoutePreference;
  };

/** `@fal-ai/client`'s `run` options: no queue updates; the result comes back when done. */
export type RunCallOptions = Omit<RunOptions<unknown>, 'input' | 'abortSignal'> & {
  input: FluxSchnellInput | FluxRemoteInput;
  abortSignal?: AbortSignal;
  route?: RoutePreference;
};

export interface CreateFluxClientOptions {
  /**
   * The local runtime: an existing FluxClient, options to create one, or false for remote only.
   * @defaultValue a FluxClient with the bundled worker
   */
  local?: FluxClient | FluxClientOptions | false;
  /** Same-origin fal proxy route, or null for local only. @defaultValue '/api/fal/proxy' */
  proxyUrl?: string | null;
  /** Where the route preference persists. @defaultValue localStorage */
  preferenceStore?: PreferenceStore;
  /** Queue poll interval for remote requests, ms. @defaultValue 500 */
  pollIntervalMs?: number;
}

/** How long a status probe's answer is trusted: a proxy that comes back is noticed soon, without a probe per click. */
const FAL_STATUS_TTL_MS = { available: 30_000, unavailable: 5_000 };

export class FluxApiClient {
  private falStatus: { expires: number; value: Promise<RemoteAvailability> } | null = null;

  private constructor(
    /** The local runtime (install/load packs, GPU info), or null when remote only. */
    readonly local: FluxClient | null,
    /** The remote path, or null when no proxy is configured. */
    readonly remote: FalRemote | null,
    private readonly store: PreferenceStore,
  ) {}

  static async create(options: CreateFluxClientOptions = {}): Promise<FluxApiClient> {
    const local = options.local === false ? null : options.local instanceof FluxClient ? options.local : await FluxClient.create(options.local ?? {});
    const proxyUrl = options.proxyUrl === undefined ? DEFAULT_PROXY_URL : options.proxyUrl;
    const remote = proxyUrl === null ? null : new FalRemote({ proxyUrl, ...(options.pollIntervalMs ? { pollIntervalMs: options.pollIntervalMs } : {}) });
    return new FluxApiClient(local, remote, options.preferenceStore ?? defaultPreferenceStore());
  }

  get routePreference(): RoutePreference {
    return this.store.get() ?? 'auto';
  }

  /** Persist the user's choice: auto, force local, or force remote. */
  setRoutePreference(p: RoutePreference): void {
    if (p !== 'auto' && p !== 'local' && p !== 'remote') throw new FluxError('invalid_input', `route: must be "auto", "local" or "remote", got ${JSON.stringify(p)}`, { field: 'route' });
    this.store.set(p);
  }

  /** Where `endpoint` would run now, and why (probes the device's capacity for schnell). */
  async route(endpoint: FluxEndpointId, preference: RoutePreference = this.routePreference, input?: unknown): Promise<RouteDecision> {
    if (!isFluxEndpoint(endpoint)) throw new FluxError('invalid_input', `endpoint: unknown endpoint ${JSON.stringify(endpoint)}`, { field: 'endpoint' });
    const local = endpoint === LOCAL_ENDPOINT && preference !== 'remote' ? await this.localAvailability(input) : null;
    // Forced local never goes to fal, so it needs no probe.
    const remote = this.remote === null ? false : endpoint === LOCAL_ENDPOINT && preference === 'local' ? true : await this.falAvailability();
    return decideRoute(endpoint, preference, local, remote);
  }

  /**
   * Whether fal can take requests now, from the proxy's status probe (`GET <proxyUrl>/status`, which spends
   * nothing): no key on the proxy, no proxy (404) or no answer make fal unavailable, with the reason.
   */
  falAvailability(): Promise<RemoteAvailability> {
    if (!this.remote) return Promise.resolve({ available: false, reason: 'no fal proxy is configured (proxyUrl: null)' });
    const cached = this.falStatus;
    if (cached && Date.now() < cached.expires) return cached.value;
    const entry = { expires: Date.now() + FAL_STATUS_TTL_MS.available, value: probeFalProxy(this.remote.proxyUrl) };
    this.falStatus = entry;
    // A failed probe is retried sooner than a good one.
    void entry.value.then((v) => {
      if (!v.available) entry.expires = Date.now() + FAL_STATUS_TTL_MS.unavailable;
    });
    return entry.value;
  }

  /**
   * Run a request where `route` says, with fal's subscribe semantics: `onEnqueue(requestId)`, then `onQueueUpdate`
   * with IN_QUEUE → IN_PROGRESS (logs only with `logs: true`) → COMPLETED, locally as on fal. `timeout` (ms)
   * cancels the request and rejects with code 'timeout'.
   */
  async subscribe(endpoint: FluxEndpointId, options: SubscribeOptions): Promise<FluxResult> {
    if (options.webhookUrl !== undefined) {
      throw new FluxError('invalid_input', 'webhookUrl: webhooks are not supported: fal would call the webhook with the proxy\'s key-holder as the client, and local runs have no server to call it. Use subscribe\'s result instead.', { field: 'webhookUrl' });
    }
    if (options.timeout !== undefined && !(typeof options.timeout === 'number' && options.timeout > 0 && Number.isFinite(options.timeout))) {
      throw new FluxError('invalid_input', `timeout: must be a positive number of milliseconds, got ${JSON.stringify(options.timeout)}`, { field: 'timeout' });
    }
    return withTimeout(options.timeout, options.abortSignal, async (signal) => {
      const route = await this.route(endpoint, options.route ?? this.routePreference, options.input);
      const call = { ...options, ...(signal ? { abortSignal: signal } : {}) };
      if (route.target === 'local') return { ...(await this.runLocal(call)), route };
      return { ...(await this.runRemote(endpoint, call)), route };
    });
  }

  /** fal's `run`: the same request without queue updates. */
  async run(endpoint: FluxEndpointId, options: RunCallOptions): Promise<FluxResult> {
    const { input, abortSignal, route, ...rest } = options;
    return this.subscribe(endpoint, { ...rest, input, ...(abortSignal ? { abortSignal } : {}), ...(route ? { route } : {}) });
  }

  /** fal's queue API for remote endpoints (local requests do not queue). */
  get queue(): FalRemote['queue'] {
    if (!this.remote) throw new FluxError('remote_unavailable', 'No fal proxy is configured (proxyUrl: null).');
    return this.remote.queue;
  }

  /** Release object URLs of a local result (remote results are plain URLs). */
  revoke(result: FluxResult): void {
    this.local?.revoke(result.data as FluxOutput);
  }

  terminate(): void {
    this.local?.terminate();
  }

  private async runRemote(endpoint: FluxEndpointId, options: SubscribeOptions): Promise<{ data: FluxResultData; requestId: string }> {
    const { onProgress, onQueueUpdate, onEnqueue, abortSignal, logs } = options;
    const r = await this.remote!.subscribe(endpoint, options.input, {
      ...(onProgress ? { onProgress } : {}),
      // fal's client includes logs only when asked; FalRemote always asks (for progress), so strip them here.
      ...(onQueueUpdate ? { onQueueUpdate: (s: QueueStatus) => onQueueUpdate(logs || s.status === 'IN_QUEUE' ? s : { ...s, logs: [] }) } : {}),
      ...(onEnqueue ? { onEnqueue } : {}),
      ...(abortSignal ? { signal: abortSignal } : {}),
      queue: pickQueueOptions(options),
    });
    const checker = (options.input as FluxRemoteInput).enable_safety_checker !== false;
    return {
      data: { ...r.data, safety: checker ? { ran: true, checker: 'fal' } : { ran: false, checker: null, reason: 'enable_safety_checker was false' } },
      requestId: r.requestId,
    };
  }

  private async runLocal(options: SubscribeOptions): Promise<{ data: FluxResultData; requestId: string }> {
    const local = this.local!;
    const requestId = `local-${crypto.randomUUID()}`;
    const { onProgress, onQueueUpdate, onEnqueue, abortSignal } = options;
    const urls = { request_id: requestId, response_url: '', status_url: '', cancel_url: '' };
    const logs: RequestLog[] = [];
    const shownLogs = () => (options.logs ? [...logs] : []);
    // A local request never waits behind others' requests: it is "queued" at position 0 until this worker starts it.
    onEnqueue?.(requestId);
    onQueueUpdate?.({ status: 'IN_QUEUE', queue_position: 0, ...urls });
    if (!local.loadedModel?.packId) {
      const packId = (await this.localAvailability()).packId;
      if (!packId) throw new FluxError('local_unavailable', 'No FLUX.1 [schnell] model is installed in this browser: install one, or choose Remote.');
      await local.loadPack(packId);
    }
    const out = await local.generate(options.input as FluxSchnellInput, {
      ...(abortSignal ? { signal: abortSignal } : {}),
      onProgress: (e) => {
        onProgress?.({ target: 'local', ...e });
        if (onQueueUpdate) {
          logs.push({ message: describeProgress(e), level: 'INFO', source: 'USER', timestamp: new Date().toISOString() });
          onQueueUpdate({ status: 'IN_PROGRESS', ...urls, logs: shownLogs() });
        }
      },
    });
    onQueueUpdate?.({ status: 'COMPLETED', ...urls, logs: shownLogs(), metrics: { inference_time: out.timings.inference ?? null } });
    return { data: out, requestId };
  }

  /**
   * WebGPU, the schnell pack that would run (the loaded one, else the first complete install), and the capacity
   * decision for it under the current GPU memory limit (the worker caches probes per pack and limit).
   */
  private async localAvailability(input?: unknown): Promise<LocalAvailability> {
    if (!this.local) return { webgpuError: 'local generation is disabled in this page', packId: null, capacity: null };
    const info = await this.local.info();
    if (info.webgpuError) return { webgpuError: info.webgpuError, packId: null, capacity: null };
    const packId = info.loaded?.packId ?? (await this.local.listPacks()).find((p) => p.state === 'complete')?.id ?? null;
    if (!packId) return { webgpuError: null, packId: null, capacity: null };
    try {
      const capacity = await this.local.probeCapacity(packId);
      // With a request: do its batch and size fit this GPU? (Input errors are reported by the run itself.)
      const request =
        input !== undefined && capacity.canRunLocally
          ? await this.local.checkRequest(packId, input as FluxSchnellInput).catch((e: unknown) => {
              if (isFluxError(e) && e.code === 'invalid_input') return null;
              throw e;
            })
          : null;
      return { webgpuError: null, packId, capacity, request };
    } catch (e) {
      if (isFluxError(e) && e.code === 'webgpu_unavailable') return { webgpuError: e.message, packId: null, capacity: null };
      throw e;
    }
  }
}

/** Ask the proxy whether it holds a key (server/fal-proxy.ts FAL_PROXY_STATUS_ROUTE). Never throws. */
async function probeFalProxy(proxyUrl: string): Promise<RemoteAvailability> {
  const at = `the fal proxy at ${proxyUrl}`;
  let res: Response;
  try {
    res = await fetch(`${proxyUrl.replace(/\/+$/, '')}/status`, { cache: 'no-store', signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    return { available: false, reason: `${at} cannot be reached (${e instanceof Error ? e.message : String(e)})` };
  }
  if (res.status === 404) return { available: false, reason: `there is no fal proxy at ${proxyUrl} (HTTP 404)` };
  if (!res.ok) return { available: false, reason: `${at} answered HTTP ${res.status} to its status probe` };
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    // e.g. a static host's SPA fallback answering index.html: no proxy there.
    return { available: false, reason: `there is no fal proxy at ${proxyUrl} (its status probe did not answer JSON)` };
  }
  const configured = (body as { configured?: unknown } | null)?.configured;
  if (configured === true) return { available: true };
  if (configured === false) return { available: false, reason: 'the fal proxy has no FAL_KEY configured on the server' };
  return { available: false, reason: `${at} gave a status without "configured"` };
}

/** Create the client (see CreateFluxClientOptions). */
export function createFluxClient(options: CreateFluxClientOptions = {}): Promise<FluxApiClient> {
  return FluxApiClient.create(options);
}

/** fal's queue options that FalRemote passes to `@fal-ai/client` as they are. */
function pickQueueOptions(o: SubscribeOptions): RemoteQueueOptions {
  const q: RemoteQueueOptions = {};
  if (o.mode === 'streaming') {
    q.mode = 'streaming';
    if ('connectionMode' in o && o.connectionMode) q.connectionMode = o.connectionMode;
  } else if ('pollInterval' in o && o.pollInterval !== undefined) q.pollInterval = o.pollInterval;
  if (o.startTimeout !== undefined) q.startTimeout = o.startTimeout;
  if (o.priority !== undefined) q.priority = o.priority;
  if (o.headers !== undefined) q.headers = o.headers;
  if (o.storageSettings !== undefined) q.storageSettings = o.storageSettings;
  return q;
}

/**
 * Run `body` with a signal that aborts when the caller's does or when `timeoutMs` passes (fal's `timeout`); a
 * timeout rejects with code 'timeout' (the request was cancelled, locally or on fal's queue).
 */
async function withTimeout<T>(timeoutMs: number | undefined, outer: AbortSignal | undefined, body: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
  if (timeoutMs === undefined) return body(outer);
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort(outer!.reason);
  if (outer?.aborted) controller.abort(outer.reason);
  else outer?.addEventListener('abort', onOuterAbort, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    return await body(controller.signal);
  } catch (e) {
    if (timedOut && isFluxError(e) && e.code === 'cancelled') {
      throw new FluxError('timeout', `The request did not complete within timeout: ${timeoutMs} ms, so it was cancelled.`, { field: 'timeout', cause: e });
    }
    throw e;
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuterAbort);
  }
}

let defaultClient: Promise<FluxApiClient> | null = null;
function getDefaultClient(): Promise<FluxApiClient> {
  defaultClient ??= createFluxClient();
  return defaultClient;
}

/**
 * A default client created on first use, like `@fal-ai/client`'s `fal` singleton, so fal's snippets run with only
 * their import changed: `import { fal } from 'flux-webgpu'`. Use createFluxClient() for options.
 */
export const fal = {
  subscribe: (endpoint: FluxEndpointId, options: SubscribeOptions): Promise<FluxResult> => getDefaultClient().then((c) => c.subscribe(endpoint, options)),
  run: (endpoint: FluxEndpointId, options: RunCallOptions): Promise<FluxResult> => getDefaultClient().then((c) => c.run(endpoint, options)),
  queue: {
    submit: (...a: Parameters<FalRemote['queue']['submit']>) => getDefaultClient().then((c) => c.queue.submit(...a)),
    status: (...a: Parameters<FalRemote['queue']['status']>) => getDefaultClient().then((c) => c.queue.status(...a)),
    result: (...a: Parameters<FalRemote['queue']['result']>) => getDefaultClient().then((c) => c.queue.result(...a)),
    cancel: (...a: Parameters<FalRemote['queue']['cancel']>) => getDefaultClient().then((c) => c.queue.cancel(...a)),
  },
};
