/**
 * A pack server for the install e2e specs, run in the test process: serves a generated pack cross-origin (CORS,
 * so the app's worker can send Range/If-Range), supports single ranges with a strong ETag, logs every request
 * with the body bytes it sent, and can misbehave per file: stall (hold the connection after N bytes, so the
 * test can reload the page mid-file), cut the connection, corrupt a byte, ignore Range.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { TEST_PACK_DIR } from '../support/fixtures.js';

export const MiB = 1024 * 1024;
/** The app's chunk size (DEFAULT_CHUNK_BYTES): resumes continue at multiples of it. */
export const CHUNK = 8 * MiB;

export interface ManifestFile {
  path: string;
  size: number;
  sha256: string;
}

export interface ServedPack {
  id: string;
  manifest: Record<string, unknown> & { files: ManifestFile[] };
  files: Map<string, Buffer>;
  /** Bytes of the tiny test pack's own files (the part that loads and runs). */
  baseBytes: number;
  totalBytes: number;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * The tiny test pack (so the result loads and generates) under a new id, plus random `extras` files listed in
 * the manifest but used by no component: the large shards that interruptions hit.
 */
export function makeServedPack(id: string, extras: Record<string, number>): ServedPack {
  const manifest = JSON.parse(readFileSync(join(TEST_PACK_DIR, 'manifest.json'), 'utf8')) as ServedPack['manifest'];
  manifest.id = id;
  manifest.name = `E2E pack ${id}`;
  const files = new Map(manifest.files.map((f) => [f.path, readFileSync(join(TEST_PACK_DIR, f.path))]));
  const baseBytes = manifest.files.reduce((s, f) => s + f.size, 0);
  for (const [path, size] of Object.entries(extras)) {
    const b = randomBytes(size);
    files.set(path, b);
    manifest.files.push({ path, size, sha256: sha256(b) });
  }
  return { id, manifest, files, baseBytes, totalBytes: manifest.files.reduce((s, f) => s + f.size, 0) };
}

export interface Misbehave {
  /** Send this many body bytes, then hold the connection open until the client goes away. */
  stallAfter?: number;
  /** Send this many body bytes, then close the connection. */
  cutAfter?: number;
  /** Flip the byte at this file offset in what is sent. */
  corruptAt?: number;
  ignoreRange?: boolean;
  /** Only for this many more requests. */
  times?: number;
}

export interface ServedRequest {
  /** Pack-relative path. */
  path: string;
  range: string | null;
  ifRange: string | null;
  status: number;
  bytesSent: number;
}

export interface PackServer {
  /** The pack folder URL to install from (cross-origin to the app). */
  url: string;
  /** GET requests (preflights excluded), in order. */
  log: ServedRequest[];
  /** CORS preflights seen. */
  preflights: number;
  overrides: Map<string, Misbehave>;
  /** Requests for pack files (manifest.json excluded). */
  fileRequests(): ServedRequest[];
  bytesSent(path: string): number;
  close(): Promise<void>;
}

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-expose-headers': 'ETag, Content-Range, Last-Modified, Accept-Ranges, Content-Length',
  'cross-origin-resource-policy': 'cross-origin',
};

export async function startPackServer(pack: ServedPack): Promise<PackServer> {
  const log: ServedRequest[] = [];
  const overrides = new Map<string, Misbehave>();
  let preflights = 0;
  const open = new Set<ServerResponse>();
  const manifestBytes = Buffer.from(JSON.stringify(pack.manifest));
  const server = createServer((req, res) => {
    void (async () => {
      if (req.method === 'OPTIONS') {
        preflights++;
        return void res.writeHead(204, { ...CORS, 'access-control-allow-headers': 'Range, If-Range', 'access-control-allow-methods': 'GET', 'access-control-max-age': '600' }).end();
      }
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/pack\//, '');
      const entry: ServedRequest = { path, range: req.headers.range ?? null, ifRange: (req.headers['if-range'] as string | undefined) ?? null, status: 0, bytesSent: 0 };
      log.push(entry);
      const body = path === 'manifest.json' ? manifestBytes : pack.files.get(path);
      if (!body) {
        entry.status = 404;
        return void res.writeHead(404, CORS).end();
      }
      const o = overrides.get(path);
      if (o?.times !== undefined && --o.times <= 0) overrides.delete(path);
      const etag = `"${sha256(body).slice(0, 32)}"`;
      const headers: Record<string, string> = { ...CORS, etag, 'accept-ranges': 'bytes', 'content-type': path.endsWith('.json') ? 'application/json' : 'application/octet-stream' };
      let start = 0;
      let end = body.byteLength - 1;
      let status = 200;
      const m = entry.range && !o?.ignoreRange ? /^bytes=(\d+)-(\d*)$/.exec(entry.range) : null;
      if (m && (entry.ifRange === null || entry.ifRange === etag)) {
        start = Number(m[1]);
        if (m[2]) end = Math.min(end, Number(m[2]));
        if (start >= body.byteLength) {
          entry.status = 416;
          return void res.writeHead(416, { ...CORS, 'content-range': `bytes */${body.byteLength}` }).end();
        }
        status = 206;
        headers['content-range'] = `bytes ${start}-${end}/${body.byteLength}`;
      }
      const part = Buffer.from(body.subarray(start, end + 1));
      if (o?.corruptAt !== undefined && o.corruptAt >= start && o.corruptAt <= end) part[o.corruptAt - start]! ^= 0xff;
      entry.status = status;
      res.writeHead(status, { ...headers, 'content-length': String(part.byteLength) });
      open.add(res);
      res.on('close', () => open.delete(res));
      const limit = Math.min(o?.stallAfter ?? Infinity, o?.cutAfter ?? Infinity);
      for (let off = 0; off < part.byteLength && !res.destroyed; off += 256 * 1024) {
        const piece = part.subarray(off, Math.min(off + 256 * 1024, part.byteLength, limit));
        if (piece.byteLength > 0) {
          await new Promise<void>((r) => res.write(piece, () => r()));
          entry.bytesSent += piece.byteLength;
        }
        if (entry.bytesSent >= limit) {
          if (o?.cutAfter !== undefined) {
            await new Promise((r) => setTimeout(r, 50));
            res.destroy();
          } else if (!res.destroyed) {
            await new Promise((r) => res.on('close', r)); // stalled until the page goes away
          }
          return;
        }
      }
      res.end();
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/pack/`,
    log,
    get preflights() {
      return preflights;
    },
    overrides,
    fileRequests: () => log.filter((l) => l.path !== 'manifest.json'),
    bytesSent: (path) => log.filter((l) => l.path === path).reduce((s, l) => s + l.bytesSent, 0),
    close: () =>
      new Promise((r) => {
        for (const res of open) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Poll `fn` until it returns a truthy value (or time out with `what`). */
export async function waitUntil<T>(fn: () => Promise<T> | T, what: string, timeoutMs = 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
