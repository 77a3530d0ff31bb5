/**
 * Download a served pack folder into IndexedDB, resumably. The engine (chunking, hashes, resume, repair,
 * quota, progress) is install-core.ts; this module is the HTTP side: `Range: bytes=<stored>-` with
 * `If-Range`, and what to do when the server answers something else (docs/storage.md, "Resume").
 */
import type { PackFile, PackManifest } from '../pack/manifest.js';
import { fetchManifest, httpGet, installCancelled, packFileUrl, type FetchLike } from './http-pack-source.js';
import type { FileValidator } from './indexeddb-pack-store.js';
import { runInstall, type BaseInstallOptions, type ByteSource, type InstallResult, type OpenedFile, type RestartReason } from './install-core.js';

export type { InstallProgress, InstallResult, InstallStats, RestartReason } from './install-core.js';

export interface InstallOptions extends BaseInstallOptions {
  /** @defaultValue globalThis.fetch */
  fetch?: FetchLike;
  /** Runs on the fetched manifest before anything is downloaded or written; throwing refuses the install. */
  checkManifest?: (manifest: PackManifest) => void | Promise<void>;
}

/**
 * Install (or finish installing, repair, or update) the pack served at `baseUrl`. Files already stored and
 * verified under the same path and sha256 are not fetched again; a partial file continues with a Range
 * request; a corrupt file with chunk hashes refetches only its bad chunks.
 */
export async function installPack(baseUrl: string, options: InstallOptions = {}): Promise<InstallResult> {
  const { signal } = options;
  if (signal?.aborted) throw installCancelled();
  const manifest = await fetchManifest(baseUrl, { ...(options.fetch ? { fetch: options.fetch } : {}), ...(signal ? { signal } : {}) }, 'pack_install_failed');
  await options.checkManifest?.(manifest);
  return runInstall(manifest, httpByteSource(baseUrl, options.fetch), options);
}

/** Validator fields of a response (ETag, Last-Modified), absent ones left out. */
function validatorOf(res: Response): FileValidator {
  const etag = res.headers.get('etag');
  const lastModified = res.headers.get('last-modified');
  return { ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) };
}

/** If-Range takes a strong ETag, else a date. A weak ETag cannot be used (the server would always send 200). */
function ifRangeValue(v: FileValidator | undefined): string | undefined {
  if (v?.etag && !v.etag.startsWith('W/')) return v.etag;
  return v?.lastModified;
}

function validatorChanged(stored: FileValidator | undefined, seen: FileValidator): boolean {
  if (stored?.etag && seen.etag) return stored.etag !== seen.etag;
  if (stored?.lastModified && seen.lastModified) return stored.lastModified !== seen.lastModified;
  return false;
}

/** `bytes <start>-<end>/<total|*>`; null when absent (e.g. not exposed by CORS) or unparsable. */
function contentRange(res: Response): { start: number; end: number; total: number | null } | null {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range')?.trim() ?? '');
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

function discard(res: Response): void {
  void res.body?.cancel().catch(() => {});
}

/**
 * `p`, or a 'cancelled' rejection as soon as `signal` aborts. Node's fetch (undici 6) sometimes leaves a body
 * read pending forever when the request's signal aborts between reads; a cancelled install must still stop.
 */
function unlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined); // its own AbortError comes later; nobody waits for it
    return Promise.reject(installCancelled());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(installCancelled());
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e: unknown) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}

function opened(res: Response, start: number, signal: AbortSignal, restartReason?: RestartReason): OpenedFile {
  const reader = res.body?.getReader();
  return {
    start,
    ...(restartReason ? { restartReason } : {}),
    validator: validatorOf(res),
    async read() {
      if (!reader) return null;
      try {
        const r = await unlessAborted(reader.read(), signal);
        return r.done ? null : r.value;
      } catch (e) {
        if (signal.aborted) void reader.cancel().catch(() => {}); // let the connection go
        throw e;
      }
    },
    cancel() {
      void reader?.cancel().catch(() => {});
    },
  };
}

export function httpByteSource(baseUrl: string, fetchImpl?: FetchLike): ByteSource {
  const src: ByteSource = {
    kind: 'http',
    sourceUrl: baseUrl,
    requests: 0,
    describe: (f: PackFile) => packFileUrl(baseUrl, f.path),

    async open(f, from, validator, signal) {
      const url = packFileUrl(baseUrl, f.path);
      const get = (headers?: Record<string, string>): Promise<Response> => {
        src.requests++;
        // 'no-store': the bytes go to IndexedDB; a second copy in the HTTP cache would double the disk use.
        return httpGet(url, { ...(fetchImpl ? { fetch: fetchImpl } : {}), signal, cache: 'no-store', ...(headers ? { headers, accept: [416] } : {}) }, 'pack_install_failed');
      };
      const fromZero = async (reason?: RestartReason): Promise<OpenedFile> => opened(await get(), 0, signal, reason);
      if (from === 0) return fromZero();

      const ifRange = ifRangeValue(validator);
      const res = await get({ Range: `bytes=${from}-`, ...(ifRange ? { 'If-Range': ifRange } : {}) });
      const changed = validatorChanged(validator, validatorOf(res));
      if (res.status === 416) {
        discard(res);
        return fromZero('range_not_satisfiable');
      }
      if (res.status === 206) {
        const cr = contentRange(res);
        if (changed) {
          discard(res);
          return fromZero('validator_changed');
        }
        if (cr && (cr.start !== from || (cr.total !== null && cr.total !== f.size))) {
          discard(res);
          return fromZero('range_mismatch');
        }
        return opened(res, from, signal);
      }
      // 200: the whole file, because the server ignores Range or If-Range saw a different file. Use it from 0.
      return opened(res, 0, signal, changed ? 'validator_changed' : 'range_ignored');
    },

    async readSpan(f, start, end, validator, signal) {
      const url = packFileUrl(baseUrl, f.path);
      const ifRange = ifRangeValue(validator);
      src.requests++;
      const res = await httpGet(
        url,
        {
          ...(fetchImpl ? { fetch: fetchImpl } : {}),
          signal,
          cache: 'no-store',
          headers: { Range: `bytes=${start}-${end - 1}`, ...(ifRange ? { 'If-Range': ifRange } : {}) },
          accept: [416],
        },
        'pack_install_failed',
      );
      const cr = contentRange(res);
      if (res.status !== 206 || validatorChanged(validator, validatorOf(res)) || (cr && (cr.start !== start || cr.end !== end - 1))) {
        discard(res);
        return null;
      }
      const bytes = new Uint8Array(await res.arrayBuffer());
      return bytes.byteLength === end - start ? bytes : null;
    },
  };
  return src;
}
