/**
 * Installed model packs in IndexedDB. Layout (docs/storage.md):
 *
 *   database `flux-packs` (one database, three object stores, out-of-line keys)
 *     packs   packId                              → PackRecord (manifest, install state)
 *     files   [packId, path, sha256]              → FileRecord (state, bytes and chunks written)
 *     chunks  [packId, path, sha256, chunkIndex]  → Blob (or ArrayBuffer) of ≤ chunkBytes
 *
 * Files are keyed by their expected sha256 as well as their path, so installing a new version of a pack
 * writes beside the old one: a complete pack is never overwritten before its replacement has verified.
 *
 * Records written by the first version (no `chunkSha256`, `validator`, `source`) are read as they are:
 * every added field is optional, so the database stays at version 1 and needs no migration (docs/storage.md).
 *
 * idb-keyval's `createStore` opens one object store per database, and a chunk and its file record must be
 * written in one transaction (so a crash never leaves a record claiming bytes that are not there). So this
 * module opens the database itself and hands out idb-keyval-compatible `UseStore`s for `get`/`set`/`del`.
 * Only IndexedDB, Blob and fetch are used: works in a Window, a dedicated Worker, and Node + fake-indexeddb.
 */
import { get, promisifyRequest, set, type UseStore } from 'idb-keyval';
import { FluxError } from '../errors.js';
import { findFile, packSizeBytes, type PackFile, type PackManifest } from '../pack/manifest.js';
import { IdbConnection } from './idb-connection.js';
import { withPackLock, withPackStopped } from './pack-locks.js';
import type { PackSource } from './pack-source.js';
import { chunkSha256, Sha256Hasher, type FileCheck } from './sha256.js';

export const DEFAULT_DB_NAME = 'flux-packs';
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;
const DB_VERSION = 1;
const STORES = ['packs', 'files', 'chunks'] as const;
type StoreName = (typeof STORES)[number];

/** 'installing' until every file verified; 'corrupt' once verifyInstalledPack found a bad file. */
export type PackState = 'installing' | 'complete' | 'corrupt';
export type FileState = 'partial' | 'complete' | 'corrupt';

export interface PackRecord {
  id: string;
  /** The manifest whose files this pack serves (for a non-complete pack: the one being installed). */
  manifest: PackManifest;
  state: PackState;
  /** Folder URL it was (is being) downloaded from; null when installed from local files. */
  sourceUrl: string | null;
  /** Name of the local folder it was installed from (source 'files'), when the files had one. */
  sourceFolder?: string;
  /** Where the bytes came from. Absent in records of the first version (always 'http'). */
  source?: PackSourceKind;
  /** ms since epoch of the last completed install; null if never completed. */
  installedAt: number | null;
  /** A different manifest being installed over a complete pack; replaces `manifest` once all its files verify. */
  pending?: { manifest: PackManifest; sourceUrl: string | null; source?: PackSourceKind; sourceFolder?: string; startedAt: number };
}

export type PackSourceKind = 'http' | 'files';

/** HTTP validator seen on the first response for a file, sent back as `If-Range` when resuming. */
export interface FileValidator {
  etag?: string;
  lastModified?: string;
}

export interface FileRecord {
  packId: string;
  path: string;
  /** Expected hash (part of the key); for a 'complete' file also the verified one. */
  sha256: string;
  size: number;
  state: FileState;
  /** Chunk size this file was written with: chunk i holds bytes [i·chunkBytes, (i+1)·chunkBytes). */
  chunkBytes: number;
  /** Chunks 0..chunkCount-1 are stored; a resume continues at byte bytesDone (= chunkCount·chunkBytes for a partial file). */
  chunkCount: number;
  bytesDone: number;
  verifiedAt: number | null;
  /**
   * Hex sha256 of each stored chunk, written in the same transaction as the chunk, from the bytes written.
   * They localise *storage* corruption (a resume re-checks stored chunks; verify finds bad chunks of a
   * complete file); they cannot catch *transit* corruption, which only the whole-file hash shows.
   * Absent in records of the first version: filled in by the next resume or verify.
   */
  chunkSha256?: string[];
  /** ETag / Last-Modified of the first response (HTTP installs): the resume's `If-Range`. */
  validator?: FileValidator;
  /** Set by verifyInstalledPack on a 'corrupt' file with chunk hashes: the chunks to refetch. */
  badChunks?: number[];
}

export interface PackStoreOptions {
  /** @defaultValue 'flux-packs' */
  dbName?: string;
  /** Bytes per chunk record; only read when writing (each file records its own). @defaultValue 8 MiB */
  chunkBytes?: number;
  /**
   * Value type of chunk records. Blobs let Chromium keep chunks on disk and `getFile` compose them without
   * copying into the JS heap; 'arraybuffer' is for IndexedDB implementations that cannot store Blobs.
   * (fake-indexeddb 6 on Node ≥ 20 stores Blobs fine.) @defaultValue 'blob'
   */
  chunkType?: 'blob' | 'arraybuffer';
}

type ChunkValue = Blob | ArrayBuffer;

const fileKey = (packId: string, path: string, sha: string): IDBValidKey => [packId, path, sha];
const chunkKey = (f: FileRecord, i: number): IDBValidKey => [f.packId, f.path, f.sha256, i];
// Arrays sort after every number and string, so [..., []] bounds everything that extends the prefix.
const fileChunks = (f: Pick<FileRecord, 'packId' | 'path' | 'sha256'>): IDBKeyRange =>
  IDBKeyRange.bound([f.packId, f.path, f.sha256], [f.packId, f.path, f.sha256, []]);
const packKeys = (packId: string): IDBKeyRange => IDBKeyRange.bound([packId], [packId, []]);

export class PackStore {
  readonly dbName: string;
  readonly chunkBytes: number;
  readonly chunkType: 'blob' | 'arraybuffer';
  private readonly conn = new IdbConnection(() => {
    const req = indexedDB.open(this.dbName, DB_VERSION);
    req.onupgradeneeded = () => {
      for (const s of STORES) if (!req.result.objectStoreNames.contains(s)) req.result.createObjectStore(s);
    };
    return promisifyRequest(req);
  });
  readonly packs: UseStore = this.useStore('packs');
  readonly files: UseStore = this.useStore('files');
  readonly chunks: UseStore = this.useStore('chunks');

  constructor(options: PackStoreOptions = {}) {
    this.dbName = options.dbName ?? DEFAULT_DB_NAME;
    this.chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.chunkType = options.chunkType ?? 'blob';
    if (!Number.isSafeInteger(this.chunkBytes) || this.chunkBytes <= 0) throw new RangeError(`chunkBytes must be a positive integer, got ${this.chunkBytes}`);
  }

  private db(): Promise<IDBDatabase> {
    return this.conn.get();
  }

  private useStore(name: StoreName): UseStore {
    return (mode, callback) => this.db().then((db) => callback(db.transaction(name, mode).objectStore(name)));
  }

  /**
   * Run `fn` in one transaction over several stores; resolves when it commits. `fail(e)` (from a request
   * callback, after reading) aborts the transaction, so none of its writes happen, and rejects with `e`.
   */
  private async tx(names: StoreName[], fn: (stores: Record<StoreName, IDBObjectStore>, fail: (e: Error) => void) => void): Promise<void> {
    const t = (await this.db()).transaction(names, 'readwrite');
    let failure: Error | undefined;
    const fail = (e: Error): void => {
      failure ??= e;
      t.abort();
    };
    fn(Object.fromEntries(names.map((n) => [n, t.objectStore(n)])) as Record<StoreName, IDBObjectStore>, fail);
    try {
      await promisifyRequest(t);
    } catch (e) {
      throw failure ?? e;
    }
  }

  getPack(id: string): Promise<PackRecord | undefined> {
    return get<PackRecord>(id, this.packs);
  }
  putPack(rec: PackRecord): Promise<void> {
    return set(rec.id, rec, this.packs);
  }
  allPacks(): Promise<PackRecord[]> {
    return this.packs('readonly', (s) => promisifyRequest(s.getAll() as IDBRequest<PackRecord[]>));
  }

  getFileRecord(packId: string, file: PackFile): Promise<FileRecord | undefined> {
    return get<FileRecord>(fileKey(packId, file.path, file.sha256), this.files);
  }
  putFileRecord(rec: FileRecord): Promise<void> {
    return set(fileKey(rec.packId, rec.path, rec.sha256), rec, this.files);
  }
  fileRecords(packId: string): Promise<FileRecord[]> {
    return this.files('readonly', (s) => promisifyRequest(s.getAll(packKeys(packId)) as IDBRequest<FileRecord[]>));
  }

  /** A fresh 'partial' record for a file about to be downloaded. */
  newFileRecord(packId: string, file: PackFile, validator?: FileValidator): FileRecord {
    const { path, sha256, size } = file;
    return {
      packId,
      path,
      sha256,
      size,
      state: 'partial',
      chunkBytes: this.chunkBytes,
      chunkCount: 0,
      bytesDone: 0,
      verifiedAt: null,
      chunkSha256: [],
      ...(validator && (validator.etag !== undefined || validator.lastModified !== undefined) ? { validator } : {}),
    };
  }

  private chunkValue(bytes: Uint8Array<ArrayBuffer>): ChunkValue {
    if (this.chunkType === 'blob') return new Blob([bytes]);
    return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
  }

  /**
   * Store chunk `rec.chunkCount` and advance the record (with the chunk's sha256, when given), atomically.
   * Returns the updated record. The pack record is read in the same transaction: when it is gone (the pack
   * was deleted by a writer that did not stop this install, e.g. an older version of the app in another tab),
   * nothing is written and this rejects with 'cancelled', so a deleted pack is never recreated chunk by chunk.
   */
  async appendChunk(rec: FileRecord, bytes: Uint8Array<ArrayBuffer>, sha256?: string): Promise<FileRecord> {
    const next: FileRecord = { ...rec, chunkCount: rec.chunkCount + 1, bytesDone: rec.bytesDone + bytes.byteLength };
    if (sha256 !== undefined && rec.chunkSha256?.length === rec.chunkCount) next.chunkSha256 = [...rec.chunkSha256, sha256];
    else delete next.chunkSha256; // hashes must cover every stored chunk or none
    const value = this.chunkValue(bytes);
    await this.tx(['packs', 'files', 'chunks'], (s, fail) => {
      // The writes are queued at once (no extra round trip per chunk); aborting rolls them back.
      const pack = s.packs.getKey(rec.packId);
      pack.onsuccess = () => {
        if (pack.result === undefined) fail(packDeleted(rec.packId));
      };
      s.chunks.put(value, chunkKey(rec, rec.chunkCount));
      s.files.put(next, fileKey(rec.packId, rec.path, rec.sha256));
    });
    return next;
  }

  /** Overwrite chunk `index` of a stored file (repair of a corrupt chunk); the record is unchanged. */
  async replaceChunk(rec: FileRecord, index: number, bytes: Uint8Array<ArrayBuffer>): Promise<void> {
    const value = this.chunkValue(bytes);
    await this.tx(['chunks'], (s) => void s.chunks.put(value, chunkKey(rec, index)));
  }

  /**
   * Keep chunks 0..keep-1 of a file (with these hashes), drop the rest, and make it 'partial' again: a resume
   * continues from the first chunk that failed its check.
   */
  async truncateFile(rec: FileRecord, keep: number, hashes: string[]): Promise<FileRecord> {
    const { badChunks: _dropped, ...rest } = rec;
    const next: FileRecord = { ...rest, state: 'partial', chunkCount: keep, bytesDone: Math.min(rec.size, keep * rec.chunkBytes), chunkSha256: hashes.slice(0, keep), verifiedAt: null };
    await this.tx(['files', 'chunks'], (s) => {
      s.chunks.delete(IDBKeyRange.bound([rec.packId, rec.path, rec.sha256, keep], [rec.packId, rec.path, rec.sha256, []]));
      s.files.put(next, fileKey(rec.packId, rec.path, rec.sha256));
    });
    return next;
  }

  /** One chunk's bytes (for hashing: one chunk in memory at a time). */
  async readChunk(rec: FileRecord, index: number): Promise<Uint8Array | undefined> {
    const v = await get<ChunkValue>(chunkKey(rec, index), this.chunks);
    if (v === undefined) return undefined;
    return new Uint8Array(v instanceof Blob ? await v.arrayBuffer() : v);
  }

  /** The whole file as one Blob composed of the chunk Blobs (no copy into the JS heap for Blob chunks). */
  async readFileBlob(rec: FileRecord): Promise<Blob> {
    const parts = await this.chunks('readonly', (s) => promisifyRequest(s.getAll(fileChunks(rec)) as IDBRequest<ChunkValue[]>));
    return new Blob(parts);
  }

  /** Remove one file version's chunks and record. */
  deleteFileData(rec: Pick<FileRecord, 'packId' | 'path' | 'sha256'>): Promise<void> {
    return this.tx(['files', 'chunks'], (s) => {
      s.chunks.delete(fileChunks(rec));
      s.files.delete(fileKey(rec.packId, rec.path, rec.sha256));
    });
  }

  /** Remove everything stored for a pack: record, file records, chunks. (deletePack also stops its install.) */
  deletePackData(packId: string): Promise<void> {
    return this.tx(['packs', 'files', 'chunks'], (s) => {
      s.packs.delete(packId);
      s.files.delete(packKeys(packId));
      s.chunks.delete(packKeys(packId));
    });
  }

  /**
   * Make `rec` the pack's record and drop the stored file versions its manifest no longer lists, in one
   * transaction that first re-reads the pack and file records: if the pack record is gone (deleted meanwhile)
   * or any file the manifest lists is not 'complete' in storage, nothing is written and this rejects, so a
   * pack is only ever marked complete with every file present.
   */
  async commitPack(rec: PackRecord): Promise<void> {
    const keep = new Set(rec.manifest.files.map((f) => `${f.path}\n${f.sha256}`));
    await this.tx(['packs', 'files', 'chunks'], (s, fail) => {
      const pack = s.packs.getKey(rec.id);
      const files = s.files.getAll(packKeys(rec.id)) as IDBRequest<FileRecord[]>;
      files.onsuccess = () => {
        if (pack.result === undefined) return fail(packDeleted(rec.id));
        const complete = new Set(files.result.filter((f) => f.state === 'complete').map((f) => `${f.path}\n${f.sha256}`));
        const lost = rec.manifest.files.filter((f) => !complete.has(`${f.path}\n${f.sha256}`)).map((f) => f.path);
        if (lost.length) {
          return fail(
            new FluxError('pack_install_failed', `Pack "${rec.id}": ${lost.join(', ')} ${lost.length === 1 ? 'is' : 'are'} no longer complete in storage (changed while installing); install the pack again.`, {
              details: { packId: rec.id, files: lost },
            }),
          );
        }
        s.packs.put(rec, rec.id);
        for (const f of files.result) {
          if (keep.has(`${f.path}\n${f.sha256}`)) continue;
          s.chunks.delete(fileChunks(f));
          s.files.delete(fileKey(f.packId, f.path, f.sha256));
        }
      };
    });
  }

  /** Close the connection (tests); the store reopens on next use. */
  close(): Promise<void> {
    return this.conn.close();
  }
}

let defaultStore: PackStore | undefined;
/** The app's store: database 'flux-packs', 8 MiB Blob chunks. */
export function defaultPackStore(): PackStore {
  return (defaultStore ??= new PackStore());
}

export interface StoreOption {
  /** @defaultValue defaultPackStore() */
  store?: PackStore;
}

/** What the model manager shows for each stored pack. */
export interface PackInfo {
  id: string;
  name: string;
  /** 'installing' also after an interrupted install: install again (same source) to resume, or delete it. */
  state: PackState;
  /** Total size of the pack's files (manifest). */
  sizeBytes: number;
  /** Bytes actually stored for the pack (partial downloads and an in-progress update included). */
  storedBytes: number;
  testPack: boolean;
  installedAt: number | null;
  /** True while (or after an interrupted) install of a newer manifest over this complete pack. */
  updatePending: boolean;
  /** Where an install (or the pending update) gets its bytes: resume from this URL; null for local files. */
  sourceUrl: string | null;
  /** 'files' when installed from a local folder (resuming needs the folder again). */
  source: PackSourceKind;
}

export async function listPacks(options: StoreOption = {}): Promise<PackInfo[]> {
  const store = options.store ?? defaultPackStore();
  const packs = await store.allPacks();
  return Promise.all(
    packs.map(async (p) => ({
      id: p.id,
      name: p.manifest.name,
      state: p.state,
      sizeBytes: packSizeBytes(p.manifest),
      storedBytes: (await store.fileRecords(p.id)).reduce((s, f) => s + f.bytesDone, 0),
      testPack: p.manifest.testPack === true,
      installedAt: p.installedAt,
      updatePending: p.pending !== undefined,
      sourceUrl: p.pending ? p.pending.sourceUrl : p.sourceUrl,
      source: (p.pending ? p.pending.source : p.source) ?? 'http',
    })),
  );
}

/**
 * Delete a pack (complete, partial or corrupt) and everything stored for it. An install or verify of the pack
 * running in any tab is stopped first (it rejects with 'cancelled'), and the delete runs holding the pack's
 * lock, so nothing writes the pack while or after it is deleted.
 */
export async function deletePack(packId: string, options: StoreOption = {}): Promise<void> {
  const store = options.store ?? defaultPackStore();
  await withPackStopped(store.dbName, packId, () => store.deletePackData(packId));
}

function packDeleted(packId: string): FluxError {
  return new FluxError('cancelled', `Pack "${packId}" was deleted while it was being installed.`, { details: { packId } });
}

function corruptError(packId: string, path: string, what: string, details: Record<string, unknown>): FluxError {
  return new FluxError('pack_file_corrupt', `Pack "${packId}", file "${path}": ${what}. Reinstall the pack.`, { details: { packId, file: path, ...details } });
}

/** A complete installed pack as a PackSource. getFile returns a Blob assembled from the stored chunks. */
export async function openInstalledPack(packId: string, options: StoreOption = {}): Promise<PackSource> {
  const store = options.store ?? defaultPackStore();
  const rec = await store.getPack(packId);
  if (!rec) throw new FluxError('pack_not_installed', `Pack "${packId}" is not installed.`, { details: { packId } });
  if (rec.state === 'installing') {
    throw new FluxError('pack_not_installed', `Pack "${packId}" is not fully installed (the download was interrupted); install it again to finish.`, { details: { packId } });
  }
  if (rec.state === 'corrupt') {
    throw new FluxError('pack_file_corrupt', `Pack "${packId}" has corrupt files; install it again to repair them.`, { details: { packId } });
  }
  const { manifest } = rec;
  return {
    manifest,
    description: `IndexedDB (${store.dbName}/${packId})`,
    async getFile(path: string): Promise<Blob> {
      const f = findFile(manifest, path);
      const fr = await store.getFileRecord(packId, f);
      if (!fr || fr.state !== 'complete') {
        throw new FluxError('pack_file_missing', `Pack "${packId}": file "${path}" is not in storage (${fr ? fr.state : 'no record'}); reinstall the pack.`, {
          details: { packId, file: path },
        });
      }
      const blob = await store.readFileBlob(fr);
      if (blob.size !== f.size) throw corruptError(packId, path, `stored ${blob.size} bytes, manifest says ${f.size}`, { expectedSize: f.size, actualSize: blob.size });
      return blob;
    },
  };
}

export interface VerifyProgress {
  status: 'verify';
  packId: string;
  file: string;
  /** Bytes hashed so far over the whole pack. */
  loadedBytes: number;
  totalBytes: number;
}

/**
 * Re-hash every file from storage, one chunk at a time, checking each chunk against the sha256 recorded when
 * it was written and the whole file against the manifest. Bad files are marked 'corrupt' and the pack too (so
 * openInstalledPack refuses it and the next install re-fetches just those files; where chunk hashes locate the
 * damage, just those chunks); a pack whose files all verify is marked complete. Files verified without chunk
 * hashes (first-version records) get them recorded.
 */
export async function verifyInstalledPack(
  packId: string,
  options: StoreOption & { onProgress?: (e: VerifyProgress) => void; signal?: AbortSignal } = {},
): Promise<FileCheck[]> {
  const store = options.store ?? defaultPackStore();
  // Under the pack's lock: an install in another tab would otherwise race its record writes ('busy' instead).
  return withPackLock(store.dbName, packId, options.signal, (signal) => verifyLocked(packId, store, { ...options, signal }));
}

async function verifyLocked(packId: string, store: PackStore, options: { onProgress?: (e: VerifyProgress) => void; signal: AbortSignal }): Promise<FileCheck[]> {
  const rec = await store.getPack(packId);
  if (!rec) throw new FluxError('pack_not_installed', `Pack "${packId}" is not installed.`, { details: { packId } });
  const { manifest } = rec;
  const totalBytes = packSizeBytes(manifest);
  let loadedBytes = 0;
  const results: FileCheck[] = [];
  for (const f of manifest.files) {
    const base = { path: f.path, expectedSize: f.size, expectedSha256: f.sha256 };
    const fr = await store.getFileRecord(packId, f);
    if (!fr || fr.state === 'partial') {
      results.push({ ...base, ok: false, problem: 'missing', actualSize: fr ? fr.bytesDone : null, actualSha256: null });
      loadedBytes += f.size;
      continue;
    }
    const hasher = await Sha256Hasher.create();
    const fileStart = loadedBytes;
    const recorded = fr.chunkSha256?.length === fr.chunkCount ? fr.chunkSha256 : undefined;
    const hashes: string[] = [];
    const badChunks: number[] = [];
    let size = 0;
    for (let i = 0; i < fr.chunkCount; i++) {
      if (options.signal.aborted) throw new FluxError('cancelled', 'Pack verification was cancelled.');
      const bytes = (await store.readChunk(fr, i)) ?? new Uint8Array(0); // a lost chunk shows up as a size mismatch
      const digest = chunkSha256(bytes);
      hasher.update(bytes);
      hashes.push(await digest);
      const expectedLen = Math.max(0, Math.min(fr.chunkBytes, f.size - i * fr.chunkBytes));
      if (bytes.byteLength !== expectedLen || (recorded !== undefined && recorded[i] !== hashes[i])) badChunks.push(i);
      size += bytes.byteLength;
      loadedBytes = fileStart + Math.min(size, f.size); // capped so progress stays within totalBytes
      options.onProgress?.({ status: 'verify', packId, file: f.path, loadedBytes, totalBytes });
    }
    loadedBytes = fileStart + f.size;
    const actualSha256 = hasher.hex();
    const problem = size !== f.size ? 'size' : actualSha256 !== f.sha256 ? 'sha256' : undefined;
    const { badChunks: _old, ...clean } = fr;
    if (problem) {
      // Chunk hashes only localise the damage if they exist, cover the file's chunk layout and some differ.
      const expectedChunks = Math.ceil(f.size / fr.chunkBytes);
      const localised = recorded !== undefined && fr.chunkCount === expectedChunks && badChunks.length > 0;
      await store.putFileRecord({ ...clean, state: 'corrupt', ...(localised ? { badChunks } : {}) });
      results.push({ ...base, ok: false, problem, actualSize: size, actualSha256, ...(localised ? { badChunks } : {}) });
    } else {
      if (fr.state !== 'complete' || recorded === undefined || fr.badChunks) await store.putFileRecord({ ...clean, state: 'complete', verifiedAt: Date.now(), chunkSha256: hashes });
      results.push({ ...base, ok: true, actualSize: size, actualSha256 });
    }
  }
  const allOk = results.every((r) => r.ok);
  const state: PackState = allOk ? 'complete' : results.some((r) => r.problem !== 'missing') ? 'corrupt' : 'installing';
  if (state !== rec.state) await store.putPack({ ...rec, state, installedAt: allOk ? (rec.installedAt ?? Date.now()) : rec.installedAt });
  return results;
}
