import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { FAL_PROXY_ROUTE } from '../../../server/fal-proxy.js';
import { falProxyPlugin, type MiddlewareHost } from '../../../server/vite-plugin-fal-proxy.js';

type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((r) => {
          s.closeAllConnections();
          s.close(() => r());
        }),
    ),
  );
});

/** Calls a plugin hook the way Vite does, with a fake server that records what it mounts. */
function mountWith(hook: 'configureServer' | 'configurePreviewServer'): { middlewares: Middleware[]; logged: string[] } {
  const middlewares: Middleware[] = [];
  const logged: string[] = [];
  const host: MiddlewareHost = {
    middlewares: { use: (fn) => middlewares.push(fn) },
    config: { logger: { info: (msg) => logged.push(msg) } },
  };
  const plugin = falProxyPlugin({ key: () => 'k', rateLimit: false });
  const fn = plugin[hook];
  if (typeof fn !== 'function') throw new Error(`${hook} is not a function hook`);
  (fn as (server: MiddlewareHost) => void).call({}, host);
  return { middlewares, logged };
}

/** Serves through the mounted middleware; whatever it passes on answers 404 "next". */
async function serve(mw: Middleware): Promise<string> {
  const server = createServer((req, res) => mw(req, res, () => void res.writeHead(404, { 'content-type': 'text/plain' }).end('next')));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('falProxyPlugin', () => {
  it('is named and has both server hooks', () => {
    const p = falProxyPlugin();
    expect(p.name).toBe('flux-webgpu:fal-proxy');
    expect(typeof p.configureServer).toBe('function');
    expect(typeof p.configurePreviewServer).toBe('function');
  });

  it.each(['configureServer', 'configurePreviewServer'] as const)('%s mounts one middleware that routes only the exact path', async (hook) => {
    const { middlewares, logged } = mountWith(hook);
    expect(middlewares).toHaveLength(1);
    const origin = await serve(middlewares[0]!);

    for (const path of [FAL_PROXY_ROUTE, `${FAL_PROXY_ROUTE}?x=1`, `${FAL_PROXY_ROUTE}?`]) {
      const res = await fetch(origin + path, { method: 'POST', body: '{}' });
      // The proxy ran: no x-fal-target-url is its 400, not the fallthrough.
      expect(res.status, path).toBe(400);
      expect(await res.json()).toMatchObject({ error_type: 'proxy_bad_target' });
    }
    for (const path of ['/', '/api/fal', '/api/fal/', `${FAL_PROXY_ROUTE}/`, `${FAL_PROXY_ROUTE}/x`, `${FAL_PROXY_ROUTE}x`, '/API/FAL/PROXY', `/prefix${FAL_PROXY_ROUTE}`, `${FAL_PROXY_ROUTE}#x`.replace('#', '%23')]) {
      const res = await fetch(origin + path);
      expect(res.status, path).toBe(404);
      expect(await res.text()).toBe('next');
    }
    await new Promise((r) => setTimeout(r, 20));
    expect(logged.some((l) => l.includes('[fal-proxy] POST - - -> 400'))).toBe(true);
  });

  it('is registered in vite.config.ts, and the config exposes no FAL env to the bundle', async () => {
    const config = (await import('../../../vite.config.js')).default as { plugins?: unknown[]; envPrefix?: string | string[]; define?: Record<string, unknown> };
    const names = (config.plugins ?? []).flat().map((p) => (p as { name?: string }).name);
    expect(names).toContain('flux-webgpu:fal-proxy');
    const prefixes = [config.envPrefix ?? 'VITE_'].flat();
    expect(prefixes.some((p) => 'FAL_KEY'.startsWith(p))).toBe(false);
    expect(JSON.stringify(config.define ?? {})).not.toContain('FAL');
  });
});
