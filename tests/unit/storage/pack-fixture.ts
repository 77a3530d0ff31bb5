/**
 * Test pack folders with random bytes and a computed manifest, and a local HTTP server for them that
 * supports Range, logs requests and bytes sent, and can misbehave per path (status, replaced body, cut
 * connection, ignored Range, corrupted byte, changed ETag).
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

/**
 * How the server misbehaves for one pack-relative path. Fields combine; `times` limits it to that many more
 * requests (then it is removed).
 */
export interface Override {
  /** Answer with this status and no body. */
  status?: number;
  /** Serve these bytes instead of the file. */
  body?: Uint8Array;
  /** Send this many body bytes, then close the connection (a network loss mid-stream). */
  cutAfter?: number;
  /** Ignore Range (and If-Range): always 200 with the whole file. */
  ignoreRange?: boolean;
  /** Flip the byte at this file offset in what is sent (corruption in transit). */
  corruptAt?: number;
  /** Send this ETag instead of the content hash (the file "changed" on the server). */
  etag?: string;
  /** Send neither ETag nor Last-Modified. */
  noValidators?: boolean;
  times?: number;
}

export interface RequestLog {
  /** Pack-relative path. */
  path: string;
  range: string | null;
  ifRange: string | null;
  status: number;
  /** Body bytes written before the response ended or was cut. */
  bytesSent: number;
}

export interface PackServer {
  baseUrl: string;
  /** Requests per URL path (e.g. '/pack/manifest.json'). */
  requests: Map<string, number>;
  count(path: string): number;
  /** Every request, in order. */
  log: RequestLog[];
  /** Requests for one pack-relative path. */
  logOf(path: string): RequestLog[];
  /** Body bytes sent for a pack-relative path (all requests), or for all paths. */
  bytesSent(path?: string): number;
  /** Per pack-relative path: see Override. */
  overrides: Map<string, Override>;
  close(): Promise<void>;
}

const LAST_MODIFIED = 'Tue, 21 Nov 2023 06:40:00 GMT';

/**
 * Serve `dir` under /pack/ with single-range support (206, Content-Range, 416), a strong ETag (content hash)
 * honoured in If-Range, writing bodies in 4 KiB pieces so the client sees several reads per file.
 */
export async function startServer(dir: string): Promise<PackServer> {
  const requests = new Map<string, number>();
  const overrides = new Map<string, Override>();
  const log: RequestLog[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      requests.set(urlPath, (requests.get(urlPath) ?? 0) + 1);
      const rel = urlPath.replace(/^\/pack\//, '');
      const range = req.headers.range ?? null;
      const ifRange = (req.headers['if-range'] as string | undefined) ?? null;
      const entry: RequestLog = { path: rel, range, ifRange, status: 0, bytesSent: 0 };
      log.push(entry);
      const o = overrides.get(rel);
      if (o?.times !== undefined && --o.times <= 0) overrides.delete(rel);
      if (o?.status !== undefined) {
        entry.status = o.status;
        return void res.writeHead(o.status).end();
      }
      let body: Uint8Array;
      try {
        body = o?.body ?? (await readFile(join(dir, rel)));
      } catch {
        entry.status = 404;
        return void res.writeHead(404).end();
      }
      const etag = o?.etag ?? `"${sha256(body).slice(0, 32)}"`;
      const headers: Record<string, string> = o?.noValidators ? {} : { etag, 'last-modified': LAST_MODIFIED };
      headers['accept-ranges'] = 'bytes';
      let start = 0;
      let end = body.byteLength - 1;
      let status = 200;
      const m = range && !o?.ignoreRange ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
      const validatorOk = ifRange === null || ifRange === etag || ifRange === LAST_MODIFIED;
      if (m && validatorOk) {
        start = Number(m[1]);
        if (m[2]) end = Math.min(end, Number(m[2]));
        if (start >= body.byteLength) {
          entry.status = 416;
          return void res.writeHead(416, { 'content-range': `bytes */${body.byteLength}` }).end();
        }
        status = 206;
        headers['content-range'] = `bytes ${start}-${end}/${body.byteLength}`;
      }
      const part = body.slice(start, end + 1);
      if (o?.corruptAt !== undefined && o.corruptAt >= start && o.corruptAt <= end) part[o.corruptAt - start]! ^= 0xff;
      entry.status = status;
      res.writeHead(status, { ...headers, 'content-length': String(part.byteLength) });
      const limit = o?.cutAfter ?? Infinity;
      for (let off = 0; off < part.byteLength && !res.destroyed; off += 4096) {
        const piece = part.subarray(off, Math.min(off + 4096, part.byteLength, limit));
        if (piece.byteLength > 0) {
          await new Promise<void>((r) => res.write(piece, () => r()));
          entry.bytesSent += piece.byteLength;
        }
        if (entry.bytesSent >= limit) {
          // Long enough for a slow client (2 busy cores) to read what was sent: undici drops the bytes it
          // buffered but had not handed out when the socket closes, and the tests count exact bytes.
          await new Promise((r) => setTimeout(r, 300));
          res.destroy();
          return;
        }
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
    log,
    logOf: (p) => log.filter((l) => l.path === p),
    bytesSent: (p) => log.filter((l) => p === undefined || l.path === p).reduce((s, l) => s + l.bytesSent, 0),
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
