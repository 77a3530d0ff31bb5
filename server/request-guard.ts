/**
 * Who may use the proxy at all, checked before anything else: the `Host` must be one this server answers to
 * (a DNS-rebinding page reaches us with its own name in `Host`), and a browser request must come from the page's
 * own origin (`Origin` equal to `Host`, `Sec-Fetch-Site` not cross-site or same-site). Whatever server hosts the
 * handler (standalone, Vite dev/preview, Express), these run inside it, so a host's CORS middleware answering a
 * preflight does not open the route. docs/proxy.md ("Who can call it") states the rules.
 */
import type { IncomingMessage } from 'node:http';
import { canonicalIp } from './client-address.js';

/** Names a local browser uses for this machine; allowed with the server's own port. */
export const LOCAL_HOSTNAMES: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

export type GuardRefusal = { status: 403; errorType: 'proxy_host_not_allowed' | 'proxy_cross_origin'; detail: string };

/**
 * `allowed`: extra host names from configuration (`app.example` allows it on any port, `app.example:8443` on that
 * port only), on top of the defaults: LOCAL_HOSTNAMES and the address the request arrived on, with the port it
 * arrived on.
 */
export function checkRequestOrigin(req: IncomingMessage, allowed: readonly string[]): GuardRefusal | null {
  const host = normalizeHost(req.headers.host);
  if (host === undefined) return { status: 403, errorType: 'proxy_host_not_allowed', detail: 'The request has no valid Host header' };
  if (!hostAllowed(host, req, allowed)) {
    return {
      status: 403,
      errorType: 'proxy_host_not_allowed',
      detail: `Host ${printable(host)} is not one this fal proxy serves; add it to FAL_PROXY_ALLOWED_HOSTS (or allowedHosts) if it is yours`,
    };
  }
  const site = req.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') {
    return { status: 403, errorType: 'proxy_cross_origin', detail: `Requests from other sites are refused (Sec-Fetch-Site: ${site}); the fal proxy serves only its own page` };
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const from = originHost(origin);
    if (from === undefined || from !== host) {
      return { status: 403, errorType: 'proxy_cross_origin', detail: `Origin ${printable(origin)} is not this server (${printable(host)}); the fal proxy serves only its own page` };
    }
  }
  return null;
}

/** Parses and checks configured allowed hosts (flag, env or option); throws naming the bad entry. */
export function parseAllowedHosts(value: string | readonly string[], source: string): string[] {
  const list = typeof value === 'string' ? value.split(',') : [...value];
  const out: string[] = [];
  for (const raw of list) {
    const entry = raw.trim();
    if (entry === '') continue;
    const host = normalizeHost(entry);
    if (host === undefined) throw new Error(`${source}: ${JSON.stringify(entry)} is not a host name (expected e.g. app.example, app.example:8443 or [2001:db8::1])`);
    out.push(host);
  }
  return out;
}

function hostAllowed(host: string, req: IncomingMessage, allowed: readonly string[]): boolean {
  const { name, port } = splitHost(host);
  // No port in Host means 80: a server on another port never sees that from a browser on its own page.
  if ((port ?? 80) === req.socket?.localPort) {
    if (LOCAL_HOSTNAMES.includes(name)) return true;
    // The address the client connected to: a LAN IP for a server bound to 0.0.0.0 or to that IP.
    const local = req.socket?.localAddress;
    const localIp = local !== undefined ? canonicalIp(local) : undefined;
    const nameIp = canonicalIp(name);
    if (localIp !== undefined && nameIp !== undefined && localIp === nameIp) return true;
  }
  return allowed.some((a) => {
    const e = splitHost(a);
    return e.name === name && (e.port === undefined || e.port === port);
  });
}

/** `Host` lower-cased, with an explicit port kept; undefined when it is not `name[:port]` / `[v6][:port]`. */
function normalizeHost(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)(?::(\d{1,5}))?$/.exec(v);
  if (!m) return undefined;
  if (m[1]!.startsWith('[') && canonicalIp(m[1]!) === undefined) return undefined;
  if (m[2] !== undefined && Number(m[2]) > 65535) return undefined;
  return v;
}

function splitHost(host: string): { name: string; port: number | undefined } {
  // An IPv6 literal keeps its brackets; its colons are inside them.
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':') === -1 ? host.length : host.indexOf(':');
  const rest = host.slice(end);
  return { name: host.slice(0, end), port: rest.startsWith(':') ? Number(rest.slice(1)) : undefined };
}

/** The `host[:port]` of an http(s) Origin as a Host header spells it (default port omitted); undefined for `null`, other schemes or garbage. */
function originHost(origin: string): string | undefined {
  if (!/^https?:\/\/[^/?#@]+$/i.test(origin)) return undefined;
  try {
    return new URL(origin).host.toLowerCase();
  } catch {
    return undefined;
  }
}

function printable(s: string): string {
  return JSON.stringify(s.replace(/[^\x20-\x7e]/g, '?').slice(0, 120));
}
