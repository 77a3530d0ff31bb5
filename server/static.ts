/**
 * Serves the built app (dist/) for `npm run proxy -- --static dist`: cross-origin isolation headers (the app
 * needs SharedArrayBuffer), content types ORT/WASM need, ETag + Range (the pack installer resumes with
 * `Range` + `If-Range`), SPA fallback, and no way out of the root directory.
 */
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, resolve, sep } from 'node:path';

/** COEP credentialless (not require-corp): fal's result images are cross-origin without CORP headers. */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'credentialless',
};

const TEXT = '; charset=utf-8';
export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': `text/html${TEXT}`,
  '.js': `text/javascript${TEXT}`,
  '.mjs': `text/javascript${TEXT}`,
  '.css': `text/css${TEXT}`,
  '.wasm': 'application/wasm',
  '.json': `application/json${TEXT}`,
  '.map': `application/json${TEXT}`,
  '.webmanifest': `application/manifest+json${TEXT}`,
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': `text/plain${TEXT}`,
  '.woff2': 'font/woff2',
  '.onnx': 'application/octet-stream',
  '.data': 'application/octet-stream',
  '.bin': 'application/octet-stream',
};

export type StaticHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

interface Found {
  path: string;
  /** Path under the root, with forward slashes. */
  rel: string;
  size: number;
  mtimeMs: number;
}

/** `root` must exist; resolved once (symlinks included) so every served file can be checked to lie inside it. */
export async function createStaticHandler(root: string): Promise<StaticHandler> {
  const rootReal = await realpath(resolve(root));
  if (!(await stat(rootReal)).isDirectory()) throw new Error(`static root ${root} is not a directory`);
  if (!(await stat(resolve(rootReal, 'index.html')).catch(() => undefined))?.isFile()) {
    throw new Error(`static root ${root} has no index.html (run npm run build first)`);
  }
  const inside = (p: string) => p === rootReal || p.startsWith(rootReal + sep);

  async function find(rel: string): Promise<Found | undefined> {
    const full = resolve(rootReal, '.' + rel);
    if (!inside(full)) return undefined;
    try {
      let real = await realpath(full);
      if (!inside(real)) return undefined;
      let s = await stat(real);
      if (s.isDirectory()) {
        real = await realpath(resolve(real, 'index.html'));
        if (!inside(real)) return undefined;
        s = await stat(real);
      }
      return s.isFile() ? { path: real, rel: real.slice(rootReal.length).split(sep).join('/'), size: s.size, mtimeMs: s.mtimeMs } : undefined;
    } catch {
      return undefined;
    }
  }

  return async (req, res) => {
    const method = req.method ?? '';
    if (method !== 'GET' && method !== 'HEAD') {
      return plain(res, 405, 'Method Not Allowed', { allow: 'GET, HEAD' });
    }
    let rel: string;
    try {
      // URL resolves dot segments (also %2e%2e); decoding afterwards can still produce `..` from %2F, which
      // the containment check in find() catches.
      rel = decodeURIComponent(new URL(req.url ?? '/', 'http://static.invalid').pathname);
    } catch {
      return plain(res, 400, 'Bad Request');
    }
    if (rel.includes('\0') || rel.includes('\\') || rel.split('/').some((seg) => seg === '..' || (seg.startsWith('.') && seg !== '.well-known'))) {
      return plain(res, 404, 'Not Found');
    }
    if (rel.startsWith('/api/')) return plain(res, 404, 'Not Found');

    let file = await find(rel);
    // SPA fallback: an unknown route gets the app, a missing asset stays a 404 (not HTML under a .js name).
    const lastSegment = rel.slice(rel.lastIndexOf('/') + 1);
    const wantsPage = !lastSegment.includes('.') || (req.headers.accept ?? '').includes('text/html');
    if (!file && wantsPage) file = await find('/index.html');
    if (!file) return plain(res, 404, 'Not Found');
    serveFile(req, res, file);
  };
}

function serveFile(req: IncomingMessage, res: ServerResponse, file: Found): void {
  const etag = `"${file.size.toString(16)}-${Math.floor(file.mtimeMs).toString(16)}"`;
  const lastModified = new Date(file.mtimeMs).toUTCString();
  const ext = extname(file.path).toLowerCase();
  const headers: Record<string, string> = {
    ...ISOLATION_HEADERS,
    'content-type': CONTENT_TYPES[ext] ?? 'application/octet-stream',
    'x-content-type-options': 'nosniff',
    'accept-ranges': 'bytes',
    etag,
    'last-modified': lastModified,
    // Vite's /assets/ names carry a content hash; everything else (index.html, packs) revalidates by ETag.
    'cache-control': /^\/assets\/[^/]+$/.test(file.rel) ? 'public, max-age=31536000, immutable' : 'no-cache',
  };

  const inm = req.headers['if-none-match'];
  if (inm !== undefined ? inm.split(',').some((t) => t.trim() === etag || t.trim() === `W/${etag}` || t.trim() === '*') : notModifiedSince(req, file.mtimeMs)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }

  let start = 0;
  let end = file.size - 1;
  let status = 200;
  const range = req.headers.range;
  const ifRange = req.headers['if-range'];
  // If-Range: a range only when the validator still matches (strong ETag or exact date), else the whole file.
  const rangeApplies = range !== undefined && (ifRange === undefined || ifRange === etag || ifRange === lastModified);
  if (rangeApplies) {
    const r = parseRange(range, file.size);
    if (r === 'unsatisfiable') {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${file.size}`, 'content-length': '0' });
      res.end();
      return;
    }
    if (r) {
      [start, end] = r;
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${file.size}`;
    }
  }
  headers['content-length'] = String(file.size === 0 ? 0 : end - start + 1);
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || file.size === 0) {
    res.end();
    return;
  }
  const stream = createReadStream(file.path, { start, end, highWaterMark: 1 << 20 });
  stream.on('error', () => res.destroy());
  res.on('close', () => stream.destroy());
  stream.pipe(res);
}

function notModifiedSince(req: IncomingMessage, mtimeMs: number): boolean {
  const since = req.headers['if-modified-since'];
  if (since === undefined) return false;
  const t = Date.parse(since);
  return Number.isFinite(t) && Math.floor(mtimeMs / 1000) * 1000 <= t;
}

/** One `bytes=` range as [start, end] inclusive; null to ignore the header (malformed or several ranges). */
export function parseRange(header: string, size: number): [number, number] | 'unsatisfiable' | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return null;
  if (start >= size) return 'unsatisfiable';
  return [start, end];
}

function plain(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...ISOLATION_HEADERS, ...extra, 'content-type': `text/plain${TEXT}`, 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}
