/**
 * Test pack folders with random bytes and a computed manifest, and a local HTTP server for them that
 * counts requests and can misbehave per path (status, replaced body).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { PackManifest } from '../../../src/pack/manifest.js';

export interface TestPack {
  dir: string;
  manifest: PackManifest;
  bytes: Map<string, Uint8Array>;
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Write a pack folder: the two required graphs plus `extra` files of the given sizes, all random. */
export async function makePack(extra: Record<string, number>, options: { id?: string; dir?: string } = {}): Promise<TestPack> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'flux-pack-')));
  const sizes: Record<string, number> = { 'transformer.onnx': 300, 'vae_decoder.onnx': 200, ...extra };
  const bytes = new Map<string, Uint8Array>();
  for (const [path, size] of Object.entries(sizes)) {
    const b = new Uint8Array(randomBytes(size));
    bytes.set(path, b);
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), b);
  }
  const manifest = manifestFor(options.id ?? 'test-pack', bytes);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return { dir, manifest, bytes };
}

export function manifestFor(id: string, bytes: Map<string, Uint8Array>): PackManifest {
  return {
    format: 'flux-webgpu-pack',
    formatVersion: 1,
    id,
    name: `Test pack ${id}`,
    model: 'flux.1-schnell',
    testPack: true,
    files: [...bytes].map(([path, b]) => ({ path, size: b.byteLength, sha256: sha256(b) })),
    components: {
      transformer: { graph: 'transformer.onnx', dtype: 'float32' },
      vae_decoder: { graph: 'vae_decoder.onnx', dtype: 'float32' },
    },
  };
}

/** Replace one file of a pack on disk and in its manifest (a new pack version). */
export async function updateFile(pack: TestPack, path: string, b: Uint8Array): Promise<void> {
  pack.bytes.set(path, b);
  await writeFile(join(pack.dir, path), b);
  pack.manifest = manifestFor(pack.manifest.id, pack.bytes);
  await writeFile(join(pack.dir, 'manifest.json'), JSON.stringify(pack.manifest));
}

export type Override = { status: number } | { body: Uint8Array };

export interface PackServer {
  baseUrl: string;
  /** Requests per URL path (e.g. '/pack/manifest.json'). */
  requests: Map<string, number>;
  count(path: string): number;
  /** Per pack-relative path: answer with a status, or serve these bytes instead of the file. */
  overrides: Map<string, Override>;
  close(): Promise<void>;
}

/** Serve `dir` under /pack/, writing bodies in 4 KiB pieces so the client sees several reads per file. */
export async function startServer(dir: string): Promise<PackServer> {
  const requests = new Map<string, number>();
  const overrides = new Map<string, Override>();
  const server: Server = createServer((req, res) => {
    void (async () => {
      const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      requests.set(urlPath, (requests.get(urlPath) ?? 0) + 1);
      const rel = urlPath.replace(/^\/pack\//, '');
      const o = overrides.get(rel);
      if (o && 'status' in o) return void res.writeHead(o.status).end();
      let body: Uint8Array;
      try {
        body = o && 'body' in o ? o.body : await readFile(join(dir, rel));
      } catch {
        return void res.writeHead(404).end();
      }
      res.writeHead(200, { 'content-length': String(body.byteLength) });
      for (let off = 0; off < body.byteLength && !res.destroyed; off += 4096) {
        res.write(body.subarray(off, off + 4096));
        await new Promise((r) => setTimeout(r, 1));
      }
      res.end();
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/pack`,
    requests,
    count: (p) => requests.get(`/pack/${p}`) ?? 0,
    overrides,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export async function removePack(pack: TestPack): Promise<void> {
  await rm(pack.dir, { recursive: true, force: true });
}
