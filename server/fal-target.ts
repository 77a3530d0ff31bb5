/**
 * Which fal URLs the proxy may forward to (docs/proxy.md). Pure: no I/O, no key.
 *
 * The target comes from the browser in `x-fal-target-url`, so it is treated as hostile: it must already be in
 * the normal form `new URL` would give it (no dot segments, encoded dots, backslashes, default port spelled
 * out…), and only the exact host/method/path/query combinations that @fal-ai/client uses for FLUX pass.
 */

export const TARGET_URL_HEADER = 'x-fal-target-url';

/** What the request does at fal; decides the allowed query and whether a body goes along. */
export type FalTargetKind = 'submit' | 'status' | 'status_stream' | 'result' | 'cancel' | 'upload_initiate';

export type FalTargetCheck =
  | {
      ok: true;
      kind: FalTargetKind;
      /** The validated URL as given (validation always runs on this, never on the test origin). */
      url: URL;
      /** Host as validated, e.g. `queue.fal.run`. */
      host: string;
      /** Canonical path + query to request upstream (rebuilt from the validated parts). */
      pathAndQuery: string;
    }
  | {
      ok: false;
      status: 400 | 403;
      errorType: 'proxy_bad_target' | 'proxy_forbidden';
      detail: string;
      /** For the log line only, when the URL parsed. */
      host?: string;
      path?: string;
    };

/** The five FLUX endpoints the app submits to (on queue.fal.run, or fal.run for synchronous calls). */
export const FLUX_SUBMIT_PATHS: readonly string[] = [
  '/fal-ai/flux/schnell',
  '/fal-ai/flux/dev',
  '/fal-ai/flux/schnell/redux',
  '/fal-ai/flux/dev/redux',
  '/fal-ai/flux/dev/image-to-image',
];

const QUEUE_HOST = 'queue.fal.run';
const RUN_HOST = 'fal.run';
const REST_HOST = 'rest.fal.ai';
const UPLOAD_INITIATE_PATH = '/storage/upload/initiate';
const UPLOAD_STORAGE_TYPE = 'fal-cdn-v3';
/** Status/result/cancel drop the endpoint subpath, so all five endpoints share this prefix. */
const REQUEST_PATH = /^\/fal-ai\/flux\/requests\/([A-Za-z0-9-]{1,128})(\/status|\/status\/stream|\/cancel)?$/;
const MAX_TARGET_LENGTH = 2048;
/** Printable ASCII, no spaces: anything else is not something @fal-ai/client would send. */
const PRINTABLE = /^[\x21-\x7e]+$/;
/** Splits the raw string the same way a URL parser would for `https://authority/path?query#hash`. */
const RAW_PARTS = /^https:\/\/([^/?#\\]*)([^?#]*)(\?[^#]*)?(#.*)?$/i;

function bad(detail: string, host?: string, path?: string): FalTargetCheck {
  return { ok: false, status: 400, errorType: 'proxy_bad_target', detail, ...(host !== undefined ? { host } : {}), ...(path !== undefined ? { path } : {}) };
}

function forbidden(detail: string, host: string, path: string): FalTargetCheck {
  return { ok: false, status: 403, errorType: 'proxy_forbidden', detail, host, path };
}

/**
 * Decide whether `method` + the `x-fal-target-url` value may be forwarded. Never throws.
 * `method` is expected upper-case (Node gives it so).
 */
export function checkFalTarget(method: string, rawHeader: string | string[] | undefined): FalTargetCheck {
  if (rawHeader === undefined || rawHeader === '') {
    return bad(`Missing ${TARGET_URL_HEADER} header: this route only forwards requests made by @fal-ai/client configured with proxyUrl`);
  }
  if (Array.isArray(rawHeader)) return bad(`Exactly one ${TARGET_URL_HEADER} header is allowed`);
  const raw = rawHeader;
  if (raw.length > MAX_TARGET_LENGTH) return bad(`${TARGET_URL_HEADER} is longer than ${MAX_TARGET_LENGTH} characters`);
  if (!PRINTABLE.test(raw)) return bad(`${TARGET_URL_HEADER} contains spaces, control or non-ASCII characters`);

  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return bad(`${TARGET_URL_HEADER} is not a valid absolute URL`);
  }
  if (url.protocol !== 'https:') return bad(`${TARGET_URL_HEADER} must be an https:// URL (got ${url.protocol})`);
  if (url.username !== '' || url.password !== '') return bad(`${TARGET_URL_HEADER} must not contain user info (user:password@)`);
  // URL drops the default port, so a non-empty port is anything but 443.
  if (url.port !== '') return bad(`${TARGET_URL_HEADER} must not name a port other than 443`, url.hostname, url.pathname);

  const host = url.hostname;
  if (host !== QUEUE_HOST && host !== RUN_HOST && host !== REST_HOST) {
    const hint = host.endsWith('.') ? ' (a trailing dot names a different host)' : '';
    return forbidden(`Host ${host} is not allowed${hint}; only queue.fal.run and fal.run (and rest.fal.ai for uploads)`, host, url.pathname);
  }

  // The pathname must be exactly what was sent: `new URL` resolves `..`, `%2e%2e` and backslashes, and the
  // result could land on an allowed path; a request that needed rewriting is not one our client makes.
  const parts = RAW_PARTS.exec(raw);
  const rawAuthority = parts?.[1]?.toLowerCase().replace(/:443$/, '');
  if (!parts || rawAuthority !== host || parts[2] !== url.pathname) {
    return bad(`${TARGET_URL_HEADER} is not in normal form (dot segments, encoded characters or backslashes in the host or path)`, host, url.pathname);
  }
  if (parts[4] !== undefined) return bad(`${TARGET_URL_HEADER} must not contain a #fragment`, host, url.pathname);

  const path = url.pathname;
  const kind = classify(method, host, path);
  if (typeof kind !== 'string') return forbidden(kind.detail, host, path);

  const query = checkQuery(kind, url.searchParams);
  if (typeof query !== 'string') return bad(query.detail, host, path);
  return { ok: true, kind, url, host, pathAndQuery: path + query };
}

function classify(method: string, host: string, path: string): FalTargetKind | { detail: string } {
  if (host === REST_HOST) {
    if (method === 'POST' && path === UPLOAD_INITIATE_PATH) return 'upload_initiate';
    return { detail: `Only POST ${UPLOAD_INITIATE_PATH} is allowed on ${REST_HOST} (got ${method} ${path})` };
  }
  const isSubmit = FLUX_SUBMIT_PATHS.includes(path);
  const m = REQUEST_PATH.exec(path);
  if (isSubmit) {
    if (method === 'POST') return 'submit';
    return { detail: `${method} is not allowed on ${path}; FLUX endpoints only accept POST (submit)` };
  }
  if (!m) {
    return { detail: `Path ${path} is not allowed; this proxy only serves the FLUX endpoints (${FLUX_SUBMIT_PATHS.join(', ')}) and their /fal-ai/flux/requests/<id> queue calls` };
  }
  if (host !== QUEUE_HOST) return { detail: `Queue request paths are only allowed on ${QUEUE_HOST} (got ${host})` };
  const sub = m[2];
  if (sub === '/cancel') return method === 'PUT' ? 'cancel' : { detail: `${method} is not allowed on a cancel path; use PUT` };
  if (method !== 'GET') return { detail: `${method} is not allowed on ${path}; status and result are GET` };
  if (sub === '/status') return 'status';
  if (sub === '/status/stream') return 'status_stream';
  return 'result';
}

/** Returns the canonical query string (with `?`, or empty), or why the query is refused. */
function checkQuery(kind: FalTargetKind, params: URLSearchParams): string | { detail: string } {
  const entries = [...params];
  if (entries.some(([k]) => k === 'fal_webhook')) return { detail: 'fal_webhook is not allowed: this proxy does not use webhooks' };
  const names = entries.map(([k]) => k);
  if (new Set(names).size !== names.length) return { detail: 'Repeated query parameters are not allowed' };
  const get = (k: string) => params.get(k);
  const only = (allowed: string[]) => names.every((n) => allowed.includes(n));
  switch (kind) {
    case 'status':
    case 'status_stream': {
      if (!only(['logs'])) return { detail: `Only the logs query parameter is allowed on status requests (got ${names.join(', ')})` };
      const logs = get('logs');
      if (logs === null) return '';
      if (logs !== '0' && logs !== '1') return { detail: 'logs must be 0 or 1' };
      return `?logs=${logs}`;
    }
    case 'upload_initiate':
      if (names.length !== 1 || get('storage_type') !== UPLOAD_STORAGE_TYPE) return { detail: `Upload initiation needs exactly storage_type=${UPLOAD_STORAGE_TYPE}` };
      return `?storage_type=${UPLOAD_STORAGE_TYPE}`;
    default:
      if (names.length > 0) return { detail: `No query parameters are allowed on ${kind} requests (got ${names.join(', ')})` };
      return '';
  }
}
