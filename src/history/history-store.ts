/**
 * Generation history in IndexedDB (docs/history.md). Layout:
 *
 *   database `flux-history` (separate from the packs database `flux-packs`), version HISTORY_DB_VERSION
 *     entries  keyPath `id`, index `createdAt`   → HistoryEntry (JSON-safe; no `damaged` flags, those are derived)
 *     blobs    [id, imageIndex, 'image'|'thumb'] → Blob (full image / thumbnail), out-of-line keys
 *
 * An entry, all its image Blobs and their thumbnails are written in one transaction: a failed write (quota)
 * leaves nothing behind. The store never deletes anything by itself; when the quota is used up, add() and
 * import() throw FluxError('storage_quota') asking the user to delete or export older items.
 *
 * Only IndexedDB, Blob and fflate are used (DOM-free), so it works in a Window, a Worker and Node with
 * fake-indexeddb; `canvasThumbnailer` is the only browser-only part, and is used only where it can run.
 */
import { strToU8, Zip, ZipDeflate, ZipPassThrough } from 'fflate';
import { FluxError, toFluxError } from '../errors.js';
import { IdbConnection } from '../storage/idb-connection.js';
import { formatSize } from '../storage/storage-status.js';
import {
  checkBytes,
  checkCreatedAt,
  checkedFields,
  checkedImageFields,
  Checker,
  describe,
  ID_PATTERN,
  isObject,
  reviveEntry,
  type HistoryEntry,
  type HistoryImage,
  type NewHistoryEntry,
} from './history-entry.js';
import { canvasThumbnailer, canvasThumbnailerAvailable, type Thumbnailer } from './thumbnail.js';
import { deflatedBytes, fitsZip, JSON_LEVEL, zipArchiveBytes, zipMemberBytes, ZIP_MAX_BYTES, ZIP_MAX_MEMBERS, type ZipMemberSize } from './zip-limits.js';
import { ZipFormatError, ZipReader } from './zip-reader.js';

export type { HistoryEntry, HistoryImage, NewHistoryEntry, NewHistoryImage } from './history-entry.js';
export { isStrippedMarker, MAX_DATA_URI_CHARS, STRIPPED_PREFIX, toJsonSafe } from './history-entry.js';
export { canvasThumbnailer, type Thumbnailer } from './thumbnail.js';

export const DEFAULT_HISTORY_DB_NAME = 'flux-history';
export const DEFAULT_THUMBNAIL_MAX_SIDE = 256;
/** `format` of history.json in an export. */
export const HISTORY_EXPORT_FORMAT = 'flux-webgpu-history';
/** `version` of history.json written by export(); import() reads this version and older. */
export const HISTORY_EXPORT_VERSION = 1;
/** history.json larger than this is refused on import (an export of 10 000 entries is a few MB). */
const MAX_HISTORY_JSON_BYTES = 64 * 1024 * 1024;

const ENTRIES = 'entries';
const BLOBS = 'blobs';
const BY_CREATED_AT = 'createdAt';
type BlobKind = 'image' | 'thumb';

/**
 * Schema migrations: MIGRATIONS[v] upgrades a database at version v to v + 1, inside the versionchange
 * transaction (so a failing migration leaves the old version intact). To add version 2, append a function that
 * changes the stores or rewrites records through `tx.objectStore(…).openCursor()`; HISTORY_DB_VERSION follows.
 * Never edit a released step: databases out there already ran it.
 */
const MIGRATIONS: ((db: IDBDatabase, tx: IDBTransaction) => void)[] = [
  // 0 → 1: initial schema
  (db) => {
    const entries = db.createObjectStore(ENTRIES, { keyPath: 'id' });
    entries.createIndex(BY_CREATED_AT, 'createdAt', { unique: false });
    db.createObjectStore(BLOBS);
  },
];
export const HISTORY_DB_VERSION = MIGRATIONS.length;

export interface HistoryStoreOptions {
  /** @defaultValue 'flux-history' */
  dbName?: string;
  /**
   * Makes thumbnails for add() and import(); null: none (thumbnail() then returns the image).
   * @defaultValue canvasThumbnailer where createImageBitmap and OffscreenCanvas exist, otherwise null
   */
  thumbnailer?: Thumbnailer | null;
  /** Longer side of thumbnails. Images no larger than this get none. @defaultValue 256 */
  thumbnailMaxSide?: number;
}

export interface HistoryUsage {
  entries: number;
  /** Image + thumbnail bytes. */
  bytes: number;
}

/** One image of an entry in history.json. */
export interface ExportedImage extends Omit<HistoryImage, 'damaged'> {
  /** ZIP member with the image (images/<id>/<n>.<ext>); null when no image is stored (URL only, or damaged). */
  file: string | null;
  /** ZIP member with the thumbnail (thumbs/<id>/<n>.<ext>), when one is stored. */
  thumbnail?: { file: string; contentType: string; bytes: number };
}
export interface ExportedEntry extends Omit<HistoryEntry, 'images' | 'damaged'> {
  images: ExportedImage[];
}
/** history.json */
export interface HistoryExport {
  format: typeof HISTORY_EXPORT_FORMAT;
  version: number;
  /** ms epoch */
  exportedAt: number;
  /** newest first */
  entries: ExportedEntry[];
}

type StoredEntry = Omit<HistoryEntry, 'damaged'>;
interface Row {
  raw: unknown;
  keys: IDBValidKey[];
  values?: unknown[];
}

const idRange = (id: IDBValidKey): IDBKeyRange => IDBKeyRange.bound([id], [id, []]);
const blobKey = (id: string, index: number, kind: BlobKind): IDBValidKey => [id, index, kind];
const hasBlob = (keys: IDBValidKey[], index: number, kind: BlobKind = 'image'): boolean =>
  keys.some((k) => Array.isArray(k) && k[1] === index && k[2] === kind);

export function isQuotaError(e: unknown): boolean {
  const x = e as { name?: unknown; code?: unknown } | null;
  return !!x && (x.name === 'QuotaExceededError' || x.name === 'NS_ERROR_DOM_QUOTA_REACHED' || (x.name !== 'AbortError' && x.code === 22));
}

function newId(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  // randomUUID is missing outside secure contexts (http: on a LAN address): same v4 UUID from getRandomValues.
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const EXTENSIONS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'image/avif': 'avif', 'image/gif': 'gif' };
function extension(contentType: string): string {
  return EXTENSIONS[contentType.split(';')[0]!.trim().toLowerCase()] ?? 'bin';
}

/** A file name for an export made at `time`: flux-history-YYYY-MM-DD.zip */
export function exportFileName(time: number = Date.now()): string {
  return `flux-history-${new Date(time).toISOString().slice(0, 10)}.zip`;
}

function plural(n: number, word: string, words = `${word}s`): string {
  return `${n} ${n === 1 ? word : words}`;
}

function openDatabase(name: string): Promise<IDBDatabase> {
  if (typeof indexedDB === 'undefined') {
    return Promise.reject(new FluxError('runtime_error', 'IndexedDB is not available here, so generation history cannot be saved.'));
  }
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(name, HISTORY_DB_VERSION);
    req.onupgradeneeded = (ev) => {
      const tx = req.transaction!;
      for (let v = ev.oldVersion; v < HISTORY_DB_VERSION; v++) MIGRATIONS[v]!(req.result, tx);
    };
    // onblocked: another tab has the database open at an older version; it closes on `versionchange`
    // (see db()), after which this open goes ahead, so there is nothing to do.
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => {
      const e = req.error;
      if (e?.name === 'VersionError') {
        reject(
          new FluxError('runtime_error', `The history database "${name}" was upgraded by a newer version of this app (open in another tab?). Reload this page to use it.`, {
            cause: e,
          }),
        );
      } else reject(new FluxError('runtime_error', `Could not open the history database "${name}": ${e?.message ?? 'unknown error'}`, { cause: e }));
    };
  });
}

export class HistoryStore {
  readonly dbName: string;
  readonly thumbnailMaxSide: number;
  private readonly thumbnailer: Thumbnailer | null;
  private readonly conn: IdbConnection;

  private constructor(options: HistoryStoreOptions) {
    this.dbName = options.dbName ?? DEFAULT_HISTORY_DB_NAME;
    this.conn = new IdbConnection(() => openDatabase(this.dbName));
    this.thumbnailMaxSide = options.thumbnailMaxSide ?? DEFAULT_THUMBNAIL_MAX_SIDE;
    if (!Number.isSafeInteger(this.thumbnailMaxSide) || this.thumbnailMaxSide <= 0) {
      throw new FluxError('invalid_input', `thumbnailMaxSide must be a positive integer, got ${describe(this.thumbnailMaxSide)}`, { field: 'thumbnailMaxSide' });
    }
    this.thumbnailer = options.thumbnailer !== undefined ? options.thumbnailer : canvasThumbnailerAvailable() ? canvasThumbnailer : null;
  }

  /** Open (creating or upgrading) the history database. */
  static async open(options: HistoryStoreOptions = {}): Promise<HistoryStore> {
    const store = new HistoryStore(options);
    await store.db();
    return store;
  }

  private db(): Promise<IDBDatabase> {
    return this.conn.get();
  }

  /**
   * Run `fn` in one transaction over both stores and resolve with its result once the transaction completes.
   * `fn` only queues requests (their callbacks may queue more). If it throws, the transaction is aborted, so
   * nothing it wrote remains, and the error is rethrown; an aborted transaction rejects with its error.
   */
  private async run<T>(mode: IDBTransactionMode, fn: (entries: IDBObjectStore, blobs: IDBObjectStore) => T): Promise<T> {
    let t: IDBTransaction;
    try {
      t = (await this.db()).transaction([ENTRIES, BLOBS], mode);
    } catch (e) {
      // The connection closed under us (another tab's versionchange, storage cleared): reopen once.
      if (!(e instanceof DOMException && e.name === 'InvalidStateError')) throw e;
      this.conn.reset();
      t = (await this.db()).transaction([ENTRIES, BLOBS], mode);
    }
    const done = new Promise<void>((resolve, reject) => {
      t.oncomplete = () => resolve();
      t.onabort = () => reject(t.error ?? new DOMException('The history transaction was aborted.', 'AbortError'));
    });
    let result: T;
    try {
      result = fn(t.objectStore(ENTRIES), t.objectStore(BLOBS));
    } catch (e) {
      done.catch(() => undefined);
      try {
        t.abort();
      } catch {
        // already finished
      }
      throw e;
    }
    await done;
    return result;
  }

  /** Queue a read of the keys (and optionally values) of an entry's blobs into `row`. */
  private static readBlobs(blobs: IDBObjectStore, id: IDBValidKey, row: Row, values: boolean): void {
    const keysReq = blobs.getAllKeys(idRange(id));
    keysReq.onsuccess = () => void (row.keys = keysReq.result);
    if (values) {
      const valuesReq = blobs.getAll(idRange(id));
      valuesReq.onsuccess = () => void (row.values = valuesReq.result);
    }
  }

  private static revive(row: Row): HistoryEntry | null {
    return reviveEntry(row.raw, (i) => hasBlob(row.keys, i));
  }

  // -------------------------------------------------------------------------------------------------------------
  // Writing

  /**
   * Store a generation: the entry, every image Blob and their thumbnails, in one transaction. Images are
   * validated and `input`/`timings` made JSON-safe first (FluxError 'invalid_input' naming the field). When the
   * quota is used up nothing is stored and it throws FluxError('storage_quota'); it never evicts anything.
   */
  async add(entry: NewHistoryEntry): Promise<HistoryEntry> {
    const c: Checker = new Checker('History entry', '');
    if (!isObject(entry)) throw new FluxError('invalid_input', `History entry must be an object, got ${describe(entry)}`);
    const o = entry as unknown as Record<string, unknown>;
    const createdAt = checkCreatedAt(o, c, false) ?? Date.now();
    const fields = checkedFields(o, c);
    if (!Array.isArray(o.images)) c.fail('images', `must be an array, got ${describe(o.images)}`);
    const blobs: (Blob | null)[] = [];
    const images: HistoryImage[] = (o.images as unknown[]).map((raw, j) => {
      const at = `images[${j}]`;
      if (!isObject(raw)) c.fail(at, `must be an object, got ${describe(raw)}`);
      const img = checkedImageFields(raw, c, `${at}.`);
      if (raw.blob !== null && !(raw.blob instanceof Blob)) c.fail(`${at}.blob`, `must be a Blob or null, got ${describe(raw.blob)}`);
      let blob = raw.blob as Blob | null;
      if (blob && blob.size === 0) c.fail(`${at}.blob`, 'is empty (0 bytes)');
      if (!blob && img.url === undefined) c.fail(at, 'needs a blob or a url');
      if (blob && blob.type !== img.contentType) blob = blob.slice(0, blob.size, img.contentType);
      blobs.push(blob);
      return { ...img, bytes: blob ? blob.size : 0 };
    });
    const record: StoredEntry = { id: newId(), createdAt, ...fields, images };
    const thumbs = await this.thumbnails(blobs, images);
    try {
      await this.run('readwrite', (entries, store) => this.writeEntry(entries, store, record, blobs, thumbs));
    } catch (e) {
      throw await this.writeError(e, 'this generation was not saved to history (nothing was stored)');
    }
    return reviveEntry(record, (i) => blobs[i] !== null)!;
  }

  /** Queue the writes of one entry (inside run()). `entries.add` fails with ConstraintError if the id exists. */
  private writeEntry(entries: IDBObjectStore, store: IDBObjectStore, record: StoredEntry, blobs: (Blob | null)[], thumbs: (Blob | null)[]): void {
    store.delete(idRange(record.id)); // stray blobs of an earlier, half-deleted entry with this id
    entries.add(record);
    blobs.forEach((b, i) => void (b && store.put(b, blobKey(record.id, i, 'image'))));
    thumbs.forEach((b, i) => void (b && store.put(b, blobKey(record.id, i, 'thumb'))));
  }

  /** Thumbnails for images larger than thumbnailMaxSide; a thumbnailer failure only costs the thumbnail. */
  private async thumbnails(blobs: (Blob | null)[], images: { width: number; height: number }[]): Promise<(Blob | null)[]> {
    const out: (Blob | null)[] = [];
    for (let i = 0; i < blobs.length; i++) {
      const blob = blobs[i]!;
      let thumb: Blob | null = null;
      if (this.thumbnailer && blob && Math.max(images[i]!.width, images[i]!.height) > this.thumbnailMaxSide) {
        try {
          const t = await this.thumbnailer(blob, this.thumbnailMaxSide);
          // A "thumbnail" no smaller than the image is pointless: thumbnail() falls back to the image.
          if (t instanceof Blob && t.size > 0 && t.size < blob.size) thumb = t;
        } catch {
          // undecodable image, no encoder, …: the entry is stored without a thumbnail
        }
      }
      out.push(thumb);
    }
    return out;
  }

  private async writeError(e: unknown, what: string, details: Record<string, unknown> = {}): Promise<FluxError> {
    if (isQuotaError(e)) {
      const usage = await this.usage().catch(() => null);
      const holds = usage ? ` History holds ${plural(usage.entries, 'item')} (${formatSize(usage.bytes)} of images).` : '';
      return new FluxError(
        'storage_quota',
        `History is full: the browser's storage for this site is used up, so ${what}.${holds} ` +
          'Delete older items (export them first to keep them) and try again; model packs share this storage too.',
        { cause: e, details: { ...details, ...(usage ? { entries: usage.entries, bytes: usage.bytes } : {}) } },
      );
    }
    if (e instanceof FluxError) return e;
    const f = toFluxError(e);
    return new FluxError(f.code, `History: ${what}: ${f.message}`, { cause: e, details });
  }

  /** Delete an entry with its images and thumbnails (no-op for an unknown id). */
  async delete(id: string): Promise<void> {
    checkId(id);
    await this.run('readwrite', (entries, blobs) => {
      entries.delete(id);
      blobs.delete(idRange(id));
    });
  }

  /** Delete every entry, image and thumbnail. */
  async clear(): Promise<void> {
    await this.run('readwrite', (entries, blobs) => {
      entries.clear();
      blobs.clear();
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Reading

  /**
   * Entries newest first (by createdAt; equal times by descending id). `before`: only entries with createdAt <
   * before, so pass the last entry's createdAt to get the next page. A page holds `limit` entries (default: all)
   * plus any more sharing the last one's createdAt, so paging never skips entries with equal times.
   * Damaged records are returned marked `damaged` (see HistoryEntry), never thrown.
   */
  async list(options: { limit?: number; before?: number } = {}): Promise<HistoryEntry[]> {
    const { limit, before } = options;
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) {
      throw new FluxError('invalid_input', `list: limit must be a positive integer, got ${describe(limit)}`, { field: 'limit' });
    }
    if (before !== undefined && (typeof before !== 'number' || Number.isNaN(before))) {
      throw new FluxError('invalid_input', `list: before must be a number (a createdAt), got ${describe(before)}`, { field: 'before' });
    }
    const rows = await this.run('readonly', (entries, blobs) => {
      const rows: Row[] = [];
      const req = entries.index(BY_CREATED_AT).openCursor(before === undefined ? null : IDBKeyRange.upperBound(before, true), 'prev');
      let lastKey: IDBValidKey | undefined;
      req.onsuccess = () => {
        const cur = req.result;
        if (!cur) return;
        if (limit !== undefined && rows.length >= limit && cur.key !== lastKey) return;
        lastKey = cur.key;
        const row: Row = { raw: cur.value, keys: [] };
        rows.push(row);
        HistoryStore.readBlobs(blobs, cur.primaryKey, row, false);
        cur.continue();
      };
      return rows;
    });
    return rows.map(HistoryStore.revive).filter((e): e is HistoryEntry => e !== null);
  }

  async get(id: string): Promise<HistoryEntry | null> {
    checkId(id);
    const row = await this.run('readonly', (entries, blobs) => {
      const row: Row = { raw: undefined, keys: [] };
      const req = entries.get(id);
      req.onsuccess = () => {
        row.raw = req.result;
        if (req.result !== undefined) HistoryStore.readBlobs(blobs, id, row, false);
      };
      return row;
    });
    return HistoryStore.revive(row);
  }

  /** Image `index` of entry `id`; null when none is stored (unknown entry, URL-only or damaged image). */
  async image(id: string, index: number): Promise<Blob | null> {
    checkId(id);
    checkIndex(index);
    const out = await this.run('readonly', (_, blobs) => {
      const out: { image?: unknown } = {};
      const req = blobs.get(blobKey(id, index, 'image'));
      req.onsuccess = () => void (out.image = req.result);
      return out;
    });
    return asBlob(out.image);
  }

  /** Thumbnail of image `index` of entry `id`; the image itself when no thumbnail was made; null when neither exists. */
  async thumbnail(id: string, index: number): Promise<Blob | null> {
    checkId(id);
    checkIndex(index);
    const out = await this.run('readonly', (_, blobs) => {
      const out: { thumb?: unknown; image?: unknown } = {};
      const t = blobs.get(blobKey(id, index, 'thumb'));
      t.onsuccess = () => void (out.thumb = t.result);
      const i = blobs.get(blobKey(id, index, 'image'));
      i.onsuccess = () => void (out.image = i.result);
      return out;
    });
    return asBlob(out.thumb) ?? asBlob(out.image);
  }

  /** Number of entries, and the bytes of every stored image and thumbnail (measured from the Blobs themselves). */
  async usage(): Promise<HistoryUsage> {
    return this.run('readonly', (entries, blobs) => {
      const usage: HistoryUsage = { entries: 0, bytes: 0 };
      const count = entries.count();
      count.onsuccess = () => void (usage.entries = count.result);
      const cursor = blobs.openCursor();
      cursor.onsuccess = () => {
        const cur = cursor.result;
        if (!cur) return;
        usage.bytes += sizeOf(cur.value);
        cur.continue();
      };
      return usage;
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Export / import

  /**
   * One ZIP file (application/zip): `history.json` (HistoryExport, deflated) first, then each stored image as
   * `images/<id>/<n>.<ext>` and thumbnail as `thumbs/<id>/<n>.<ext>` (stored uncompressed: they already are).
   * `ids`: only these entries (FluxError 'invalid_input' for an unknown id); default all, newest first.
   * Images are read one at a time and the output is collected as Blob parts, so memory stays near one image.
   * An archive that would need ZIP64 (≥ 4 GiB, or more than 65,534 members) is refused with 'invalid_input'
   * before anything is written: fflate cannot write ZIP64 and would wrap the 32-bit fields (zip-limits.ts).
   */
  async export(options: { ids?: string[] } = {}): Promise<Blob> {
    const { ids } = options;
    if (ids !== undefined && (!Array.isArray(ids) || !ids.every((x) => typeof x === 'string'))) {
      throw new FluxError('invalid_input', 'export: ids must be an array of entry ids', { field: 'ids' });
    }
    const rows = await this.run('readonly', (entries, blobs) => {
      const rows: Row[] = [];
      if (ids) {
        for (const id of ids) {
          const row: Row = { raw: undefined, keys: [] };
          rows.push(row);
          const req = entries.get(id);
          req.onsuccess = () => {
            row.raw = req.result;
            if (req.result !== undefined) HistoryStore.readBlobs(blobs, id, row, true);
          };
        }
      } else {
        const req = entries.index(BY_CREATED_AT).openCursor(null, 'prev');
        req.onsuccess = () => {
          const cur = req.result;
          if (!cur) return;
          const row: Row = { raw: cur.value, keys: [] };
          rows.push(row);
          HistoryStore.readBlobs(blobs, cur.primaryKey, row, true);
          cur.continue();
        };
      }
      return rows;
    });
    const missing = ids ? ids.filter((_, i) => rows[i]!.raw === undefined) : [];
    if (missing.length) {
      throw new FluxError('invalid_input', `export: no history entry with id ${missing.map((x) => JSON.stringify(x)).join(', ')} (deleted?)`, { field: 'ids' });
    }

    const files: { name: string; blob: Blob; entry: number }[] = [];
    const exported: ExportedEntry[] = [];
    for (const row of rows) {
      const entry = HistoryStore.revive(row);
      if (!entry || !ID_PATTERN.test(entry.id)) continue; // not addressable as a file name; cannot come from add()/import()
      const blobAt = (i: number, kind: BlobKind): Blob | null => {
        const k = row.keys.findIndex((key) => Array.isArray(key) && key[1] === i && key[2] === kind);
        return k < 0 ? null : asBlob(row.values?.[k]);
      };
      const { damaged: _d, images, ...rest } = entry;
      exported.push({
        ...rest,
        images: images.map((img, i): ExportedImage => {
          const { damaged: _damaged, ...meta } = img;
          const image = blobAt(i, 'image');
          const thumb = blobAt(i, 'thumb');
          const out: ExportedImage = { ...meta, bytes: image ? image.size : 0, file: null };
          if (image) {
            out.file = `images/${entry.id}/${i}.${extension(img.contentType)}`;
            files.push({ name: out.file, blob: image, entry: exported.length });
          }
          if (thumb) {
            const contentType = thumb.type || 'application/octet-stream';
            out.thumbnail = { file: `thumbs/${entry.id}/${i}.${extension(contentType)}`, contentType, bytes: thumb.size };
            files.push({ name: out.thumbnail.file, blob: thumb, entry: exported.length });
          }
          return out;
        }),
      });
    }
    const doc: HistoryExport = { format: HISTORY_EXPORT_FORMAT, version: HISTORY_EXPORT_VERSION, exportedAt: Date.now(), entries: exported };
    const jsonBytes = strToU8(JSON.stringify(doc, null, 2));
    checkZipLimits(jsonBytes, files, exported.length);

    const parts: Blob[] = [];
    let failure: unknown;
    const zip = new Zip((err, chunk) => {
      if (err) failure ??= err;
      else if (chunk.length) parts.push(new Blob([chunk as Uint8Array<ArrayBuffer>]));
    });
    const json = new ZipDeflate('history.json', { level: JSON_LEVEL });
    zip.add(json);
    json.push(jsonBytes, true);
    for (const f of files) {
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await f.blob.arrayBuffer());
      } catch (e) {
        throw new FluxError('runtime_error', `History export: could not read ${f.name} (was it deleted during the export?); export again.`, { cause: e });
      }
      const member = new ZipPassThrough(f.name);
      zip.add(member);
      member.push(bytes, true);
    }
    zip.end();
    if (failure) throw toFluxError(failure);
    return new Blob(parts, { type: 'application/zip' });
  }

  /**
   * Merge an export into history: entries whose id is already stored are skipped, the others added with their
   * images and thumbnails (made by the thumbnailer where the file has none). The whole of history.json is
   * validated before anything is added (FluxError 'invalid_input' naming the entry and field); each entry is
   * then added atomically. Image bytes are checked (CRC-32, size) as each entry is added: a damaged image stops
   * the import there with 'invalid_input' (entries before it stay). When the quota is used up it stops with
   * 'storage_quota' (details: added, skipped, remaining); importing the same file again resumes.
   */
  async import(file: Blob): Promise<{ added: number; skipped: number }> {
    if (!(file instanceof Blob)) throw new FluxError('invalid_input', `Import file must be a Blob or File, got ${describe(file)}`, { field: 'file' });
    const bad = (message: string, field?: string): FluxError => new FluxError('invalid_input', `Import file: ${message}`, field !== undefined ? { field } : {});
    let zip: ZipReader;
    try {
      zip = await ZipReader.open(file);
    } catch (e) {
      if (e instanceof ZipFormatError) throw bad(`${e.message}; expected a history export (.zip) from this app`);
      throw e;
    }
    const json = zip.members.get('history.json');
    if (!json) throw bad('the ZIP file has no history.json, so it is not a history export from this app');
    if (json.size > MAX_HISTORY_JSON_BYTES) throw bad(`history.json is ${formatSize(json.size)}, more than the ${formatSize(MAX_HISTORY_JSON_BYTES)} allowed`);
    let doc: unknown;
    try {
      doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await zip.read('history.json')));
    } catch (e) {
      throw bad(`history.json cannot be read: ${e instanceof Error ? e.message : String(e)}`);
    }
    const items = parseExport(doc, zip);

    const existing = await this.run('readonly', (entries) => {
      const found = new Set<string>();
      for (const { record } of items) {
        const req = entries.getKey(record.id);
        req.onsuccess = () => void (req.result !== undefined && found.add(record.id));
      }
      return found;
    });
    let added = 0;
    let skipped = 0;
    for (const [n, item] of items.entries()) {
      const { record } = item;
      if (existing.has(record.id)) {
        skipped++;
        continue;
      }
      const read = async (name: string, contentType: string, field: string): Promise<Blob> => {
        try {
          return new Blob([await zip.read(name)], { type: contentType });
        } catch (e) {
          if (!(e instanceof ZipFormatError)) throw e;
          const before = added ? ` (${added} ${added === 1 ? 'entry was' : 'entries were'} imported before it)` : '';
          throw bad(`history.json entries[${n}] (id ${JSON.stringify(record.id)}): ${field} "${name}": ${e.message}${before}`, `entries[${n}].${field}`);
        }
      };
      const blobs: (Blob | null)[] = [];
      const thumbs: (Blob | null)[] = [];
      for (const [i, img] of item.files.entries()) {
        const contentType = record.images[i]!.contentType;
        blobs.push(img.file === null ? null : await read(img.file, contentType, `images[${i}].file`));
        thumbs.push(img.thumb ? await read(img.thumb.file, img.thumb.contentType, `images[${i}].thumbnail.file`) : null);
      }
      const made = await this.thumbnails(
        blobs.map((b, i) => (thumbs[i] ? null : b)),
        record.images,
      );
      made.forEach((t, i) => void (t && (thumbs[i] = t)));
      try {
        await this.run('readwrite', (entries, store) => this.writeEntry(entries, store, record, blobs, thumbs));
        added++;
      } catch (e) {
        if (e instanceof DOMException && e.name === 'ConstraintError') {
          skipped++; // added meanwhile (another tab importing the same file)
          continue;
        }
        const remaining = items.length - n;
        throw await this.writeError(e, `the import stopped after adding ${plural(added, 'entry', 'entries')} (${skipped} already there, ${remaining} not imported)`, {
          added,
          skipped,
          remaining,
        });
      }
    }
    return { added, skipped };
  }

  /** Close the connection (e.g. on page hide). The store reopens it if used again. */
  close(): void {
    void this.conn.close();
  }
}

function checkId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id === '') throw new FluxError('invalid_input', `History: id must be a non-empty string, got ${describe(id)}`, { field: 'id' });
}
function checkIndex(index: unknown): asserts index is number {
  if (!Number.isSafeInteger(index) || (index as number) < 0) {
    throw new FluxError('invalid_input', `History: image index must be a non-negative integer, got ${describe(index)}`, { field: 'index' });
  }
}

function sizeOf(v: unknown): number {
  if (v instanceof Blob) return v.size;
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return v.byteLength;
  return 0;
}

/** Stored values are Blobs; tolerate ArrayBuffers (IndexedDBs without Blob support) and ignore anything else. */
function asBlob(v: unknown): Blob | null {
  if (v instanceof Blob) return v;
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return new Blob([v as ArrayBuffer]);
  return null;
}

interface ImportItem {
  record: StoredEntry;
  files: { file: string | null; thumb?: { file: string; contentType: string } }[];
}

/**
 * Refuse an export whose ZIP would need ZIP64 (see zip-limits.ts), naming its size and member count and how
 * many of the newest entries would fit. Only sizes are used: no image is read.
 */
function checkZipLimits(json: Uint8Array, files: readonly { name: string; blob: Blob; entry: number }[], entries: number): void {
  const jsonMember: ZipMemberSize = { name: 'history.json', dataBytes: deflatedBytes(json) };
  const members: ZipMemberSize[] = [jsonMember, ...files.map((f) => ({ name: f.name, dataBytes: f.blob.size }))];
  const bytes = zipArchiveBytes(members);
  if (fitsZip(members.length, bytes)) return;
  // Entries are in export order (newest first); history.json only shrinks with fewer entries, so this is safe.
  let fitting = 0;
  let n = 1;
  let size = zipArchiveBytes([jsonMember]);
  for (let e = 0, i = 0; e < entries; e++) {
    for (; i < files.length && files[i]!.entry === e; i++) {
      n++;
      size += zipMemberBytes(members[i + 1]!);
    }
    if (!fitsZip(n, size)) break;
    fitting = e + 1;
  }
  throw new FluxError(
    'invalid_input',
    `History export: ${entries} entries make a ZIP of ${formatSize(bytes)} (${bytes} bytes) with ${members.length} files, but a ZIP without ZIP64 ` +
      `(what this app writes and reads) holds at most ${ZIP_MAX_BYTES} bytes (4 GiB − 1) and ${ZIP_MAX_MEMBERS} files. Nothing was written. ` +
      `Export fewer entries at a time (choose them by id): the newest ${fitting} fit.`,
    { field: 'ids', details: { entries, bytes, members: members.length, maxBytes: ZIP_MAX_BYTES, maxMembers: ZIP_MAX_MEMBERS, fittingEntries: fitting } },
  );
}

/** Validate history.json completely (and that every file it names is in the ZIP with the right size). */
function parseExport(doc: unknown, zip: ZipReader): ImportItem[] {
  const top: Checker = new Checker('Import file: history.json', '');
  if (!isObject(doc)) throw new FluxError('invalid_input', `Import file: history.json must hold an object, got ${describe(doc)}`);
  if (doc.format !== HISTORY_EXPORT_FORMAT) top.fail('format', `is ${describe(doc.format)}, expected "${HISTORY_EXPORT_FORMAT}": not a history export from this app`);
  const version = doc.version;
  if (!Number.isSafeInteger(version) || (version as number) < 1) top.fail('version', `must be a positive integer, got ${describe(version)}`);
  if ((version as number) > HISTORY_EXPORT_VERSION) {
    top.fail('version', `is ${version as number}, but this app reads version ${HISTORY_EXPORT_VERSION}; update the app to import this file`);
  }
  if (!Array.isArray(doc.entries)) top.fail('entries', `must be an array, got ${describe(doc.entries)}`);
  const seen = new Map<string, number>();
  const memberSize = (c: Checker, field: string, name: unknown): number => {
    if (typeof name !== 'string' || name === '') c.fail(field, `must be a ZIP member name, got ${describe(name)}`);
    const m = zip.members.get(name);
    if (!m) c.fail(field, `names "${name}", which is not in the ZIP file`);
    return m.size;
  };
  return (doc.entries as unknown[]).map((raw, n): ImportItem => {
    const id = isObject(raw) && typeof raw.id === 'string' ? raw.id : undefined;
    const c: Checker = new Checker(`Import file: history.json entries[${n}]${id !== undefined ? ` (id ${JSON.stringify(id)})` : ''}`, `entries[${n}].`);
    if (!isObject(raw)) throw new FluxError('invalid_input', `Import file: history.json entries[${n}] must be an object, got ${describe(raw)}`, { field: `entries[${n}]` });
    if (id === undefined || !ID_PATTERN.test(id)) c.fail('id', `must be 1 to 128 letters, digits, "-", "_" or "." (not starting with "."), got ${describe(raw.id)}`);
    if (seen.has(id)) c.fail('id', `repeats the id of entries[${seen.get(id)!}]`);
    seen.set(id, n);
    const createdAt = checkCreatedAt(raw, c, true)!;
    const fields = checkedFields(raw, c);
    if (!Array.isArray(raw.images)) c.fail('images', `must be an array, got ${describe(raw.images)}`);
    const files: ImportItem['files'] = [];
    const images = (raw.images as unknown[]).map((ri, j): HistoryImage => {
      const at = `images[${j}]`;
      if (!isObject(ri)) c.fail(at, `must be an object, got ${describe(ri)}`);
      const meta = checkedImageFields(ri, c, `${at}.`);
      const bytes = checkBytes(ri, 'bytes', c, `${at}.bytes`);
      const out: ImportItem['files'][number] = { file: null };
      if (ri.file === null || ri.file === undefined) {
        if (bytes !== 0) c.fail(`${at}.bytes`, `is ${bytes}, but the image has no file (must be 0)`);
      } else {
        const size = memberSize(c, `${at}.file`, ri.file);
        if (size === 0) c.fail(`${at}.file`, `"${ri.file as string}" is empty`);
        if (size !== bytes) c.fail(`${at}.bytes`, `is ${bytes}, but "${ri.file as string}" holds ${size} bytes`);
        out.file = ri.file as string;
      }
      if (ri.thumbnail !== undefined) {
        const t = ri.thumbnail;
        if (!isObject(t)) c.fail(`${at}.thumbnail`, `must be an object {file, contentType, bytes}, got ${describe(t)}`);
        if (typeof t.contentType !== 'string' || t.contentType === '') c.fail(`${at}.thumbnail.contentType`, `must be a non-empty string, got ${describe(t.contentType)}`);
        const tb = checkBytes(t, 'bytes', c, `${at}.thumbnail.bytes`);
        const size = memberSize(c, `${at}.thumbnail.file`, t.file);
        if (size === 0 || size !== tb) c.fail(`${at}.thumbnail.bytes`, `is ${tb}, but "${t.file as string}" holds ${size} bytes`);
        if (out.file === null) c.fail(`${at}.thumbnail`, 'is given for an image without a file');
        out.thumb = { file: t.file as string, contentType: t.contentType };
      }
      files.push(out);
      return { ...meta, bytes };
    });
    return { record: { id, createdAt, ...fields, images }, files };
  });
}
