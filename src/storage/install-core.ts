/**
 * The install engine shared by HTTP installs (pack-installer.ts) and local-file installs (file-installer.ts).
 * A `ByteSource` supplies a file's bytes from an offset, or an exact span; this module owns everything else:
 * records, chunking, per-chunk and whole-file sha256, resume, repair, quota, progress and errors.
 *
 * Per file (docs/storage.md, "Resume"):
 *  - complete → reused, not read;
 *  - corrupt with `badChunks` (found by verifyInstalledPack from the chunk hashes) → refetch only those chunks
 *    (each must hash to its recorded sha256), else restart the file;
 *  - partial → re-read the stored chunks one at a time, checking each against its recorded sha256 and feeding
 *    the whole-file hasher (noble's state cannot be stored mid-file); cut the file at the first bad chunk;
 *    then ask the source for the rest (`Range: bytes=<stored>-`). A source that answers from byte 0 instead
 *    (HTTP 200, 416, changed validator) restarts the file, counted in `stats.restarts`;
 *  - stream the rest into chunk records, each written with its sha256 in one transaction with the record;
 *  - a whole-file sha256 or size mismatch (transit corruption, wrong source file) drops the file's bytes and
 *    is reported as 'pack_file_corrupt' after the other files were installed; the next install refetches it.
 */
import { FluxError, toFluxError } from '../errors.js';
import { packSizeBytes, type PackFile, type PackManifest } from '../pack/manifest.js';
import { installCancelled } from './http-pack-source.js';
import { defaultPackStore, type FileRecord, type FileValidator, type PackRecord, type PackSourceKind, type PackStore } from './indexeddb-pack-store.js';
import { withPackLock } from './pack-locks.js';
import { chunkSha256, Sha256Hasher } from './sha256.js';
import { checkQuota, defaultStorage, formatSize, requestPersistence, type StorageLike } from './storage-status.js';

/** Why stored bytes of a file were dropped (all or from some chunk on). */
/** Chunk writes queued behind the network reads (each holds one chunk in memory). */
const WRITES_IN_FLIGHT = 4;

export type RestartReason =
  /** A Range request was answered 200 with the whole file: the server ignores ranges. */
  | 'range_ignored'
  /** HTTP 416 to a Range request. */
  | 'range_not_satisfiable'
  /** The ETag / Last-Modified differs from the one stored with the partial file: the server's file changed. */
  | 'validator_changed'
  /** A 206 whose Content-Range is not the range asked for. */
  | 'range_mismatch'
  /** A stored chunk failed its sha256 (or was missing) when re-read for a resume: cut there. */
  | 'stored_chunk_corrupt'
  /** Chunk repair was not possible (no 206, or the refetched chunk does not match its recorded hash). */
  | 'repair_failed'
  /** The file was marked corrupt and chunk hashes do not say where: refetch it whole. */
  | 'corrupt';

export type InstallProgress =
  | {
      status: 'download';
      packId: string;
      file: string;
      fileLoadedBytes: number;
      fileTotalBytes: number;
      /** Pack bytes done (stored before this call, or received by it); never decreases within a call. */
      loadedBytes: number;
      /** Constant for an install: the manifest's total. */
      totalBytes: number;
      /** Over the last few seconds of bytes received by this call (stored bytes excluded). */
      bytesPerSecond: number;
      /** Seconds until every byte still missing is in; null until a rate is known. */
      etaSeconds: number | null;
    }
  | {
      /** Resume: re-reading a partial file's stored chunks (checked against their hashes) before continuing. */
      status: 'rehash';
      packId: string;
      file: string;
      fileLoadedBytes: number;
      /** Stored bytes of the file being re-read. */
      fileTotalBytes: number;
      loadedBytes: number;
      totalBytes: number;
    }
  | { status: 'restart'; packId: string; file: string; reason: RestartReason; /** 0: the whole file restarts. */ fromByte: number; droppedBytes: number; loadedBytes: number; totalBytes: number }
  | { status: 'repair'; packId: string; file: string; /** Chunk indices refetched. */ chunks: number[]; loadedBytes: number; totalBytes: number }
  | { status: 'verify'; packId: string; file: string; loadedBytes: number; totalBytes: number; /** Already stored and verified, not fetched. */ reused: boolean }
  | { status: 'done'; packId: string; totalBytes: number };

/** What one install call did; the figures the tests assert. */
export interface InstallStats {
  /** Pack-file requests (HTTP; manifest.json excluded) or local-file reads started. */
  requests: number;
  /** Bytes received from the network or read from local files. */
  bytesFetched: number;
  /** Stored bytes kept: complete files, checked partial prefixes, good chunks of repaired files. */
  bytesReused: number;
  /** Files already complete (not read at all). */
  reusedFiles: number;
  /** Partial files continued from their stored bytes. */
  resumedFiles: number;
  /** Stored bytes dropped and fetched again, and why (fromByte 0: the whole file). */
  restarts: { file: string; reason: RestartReason; fromByte: number; droppedBytes: number }[];
  /** Chunks of corrupt files refetched one by one. */
  repairedChunks: number;
}

export interface InstallResult {
  manifest: PackManifest;
  /** `navigator.storage.persist()` (Window) or `persisted()` (Worker) at install start; null without the API. */
  persisted: boolean | null;
  stats: InstallStats;
}

export interface BaseInstallOptions {
  /** @defaultValue defaultPackStore() */
  store?: PackStore;
  signal?: AbortSignal;
  onProgress?: (e: InstallProgress) => void;
  /** Minimum ms between 'download' events of a file; its last one is always sent. @defaultValue 100 */
  progressIntervalMs?: number;
  /** StorageManager for the quota check and persistence. @defaultValue navigator.storage; null: skip both */
  storage?: StorageLike | null;
  /**
   * Replace a stored pack of the same id that came from another source (URL or folder). Without it such an
   * install is refused ('pack_install_failed', `details.reason: 'other_source'`) before anything is written;
   * the UI passes it after asking the user.
   */
  replace?: boolean;
}

/** A file's bytes, streamed from `start`. */
export interface OpenedFile {
  /** The offset asked for, or 0 when the source restarted the file (then `restartReason` says why). */
  start: number;
  restartReason?: RestartReason;
  /** HTTP validator of this response, stored with a file started from 0. */
  validator?: FileValidator;
  /** Next piece, or null at the end. Throws on a network or read error. */
  read(): Promise<Uint8Array | null>;
  cancel(): void;
}

export interface ByteSource {
  kind: PackSourceKind;
  sourceUrl: string | null;
  /** Local installs: the name of the chosen folder, when the files came with one. */
  sourceFolder?: string;
  /** Requests made (or local reads started) so far. */
  requests: number;
  /** URL or local path, for messages. */
  describe(file: PackFile): string;
  /** Bytes from `from` to the end. May throw 'pack_file_corrupt' (e.g. a local file of the wrong size). */
  open(file: PackFile, from: number, validator: FileValidator | undefined, signal: AbortSignal): Promise<OpenedFile>;
  /** Exactly bytes [start, end), or null when the source will not serve that span as asked. */
  readSpan(file: PackFile, start: number, end: number, validator: FileValidator | undefined, signal: AbortSignal): Promise<Uint8Array<ArrayBuffer> | null>;
}

/** Bytes of a file that an install can keep, as far as the records say (checked again when read). */
export function reusableBytes(file: PackFile, rec: FileRecord | undefined): number {
  if (!rec) return 0;
  if (rec.state === 'complete') return file.size;
  if (rec.state === 'partial') return Math.min(rec.bytesDone, file.size);
  if (rec.badChunks?.length && rec.chunkSha256?.length === rec.chunkCount) {
    const bad = rec.badChunks.reduce((s, i) => s + Math.max(0, Math.min(rec.chunkBytes, file.size - i * rec.chunkBytes)), 0);
    return file.size - bad;
  }
  return 0;
}

/** Bytes per second over a sliding window of samples of a cumulative byte count. */
class RateMeter {
  private samples: [number, number][] = [];
  constructor(private readonly windowMs = 5000) {}
  add(t: number, bytes: number): void {
    const last = this.samples.at(-1);
    if (last && t - last[0] < 100) return; // one sample per 100 ms is plenty
    this.samples.push([t, bytes]);
    while (this.samples.length > 2 && t - this.samples[1]![0] >= this.windowMs) this.samples.shift();
  }
  rate(): number {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last[0] - first[0] <= 0) return 0;
    return ((last[1] - first[1]) * 1000) / (last[0] - first[0]);
  }
}

function isQuotaError(e: unknown): boolean {
  return e instanceof Error && e.name === 'QuotaExceededError';
}

/** Where a stored pack (or its pending update) came from, in words; null when nothing is stored. */
interface SourceId {
  kind: PackSourceKind;
  url: string | null;
  folder: string | undefined;
}

function storedSource(rec: PackRecord): SourceId {
  const p = rec.pending;
  return p ? { kind: p.source ?? 'http', url: p.sourceUrl, folder: p.sourceFolder } : { kind: rec.source ?? 'http', url: rec.sourceUrl, folder: rec.sourceFolder };
}

function describeSource(s: SourceId): string {
  if (s.kind === 'http') return s.url ?? 'an unknown URL';
  return s.folder ? `the local folder "${s.folder}"` : 'a local folder';
}

/** Same URL (trailing slashes aside), or both local folders whose names, where known, agree. */
function sameSource(a: SourceId, b: SourceId): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'http') return (a.url ?? '').replace(/\/+$/, '') === (b.url ?? '').replace(/\/+$/, '');
  return a.folder === undefined || b.folder === undefined || a.folder === b.folder;
}

/**
 * Install `manifest`'s files from `source` into the store (see the module comment). Runs holding the pack's
 * lock (pack-locks.ts): a second install, verify or delete of the pack in any tab waits or is refused.
 */
export async function runInstall(manifest: PackManifest, source: ByteSource, options: BaseInstallOptions): Promise<InstallResult> {
  const store = options.store ?? defaultPackStore();
  if (options.signal?.aborted) throw installCancelled();
  return withPackLock(store.dbName, manifest.id, options.signal, async (signal) => {
    // Read under the lock: what another tab stored before this install got the lock counts.
    const existing = await store.getPack(manifest.id);
    const requested: SourceId = { kind: source.kind, url: source.sourceUrl, folder: source.sourceFolder };
    if (existing && !options.replace && !sameSource(storedSource(existing), requested)) {
      const installed = describeSource(storedSource(existing));
      const wanted = describeSource(requested);
      throw new FluxError(
        'pack_install_failed',
        `Pack "${manifest.id}" is already stored from ${installed}; this install is from ${wanted}. ` +
          'Installing it would replace the stored pack (its files are deleted once the new ones verify). Delete the pack first, or confirm the replacement.',
        { details: { packId: manifest.id, reason: 'other_source', installedSource: installed, requestedSource: wanted } },
      );
    }
    const run = new InstallRun(manifest, source, store, options, signal);
    try {
      return await run.run(existing);
    } catch (e) {
      throw await run.mapError(e);
    }
  });
}

class InstallRun {
  private readonly packId: string;
  private readonly totalBytes: number;
  private readonly stats: InstallStats = { requests: 0, bytesFetched: 0, bytesReused: 0, reusedFiles: 0, resumedFiles: 0, restarts: [], repairedChunks: 0 };
  /** Bytes counted as done per file, and their sum. */
  private readonly fileDone = new Map<string, number>();
  private done = 0;
  /** Highest loadedBytes reported: progress never goes back, even when a file restarts. */
  private reported = 0;
  private readonly meter = new RateMeter();
  private readonly interval: number;

  constructor(
    private readonly manifest: PackManifest,
    private readonly source: ByteSource,
    private readonly store: PackStore,
    private readonly options: BaseInstallOptions,
    private readonly signal: AbortSignal,
  ) {
    this.packId = manifest.id;
    this.totalBytes = packSizeBytes(manifest);
    this.interval = options.progressIntervalMs ?? 100;
  }

  private checkAbort(): void {
    if (this.signal.aborted) throw installCancelled();
  }

  private setDone(path: string, n: number): void {
    this.done += n - (this.fileDone.get(path) ?? 0);
    this.fileDone.set(path, n);
  }

  private loaded(): number {
    this.reported = Math.min(this.totalBytes, Math.max(this.reported, this.done));
    return this.reported;
  }

  async run(existing: PackRecord | undefined): Promise<InstallResult> {
    const { store, manifest, packId } = this;
    const storage = this.options.storage === null ? undefined : (this.options.storage ?? defaultStorage());
    const persisted = await requestPersistence(storage);
    this.checkAbort();

    const records = new Map<string, FileRecord | undefined>();
    for (const f of manifest.files) {
      const rec = await store.getFileRecord(packId, f);
      records.set(f.path, rec);
      this.setDone(f.path, reusableBytes(f, rec));
    }
    // Before any pack-file request: is there room for what is still missing?
    await checkQuota(packId, this.totalBytes - this.done, storage);
    this.checkAbort();
    this.reported = this.done;

    const startedAt = Date.now();
    const { kind, sourceUrl } = this.source;
    const folder = this.source.sourceFolder !== undefined ? { sourceFolder: this.source.sourceFolder } : {};
    if (existing?.state === 'complete') {
      // Keep serving the complete pack until the new manifest's files all verify (they sit beside it,
      // keyed by sha256); only then does commitPack switch over and drop what is no longer listed.
      if (JSON.stringify(existing.manifest) !== JSON.stringify(manifest)) await store.putPack({ ...existing, pending: { manifest, sourceUrl, source: kind, ...folder, startedAt } });
    } else {
      await store.putPack({ id: packId, manifest, state: 'installing', sourceUrl, source: kind, ...folder, installedAt: existing?.installedAt ?? null });
    }

    const corrupt: FluxError[] = [];
    for (const f of manifest.files) {
      this.checkAbort();
      try {
        await this.installFile(f, records.get(f.path));
      } catch (e) {
        // A bad file does not stop the others: report it once they are in.
        if (e instanceof FluxError && e.code === 'pack_file_corrupt' && !this.signal.aborted) corrupt.push(e);
        else throw e;
      }
    }
    if (corrupt.length === 1) throw corrupt[0]!;
    if (corrupt.length > 1) {
      const files = corrupt.map((e) => e.details?.file);
      throw new FluxError('pack_file_corrupt', `${corrupt.length} files of pack "${packId}" did not verify (${files.join(', ')}). First: ${corrupt[0]!.message}`, {
        details: { ...corrupt[0]!.details, files },
      });
    }

    const committed: PackRecord = { id: packId, manifest, state: 'complete', sourceUrl, source: kind, ...folder, installedAt: Date.now() };
    await store.commitPack(committed);
    this.stats.requests = this.source.requests;
    this.options.onProgress?.({ status: 'done', packId, totalBytes: this.totalBytes });
    return { manifest, persisted, stats: this.stats };
  }

  private emitVerify(f: PackFile, reused: boolean): void {
    this.options.onProgress?.({ status: 'verify', packId: this.packId, file: f.path, loadedBytes: this.loaded(), totalBytes: this.totalBytes, reused });
  }

  private async installFile(f: PackFile, rec: FileRecord | undefined): Promise<void> {
    if (rec?.state === 'complete') {
      this.stats.reusedFiles++;
      this.stats.bytesReused += f.size;
      this.emitVerify(f, true);
      return;
    }
    let cur: { rec: FileRecord; hasher: Sha256Hasher } | null = null;
    if (rec?.state === 'corrupt') {
      const why = await this.repair(f, rec);
      if (why === null) {
        this.emitVerify(f, false);
        return;
      }
      this.restarted(f, why, 0, reusableBytes(f, rec));
      await this.store.deleteFileData(rec);
    } else if (rec && rec.chunkCount > 0) {
      cur = await this.checkStoredPrefix(f, rec);
    } else if (rec) {
      await this.store.deleteFileData(rec);
    }

    if (cur && cur.rec.bytesDone === f.size && f.size > 0) {
      // Every chunk was stored before the interruption; only the final check was missing.
      this.stats.resumedFiles++;
      this.stats.bytesReused += f.size;
      await this.finish(f, cur.rec, cur.hasher);
      return;
    }
    await this.download(f, cur);
  }

  private restarted(f: PackFile, reason: RestartReason, fromByte: number, droppedBytes: number): void {
    this.stats.restarts.push({ file: f.path, reason, fromByte, droppedBytes });
    this.setDone(f.path, fromByte);
    this.options.onProgress?.({ status: 'restart', packId: this.packId, file: f.path, reason, fromByte, droppedBytes, loadedBytes: this.loaded(), totalBytes: this.totalBytes });
  }

  /**
   * Re-read a partial file's chunks, checking each against its recorded sha256, into a fresh whole-file
   * hasher. Cuts the file at the first chunk that is missing, short or does not match.
   */
  private async checkStoredPrefix(f: PackFile, rec: FileRecord): Promise<{ rec: FileRecord; hasher: Sha256Hasher }> {
    const hasher = await Sha256Hasher.create();
    const recorded = rec.chunkSha256?.length === rec.chunkCount ? rec.chunkSha256 : undefined;
    const hashes: string[] = [];
    const cb = rec.chunkBytes;
    let bytes = 0;
    for (let i = 0; i < rec.chunkCount; i++) {
      this.checkAbort();
      const data = await this.store.readChunk(rec, i);
      if (!data || data.byteLength !== Math.min(cb, f.size - i * cb)) break;
      const h = await chunkSha256(data);
      if (recorded !== undefined && recorded[i] !== h) break;
      hasher.update(data);
      hashes.push(h);
      bytes += data.byteLength;
      this.options.onProgress?.({ status: 'rehash', packId: this.packId, file: f.path, fileLoadedBytes: bytes, fileTotalBytes: rec.bytesDone, loadedBytes: this.loaded(), totalBytes: this.totalBytes });
    }
    const good = hashes.length;
    if (good < rec.chunkCount || rec.bytesDone !== bytes) {
      const next = await this.store.truncateFile(rec, good, hashes);
      this.restarted(f, 'stored_chunk_corrupt', next.bytesDone, Math.max(0, rec.bytesDone - next.bytesDone));
      return { rec: next, hasher };
    }
    if (recorded === undefined) {
      // A first-version record: remember the hashes now (of bytes the final file hash will vouch for).
      const next = { ...rec, chunkSha256: hashes };
      await this.store.putFileRecord(next);
      return { rec: next, hasher };
    }
    return { rec, hasher };
  }

  /** Refetch a corrupt file's bad chunks. Returns null when repaired, else why the file must restart. */
  private async repair(f: PackFile, rec: FileRecord): Promise<RestartReason | null> {
    const cb = rec.chunkBytes;
    const hashes = rec.chunkSha256;
    const bad = rec.badChunks;
    if (!bad?.length || !hashes || rec.chunkCount !== Math.ceil(f.size / cb) || hashes.length !== rec.chunkCount) return 'corrupt';
    this.options.onProgress?.({ status: 'repair', packId: this.packId, file: f.path, chunks: bad, loadedBytes: this.loaded(), totalBytes: this.totalBytes });
    let fileDone = reusableBytes(f, rec);
    const goodBytes = fileDone;
    for (const i of bad) {
      this.checkAbort();
      const start = i * cb;
      const end = Math.min(f.size, start + cb);
      let bytes: Uint8Array<ArrayBuffer> | null;
      try {
        bytes = await this.source.readSpan(f, start, end, rec.validator, this.signal);
      } catch (e) {
        if (e instanceof FluxError) throw e;
        throw this.networkError(f, 0, e);
      }
      // The recorded hash came from bytes that passed the whole-file check, so a match restores the file.
      if (!bytes || bytes.byteLength !== end - start || (await chunkSha256(bytes)) !== hashes[i]) return 'repair_failed';
      await this.store.replaceChunk(rec, i, bytes);
      this.stats.repairedChunks++;
      this.stats.bytesFetched += bytes.byteLength;
      fileDone += bytes.byteLength;
      this.setDone(f.path, fileDone);
    }
    const { badChunks: _fixed, ...clean } = rec;
    await this.store.putFileRecord({ ...clean, state: 'complete', verifiedAt: Date.now() });
    this.stats.bytesReused += goodBytes;
    return null;
  }

  private networkError(f: PackFile, fileBytes: number, e: unknown): FluxError {
    const verb = this.source.kind === 'http' ? 'Download of' : 'Reading';
    return new FluxError('pack_install_failed', `${verb} ${this.source.describe(f)} failed after ${fileBytes} bytes: ${toFluxError(e).message}.`, {
      cause: e,
      details: { packId: this.packId, file: f.path, url: this.source.describe(f) },
    });
  }

  /** Drop a file's bytes and describe why it does not match the manifest. */
  private async corrupt(f: PackFile, rec: FileRecord, what: string, details: Record<string, unknown>): Promise<FluxError> {
    await this.store.deleteFileData(rec);
    this.setDone(f.path, 0);
    const where = this.source.describe(f);
    const hint =
      this.source.kind === 'http'
        ? 'Its bytes were dropped; install again to fetch it again (if this repeats, the server’s file does not match the pack manifest).'
        : 'Its bytes were dropped; the local file does not match the pack manifest (re-download that file, then install again).';
    return new FluxError('pack_file_corrupt', `${where}: ${what}. ${hint}`, { details: { packId: this.packId, file: f.path, url: where, ...details } });
  }

  private async download(f: PackFile, cur: { rec: FileRecord; hasher: Sha256Hasher } | null): Promise<void> {
    const { store, source, packId, totalBytes } = this;
    const from = cur?.rec.bytesDone ?? 0;
    const opened = await source.open(f, from, cur?.rec.validator, this.signal);
    let rec: FileRecord;
    let hasher: Sha256Hasher;
    if (cur && from > 0 && opened.start === from) {
      ({ rec, hasher } = cur);
      this.stats.resumedFiles++;
      this.stats.bytesReused += from;
    } else {
      // The source answered from byte 0 (counted), or nothing usable was stored (a check cut the file to 0).
      if (cur && from > 0) this.restarted(f, opened.restartReason ?? 'range_ignored', 0, cur.rec.bytesDone);
      if (cur) await store.deleteFileData(cur.rec);
      rec = store.newFileRecord(packId, f, opened.validator);
      await store.putFileRecord(rec);
      hasher = await Sha256Hasher.create();
    }

    const chunkBytes = rec.chunkBytes;
    // Bytes handed to the chunk writer so far (rec.bytesDone lags behind while writes are queued).
    let queuedBytes = rec.bytesDone;
    const newBuf = (): Uint8Array<ArrayBuffer> => new Uint8Array(Math.max(1, Math.min(chunkBytes, f.size - queuedBytes)));
    let buf = newBuf();
    let fill = 0;
    let fileLoaded = rec.bytesDone;
    const startLoaded = fileLoaded;
    this.setDone(f.path, fileLoaded);
    let lastEmit = -Infinity;
    const emit = (force: boolean): void => {
      const now = performance.now();
      this.meter.add(now, this.stats.bytesFetched);
      if (!this.options.onProgress || (!force && now - lastEmit < this.interval)) return;
      lastEmit = now;
      const bytesPerSecond = this.meter.rate();
      this.options.onProgress({
        status: 'download',
        packId,
        file: f.path,
        fileLoadedBytes: fileLoaded,
        fileTotalBytes: f.size,
        loadedBytes: this.loaded(),
        totalBytes,
        bytesPerSecond,
        etaSeconds: bytesPerSecond > 0 ? Math.max(0, totalBytes - this.done) / bytesPerSecond : null,
      });
    };
    this.meter.add(performance.now(), this.stats.bytesFetched);

    // Full chunks are written behind the network reads (at most WRITES_IN_FLIGHT queued, so memory stays
    // bounded): reading, hashing and IndexedDB writes overlap instead of taking turns.
    let writes: Promise<void> = Promise.resolve();
    let inFlight = 0;
    const queueChunk = async (chunk: Uint8Array<ArrayBuffer>): Promise<void> => {
      queuedBytes += chunk.byteLength;
      const digest = chunkSha256(chunk);
      inFlight++;
      writes = writes.then(async () => {
        rec = await store.appendChunk(rec, chunk, await digest);
        inFlight--;
      });
      if (inFlight >= WRITES_IN_FLIGHT) await writes;
    };
    try {
      for (;;) {
        let value: Uint8Array | null;
        try {
          value = await opened.read();
        } catch (e) {
          if (this.signal.aborted) throw installCancelled();
          throw this.networkError(f, fileLoaded - startLoaded, e);
        }
        if (value === null) break;
        if (fileLoaded + value.byteLength > f.size) {
          opened.cancel();
          await writes;
          throw await this.corrupt(f, rec, `the source sent more than the manifest's ${f.size} bytes`, { expectedSize: f.size, actualSize: fileLoaded + value.byteLength });
        }
        hasher.update(value);
        for (let off = 0; off < value.byteLength; ) {
          const n = Math.min(buf.byteLength - fill, value.byteLength - off);
          buf.set(value.subarray(off, off + n), fill);
          fill += n;
          off += n;
          if (fill === buf.byteLength) {
            await queueChunk(buf);
            buf = newBuf();
            fill = 0;
          }
        }
        fileLoaded += value.byteLength;
        this.stats.bytesFetched += value.byteLength;
        this.setDone(f.path, fileLoaded);
        if (this.signal.aborted) {
          opened.cancel();
          throw installCancelled();
        }
        emit(false);
      }
    } finally {
      // Whatever happens, the chunks already read are stored (a resume continues after them).
      await writes.catch(() => undefined);
    }
    await writes; // surfaces a failed write (e.g. quota) after the loop
    // Buffers are sized to the bytes still expected, so a full-length body has flushed its last chunk;
    // anything left in `buf` means the body came up short.
    if (fileLoaded !== f.size) throw await this.corrupt(f, rec, `got ${fileLoaded} bytes, manifest says ${f.size}`, { expectedSize: f.size, actualSize: fileLoaded });
    emit(true);
    await this.finish(f, rec, hasher);
  }

  /** Whole-file check, then mark the file complete. */
  private async finish(f: PackFile, rec: FileRecord, hasher: Sha256Hasher): Promise<void> {
    const actual = hasher.hex();
    if (actual !== f.sha256) throw await this.corrupt(f, rec, `sha256 is ${actual}, manifest says ${f.sha256}`, { expectedSha256: f.sha256, actualSha256: actual });
    await this.store.putFileRecord({ ...rec, state: 'complete', verifiedAt: Date.now() });
    this.setDone(f.path, f.size);
    this.emitVerify(f, false);
  }

  /** Bytes of this manifest's files now in storage. */
  private async storedBytes(): Promise<number | null> {
    try {
      let n = 0;
      for (const f of this.manifest.files) n += Math.min(f.size, (await this.store.getFileRecord(this.packId, f))?.bytesDone ?? 0);
      return n;
    } catch {
      return null;
    }
  }

  /** Every failure as a FluxError; interruptions say that the install resumes. */
  async mapError(e: unknown): Promise<FluxError> {
    if (this.signal.aborted) return installCancelled();
    if (e instanceof FluxError && e.code !== 'pack_install_failed') return e;
    const stored = await this.storedBytes();
    const again = this.source.kind === 'http' ? 'install the pack again' : 'install from the same folder again';
    const resume =
      stored !== null && stored > 0
        ? ` The install can be resumed: ${formatSize(stored)} of ${formatSize(this.totalBytes)} are stored; ${again} to continue where it stopped.`
        : ` Nothing was lost; ${again} to retry.`;
    const details = { packId: this.packId, ...(e instanceof FluxError ? e.details : {}), resumable: true, storedBytes: stored, totalBytes: this.totalBytes };
    if (isQuotaError(e)) {
      return new FluxError('storage_quota', `Browser storage is full (quota exceeded) while installing pack "${this.packId}". Free disk space or delete other model packs.${resume}`, { cause: e, details });
    }
    const message = e instanceof FluxError ? e.message : `Installing pack "${this.packId}" failed: ${toFluxError(e).message}`;
    return new FluxError('pack_install_failed', message.replace(/\.?$/, '.') + resume, { cause: e instanceof FluxError ? (e.cause ?? e) : e, details });
  }
}
