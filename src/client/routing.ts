/**
 * Where a request runs: in this browser (FLUX.1 [schnell] only, when the device can) or on fal through the proxy.
 * A pure function of the endpoint, the user's preference and what the device offers, so the UI can show the
 * decision and its reason before anything runs.
 */
import { FluxError } from '../errors.js';
import type { ActivationDecision, CapacityDecision } from '../runtime/capacity.js';
import { ENDPOINT_SCHEMAS, type FluxEndpointId } from '../remote/endpoints.js';

/** `auto`: local when the device can, else remote. `local`/`remote`: the user's override. */
export type RoutePreference = 'auto' | 'local' | 'remote';

export const ROUTE_PREFERENCES: readonly RoutePreference[] = ['auto', 'local', 'remote'];

export interface RouteDecision {
  endpoint: FluxEndpointId;
  target: 'local' | 'remote';
  preference: RoutePreference;
  /** Why, in words the UI shows as is. */
  reason: string;
}

/** What the device offers for local generation. */
export interface LocalAvailability {
  /** Null: WebGPU is usable; else why not. */
  webgpuError: string | null;
  /** The FLUX.1 [schnell] pack that would run (loaded, or installed and complete), if any. */
  packId: string | null;
  /** The capacity probe's decision for that pack, if it was probed. */
  capacity: CapacityDecision | null;
  /** Whether this request's batch and image size fit the GPU (activation buffers and memory), if checked. */
  request?: ActivationDecision | null;
}

export const LOCAL_ENDPOINT: FluxEndpointId = 'fal-ai/flux/schnell';

/**
 * Whether fal can take a request now: a proxy is configured and answers that it holds a key. Unavailable fal is
 * never a candidate under Auto (the request would only fail there).
 */
export type RemoteAvailability = { available: true } | { available: false; /** Why, e.g. "the fal proxy has no FAL_KEY configured on the server". */ reason: string };

/**
 * Decide where `endpoint` runs. Throws when the preference cannot be honoured: a forced-local request for a model
 * only fal serves (never silently sent off the device), or a remote request with no proxy configured or fal
 * unavailable. `remote`: true/false (a proxy is configured or not), or what its status probe said.
 */
export function decideRoute(endpoint: FluxEndpointId, preference: RoutePreference, local: LocalAvailability | null, remote: boolean | RemoteAvailability): RouteDecision {
  const title = ENDPOINT_SCHEMAS[endpoint].title;
  const toRemote = (reason: string, cause: string): RouteDecision => {
    if (remote === false) throw new FluxError('remote_unavailable', `${reason}, and no fal proxy is configured for remote generation.`, { details: { endpoint } });
    if (remote !== true && !remote.available) {
      throw new FluxError('remote_unavailable', `${cause[0]!.toUpperCase()}${cause.slice(1)}, and fal is unavailable: ${remote.reason}.`, {
        field: 'route',
        details: { endpoint, falUnavailable: remote.reason },
      });
    }
    return { endpoint, target: 'remote', preference, reason };
  };
  if (endpoint !== LOCAL_ENDPOINT) {
    if (preference === 'local') {
      throw new FluxError('local_unavailable', `${title} cannot run in this browser (only FLUX.1 [schnell] can); choose Auto or Remote to send it to fal.`, {
        field: 'route',
        details: { endpoint },
      });
    }
    return toRemote(`${title} runs on fal's servers; this browser runs FLUX.1 [schnell] only`, `${title} runs only on fal's servers`);
  }
  if (preference === 'remote') return toRemote('Remote was chosen', 'Remote was chosen');
  const why = localBlocker(local);
  if (preference === 'local') {
    return { endpoint, target: 'local', preference, reason: why ? `Local was chosen, although ${why}` : 'Local was chosen' };
  }
  if (why) return toRemote(`Sent to fal because ${why}`, why);
  const plan = local?.capacity?.plan ? ` (${local.capacity.plan} plan)` : '';
  return { endpoint, target: 'local', preference, reason: `Runs on this device${plan}` };
}

/** Why this device cannot run schnell now, or null if it can. */
function localBlocker(local: LocalAvailability | null): string | null {
  if (!local) return 'local generation is not set up in this page';
  if (local.webgpuError) return `this browser has no usable WebGPU (${local.webgpuError})`;
  if (!local.packId) return 'no FLUX.1 [schnell] model is installed in this browser';
  if (local.capacity && !local.capacity.canRunLocally) return `this device lacks the capacity: ${local.capacity.reason}`;
  if (local.request && !local.request.fits) return `this request does not fit this GPU: ${local.request.reason}`;
  return null;
}

/** Where the preference persists (localStorage in the app; anything with get/set in other hosts). */
export interface PreferenceStore {
  get(): RoutePreference | null;
  set(p: RoutePreference): void;
}

const STORAGE_KEY = 'flux-webgpu:route-preference';

/** localStorage where it exists, else memory only. */
export function defaultPreferenceStore(): PreferenceStore {
  let memory: RoutePreference | null = null;
  const ls = (() => {
    try {
      return globalThis.localStorage ?? null;
    } catch {
      return null; // storage blocked (e.g. opaque origins)
    }
  })();
  return {
    get: () => {
      const v = ls ? ls.getItem(STORAGE_KEY) : memory;
      return v === 'auto' || v === 'local' || v === 'remote' ? v : null;
    },
    set: (p) => {
      if (ls) ls.setItem(STORAGE_KEY, p);
      else memory = p;
    },
  };
}
