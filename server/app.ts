/** One Node http server for production: the fal proxy route, plus (optionally) the built app. */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { createFalProxy, isFalProxyPath, type FalProxyOptions } from './fal-proxy.js';
import { createStaticHandler, ISOLATION_HEADERS } from './static.js';

export interface AppServerOptions {
  proxy?: FalProxyOptions;
  /** Directory of the built app (dist/); without it only the proxy route answers. */
  staticDir?: string;
}

export async function createAppServer(options: AppServerOptions = {}): Promise<Server> {
  const proxy = createFalProxy(options.proxy);
  const serveStatic = options.staticDir !== undefined ? await createStaticHandler(options.staticDir) : undefined;
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const handle = isFalProxyPath(path) ? proxy(req, res) : serveStatic ? serveStatic(req, res) : notFound(res);
    handle.catch(() => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('Internal Server Error');
      } else res.destroy();
    });
  });
  // Bodies are capped by the proxy; this bounds how long a client may take to send headers + body.
  server.headersTimeout = 30_000;
  server.requestTimeout = 120_000;
  return server;
}

async function notFound(res: ServerResponse): Promise<void> {
  res.writeHead(404, { ...ISOLATION_HEADERS, 'content-type': 'text/plain; charset=utf-8' });
  res.end('Not Found');
}
