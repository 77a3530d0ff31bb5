/**
 * A pack folder served over HTTP, read on demand with no install (CLI/dev runs of a served pack).
 * Also home of the URL and HTTP-error rules the installer shares, so both report failures the same way.
 */
import { FluxError, type FluxErrorCode } from '../errors.js';
import { findFile, parseManifest, type PackManifest } from '../pack/manifest.js';
import type { PackSource } from './pack-source.js';

/** The subset of `fetch` we use; injectable for tests and for Node callers with their own agent. */
export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>;

export interface HttpOptions {
  /** @defaultValue globalThis.fetch */
  fetch?: FetchLike;
  signal?: AbortSignal;
}

/** URL of a pack file: base (with or without trailing slash) + the path, each segment URL-encoded. */
export function packFileUrl(baseUrl: string, path: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

export function installCancelled(): FluxError {
  return new FluxError('cancelled', 'Pack install was cancelled.');
}

/**
 * GET that fails with a FluxError naming the URL and status: 404/410 → 'pack_file_missing', any other
 * HTTP or network failure → `failCode`; an aborted signal → 'cancelled'.
 */
export async function httpGet(
  url: string,
  options: HttpOptions & { cache?: RequestCache; headers?: Record<string, string>; /** Non-2xx statuses returned rather than thrown (e.g. 416). */ accept?: number[] },
  failCode: FluxErrorCode,
): Promise<Response> {
  const doFetch = options.fetch ?? ((u, i) => fetch(u, i));
  let res: Response;
  try {
    res = await doFetch(url, {
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.cache ? { cache: options.cache } : {}),
      ...(options.headers ? { headers: options.headers } : {}),
    });
  } catch (e) {
    if (options.signal?.aborted) throw installCancelled();
    const why = options.fetch ? null : await diagnoseFetchFailure(url, e, options.signal);
    if (options.signal?.aborted) throw installCancelled();
    throw new FluxError(failCode, why?.message ?? `Could not fetch ${url}: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
      details: { url, ...(why ? { reason: why.reason, origin: why.origin } : {}) },
    });
  }
  if (!res.ok && !options.accept?.includes(res.status)) {
    void res.body?.cancel().catch(() => {});
    const code = res.status === 404 || res.status === 410 ? 'pack_file_missing' : failCode;
    throw new FluxError(code, `GET ${url} failed: HTTP ${res.status} ${res.statusText}`.trimEnd(), {
      details: { url, status: res.status },
    });
  }
  return res;
}

/**
 * A browser's fetch gives the same bare TypeError ("Failed to fetch") for a cross-origin answer without CORS
 * headers and for a network that is down. A `no-cors` HEAD tells them apart: it resolves (opaquely) whenever the
 * server answers at all. Null where there is no page origin (Node) or the URL is same-origin.
 */
async function diagnoseFetchFailure(url: string, e: unknown, signal: AbortSignal | undefined): Promise<{ reason: 'cors' | 'network'; origin: string; message: string } | null> {
  const here = (globalThis as { location?: { origin?: string; href?: string } }).location;
  if (!(e instanceof TypeError) || !here?.origin || !here.href) return null;
  let origin: string;
  try {
    origin = new URL(url, here.href).origin;
  } catch {
    return null;
  }
  if (origin === here.origin) return null;
  try {
    await fetch(url, { method: 'HEAD', mode: 'no-cors', cache: 'no-store', ...(signal ? { signal } : {}) });
  } catch {
    return { reason: 'network', origin, message: `Could not reach ${origin} to fetch ${url}: the network is down, or the server does not answer (${e.message}).` };
  }
  return {
    reason: 'cors',
    origin,
    message: `The server at ${origin} does not allow cross-origin requests (no Access-Control-Allow-Origin), so this page cannot read ${url}. The host must send CORS headers for pack files (see docs/hosting.md).`,
  };
}

/** Fetch and validate `${baseUrl}/manifest.json`. */
export async function fetchManifest(baseUrl: string, options: HttpOptions = {}, failCode: FluxErrorCode = 'pack_file_missing'): Promise<PackManifest> {
  const url = packFileUrl(baseUrl, 'manifest.json');
  // 'no-cache' revalidates, so an updated pack on the server is seen on the next install.
  let res: Response;
  try {
    res = await httpGet(url, { ...options, cache: 'no-cache' }, failCode);
  } catch (e) {
    // A missing manifest most often means a wrong URL: say what the URL must point at.
    if (e instanceof FluxError && e.code === 'pack_file_missing') {
      const status = (e.details as { status?: number } | undefined)?.status;
      throw new FluxError('pack_file_missing', `No pack manifest at ${url} (HTTP ${status ?? 404}): the URL must be the pack's folder, the one holding manifest.json.`, { cause: e, details: { ...e.details, url } });
    }
    throw e;
  }
  let json: unknown;
  try {
    json = await res.json();
  } catch (e) {
    if (options.signal?.aborted) throw installCancelled();
    throw new FluxError('invalid_manifest', `${url} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  try {
    return parseManifest(json);
  } catch (e) {
    // Name where it came from: the field alone does not say which of several hosts is wrong.
    if (e instanceof FluxError && e.code === 'invalid_manifest') {
      throw new FluxError('invalid_manifest', `Invalid pack manifest at ${url}: ${e.message}`, { cause: e, ...(e.field ? { field: e.field } : {}), details: { url } });
    }
    throw e;
  }
}

/** Open a served pack folder. Files are fetched whole into memory when asked for, and size-checked. */
export async function openHttpPack(baseUrl: string, options: HttpOptions = {}): Promise<PackSource> {
  const manifest = await fetchManifest(baseUrl, options);
  return {
    manifest,
    description: baseUrl,
    async getFile(path: string): Promise<Uint8Array> {
      const expected = findFile(manifest, path);
      const url = packFileUrl(baseUrl, path);
      const res = await httpGet(url, options, 'pack_file_missing');
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (bytes.byteLength !== expected.size) {
        throw new FluxError('pack_file_corrupt', `${url}: expected ${expected.size} bytes (manifest), got ${bytes.byteLength}.`, {
          details: { url, file: path, expectedSize: expected.size, actualSize: bytes.byteLength },
        });
      }
      return bytes;
    },
  };
}
