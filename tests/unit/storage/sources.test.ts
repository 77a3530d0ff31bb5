import { randomBytes } from 'node:crypto';
import { rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFsPack, verifyPack } from '../../../src/storage/fs-pack-source.js';
import { openHttpPack, packFileUrl } from '../../../src/storage/http-pack-source.js';
import { readJsonFile, toBytes } from '../../../src/storage/pack-source.js';
import { Sha256Hasher, sha256Hex } from '../../../src/storage/sha256.js';
import { makePack, removePack, sha256, startServer, type PackServer, type TestPack } from './pack-fixture.js';
import { rejection } from '../../support/errors.js';

describe('sha256 helpers', () => {
  it('match node:crypto for bytes, sliced Blobs and incremental updates', async () => {
    const b = new Uint8Array(randomBytes(10_001));
    expect(await sha256Hex(b)).toBe(sha256(b));
    expect(await sha256Hex(new Blob([b]), 1000)).toBe(sha256(b));
    expect(await sha256Hex(new Blob([]))).toBe(sha256(new Uint8Array(0)));
    expect((await Sha256Hasher.create()).update(b.subarray(0, 7)).update(b.subarray(7)).hex()).toBe(sha256(b));
  });
});

describe('openHttpPack', () => {
  let pack: TestPack;
  let server: PackServer;
  beforeAll(async () => {
    pack = await makePack({ 'text_encoder/tokenizer.json': 0, 'a b.bin': 3000 });
    await writeFile(join(pack.dir, 'ignored.json'), '{}');
    server = await startServer(pack.dir);
  });
  afterAll(async () => {
    await server.close();
    await removePack(pack);
  });

  it('reads the manifest and fetches files on demand, URL-encoding paths', async () => {
    const src = await openHttpPack(`${server.baseUrl}/`);
    expect(src.manifest).toEqual(pack.manifest);
    expect(server.requests.size).toBe(1);
    expect(await toBytes(await src.getFile('a b.bin'))).toEqual(pack.bytes.get('a b.bin'));
    expect(server.count('a b.bin')).toBe(1);
    expect(packFileUrl('http://h/p/', 'x/a b.bin')).toBe('http://h/p/x/a%20b.bin');
  });

  it('uses an injected fetch', async () => {
    const seen: string[] = [];
    const src = await openHttpPack(server.baseUrl, { fetch: (u, i) => (seen.push(u), fetch(u, i)) });
    await src.getFile('transformer.onnx');
    expect(seen).toEqual([`${server.baseUrl}/manifest.json`, `${server.baseUrl}/transformer.onnx`]);
  });

  it('errors name the URL and HTTP status', async () => {
    const src = await openHttpPack(server.baseUrl);
    server.overrides.set('vae_decoder.onnx', { status: 404 });
    let e = await rejection(src.getFile('vae_decoder.onnx'));
    expect(e.code).toBe('pack_file_missing');
    expect(e.message).toContain(`${server.baseUrl}/vae_decoder.onnx`);
    expect(e.message).toContain('404');
    server.overrides.set('vae_decoder.onnx', { status: 500 });
    e = await rejection(src.getFile('vae_decoder.onnx'));
    expect(e.message).toContain('500');
    server.overrides.set('vae_decoder.onnx', { body: new Uint8Array(5) });
    e = await rejection(src.getFile('vae_decoder.onnx'));
    expect(e.code).toBe('pack_file_corrupt');
    expect(e.details).toMatchObject({ expectedSize: 200, actualSize: 5 });
    server.overrides.clear();
    expect((await rejection(src.getFile('ignored.json'))).code).toBe('pack_file_missing'); // not in the manifest
    expect((await rejection(openHttpPack(`${server.baseUrl}/nope`))).code).toBe('pack_file_missing');
  });

  it('rejects an invalid manifest', async () => {
    server.overrides.set('manifest.json', { body: new TextEncoder().encode('{"format":"x"}') });
    expect((await rejection(openHttpPack(server.baseUrl))).code).toBe('invalid_manifest');
    server.overrides.set('manifest.json', { body: new TextEncoder().encode('not json') });
    expect((await rejection(openHttpPack(server.baseUrl))).code).toBe('invalid_manifest');
    server.overrides.clear();
  });
});

describe('openFsPack / verifyPack', () => {
  let pack: TestPack;
  beforeAll(async () => {
    pack = await makePack({ 'nested/data.bin': 3 * 1024 * 1024 + 5, 'tok.json': 0 });
    await writeFile(join(pack.dir, 'tok.json'), '');
  });
  afterAll(async () => removePack(pack));

  it('reads files, gives local paths, and verifies every file streaming', async () => {
    const src = await openFsPack(pack.dir);
    expect(src.manifest).toEqual(pack.manifest);
    expect(src.localPath('nested/data.bin')).toBe(join(pack.dir, 'nested', 'data.bin'));
    expect(sha256(await toBytes(await src.getFile('nested/data.bin')))).toBe(sha256(pack.bytes.get('nested/data.bin')!)); // toEqual on MBs is slow
    expect((await rejection(readJsonFile(src, 'unlisted.json'))).code).toBe('pack_file_missing');
    const loaded: number[] = [];
    const res = await verifyPack(src, { onProgress: (e) => loaded.push(e.loadedBytes) });
    expect(res.every((r) => r.ok)).toBe(true);
    expect(loaded.length).toBeGreaterThan(3); // 1 MiB reads
    expect(loaded.at(-1)).toBe([...pack.bytes.values()].reduce((s, b) => s + b.byteLength, 0));
  });

  it('reports size mismatches, same-size corruption and missing files', async () => {
    const bad = pack.bytes.get('nested/data.bin')!.slice();
    bad[1_000_000] ^= 1;
    await writeFile(join(pack.dir, 'nested/data.bin'), bad);
    await truncate(join(pack.dir, 'transformer.onnx'), 10);
    await rm(join(pack.dir, 'vae_decoder.onnx'));
    const src = await openFsPack(pack.dir);
    const e = await rejection(src.getFile('transformer.onnx'));
    expect(e.code).toBe('pack_file_corrupt');
    expect(e.details).toMatchObject({ expectedSize: 300, actualSize: 10 });
    expect((await rejection(src.getFile('vae_decoder.onnx'))).code).toBe('pack_file_missing');
    const res = await verifyPack(pack.dir);
    expect(res.filter((r) => !r.ok).map((r) => [r.path, r.problem])).toEqual([
      ['transformer.onnx', 'size'],
      ['vae_decoder.onnx', 'missing'],
      ['nested/data.bin', 'sha256'],
    ]);
    expect((await rejection(openFsPack(join(pack.dir, 'nope')))).code).toBe('pack_file_missing');
  });
});
