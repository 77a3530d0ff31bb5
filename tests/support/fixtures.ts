/** Paths and loaders for committed fixtures (tests only). */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PNG } from 'pngjs';
import { parseNpy } from '../../src/cli/npy.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const TEST_PACK_DIR = join(ROOT, 'public', 'packs', 'flux-test-tiny');
export const REFERENCE_DIR = join(ROOT, 'tests', 'fixtures', 'reference');
export const MODELS_DIR = join(ROOT, 'tests', 'fixtures', 'models');

export interface ReferenceCase {
  name: string;
  dir: string;
  steps: number;
  width: number;
  height: number;
  batch: number;
  L: number;
  prompts?: string[];
  seed: number;
}

export function referenceCases(): ReferenceCase[] {
  return readdirSync(REFERENCE_DIR)
    .filter((d) => d.startsWith('steps'))
    .map((name) => {
      const dir = join(REFERENCE_DIR, name);
      return { name, dir, ...(JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as Omit<ReferenceCase, 'name' | 'dir'>) };
    });
}

/** Any .npy as float32 values (uint8/int arrays included), with dims. */
export function readNpyAny(path: string): { data: Float32Array | Uint8Array | Int32Array | BigInt64Array; dims: number[] } {
  const bytes = new Uint8Array(readFileSync(path));
  const header = new TextDecoder('latin1').decode(bytes.subarray(0, 256));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)![1]!;
  if (descr === '<f4' || descr === '<f8' || descr === '<f2') return parseNpy(bytes, path);
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset).getUint16(8, true);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)![1]!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const body = bytes.slice(10 + headerLen);
  if (descr === '|u1') return { data: new Uint8Array(body.buffer), dims: shape };
  if (descr === '<i4') return { data: new Int32Array(body.buffer), dims: shape };
  if (descr === '<i8') return { data: new BigInt64Array(body.buffer), dims: shape };
  throw new Error(`unsupported npy dtype ${descr} in ${path}`);
}

export function decodePng(bytes: Uint8Array): { width: number; height: number; rgb: Uint8Array } {
  const png = PNG.sync.read(Buffer.from(bytes));
  const rgb = new Uint8Array(png.width * png.height * 3);
  for (let i = 0; i < png.width * png.height; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = png.data[i * 4 + c]!;
  return { width: png.width, height: png.height, rgb };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
