import 'fake-indexeddb/auto';
import { strFromU8, strToU8, unzipSync, zipSync, type Zippable } from 'fflate';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FluxError } from '../../../src/errors.js';
import {
  HISTORY_DB_VERSION,
  HISTORY_EXPORT_FORMAT,
  HISTORY_EXPORT_VERSION,
  HistoryStore,
  toJsonSafe,
  type HistoryEntry,
  type HistoryExport,
  type NewHistoryEntry,
  type Thumbnailer,
} from '../../../src/history/history-store.js';
import { rejection } from '../../support/errors.js';

let dbCount = 0;
const opened: HistoryStore[] = [];
const restores: (() => void)[] = [];

afterEach(() => {
  while (restores.length) restores.pop()!();
  while (opened.length) opened.pop()!.close();
});

function dbName(): string {
  return `history-test-${++dbCount}`;
}

async function openStore(options: Parameters<typeof HistoryStore.open>[0] = {}): Promise<HistoryStore> {
  const s = await HistoryStore.open({ dbName: dbName(), thumbnailer: null, ...options });
  opened.push(s);
  return s;
}

/** Deterministic pseudo-random bytes (the store never decodes images). */
function bytes(n: number, seed = n): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  let x = seed * 2654435761 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const png = (n: number, seed = n): Blob => new Blob([bytes(n, seed)], { type: 'image/png' });

function newEntry(overrides: Partial<NewHistoryEntry> = {}): NewHistoryEntry {
  return {
    endpoint: 'fal-ai/flux/schnell',
    target: 'local',
    routeReason: 'webgpu available',
    input: { prompt: 'a red fox in snow', num_inference_steps: 4, image_size: { width: 1024, height: 768 } },
    prompt: 'a red fox in snow',
    seed: 42,
    steps: 4,
    width: 1024,
    height: 768,
    timings: { inference: 1.5, total: 2.25 },
    safety: { ran: true, checker: 'sd-safety-checker' },
    has_nsfw_concepts: [false],
    images: [{ blob: png(3000, 1), width: 1024, height: 768, contentType: 'image/png' }],
    ...overrides,
  };
}

async function blobBytes(b: Blob | null): Promise<Uint8Array> {
  expect(b).toBeInstanceOf(Blob);
  return new Uint8Array(await b!.arrayBuffer());
}

/** Raw access to the database, as another tab (or a test) would see it. */
function rawDb(name: string, version?: number): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = version === undefined ? indexedDB.open(name) : indexedDB.open(name, version);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function rawBlobKeys(name: string): Promise<IDBValidKey[]> {
  const db = await rawDb(name);
  try {
    return await request(db.transaction('blobs').objectStore('blobs').getAllKeys());
  } finally {
    db.close();
  }
}

async function rawEntryIds(name: string): Promise<IDBValidKey[]> {
  const db = await rawDb(name);
  try {
    return await request(db.transaction('entries').objectStore('entries').getAllKeys());
  } finally {
    db.close();
  }
}

/** Make IDBObjectStore.put throw QuotaExceededError synchronously on the `n`th Blob put from now on. */
function quotaOnBlobPut(n: number): void {
  const proto = IDBObjectStore.prototype;
  const put = proto.put;
  let count = 0;
  proto.put = function (this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
    if (value instanceof Blob && ++count === n) throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
    return put.call(this, value, key);
  };
  restores.push(() => void (proto.put = put));
}

/** Like Chromium: the `n`th Blob put is accepted, then the transaction aborts with a QuotaExceededError. */
function quotaAbortOnBlobPut(n: number): void {
  const proto = IDBObjectStore.prototype;
  const put = proto.put;
  let count = 0;
  proto.put = function (this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
    const req = put.call(this, value, key);
    if (value instanceof Blob && ++count === n) {
      const tx = this.transaction;
      Object.defineProperty(tx, 'error', { value: new DOMException('The quota has been exceeded.', 'QuotaExceededError') });
      req.addEventListener('success', () => tx.abort());
    }
    return req;
  };
  restores.push(() => void (proto.put = put));
}

function fakeThumbnailer(): { fn: Thumbnailer; calls: { size: number; maxSide: number }[] } {
  const calls: { size: number; maxSide: number }[] = [];
  const fn: Thumbnailer = async (image, maxSide) => {
    calls.push({ size: image.size, maxSide });
    return new Blob([bytes(100, image.size)], { type: 'image/webp' });
  };
  return { fn, calls };
}

async function zipOf(files: Zippable): Promise<Blob> {
  return new Blob([zipSync(files)], { type: 'application/zip' });
}

async function exportDoc(file: Blob): Promise<{ doc: HistoryExport; files: Record<string, Uint8Array> }> {
  const files = unzipSync(new Uint8Array(await file.arrayBuffer()));
  return { doc: JSON.parse(strFromU8(files['history.json']!)) as HistoryExport, files };
}

/** Rewrite history.json of an export (the images stay). */
async function withDoc(file: Blob, edit: (doc: Record<string, unknown> & { entries: Record<string, unknown>[] }) => void): Promise<Blob> {
  const files = unzipSync(new Uint8Array(await file.arrayBuffer()));
  const doc = JSON.parse(strFromU8(files['history.json']!)) as Record<string, unknown> & { entries: Record<string, unknown>[] };
  edit(doc);
  files['history.json'] = strToU8(JSON.stringify(doc));
  return zipOf(files);
}

describe('HistoryStore: add, read, delete', () => {
  it('adds an entry and reads it back: get, list, image and thumbnail bytes', async () => {
    const store = await openStore();
    const img0 = bytes(5000, 7);
    const img1 = bytes(6000, 8);
    const before = Date.now();
    const added = await store.add(
      newEntry({
        images: [
          { blob: new Blob([img0], { type: 'image/png' }), width: 1024, height: 768, contentType: 'image/png' },
          { blob: new Blob([img1]), width: 1024, height: 768, contentType: 'image/jpeg', hidden: true },
        ],
        has_nsfw_concepts: [false, true],
      }),
    );
    expect(added.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(added.createdAt).toBeGreaterThanOrEqual(before);
    expect(added.createdAt).toBeLessThanOrEqual(Date.now());
    expect(added.images).toEqual([
      { contentType: 'image/png', width: 1024, height: 768, bytes: 5000 },
      { contentType: 'image/jpeg', width: 1024, height: 768, bytes: 6000, hidden: true },
    ]);
    expect(added.damaged).toBeUndefined();
    expect(added).toMatchObject({
      endpoint: 'fal-ai/flux/schnell',
      target: 'local',
      prompt: 'a red fox in snow',
      seed: 42,
      steps: 4,
      safety: { ran: true, checker: 'sd-safety-checker' },
      has_nsfw_concepts: [false, true],
    });

    expect(await store.get(added.id)).toEqual(added);
    expect(await store.list()).toEqual([added]);
    expect(await store.get('no-such-id')).toBeNull();

    expect(await blobBytes(await store.image(added.id, 0))).toEqual(img0);
    const second = await store.image(added.id, 1);
    expect(await blobBytes(second)).toEqual(img1);
    expect(second!.type).toBe('image/jpeg'); // the contentType, even though the Blob given had none
    expect(await store.image(added.id, 2)).toBeNull();
    expect(await store.image('no-such-id', 0)).toBeNull();
    // No thumbnailer: the thumbnail is the image.
    expect(await blobBytes(await store.thumbnail(added.id, 1))).toEqual(img1);
    expect(await store.thumbnail(added.id, 2)).toBeNull();

    expect(await store.usage()).toEqual({ entries: 1, bytes: 11000 });
  });

  it('keeps a URL-only image (no Blob) without marking it damaged', async () => {
    const store = await openStore();
    const e = await store.add(newEntry({ target: 'remote', images: [{ blob: null, url: 'https://fal.media/files/x.jpg', width: 1024, height: 768, contentType: 'image/jpeg' }] }));
    expect(e.images[0]).toEqual({ contentType: 'image/jpeg', width: 1024, height: 768, bytes: 0, url: 'https://fal.media/files/x.jpg' });
    expect((await store.get(e.id))!.damaged).toBeUndefined();
    expect(await store.image(e.id, 0)).toBeNull();
    expect(await store.thumbnail(e.id, 0)).toBeNull();
    expect(await store.usage()).toEqual({ entries: 1, bytes: 0 });
  });

  it('lists newest first, paginated by createdAt, without skipping entries that share a time', async () => {
    const store = await openStore();
    const times = [3000, 1000, 5000, 2000, 4000, 4000, 6000];
    for (const [i, t] of times.entries()) await store.add(newEntry({ createdAt: t, prompt: `p${i}` }));

    const all = await store.list();
    expect(all.map((e) => e.createdAt)).toEqual([6000, 5000, 4000, 4000, 3000, 2000, 1000]);

    const page1 = await store.list({ limit: 2 });
    expect(page1.map((e) => e.createdAt)).toEqual([6000, 5000]);
    // limit 1 after 5000 would cut between the two entries at 4000: the page takes both.
    const page2 = await store.list({ limit: 1, before: page1.at(-1)!.createdAt });
    expect(page2.map((e) => e.createdAt)).toEqual([4000, 4000]);
    const page3 = await store.list({ limit: 2, before: page2.at(-1)!.createdAt });
    expect(page3.map((e) => e.createdAt)).toEqual([3000, 2000]);
    const page4 = await store.list({ limit: 2, before: page3.at(-1)!.createdAt });
    expect(page4.map((e) => e.createdAt)).toEqual([1000]);
    expect(await store.list({ limit: 2, before: 1000 })).toEqual([]);
    expect([...page1, ...page2, ...page3, ...page4]).toEqual(all);

    expect((await rejection(store.list({ limit: 0 }))).code).toBe('invalid_input');
    expect((await rejection(store.list({ limit: 1.5 }))).field).toBe('limit');
  });

  it('delete and clear remove the blobs too', async () => {
    const { fn } = fakeThumbnailer();
    const store = await openStore({ thumbnailer: fn });
    const a = await store.add(newEntry());
    const b = await store.add(newEntry({ images: [{ blob: png(4000), width: 512, height: 512, contentType: 'image/png' }, { blob: png(4100), width: 512, height: 512, contentType: 'image/png' }] }));
    const c = await store.add(newEntry());
    expect(await store.usage()).toEqual({ entries: 3, bytes: 3000 + 100 + 4000 + 100 + 4100 + 100 + 3000 + 100 });
    expect(await rawBlobKeys(store.dbName)).toHaveLength(8);

    await store.delete(b.id);
    expect(await store.get(b.id)).toBeNull();
    expect(await store.image(b.id, 0)).toBeNull();
    expect(await store.thumbnail(b.id, 1)).toBeNull();
    expect((await store.list()).map((e) => e.id).sort()).toEqual([a.id, c.id].sort());
    expect((await rawBlobKeys(store.dbName)).every((k) => (k as unknown[])[0] !== b.id)).toBe(true);
    expect(await store.usage()).toEqual({ entries: 2, bytes: 6200 });
    await store.delete(b.id); // again: nothing to do

    await store.delete(a.id);
    await store.delete(c.id);
    expect(await store.usage()).toEqual({ entries: 0, bytes: 0 });
    expect(await rawBlobKeys(store.dbName)).toEqual([]);

    await store.add(newEntry());
    await store.add(newEntry());
    await store.clear();
    expect(await store.usage()).toEqual({ entries: 0, bytes: 0 });
    expect(await rawBlobKeys(store.dbName)).toEqual([]);
    expect(await store.list()).toEqual([]);
  });

  it('persists across close and reopen', async () => {
    const name = dbName();
    const first = await HistoryStore.open({ dbName: name, thumbnailer: null });
    const e = await first.add(newEntry({ images: [{ blob: png(2048, 3), width: 1024, height: 1024, contentType: 'image/png' }] }));
    first.close();
    const second = await HistoryStore.open({ dbName: name, thumbnailer: null });
    opened.push(second);
    expect(await second.list()).toEqual([e]);
    expect(await blobBytes(await second.image(e.id, 0))).toEqual(bytes(2048, 3));
    // A closed store reopens when used again.
    expect(await first.get(e.id)).toEqual(e);
    first.close();
  });

  it('uses its own database, separate from the packs database', async () => {
    const store = await HistoryStore.open({ thumbnailer: null });
    opened.push(store);
    expect(store.dbName).toBe('flux-history');
    const db = await rawDb('flux-history');
    expect(db.version).toBe(HISTORY_DB_VERSION);
    expect([...db.objectStoreNames].sort()).toEqual(['blobs', 'entries']);
    const tx = db.transaction('entries');
    expect(tx.objectStore('entries').keyPath).toBe('id');
    expect([...tx.objectStore('entries').indexNames]).toEqual(['createdAt']);
    db.close();
  });

  it('validates new entries and names the field', async () => {
    const store = await openStore();
    const bad = async (entry: unknown): Promise<FluxError> => {
      const e = await rejection(store.add(entry as NewHistoryEntry));
      expect(e.code).toBe('invalid_input');
      return e;
    };
    expect((await bad(newEntry({ width: 0 }))).field).toBe('width');
    expect((await bad(newEntry({ target: 'cloud' as 'remote' }))).message).toMatch(/target must be "local" or "remote", got "cloud"/);
    expect((await bad(newEntry({ safety: { ran: 'yes' } as unknown as HistoryEntry['safety'] }))).field).toBe('safety');
    expect((await bad(newEntry({ images: [{ blob: null, width: 1, height: 1, contentType: 'image/png' }] }))).message).toMatch(/images\[0\] needs a blob or a url/);
    expect((await bad(newEntry({ images: [{ blob: new Blob([]), width: 1, height: 1, contentType: 'image/png' }] }))).field).toBe('images[0].blob');
    expect((await bad(newEntry({ images: [{ blob: png(10), width: 1, height: 1, contentType: '' }] }))).field).toBe('images[0].contentType');
    expect((await bad({ ...newEntry(), images: 'nope' })).field).toBe('images');
    expect((await bad({ ...newEntry(), createdAt: -5 })).field).toBe('createdAt');
    expect(await store.usage()).toEqual({ entries: 0, bytes: 0 });
  });
});

describe('HistoryStore: JSON-safe input', () => {
  it('strips large data: URIs, Blobs and tensors from the stored input, keeping small values', async () => {
    const store = await openStore();
    const bigUri = 'data:image/png;base64,' + 'A'.repeat(20_000);
    const smallUri = 'data:image/png;base64,iVBORw0KGgo=';
    const e = await store.add(
      newEntry({
        input: {
          prompt: 'x',
          image_url: bigUri,
          mask_url: smallUri,
          reference: png(77),
          latents: { data: new Float32Array(16), dims: [1, 16] },
          list: [1, undefined, Number.NaN, 'ok'],
          nothing: undefined,
        },
        timings: { total: 1, weird: Number.POSITIVE_INFINITY },
      }),
    );
    expect(e.input).toEqual({
      prompt: 'x',
      image_url: `[stripped data: URI, image/png, ${bigUri.length} chars]`,
      mask_url: smallUri,
      reference: '[stripped Blob, image/png, 77 bytes]',
      latents: { data: '[stripped Float32Array, 64 bytes]', dims: [1, 16] },
      list: [1, null, null, 'ok'],
    });
    expect(e.timings).toEqual({ total: 1, weird: null });
    expect((await store.get(e.id))!.input).toEqual(e.input);
  });

  it('toJsonSafe handles cycles, class instances, dates and bigints', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    class Tensor {
      dims = [1];
    }
    expect(toJsonSafe({ cyclic, t: new Tensor(), d: new Date(0), n: 10n, buf: new ArrayBuffer(8), f: () => 1 })).toEqual({
      cyclic: { a: 1, self: '[stripped circular reference]' },
      t: '[stripped Tensor]',
      d: '1970-01-01T00:00:00.000Z',
      n: '10',
      buf: '[stripped ArrayBuffer, 8 bytes]',
    });
  });
});

describe('HistoryStore: thumbnails', () => {
  it('calls the thumbnailer with maxSide for larger images and stores its output', async () => {
    const { fn, calls } = fakeThumbnailer();
    const store = await openStore({ thumbnailer: fn, thumbnailMaxSide: 128 });
    const e = await store.add(
      newEntry({
        images: [
          { blob: png(3000, 1), width: 1024, height: 768, contentType: 'image/png' },
          { blob: png(2000, 2), width: 128, height: 96, contentType: 'image/png' }, // already thumbnail-sized
        ],
      }),
    );
    expect(calls).toEqual([{ size: 3000, maxSide: 128 }]);
    const thumb = await store.thumbnail(e.id, 0);
    expect(thumb!.type).toBe('image/webp');
    expect(await blobBytes(thumb)).toEqual(bytes(100, 3000));
    expect(await blobBytes(await store.thumbnail(e.id, 1))).toEqual(bytes(2000, 2)); // falls back to the image
    expect(await blobBytes(await store.image(e.id, 0))).toEqual(bytes(3000, 1));
    expect(await store.usage()).toEqual({ entries: 1, bytes: 3000 + 100 + 2000 });
  });

  it('stores the entry without a thumbnail when the thumbnailer fails or returns something no smaller', async () => {
    const failing: Thumbnailer = async () => {
      throw new Error('cannot decode');
    };
    const store = await openStore({ thumbnailer: failing });
    const e = await store.add(newEntry());
    expect(await blobBytes(await store.thumbnail(e.id, 0))).toEqual(bytes(3000, 1));

    const huge: Thumbnailer = async (image) => new Blob([bytes(image.size + 10)], { type: 'image/webp' });
    const store2 = await openStore({ thumbnailer: huge });
    const e2 = await store2.add(newEntry());
    expect(await blobBytes(await store2.thumbnail(e2.id, 0))).toEqual(bytes(3000, 1));
    expect(await store2.usage()).toEqual({ entries: 1, bytes: 3000 });
  });

  it('uses no thumbnailer by default where OffscreenCanvas is missing (Node)', async () => {
    const store = await HistoryStore.open({ dbName: dbName() });
    opened.push(store);
    const e = await store.add(newEntry());
    expect(await blobBytes(await store.thumbnail(e.id, 0))).toEqual(bytes(3000, 1));
  });
});

describe('HistoryStore: quota', () => {
  it.each([
    ['thrown by put()', quotaOnBlobPut],
    ['aborting the transaction', quotaAbortOnBlobPut],
  ])('a QuotaExceededError (%s) leaves nothing partial and throws storage_quota', async (_how, inject) => {
    const { fn } = fakeThumbnailer();
    const store = await openStore({ thumbnailer: fn });
    const kept = await store.add(newEntry({ prompt: 'kept' }));
    const usageBefore = await store.usage();
    const keysBefore = await rawBlobKeys(store.dbName);

    inject(3); // image 0, image 1, then the thumbnail of image 0 fails
    const e = await rejection(
      store.add(
        newEntry({
          images: [
            { blob: png(4000), width: 1024, height: 1024, contentType: 'image/png' },
            { blob: png(4001), width: 1024, height: 1024, contentType: 'image/png' },
          ],
        }),
      ),
    );
    restores.pop()!();
    expect(e.code).toBe('storage_quota');
    expect(e.message).toMatch(/^History is full/);
    expect(e.message).toContain('History holds 1 item (3.10 KB of images)');
    expect(e.message).toMatch(/Delete older items \(export them first to keep them\)/);
    expect(e.message).toMatch(/nothing was stored/);
    expect(e.details).toMatchObject({ entries: 1, bytes: 3100 });

    expect(await store.usage()).toEqual(usageBefore);
    expect(await rawBlobKeys(store.dbName)).toEqual(keysBefore);
    expect(await rawEntryIds(store.dbName)).toEqual([kept.id]);
    expect(await store.list()).toEqual([kept]);
    expect(await blobBytes(await store.image(kept.id, 0))).toEqual(bytes(3000, 1));

    // With room again, the same generation is stored.
    await store.add(newEntry({ prompt: 'later' }));
    expect((await store.list()).map((x) => x.prompt)).toEqual(['later', 'kept']);
  });

  it('import stops at the entry that does not fit; what was added stays and a second import resumes', async () => {
    const source = await openStore();
    for (let i = 0; i < 4; i++) await source.add(newEntry({ createdAt: 1000 + i, prompt: `p${i}` }));
    const file = await source.export();

    const target = await openStore();
    quotaOnBlobPut(3); // the third entry's image
    const e = await rejection(target.import(file));
    restores.pop()!();
    expect(e.code).toBe('storage_quota');
    expect(e.message).toMatch(/^History is full.*the import stopped after adding 2 entries \(0 already there, 2 not imported\)/);
    expect(e.details).toMatchObject({ added: 2, skipped: 0, remaining: 2 });
    expect((await target.list()).map((x) => x.prompt)).toEqual(['p3', 'p2']);
    expect(await rawBlobKeys(target.dbName)).toHaveLength(2);

    expect(await target.import(file)).toEqual({ added: 2, skipped: 2 });
    expect(await target.list()).toEqual(await source.list());
  });
});

describe('HistoryStore: export and import', () => {
  async function populated(): Promise<HistoryStore> {
    const { fn } = fakeThumbnailer();
    const store = await openStore({ thumbnailer: fn });
    await store.add(newEntry({ createdAt: 1000, prompt: 'first' }));
    await store.add(
      newEntry({
        createdAt: 2000,
        prompt: 'second',
        images: [
          { blob: new Blob([bytes(4000, 5)], { type: 'image/jpeg' }), width: 1024, height: 1024, contentType: 'image/jpeg', hidden: true },
          { blob: null, url: 'https://fal.media/files/y.png', width: 1024, height: 1024, contentType: 'image/png' },
        ],
        has_nsfw_concepts: [true, false],
        safety: { ran: true, checker: 'fal', reason: 'nsfw' },
      }),
    );
    await store.add(newEntry({ createdAt: 3000, prompt: 'third', target: 'remote', steps: null, input: { prompt: 'third', image_url: 'data:image/png;base64,' + 'B'.repeat(5000) } }));
    return store;
  }

  it('writes a zip with history.json and images/<id>/<n>.<ext>', async () => {
    const store = await populated();
    const entries = await store.list();
    const file = await store.export();
    expect(file.type).toBe('application/zip');
    const { doc, files } = await exportDoc(file);
    expect(doc.format).toBe(HISTORY_EXPORT_FORMAT);
    expect(doc.format).toBe('flux-webgpu-history');
    expect(doc.version).toBe(HISTORY_EXPORT_VERSION);
    expect(typeof doc.exportedAt).toBe('number');
    expect(doc.entries.map((e) => e.prompt)).toEqual(['third', 'second', 'first']);
    const second = doc.entries[1]!;
    expect(second.images).toEqual([
      { contentType: 'image/jpeg', width: 1024, height: 1024, bytes: 4000, hidden: true, file: `images/${second.id}/0.jpg`, thumbnail: { file: `thumbs/${second.id}/0.webp`, contentType: 'image/webp', bytes: 100 } },
      { contentType: 'image/png', width: 1024, height: 1024, bytes: 0, url: 'https://fal.media/files/y.png', file: null },
    ]);
    const { images: _i, ...rest } = second;
    const { images: _j, ...stored } = entries[1]!;
    expect(rest).toEqual(stored);
    expect(files[`images/${second.id}/0.jpg`]).toEqual(bytes(4000, 5));
    expect(Object.keys(files).sort()).toEqual(
      ['history.json', ...doc.entries.flatMap((e) => e.images.flatMap((img) => [img.file, img.thumbnail?.file]).filter((f): f is string => typeof f === 'string'))].sort(),
    );
    expect(Object.keys(files)[0]).toBe('history.json');

    const one = await exportDoc(await store.export({ ids: [entries[2]!.id] }));
    expect(one.doc.entries.map((e) => e.prompt)).toEqual(['first']);
    expect(Object.keys(one.files)).toHaveLength(3);
    const missing = await rejection(store.export({ ids: [entries[0]!.id, 'gone'] }));
    expect(missing.code).toBe('invalid_input');
    expect(missing.message).toContain('"gone"');
  });

  it('export → import into a fresh database gives identical entries and bytes; importing again skips all', async () => {
    const source = await populated();
    const file = await source.export();
    const thumbnailer = vi.fn<Thumbnailer>(async () => new Blob(['x'], { type: 'image/webp' }));
    const target = await openStore({ thumbnailer });
    expect(await target.import(file)).toEqual({ added: 3, skipped: 0 });
    expect(thumbnailer).not.toHaveBeenCalled(); // the thumbnails came with the file

    const entries = await source.list();
    expect(await target.list()).toEqual(entries);
    for (const e of entries) {
      expect(await target.get(e.id)).toEqual(e);
      for (let i = 0; i < e.images.length; i++) {
        const [a, b] = [await source.image(e.id, i), await target.image(e.id, i)];
        if (a === null) expect(b).toBeNull();
        else {
          expect(await blobBytes(b)).toEqual(await blobBytes(a));
          expect(b!.type).toBe(a.type);
        }
        const [ta, tb] = [await source.thumbnail(e.id, i), await target.thumbnail(e.id, i)];
        if (ta === null) expect(tb).toBeNull();
        else expect(await blobBytes(tb)).toEqual(await blobBytes(ta));
      }
    }
    expect(await target.usage()).toEqual(await source.usage());

    expect(await target.import(file)).toEqual({ added: 0, skipped: 3 });
    expect(await target.usage()).toEqual(await source.usage());

    // Merge: a database with one of the entries and one of its own.
    const partial = await openStore();
    const own = await partial.add(newEntry({ createdAt: 500, prompt: 'own' }));
    expect(await partial.import(await source.export({ ids: [entries[0]!.id] }))).toEqual({ added: 1, skipped: 0 });
    expect(await partial.import(file)).toEqual({ added: 2, skipped: 1 });
    expect(await partial.list()).toEqual([...entries, own]);
  });

  it('makes thumbnails on import when the file has none', async () => {
    const source = await openStore();
    await source.add(newEntry());
    const { fn, calls } = fakeThumbnailer();
    const target = await openStore({ thumbnailer: fn });
    await target.import(await source.export());
    const [e] = await target.list();
    expect(calls).toEqual([{ size: 3000, maxSide: 256 }]);
    expect(await blobBytes(await target.thumbnail(e!.id, 0))).toEqual(bytes(100, 3000));
  });

  it('imports an export that another tool re-compressed (deflated members)', async () => {
    const source = await populated();
    const files = unzipSync(new Uint8Array(await (await source.export()).arrayBuffer()));
    const rezipped = new Blob([zipSync(files, { level: 9 })]);
    const target = await openStore();
    expect(await target.import(rezipped)).toEqual({ added: 3, skipped: 0 });
    expect(await target.list()).toEqual(await source.list());
  });

  it('rejects malformed files with a specific message and adds nothing', async () => {
    const source = await populated();
    const good = await source.export();
    const ids = (await source.list()).map((e) => e.id);
    const target = await openStore();

    const cases: [string, Blob | Promise<Blob>, RegExp, string?][] = [
      ['not a zip', new Blob(['hello, this is not a zip file at all']), /^Import file: not a ZIP file/],
      ['tiny', new Blob(['x']), /not a ZIP file \(1 bytes\)/],
      ['no history.json', zipOf({ 'other.txt': strToU8('hi') }), /has no history\.json/],
      ['not JSON', zipOf({ 'history.json': strToU8('{ nope') }), /history\.json cannot be read/],
      ['wrong format', withDoc(good, (d) => void (d.format = 'something-else')), /format is "something-else", expected "flux-webgpu-history"/, 'format'],
      ['newer version', withDoc(good, (d) => void (d.version = 2)), /version is 2, but this app reads version 1; update the app/, 'version'],
      ['version not a number', withDoc(good, (d) => void (d.version = '1')), /version must be a positive integer, got "1"/, 'version'],
      ['entries not an array', withDoc(good, (d) => void (d.entries = {} as never)), /entries must be an array/, 'entries'],
      [
        'bad entry field',
        withDoc(good, (d) => void (d.entries[1]!.width = -3)),
        new RegExp(`^Import file: history\\.json entries\\[1\\] \\(id "${ids[1]}"\\): width must be a positive integer, got -3$`),
        'entries[1].width',
      ],
      ['bad image field', withDoc(good, (d) => void ((d.entries[2]!.images as Record<string, unknown>[])[0]!.height = 'tall')), /entries\[2\].*images\[0\]\.height must be a positive integer/, 'entries[2].images[0].height'],
      ['bad safety', withDoc(good, (d) => void (d.entries[0]!.safety = { ran: true })), /entries\[0\].*safety must be an object/, 'entries[0].safety'],
      ['bad id', withDoc(good, (d) => void (d.entries[0]!.id = '../evil')), /entries\[0\] \(id "\.\.\/evil"\): id must be/, 'entries[0].id'],
      ['duplicate id', withDoc(good, (d) => void (d.entries[2]!.id = d.entries[0]!.id)), /entries\[2\].*id repeats the id of entries\[0\]/, 'entries[2].id'],
      ['missing createdAt', withDoc(good, (d) => void delete d.entries[0]!.createdAt), /entries\[0\].*createdAt must be a time/, 'entries[0].createdAt'],
      [
        'missing image file',
        withDoc(good, (d) => void ((d.entries[0]!.images as Record<string, unknown>[])[0]!.file = 'images/nope/0.png')),
        /images\[0\]\.file names "images\/nope\/0\.png", which is not in the ZIP file/,
        'entries[0].images[0].file',
      ],
      ['size mismatch', withDoc(good, (d) => void ((d.entries[2]!.images as Record<string, unknown>[])[0]!.bytes = 5)), /images\[0\]\.bytes is 5, but "images\/.*" holds 3000 bytes/, 'entries[2].images[0].bytes'],
    ];
    for (const [what, file, message, field] of cases) {
      const e = await rejection(target.import(await file));
      expect(e.code, what).toBe('invalid_input');
      expect(e.message, what).toMatch(message);
      if (field !== undefined) expect(e.field, what).toBe(field);
      expect(await target.usage(), what).toEqual({ entries: 0, bytes: 0 });
    }
    expect((await rejection(target.import('nope' as unknown as Blob))).field).toBe('file');
  });

  it('rejects an image whose bytes were damaged in the file (CRC-32)', async () => {
    const source = await openStore();
    await source.add(newEntry({ images: [{ blob: png(3000, 9), width: 1024, height: 768, contentType: 'image/png' }] }));
    const zip = new Uint8Array(await (await source.export()).arrayBuffer());
    const image = bytes(3000, 9);
    // Images are stored uncompressed: find them in the file and flip a byte.
    let at = -1;
    for (let i = 0; i + 16 <= zip.length && at < 0; i++) if (image.every((b, k) => k >= 16 || zip[i + k] === b)) at = i;
    expect(at).toBeGreaterThan(0);
    zip[at + 1000]! ^= 0xff;
    const target = await openStore();
    const e = await rejection(target.import(new Blob([zip])));
    expect(e.code).toBe('invalid_input');
    expect(e.message).toMatch(/entries\[0\].*images\[0\]\.file "images\/.*\/0\.png": damaged ZIP file \(.* fails its CRC-32 check\)/);
    expect(await target.usage()).toEqual({ entries: 0, bytes: 0 });
  });
});

describe('HistoryStore: damaged records and other tabs', () => {
  it('lists damaged records marked instead of throwing, and can still export and delete them', async () => {
    const store = await openStore();
    const ok = await store.add(newEntry({ createdAt: 3000, prompt: 'ok' }));
    const lost = await store.add(newEntry({ createdAt: 2000, prompt: 'lost blob' }));
    const db = await rawDb(store.dbName);
    await new Promise<void>((resolve, reject) => {
      const tx = db.transaction(['entries', 'blobs'], 'readwrite');
      tx.objectStore('blobs').delete([lost.id, 0, 'image']);
      tx.objectStore('entries').put({ id: 'garbage', createdAt: 1000, prompt: 7, images: [{ contentType: 'image/png', width: 10, height: 10, bytes: 50 }, 'x'] });
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
    db.close();

    const list = await store.list();
    expect(list.map((e) => e.id)).toEqual([ok.id, lost.id, 'garbage']);
    expect(list[0]).toEqual(ok);
    expect(list[1]!.damaged).toBe(true);
    expect(list[1]!.images[0]).toEqual({ contentType: 'image/png', width: 1024, height: 768, bytes: 0, damaged: true });
    const garbage = list[2]!;
    expect(garbage.damaged).toBe(true);
    expect(garbage.prompt).toBe('');
    expect(garbage.images).toHaveLength(2);
    expect(garbage.images.every((i) => i.damaged && i.bytes === 0)).toBe(true);
    expect(await store.image(lost.id, 0)).toBeNull();

    // Export keeps them (without the missing files); an import reproduces the same view.
    const target = await openStore();
    expect(await target.import(await store.export({ ids: [lost.id] }))).toEqual({ added: 1, skipped: 0 });
    expect(await target.list()).toEqual([list[1]]);

    await store.delete('garbage');
    await store.delete(lost.id);
    expect(await store.list()).toEqual([ok]);
  });

  it('closes on versionchange so another tab can upgrade, then reports the newer database', async () => {
    const store = await openStore();
    await store.add(newEntry());
    // Another tab with a newer app version upgrades the database; our open connection must not block it.
    const upgraded = await rawDb(store.dbName, HISTORY_DB_VERSION + 1);
    upgraded.close();
    const e = await rejection(store.list());
    expect(e.code).toBe('runtime_error');
    expect(e.message).toMatch(/upgraded by a newer version of this app.*Reload this page/);
  });
});
