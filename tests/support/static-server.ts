/**
 * A static file server for packs on another origin (CORS + CORP, so a cross-origin-isolated page may fetch),
 * streaming from disk with Range support, counting requests and bytes sent.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';

export interface StaticServer {
  url: string;
  requests: number;
  bytesSent: number;
  close(): Promise<void>;
}

/** `bytesPerSecond` paces all responses together (a stand-in for a real network link). */
export async function serveDirectory(root: string, options: { bytesPerSecond?: number } = {}): Promise<StaticServer> {
  const stats = { requests: 0, bytesSent: 0 };
  let linkFreeAt = 0;
  const server = createServer((req, res) => {
    stats.requests++;
    const headers: Record<string, string> = {
      'access-control-allow-origin': '*',
      'access-control-allow-headers': 'range, if-range',
      'access-control-expose-headers': 'content-length, content-range, etag, accept-ranges',
      'cross-origin-resource-policy': 'cross-origin',
      'accept-ranges': 'bytes',
    };
    if (req.method === 'OPTIONS') return void res.writeHead(204, headers).end();
    const rel = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    const path = join(root, rel);
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      return void res.writeHead(404, headers).end();
    }
    let start = 0;
    let end = size - 1;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start >= size) return void res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` }).end();
      res.writeHead(206, { ...headers, 'content-length': String(end - start + 1), 'content-range': `bytes ${start}-${end}/${size}` });
    } else {
      res.writeHead(200, { ...headers, 'content-length': String(size) });
    }
    const stream = createReadStream(path, { start, end, highWaterMark: 1 << 20 });
    const rate = options.bytesPerSecond;
    stream.on('data', (c) => {
      const n = (c as Buffer).length;
      stats.bytesSent += n;
      const ok = res.write(c);
      // One shared link: each chunk leaves when the link is free, whatever response it belongs to.
      let wait = 0;
      if (rate) {
        const now = Date.now();
        linkFreeAt = Math.max(linkFreeAt, now) + (n / rate) * 1000;
        wait = linkFreeAt - now;
      }
      if (ok && wait <= 0) return;
      stream.pause();
      let pending = (ok ? 0 : 1) + (wait > 0 ? 1 : 0);
      const go = () => --pending === 0 && stream.resume();
      if (!ok) res.once('drain', go);
      if (wait > 0) setTimeout(go, wait);
    });
    stream.on('end', () => res.end());
    stream.on('error', () => res.destroy());
    res.on('close', () => stream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    get requests() {
      return stats.requests;
    },
    get bytesSent() {
      return stats.bytesSent;
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
