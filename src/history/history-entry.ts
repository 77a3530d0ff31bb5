/**
 * Generation-history entry types, the JSON-safe copy of a request's `input`, and entry validation (strict, for
 * add() and import()) and revival (lenient, for records read back from IndexedDB). DOM-free. docs/history.md.
 */
import { FluxError } from '../errors.js';

export interface HistoryImage {
  contentType: string;
  width: number;
  height: number;
  /** Size of the stored image Blob; 0 when none is stored (URL only, or damaged). */
  bytes: number;
  /** true: a safety checker replaced this image */
  hidden?: boolean;
  /** when only a remote URL could be kept */
  url?: string;
  /**
   * Set on read when the image cannot be shown from storage: its Blob is missing although one was stored, or it
   * has neither a Blob nor a URL. `bytes` is then 0 and image() returns null. Never stored; derived on every read.
   */
  damaged?: true;
}

export interface HistoryEntry {
  /** generated (crypto.randomUUID) */
  id: string;
  /** ms epoch */
  createdAt: number;
  /** e.g. 'fal-ai/flux/schnell' */
  endpoint: string;
  target: 'local' | 'remote';
  routeReason: string;
  /** the fal-style input as sent (JSON-safe: no Blobs, no tensors; large data: URIs stripped to a marker) */
  input: Record<string, unknown>;
  prompt: string;
  seed: number;
  steps: number | null;
  width: number;
  height: number;
  timings: Record<string, unknown>;
  safety: { ran: boolean; checker: string | null; reason?: string };
  has_nsfw_concepts: boolean[];
  images: HistoryImage[];
  /**
   * Set on read when the stored record is damaged: a field had an invalid value (replaced by a default) or an
   * image is damaged (see HistoryImage.damaged). The entry can still be shown, exported and deleted.
   */
  damaged?: true;
}

export interface NewHistoryImage {
  blob: Blob | null;
  url?: string;
  width: number;
  height: number;
  contentType: string;
  hidden?: boolean;
}

export interface NewHistoryEntry extends Omit<HistoryEntry, 'id' | 'createdAt' | 'images' | 'damaged'> {
  createdAt?: number;
  images: NewHistoryImage[];
}

// ---------------------------------------------------------------------------------------------------------------
// JSON-safe input

/** data: URIs longer than this (characters) are replaced by a marker in stored inputs. */
export const MAX_DATA_URI_CHARS = 1024;
const MAX_DEPTH = 32;

/** Markers that replace values history does not keep all start with this. */
export const STRIPPED_PREFIX = '[stripped ';

export function isStrippedMarker(v: unknown): v is string {
  return typeof v === 'string' && v.startsWith(STRIPPED_PREFIX);
}

/**
 * A JSON-safe deep copy of `value` for storage: Blobs/Files, typed arrays, ArrayBuffers, class instances (tensors,
 * GPU objects) and data: URIs longer than MAX_DATA_URI_CHARS become marker strings such as
 * `[stripped data: URI, image/png, 349528 chars]`; non-finite numbers become null, bigints strings, Dates ISO
 * strings; undefined, functions and symbols are dropped (null inside arrays, as JSON.stringify does).
 */
export function toJsonSafe(value: unknown): unknown {
  const out = safe(value, new WeakSet(), 0);
  return out === undefined ? null : out;
}

function safe(v: unknown, seen: WeakSet<object>, depth: number): unknown {
  switch (typeof v) {
    case 'string':
      return v.length > MAX_DATA_URI_CHARS && /^data:/i.test(v) ? dataUriMarker(v) : v;
    case 'number':
      return Number.isFinite(v) ? v : null;
    case 'boolean':
      return v;
    case 'bigint':
      return v.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (v === null) return null;
  const o = v as object;
  if (typeof Blob !== 'undefined' && o instanceof Blob) {
    const name = typeof File !== 'undefined' && o instanceof File ? ` ${JSON.stringify(o.name)}` : '';
    return `${STRIPPED_PREFIX}${name ? 'File' + name : 'Blob'}, ${o.type || 'unknown type'}, ${o.size} bytes]`;
  }
  if (ArrayBuffer.isView(o)) return `${STRIPPED_PREFIX}${o.constructor.name}, ${o.byteLength} bytes]`;
  if (o instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && o instanceof SharedArrayBuffer)) {
    return `${STRIPPED_PREFIX}${o.constructor.name}, ${o.byteLength} bytes]`;
  }
  if (o instanceof Date) return Number.isNaN(o.getTime()) ? null : o.toISOString();
  if (seen.has(o)) return `${STRIPPED_PREFIX}circular reference]`;
  if (depth >= MAX_DEPTH) return `${STRIPPED_PREFIX}nested too deep]`;
  seen.add(o);
  try {
    if (Array.isArray(o)) return o.map((x) => safe(x, seen, depth + 1) ?? null);
    const proto = Object.getPrototypeOf(o) as object | null;
    if (proto !== Object.prototype && proto !== null) return `${STRIPPED_PREFIX}${o.constructor?.name || 'object'}]`;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) {
      const s = safe(x, seen, depth + 1);
      if (s !== undefined) out[k] = s;
    }
    return out;
  } finally {
    seen.delete(o);
  }
}

function dataUriMarker(uri: string): string {
  const head = uri.slice(5, 200);
  const end = head.search(/[;,]/);
  const type = (end < 0 ? '' : head.slice(0, end)) || 'text/plain';
  return `${STRIPPED_PREFIX}data: URI, ${type}, ${uri.length} chars]`;
}

// ---------------------------------------------------------------------------------------------------------------
// Field checks shared by strict validation and lenient revival

type Obj = Record<string, unknown>;
export const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isNonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isPositiveInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;
const isNonNegativeInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isSafety = (v: unknown): v is HistoryEntry['safety'] =>
  isObject(v) && typeof v.ran === 'boolean' && (v.checker === null || isString(v.checker)) && (v.reason === undefined || isString(v.reason));

interface FieldSpec {
  ok: (v: unknown) => boolean;
  /** "must be …" */
  what: string;
  fallback: () => unknown;
}

/** The entry fields besides id, createdAt and images, in HistoryEntry order. */
const FIELDS: Record<Exclude<keyof HistoryEntry, 'id' | 'createdAt' | 'images' | 'damaged'>, FieldSpec> = {
  endpoint: { ok: isNonEmptyString, what: 'a non-empty string', fallback: () => 'unknown' },
  target: { ok: (v) => v === 'local' || v === 'remote', what: '"local" or "remote"', fallback: () => 'remote' },
  routeReason: { ok: isString, what: 'a string', fallback: () => '' },
  input: { ok: isObject, what: 'an object', fallback: () => ({}) },
  prompt: { ok: isString, what: 'a string', fallback: () => '' },
  seed: { ok: (v) => Number.isSafeInteger(v), what: 'an integer', fallback: () => 0 },
  steps: { ok: (v) => v === null || isPositiveInt(v), what: 'null or a positive integer', fallback: () => null },
  width: { ok: isPositiveInt, what: 'a positive integer', fallback: () => 0 },
  height: { ok: isPositiveInt, what: 'a positive integer', fallback: () => 0 },
  timings: { ok: isObject, what: 'an object', fallback: () => ({}) },
  safety: {
    ok: isSafety,
    what: 'an object {ran: boolean, checker: string | null, reason?: string}',
    fallback: () => ({ ran: false, checker: null }),
  },
  has_nsfw_concepts: {
    ok: (v) => Array.isArray(v) && v.every((b) => typeof b === 'boolean'),
    what: 'an array of booleans',
    fallback: () => [],
  },
};
const FIELD_NAMES = Object.keys(FIELDS) as (keyof typeof FIELDS)[];

const IMAGE_FIELDS = {
  contentType: { ok: isNonEmptyString, what: 'a non-empty string (a MIME type)', fallback: () => 'application/octet-stream' },
  width: { ok: isPositiveInt, what: 'a positive integer', fallback: () => 0 },
  height: { ok: isPositiveInt, what: 'a positive integer', fallback: () => 0 },
  hidden: { ok: (v) => v === undefined || typeof v === 'boolean', what: 'a boolean when present', fallback: () => undefined },
  url: { ok: (v) => v === undefined || isNonEmptyString(v), what: 'a non-empty string when present', fallback: () => undefined },
} satisfies Record<string, FieldSpec>;

/** Entry ids are used in export file names: keep them to safe characters. */
export const ID_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** Throws FluxError('invalid_input') for one field; `where` prefixes the message (e.g. 'Import file: entries[3]'). */
export class Checker {
  constructor(
    /** Prefix of error messages, e.g. 'History entry' or 'history.json entries[2] (id "…")'. */
    readonly where: string,
    /** Prefix of `field` paths, e.g. '' or 'entries[2].'. */
    readonly path: string,
  ) {}

  fail(field: string, problem: string): never {
    throw new FluxError('invalid_input', `${this.where}: ${field} ${problem}`, { field: this.path + field });
  }

  check(o: Obj, field: string, spec: FieldSpec, prefix = ''): void {
    const v = o[field];
    if (!spec.ok(v)) this.fail(prefix + field, `must be ${spec.what}, got ${describe(v)}`);
  }
}

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return v.length > 60 ? `a string of ${v.length} characters` : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return `a ${typeof v}`;
}

/** The common fields of a new or imported entry, validated, with input/timings made JSON-safe. */
export function checkedFields(o: Obj, c: Checker): Omit<HistoryEntry, 'id' | 'createdAt' | 'images' | 'damaged'> {
  for (const f of FIELD_NAMES) c.check(o, f, FIELDS[f]);
  const safety = o.safety as HistoryEntry['safety'];
  return {
    endpoint: o.endpoint as string,
    target: o.target as HistoryEntry['target'],
    routeReason: o.routeReason as string,
    input: toJsonSafe(o.input) as Record<string, unknown>,
    prompt: o.prompt as string,
    seed: o.seed as number,
    steps: o.steps as number | null,
    width: o.width as number,
    height: o.height as number,
    timings: toJsonSafe(o.timings) as Record<string, unknown>,
    safety: { ran: safety.ran, checker: safety.checker, ...(safety.reason !== undefined ? { reason: safety.reason } : {}) },
    has_nsfw_concepts: [...(o.has_nsfw_concepts as boolean[])],
  };
}

/** The image fields common to new and imported images (contentType, width, height, hidden, url), validated. */
export function checkedImageFields(o: Obj, c: Checker, prefix: string): Omit<HistoryImage, 'bytes' | 'damaged'> {
  for (const [f, spec] of Object.entries(IMAGE_FIELDS)) c.check(o, f, spec, prefix);
  return {
    contentType: o.contentType as string,
    width: o.width as number,
    height: o.height as number,
    ...(o.hidden !== undefined ? { hidden: o.hidden as boolean } : {}),
    ...(o.url !== undefined ? { url: o.url as string } : {}),
  };
}

export function checkCreatedAt(o: Obj, c: Checker, required: boolean): number | undefined {
  if (o.createdAt === undefined && !required) return undefined;
  if (!isTime(o.createdAt)) c.fail('createdAt', `must be a time in ms since the epoch (a finite number ≥ 0), got ${describe(o.createdAt)}`);
  return o.createdAt;
}

/** `o[key]` as a byte count; `field` names it in the error. */
export function checkBytes(o: Obj, key: string, c: Checker, field: string): number {
  if (!isNonNegativeInt(o[key])) c.fail(field, `must be a non-negative integer, got ${describe(o[key])}`);
  return o[key];
}

/**
 * A stored record as a HistoryEntry, never throwing: invalid fields get defaults and mark the entry damaged.
 * `blobs` says which images have a stored Blob. Null only for a record without a string id (cannot be addressed).
 */
export function reviveEntry(raw: unknown, blobs: (index: number) => boolean): HistoryEntry | null {
  if (!isObject(raw) || typeof raw.id !== 'string') return null;
  let damaged = false;
  const pick = (o: Obj, key: string, spec: FieldSpec): unknown => {
    if (spec.ok(o[key])) return o[key];
    damaged = true;
    return spec.fallback();
  };
  const fields: Obj = {};
  for (const f of FIELD_NAMES) fields[f] = pick(raw, f, FIELDS[f]);
  const images: HistoryImage[] = [];
  if (!Array.isArray(raw.images)) damaged = true;
  const rawImages: unknown[] = Array.isArray(raw.images) ? raw.images : [];
  for (let i = 0; i < rawImages.length; i++) {
    const ri = isObject(rawImages[i]) ? (rawImages[i] as Obj) : {};
    const img: HistoryImage = {
      contentType: pick(ri, 'contentType', IMAGE_FIELDS.contentType) as string,
      width: pick(ri, 'width', IMAGE_FIELDS.width) as number,
      height: pick(ri, 'height', IMAGE_FIELDS.height) as number,
      bytes: isNonNegativeInt(ri.bytes) ? ri.bytes : 0,
    };
    const hidden = pick(ri, 'hidden', IMAGE_FIELDS.hidden);
    const url = pick(ri, 'url', IMAGE_FIELDS.url);
    if (hidden !== undefined) img.hidden = hidden as boolean;
    if (url !== undefined) img.url = url as string;
    const stored = blobs(i);
    if (!stored) {
      // A Blob was recorded but is gone, or there is nothing to show at all.
      if (img.bytes > 0 || img.url === undefined) img.damaged = true;
      img.bytes = 0;
    }
    if (img.damaged) damaged = true;
    images.push(img);
  }
  const createdAt = isTime(raw.createdAt) ? raw.createdAt : ((damaged = true), 0);
  const entry = { id: raw.id, createdAt, ...fields, images } as HistoryEntry;
  if (damaged) entry.damaged = true;
  return entry;
}
