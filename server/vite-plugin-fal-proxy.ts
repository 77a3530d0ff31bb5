/** Mounts the fal proxy at FAL_PROXY_ROUTE on Vite's dev and preview servers (same origin as the app). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Plugin } from 'vite';
import { createFalProxy, isFalProxyPath, type FalProxyHandler, type FalProxyOptions } from './fal-proxy.js';

export type FalProxyPluginOptions = FalProxyOptions;

type Next = (err?: unknown) => void;
/** The part of Vite's dev/preview server the plugin uses. */
export interface MiddlewareHost {
  middlewares: { use(fn: (req: IncomingMessage, res: ServerResponse, next: Next) => void): unknown };
  config?: { logger?: { info(msg: string, options?: { timestamp?: boolean }): void } };
}

/** Connect middleware: the proxy for exactly FAL_PROXY_ROUTE and its status probe (any query), `next()` for everything else. */
export function falProxyMiddleware(handler: FalProxyHandler): (req: IncomingMessage, res: ServerResponse, next: Next) => void {
  return (req, res, next) => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if (!isFalProxyPath(q === -1 ? url : url.slice(0, q))) return next();
    handler(req, res).catch(() => res.destroy());
  };
}

export function falProxyPlugin(options: FalProxyPluginOptions = {}): Plugin {
  // Created on first server start, so `vite build` neither reads the key nor prints the override warning.
  let handler: FalProxyHandler | undefined;
  const mount = (server: MiddlewareHost): void => {
    const logger = server.config?.logger;
    handler ??= createFalProxy({
      ...(logger ? { log: (line: string) => logger.info(line, { timestamp: true }) } : {}),
      ...options,
    });
    // Added directly (not from a returned post hook), so it runs before Vite's SPA fallback and static serving.
    server.middlewares.use(falProxyMiddleware(handler));
  };
  return {
    name: 'flux-webgpu:fal-proxy',
    configureServer: mount,
    configurePreviewServer: mount,
  };
}
