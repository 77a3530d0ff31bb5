/**
 * Download a served pack folder into IndexedDB. Each file is streamed (response.body reader) into
 * chunk records of `store.chunkBytes`, hashed as it arrives, and only marked complete once its size and
 * sha256 match the manifest; the pack is marked complete once every file is. At most one chunk of a file
 * is held in memory.
 */
import { FluxError, toFluxError } from '../errors.js';
import { packSizeBytes, type PackFile, type PackManifest } from '../pack/manifest.js';
import { fetchManifest, httpGet, installCancelled, packFileUrl, type FetchLike } from './http-pack-source.js';
import { defaultPackStore, type FileRecord, type PackRecord, type PackStore } from './indexeddb-pack-store.js';
import { Sha256Hasher } from './sha256.js';

export type InstallProgress =
  | {
      status: 'download';
      packId: string;
      file: string;
      fileLoadedBytes: number;
      fileTotalBytes: number;
      /** Pack bytes done (downloaded or already stored); never decreases. */
      loadedBytes: number;
      /** Constant for an install: the manifest's total. */
      totalBytes: number;
      /** Average over the bytes downloaded by this call (reused files excluded). */
      bytesPerSecond: number;
      /** null until a rate is known. */
      etaSeconds: number | null;
    }
  | { status: 'verify'; packId: string; file: string; loadedBytes: number; totalBytes: number; /** Already stored and verified, not fetched. */ reused: boolean }
  | { status: 'done'; packId: string; totalBytes: number };

export interface InstallOptions {
  /** @defaultValue defaultPackStore() */
  store?: PackStore;
  /** @defaultValue globalThis.fetch */
  fetch?: FetchLike;
  signal?: AbortSignal;
  onProgress?: (e: InstallProgress) => void;
  /** Minimum ms between 'download' events of a file; its last one is always sent. @defaultValue 100 */
  progressIntervalMs?: number;
}

/** Installs running in this JS context, by database and pack id: two would interleave chunk writes. */
const running = new Set<string>();

/**
 * Install (or finish installing, or update) the pack served at `baseUrl`. Files already stored and
 * verified under the same path and sha256 are not fetched again. Resolves with the installed manifest.
 */
export async function installPack(baseUrl: string, options: InstallOptions = {}): Promise<PackManifest> {
  const store = options.store ?? defaultPackStore();
  const { signal } = options;
  if (signal?.aborted) throw installCancelled();
  const manifest = await fetchManifest(baseUrl, { ...(options.fetch ? { fetch: options.fetch } : {}), ...(signal ? { signal } : {}) }, 'pack_install_failed');
  const lock = `${store.dbName}\n${manifest.id}`;
  if (running.has(lock)) throw new FluxError('busy', `Pack "${manifest.id}" is already being installed.`, { details: { packId: manifest.id } });
  running.add(lock);
  try {
    return await install(baseUrl, manifest, store, options);
  } catch (e) {
    if (signal?.aborted) throw installCancelled();
    if (e instanceof FluxError) throw e;
    const quota = e instanceof Error && e.name === 'QuotaExceededError';
    throw new FluxError('pack_install_failed', `Installing pack "${manifest.id}" failed: ${quota ? 'browser storage is full (quota exceeded)' : toFluxError(e).message}`, {
      cause: e,
      details: { packId: manifest.id },
    });
  } finally {
    running.delete(lock);
  }
}

async function install(baseUrl: string, manifest: PackManifest, store: PackStore, options: InstallOptions): Promise<PackManifest> {
  const packId = manifest.id;
  const existing = await store.getPack(packId);
  const startedAt = Date.now();
  if (existing?.state === 'complete') {
    // Keep serving the complete pack until the new manifest's files all verify (they sit beside it,
    // keyed by sha256); only then does commitPack switch over and drop what is no longer listed.
    if (JSON.stringify(existing.manifest) !== JSON.stringify(manifest)) await store.putPack({ ...existing, pending: { manifest, sourceUrl: baseUrl, startedAt } });
  } else {
    await store.putPack({ id: packId, manifest, state: 'installing', sourceUrl: baseUrl, installedAt: existing?.installedAt ?? null });
  }

  const totalBytes = packSizeBytes(manifest);
  const progress = { loadedBytes: 0, downloadedBytes: 0, t0: performance.now() };
  for (const file of manifest.files) {
    const rec = await store.getFileRecord(packId, file);
    if (rec?.state === 'complete') {
      progress.loadedBytes += file.size;
      options.onProgress?.({ status: 'verify', packId, file: file.path, loadedBytes: progress.loadedBytes, totalBytes, reused: true });
      continue;
    }
    // Simple resume: a partial or corrupt file restarts from byte 0. HTTP-Range resume would instead keep
    // `rec` when rec.chunkBytes === store.chunkBytes, re-hash its chunks 0..chunkCount-1 into the hasher
    // and request `Range: bytes=${rec.bytesDone}-` (see downloadFile).
    if (rec) await store.deleteFileData(rec);
    await downloadFile(baseUrl, packId, file, store, options, totalBytes, progress);
    options.onProgress?.({ status: 'verify', packId, file: file.path, loadedBytes: progress.loadedBytes, totalBytes, reused: false });
  }

  const committed: PackRecord = { id: packId, manifest, state: 'complete', sourceUrl: baseUrl, installedAt: Date.now() };
  await store.commitPack(committed);
  options.onProgress?.({ status: 'done', packId, totalBytes });
  return manifest;
}

async function downloadFile(
  baseUrl: string,
  packId: string,
  file: PackFile,
  store: PackStore,
  options: InstallOptions,
  totalBytes: number,
  progress: { loadedBytes: number; downloadedBytes: number; t0: number },
): Promise<void> {
  const { signal } = options;
  const url = packFileUrl(baseUrl, file.path);
  const corrupt = async (what: string, details: Record<string, unknown>): Promise<FluxError> => {
    await store.deleteFileData(rec);
    return new FluxError('pack_file_corrupt', `${url}: ${what}. The server's file does not match the pack manifest.`, {
      details: { packId, file: file.path, url, ...details },
    });
  };
  // 'no-store': the bytes go to IndexedDB; a second copy in the HTTP cache would double the disk use.
  const res = await httpGet(url, { ...(options.fetch ? { fetch: options.fetch } : {}), ...(signal ? { signal } : {}), cache: 'no-store' }, 'pack_install_failed');
  const reader = res.body?.getReader();

  let rec: FileRecord = store.newFileRecord(packId, file);
  await store.putFileRecord(rec);
  const hasher = new Sha256Hasher();
  const chunkBytes = rec.chunkBytes;
  const newBuf = (): Uint8Array<ArrayBuffer> => new Uint8Array(Math.max(1, Math.min(chunkBytes, file.size - rec.bytesDone)));
  let buf = newBuf();
  let fill = 0;
  let fileLoaded = 0;
  const interval = options.progressIntervalMs ?? 100;
  let lastEmit = -Infinity;
  const emit = (force: boolean): void => {
    const now = performance.now();
    if (!options.onProgress || (!force && now - lastEmit < interval)) return;
    lastEmit = now;
    const seconds = (now - progress.t0) / 1000;
    const bytesPerSecond = seconds > 0 ? progress.downloadedBytes / seconds : 0;
    options.onProgress({
      status: 'download',
      packId,
      file: file.path,
      fileLoadedBytes: fileLoaded,
      fileTotalBytes: file.size,
      loadedBytes: progress.loadedBytes,
      totalBytes,
      bytesPerSecond,
      etaSeconds: bytesPerSecond > 0 ? (totalBytes - progress.loadedBytes) / bytesPerSecond : null,
    });
  };

  while (reader) {
    let part: ReadableStreamReadResult<Uint8Array>;
    try {
      part = await reader.read();
    } catch (e) {
      if (signal?.aborted) throw installCancelled();
      throw new FluxError('pack_install_failed', `Download of ${url} failed after ${fileLoaded} bytes: ${toFluxError(e).message}`, { cause: e, details: { url } });
    }
    if (part.done) break;
    const value = part.value;
    if (fileLoaded + value.byteLength > file.size) {
      void reader.cancel().catch(() => {});
      throw await corrupt(`server sent more than the manifest's ${file.size} bytes`, { expectedSize: file.size, actualSize: fileLoaded + value.byteLength });
    }
    hasher.update(value);
    for (let off = 0; off < value.byteLength; ) {
      const n = Math.min(buf.byteLength - fill, value.byteLength - off);
      buf.set(value.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === buf.byteLength) {
        rec = await store.appendChunk(rec, buf);
        buf = newBuf();
        fill = 0;
      }
    }
    fileLoaded += value.byteLength;
    progress.loadedBytes += value.byteLength;
    progress.downloadedBytes += value.byteLength;
    if (signal?.aborted) {
      void reader.cancel().catch(() => {});
      throw installCancelled();
    }
    emit(false);
  }
  // Buffers are sized to the bytes still expected, so a full-length body has flushed its last chunk;
  // anything left in `buf` means the body came up short.
  if (fileLoaded !== file.size) throw await corrupt(`got ${fileLoaded} bytes, manifest says ${file.size}`, { expectedSize: file.size, actualSize: fileLoaded });
  const actual = hasher.hex();
  if (actual !== file.sha256) throw await corrupt(`sha256 is ${actual}, manifest says ${file.sha256}`, { expectedSha256: file.sha256, actualSha256: actual });
  emit(true);
  await store.putFileRecord({ ...rec, state: 'complete', verifiedAt: Date.now() });
}
