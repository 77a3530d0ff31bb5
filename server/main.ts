/**
 * `npm run proxy [-- --static dist]`: the fal proxy (and optionally the built app) in one process.
 * Put it behind a TLS reverse proxy in production (docs/proxy.md).
 */
import type { AddressInfo } from 'node:net';
import { createAppServer } from './app.js';
import { loadAuthCheck, parseServerConfig, USAGE } from './config.js';

const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  const config = parseServerConfig(process.argv.slice(2), process.env);
  if (config === 'help') {
    console.log(USAGE);
    return;
  }
  const proxy = config.authModule !== undefined ? { ...config.proxy, isAuthenticated: await loadAuthCheck(config.authModule) } : config.proxy;
  const server = await createAppServer({ proxy, ...(config.staticDir !== undefined ? { staticDir: config.staticDir } : {}) });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const hostForUrl = config.host.includes(':') ? `[${config.host}]` : config.host;
  console.log(`flux-webgpu server on http://${hostForUrl}:${port} (fal proxy at /api/fal/proxy${config.staticDir !== undefined ? `, app from ${config.staticDir}` : ''})`);
  if (!process.env.FAL_KEY && !(process.env.FAL_KEY_ID && process.env.FAL_KEY_SECRET)) {
    console.log('warning: FAL_KEY is not set; the proxy answers 500 proxy_key_missing until it is.');
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: closing (open requests get ${SHUTDOWN_GRACE_MS / 1000} s)`);
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    // Status streams can stay open for minutes; they are cut after the grace period.
    setTimeout(() => {
      server.closeAllConnections();
      process.exit(0);
    }, SHUTDOWN_GRACE_MS).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  console.error(`flux-webgpu server failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
