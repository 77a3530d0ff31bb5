/**
 * Packs the app offers to install, as data (catalog.json, validated here), and the checks a pack from a URL
 * passes before any download: its manifest parses and this GPU can run it. URLs are relative to the page (the
 * test pack ships inside the app) or absolute on any CORS-enabled host (docs/hosting.md).
 */
import { FluxError } from '../errors.js';
import type { DeviceFacts } from '../client/pack-capacity.js';
import data from './catalog.json';

export interface CatalogEntry {
  id: string;
  name: string;
  /** The pack's base URL (the folder holding manifest.json), ending in '/'. */
  url: string;
  /** Total bytes of the pack's files (what the install downloads and stores). */
  sizeBytes: number;
  /** SPDX id or license name of the weights. */
  license: string;
  /** WebGPU features the pack needs beyond the baseline (e.g. shader-f16 for fp16 graphs). */
  requiredFeatures: string[];
  /** Random-weight test pack: abstract output, not pictures. */
  testPack: boolean;
  note: string;
}

export interface Catalog {
  /** The pack installed on first use when nothing else is installed. */
  firstRun: string;
  packs: CatalogEntry[];
}

const KNOWN_FEATURES = /^[a-z0-9-]+$/;

function bad(field: string, message: string): FluxError {
  return new FluxError('invalid_input', `catalog.json: ${field}: ${message}`, { field });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validate catalog data; throws a FluxError naming the entry and field. */
export function parseCatalog(json: unknown): Catalog {
  if (!isObject(json)) throw bad('(root)', 'must be a JSON object');
  if (json.format !== 'flux-webgpu-catalog') throw bad('format', 'must be "flux-webgpu-catalog"');
  if (json.version !== 1) throw bad('version', `unsupported version ${JSON.stringify(json.version)}; this app reads version 1`);
  if (!Array.isArray(json.packs) || json.packs.length === 0) throw bad('packs', 'must be a non-empty array');
  const packs: CatalogEntry[] = json.packs.map((p: unknown, i: number) => {
    const at = (f: string) => `packs[${i}].${f}`;
    if (!isObject(p)) throw bad(`packs[${i}]`, 'must be an object');
    const str = (f: string): string => {
      const v = p[f];
      if (typeof v !== 'string' || v.trim() === '') throw bad(at(f), 'must be a non-empty string');
      return v;
    };
    const id = str('id');
    if (!/^[a-z0-9][a-z0-9._-]{0,127}$/.test(id)) throw bad(at('id'), `must match [a-z0-9][a-z0-9._-]* (a pack manifest id), got ${JSON.stringify(id)}`);
    const url = str('url');
    if (!url.endsWith('/')) throw bad(at('url'), `must be the pack's folder URL ending in "/", got ${JSON.stringify(url)}`);
    if (!/^(\.\/|\/(?!\/)|https:\/\/)/.test(url)) throw bad(at('url'), `must be relative to the app (./ or /) or https://, got ${JSON.stringify(url)}`);
    const sizeBytes = p.sizeBytes;
    if (typeof sizeBytes !== 'number' || !Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw bad(at('sizeBytes'), `must be a positive integer (bytes), got ${JSON.stringify(sizeBytes)}`);
    const rf = p.requiredFeatures;
    if (!Array.isArray(rf) || rf.some((f) => typeof f !== 'string' || !KNOWN_FEATURES.test(f))) throw bad(at('requiredFeatures'), 'must be an array of WebGPU feature names such as "shader-f16"');
    if (typeof p.testPack !== 'boolean') throw bad(at('testPack'), 'must be true or false');
    return { id, name: str('name'), url, sizeBytes, license: str('license'), requiredFeatures: [...rf] as string[], testPack: p.testPack, note: str('note') };
  });
  const seen = new Set<string>();
  packs.forEach((p, i) => {
    if (seen.has(p.id)) throw bad(`packs[${i}].id`, `duplicate id ${JSON.stringify(p.id)}`);
    seen.add(p.id);
  });
  if (typeof json.firstRun !== 'string' || !seen.has(json.firstRun)) throw bad('firstRun', `must be the id of a listed pack, got ${JSON.stringify(json.firstRun)}`);
  return { firstRun: json.firstRun, packs };
}

const catalog = parseCatalog(data);
export const CATALOG: readonly CatalogEntry[] = catalog.packs;
/** The pack installed on first use (it ships with the app, so it needs no network). */
export const FIRST_RUN_PACK: CatalogEntry = catalog.packs.find((p) => p.id === catalog.firstRun)!;

/**
 * A pack base URL typed by the user, made absolute against the page, ending in '/'. A URL that points at the
 * manifest itself is accepted too (people paste that).
 */
export function normalizePackUrl(input: string, pageUrl: string): string {
  const text = input.trim();
  if (text === '') throw new FluxError('invalid_input', 'Pack URL: enter the URL of a pack folder (the one holding manifest.json).', { field: 'pack_url' });
  let u: URL;
  try {
    u = new URL(text, pageUrl);
  } catch {
    throw new FluxError('invalid_input', `Pack URL: ${JSON.stringify(text)} is not a URL.`, { field: 'pack_url' });
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new FluxError('invalid_input', `Pack URL: must be http(s), got ${u.protocol}`, { field: 'pack_url' });
  if (u.username || u.password) throw new FluxError('invalid_input', 'Pack URL: must not carry a user name or password.', { field: 'pack_url' });
  u.hash = '';
  u.search = '';
  u.pathname = u.pathname.replace(/\/manifest\.json$/, '/');
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u.href;
}

/** A catalog entry's stated needs, checked before its manifest is even fetched. */
export function checkEntryForDevice(entry: CatalogEntry, device: DeviceFacts): void {
  if (!device.webgpu) return; // the install itself works without WebGPU; loading says why it cannot run
  const missing = entry.requiredFeatures.filter((f) => !device.webgpu!.features.includes(f));
  if (missing.length) {
    throw new FluxError('missing_gpu_feature', `${entry.name} cannot run on this GPU: it needs the WebGPU feature${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, which this adapter does not offer.`, {
      details: { packId: entry.id, missing },
    });
  }
}

