/** Command line + environment for `npm run proxy` (server/main.ts), parsed without side effects. */
import type { IncomingMessage } from 'node:http';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FalProxyOptions, FalProxyRateLimit } from './fal-proxy.js';
import { canonicalIp } from './client-address.js';
import { parseAllowedHosts } from './request-guard.js';

export interface ServerConfig {
  port: number;
  host: string;
  staticDir?: string;
  /** A module whose default export is the proxy's isAuthenticated check (loaded by loadAuthCheck). */
  authModule?: string;
  proxy: FalProxyOptions;
}

export const USAGE = `Usage: npm run proxy -- [--static <dir>] [--port <n>] [--host <addr>] [--allowed-hosts <a,b>] [--auth-module <file>]

Serves the fal proxy at /api/fal/proxy and, with --static (or STATIC_DIR), the built app.
Environment: FAL_KEY (or FAL_KEY_ID + FAL_KEY_SECRET), PORT (8787), HOST (127.0.0.1), STATIC_DIR,
FAL_PROXY_ALLOWED_HOSTS (host names besides localhost and the bound host), FAL_PROXY_AUTH_MODULE (a module whose
default export decides (req) => boolean | Promise<boolean>), TRUST_PROXY (hops of x-forwarded-for to trust, 0), FAL_PROXY_MAX_BODY_BYTES, FAL_PROXY_REQUESTS_PER_SECOND,
FAL_PROXY_BURST, FAL_PROXY_SUBMITS_PER_MINUTE, FAL_PROXY_SUBMIT_BURST, FAL_PROXY_RATE_LIMIT=off. See docs/proxy.md.`;

export function parseServerConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ServerConfig | 'help' {
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return 'help';
    const m = /^--(static|port|host|allowed-hosts|auth-module)(?:=(.*))?$/.exec(arg);
    if (!m) throw new Error(`Unknown argument ${arg}\n\n${USAGE}`);
    const value = m[2] ?? argv[++i];
    if (value === undefined || value === '') throw new Error(`--${m[1]} needs a value\n\n${USAGE}`);
    flags[m[1]!] = value;
  }
  const port = int(flags.port !== undefined ? '--port' : 'PORT', flags.port ?? env.PORT ?? '8787', 0, 65535);
  const host = flags.host ?? env.HOST ?? '127.0.0.1';
  const staticDir = flags.static ?? (env.STATIC_DIR || undefined);

  const proxy: FalProxyOptions = {};
  const extraHosts = flags['allowed-hosts'] ?? env.FAL_PROXY_ALLOWED_HOSTS;
  const allowed = extraHosts !== undefined ? parseAllowedHosts(extraHosts, flags['allowed-hosts'] !== undefined ? '--allowed-hosts' : 'FAL_PROXY_ALLOWED_HOSTS') : [];
  // The bound host by name (HOST=myhost.lan). A bound IP, or the interface a wildcard bind was reached on, is
  // allowed anyway: the proxy accepts the address each request arrived on, with its port.
  if (canonicalIp(host) === undefined && host !== '') allowed.push(...parseAllowedHosts([port === 0 ? host : `${host}:${port}`], '--host / HOST'));
  if (allowed.length > 0) proxy.allowedHosts = allowed;
  const authModule = flags['auth-module'] ?? (env.FAL_PROXY_AUTH_MODULE || undefined);
  const trust = env.TRUST_PROXY;
  if (trust !== undefined && trust !== '') proxy.trustProxy = trust === 'true' ? 1 : trust === 'false' ? 0 : int('TRUST_PROXY', trust, 0, 100);
  if (env.FAL_PROXY_MAX_BODY_BYTES) proxy.maxBodyBytes = int('FAL_PROXY_MAX_BODY_BYTES', env.FAL_PROXY_MAX_BODY_BYTES, 0, 1 << 30);
  if (env.FAL_PROXY_RATE_LIMIT === 'off') proxy.rateLimit = false;
  else {
    const rate: FalProxyRateLimit = {};
    if (env.FAL_PROXY_REQUESTS_PER_SECOND) rate.requestsPerSecond = num('FAL_PROXY_REQUESTS_PER_SECOND', env.FAL_PROXY_REQUESTS_PER_SECOND);
    if (env.FAL_PROXY_BURST) rate.burst = num('FAL_PROXY_BURST', env.FAL_PROXY_BURST);
    if (env.FAL_PROXY_SUBMITS_PER_MINUTE) rate.submitsPerMinute = num('FAL_PROXY_SUBMITS_PER_MINUTE', env.FAL_PROXY_SUBMITS_PER_MINUTE);
    if (env.FAL_PROXY_SUBMIT_BURST) rate.submitBurst = num('FAL_PROXY_SUBMIT_BURST', env.FAL_PROXY_SUBMIT_BURST);
    if (Object.keys(rate).length > 0) proxy.rateLimit = rate;
  }
  return { port, host, ...(staticDir !== undefined ? { staticDir } : {}), ...(authModule !== undefined ? { authModule } : {}), proxy };
}

/** Imports the auth module (relative to the working directory); its default export must be the check. */
export async function loadAuthCheck(file: string): Promise<(req: IncomingMessage) => boolean | Promise<boolean>> {
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(resolve(file)).href)) as { default?: unknown };
  } catch (err) {
    throw new Error(`FAL_PROXY_AUTH_MODULE / --auth-module ${JSON.stringify(file)} could not be loaded: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof mod.default !== 'function') {
    throw new Error(`FAL_PROXY_AUTH_MODULE / --auth-module ${JSON.stringify(file)} must have a default export (req) => boolean | Promise<boolean>, got ${typeof mod.default}`);
  }
  return mod.default as (req: IncomingMessage) => boolean | Promise<boolean>;
}

function int(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

function num(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(value)}`);
  return n;
}
