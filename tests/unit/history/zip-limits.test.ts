/**
 * History exports that would need ZIP64 are refused before anything is written (fflate writes no ZIP64 and
 * would wrap its 32-bit fields). The size model is checked byte for byte against real exports; the limits are
 * tested with synthetic sizes, and through export() with images that are Blobs over one shared 16 MiB buffer
 * (Node composes Blob parts by reference), so nothing near 4 GiB is allocated.
 */
import 'fake-indexeddb/auto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HistoryStore, type NewHistoryEntry } from '../../../src/history/history-store.js';
import { deflatedBytes, fitsZip, zipArchiveBytes, ZIP_MAX_BYTES, ZIP_MAX_MEMBERS } from '../../../src/history/zip-limits.js';
import { ZipReader } from '../../../src/history/zip-reader.js';
import { rejection } from '../../support/errors.js';

let dbCount = 0;
const opened: HistoryStore[] = [];
afterEach(() => {
  while (opened.length) opened.pop()!.close();
  vi.restoreAllMocks();
});

async function openStore(): Promise<HistoryStore> {
  const s = await HistoryStore.open({ dbName: `zip-limits-${++dbCount}`, thumbnailer: null });
  opened.push(s);
  return s;
}

function entry(createdAt: number, images: Blob[], prompt = `prompt ${createdAt}`): NewHistoryEntry {
  return {
    endpoint: 'fal-ai/flux/schnell',
    target: 'local',
    routeReason: 'webgpu available',
    input: { prompt, num_inference_steps: 4 },
    prompt,
    seed: createdAt,
    steps: 4,
    width: 1024,
    height: 768,
    timings: { inference: 1.5, total: 2.25 },
    safety: { ran: false, checker: null },
    has_nsfw_concepts: images.map(() => false),
    images: images.map((blob) => ({ blob, width: 1024, height: 768, contentType: 'image/png' })),
    createdAt,
  };
}

function noise(n: number, seed: number): Uint8Array<ArrayBuffer> {
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

describe('ZIP size model', () => {
  it("equals the size of real exports byte for byte (fflate's layout), including a large deflated history.json", async () => {
    const store = await openStore();
    for (let i = 0; i < 300; i++) await store.add(entry(1000 + i, i % 3 === 0 ? [new Blob([noise(500 + i, i)], { type: 'image/png' })] : [], `a prompt with some words ${i} `.repeat(8)));
    const file = await store.export();
    const zip = await ZipReader.open(file);
    const members = [...zip.members.values()].map((m) => ({ name: m.name, dataBytes: m.compressedSize }));
    expect(members.length).toBe(1 + 100);
    expect(zipArchiveBytes(members)).toBe(file.size);
    // history.json's deflated size is predicted exactly, before the archive is written.
    const json = zip.members.get('history.json')!;
    expect(json.size).toBeGreaterThan(200_000);
    expect(deflatedBytes(await zip.read('history.json'))).toBe(json.compressedSize);
  });

  it('fits up to 4 GiB − 1 byte and 65,534 members; one more byte or member does not', () => {
    expect(ZIP_MAX_BYTES).toBe(2 ** 32 - 1);
    expect(ZIP_MAX_MEMBERS).toBe(65_534);
    const overhead = zipArchiveBytes([{ name: 'a.png', dataBytes: 0 }]);
    const exact = [{ name: 'a.png', dataBytes: ZIP_MAX_BYTES - overhead }];
    expect(zipArchiveBytes(exact)).toBe(ZIP_MAX_BYTES);
    expect(fitsZip(1, zipArchiveBytes(exact))).toBe(true);
    expect(fitsZip(1, zipArchiveBytes([{ name: 'a.png', dataBytes: ZIP_MAX_BYTES - overhead + 1 }]))).toBe(false);
    const names = Array.from({ length: 65_535 }, (_, i) => ({ name: `images/${i}/0.png`, dataBytes: 10 }));
    expect(fitsZip(65_534, zipArchiveBytes(names.slice(1)))).toBe(true);
    expect(fitsZip(65_535, zipArchiveBytes(names))).toBe(false);
  });
});

describe('export refuses an archive that would need ZIP64', () => {
  it('≥ 4 GiB of images: invalid_input naming size, count and how many newest entries fit; no image is read', async () => {
    const store = await openStore();
    const part = new Blob([new Uint8Array(16 * 1024 * 1024)]);
    const image = (parts: number): Blob => new Blob(Array<Blob>(parts).fill(part), { type: 'image/png' }); // 16 MiB × parts, shared
    await store.add(entry(1000, [image(64)])); // 1 GiB, oldest
    await store.add(entry(2000, [image(96)])); // 1.5 GiB
    await store.add(entry(3000, [image(96)])); // 1.5 GiB, newest: these two fit, all three do not
    const read = vi.spyOn(Blob.prototype, 'arrayBuffer');
    const e = await rejection(store.export());
    expect(read).not.toHaveBeenCalled();
    expect(e.code).toBe('invalid_input');
    expect(e.field).toBe('ids');
    expect(e.message).toMatch(
      /^History export: 3 entries make a ZIP of 4\.29 GB \(42949\d{5} bytes\) with 4 files, but a ZIP without ZIP64 \(what this app writes and reads\) holds at most 4294967295 bytes \(4 GiB − 1\) and 65534 files\. Nothing was written\. Export fewer entries at a time \(choose them by id\): the newest 2 fit\.$/,
    );
    expect(e.details).toMatchObject({ entries: 3, members: 4, maxBytes: ZIP_MAX_BYTES, maxMembers: 65_534, fittingEntries: 2 });
    expect(e.details!.bytes as number).toBeGreaterThan(4 * 1024 ** 3);
  });

  it('the entries that fit still export (the check is by the same model, not a rough bound)', async () => {
    const store = await openStore();
    await store.add(entry(1000, [new Blob([noise(2000, 1)], { type: 'image/png' })]));
    const list = await store.list();
    const file = await store.export({ ids: [list[0]!.id] });
    expect((await ZipReader.open(file)).members.size).toBe(2);
  });
});
