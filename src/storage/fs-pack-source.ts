/**
 * Node only: a pack folder on the local file system (CLI). `localPath` lets onnxruntime-node open graphs
 * and external data itself (it resolves external data next to the graph file), so the bytes never pass
 * through JS; `getFile` is for everything else.
 */
import { createReadStream, openAsBlob } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FluxError } from '../errors.js';
import { findFile, packSizeBytes, parseManifest, type PackFile, type PackManifest } from '../pack/manifest.js';
import type { PackSource } from './pack-source.js';
import { Sha256Hasher, type FileCheck } from './sha256.js';

/** Files above this are returned as lazy file-backed Blobs rather than read into memory. */
export const IN_MEMORY_LIMIT_BYTES = 256 * 1024 * 1024;

export interface FsPackSource extends PackSource {
  readonly dir: string;
  localPath(path: string): string;
}

function isNotFound(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

export async function openFsPack(dir: string): Promise<FsPackSource> {
  const root = resolve(dir);
  const manifestPath = join(root, 'manifest.json');
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch (e) {
    if (isNotFound(e)) throw new FluxError('pack_file_missing', `No manifest.json in ${root}.`, { cause: e, details: { path: manifestPath } });
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FluxError('invalid_manifest', `${manifestPath} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const manifest: PackManifest = parseManifest(json);
  const localPath = (path: string): string => join(root, ...findFile(manifest, path).path.split('/'));

  return {
    manifest,
    dir: root,
    description: root,
    localPath,
    async getFile(path: string): Promise<Uint8Array | Blob> {
      const f = findFile(manifest, path);
      const p = localPath(path);
      await checkSize(f, p);
      if (f.size > IN_MEMORY_LIMIT_BYTES) return (await openAsBlob(p)) as Blob;
      const bytes = await readFile(p);
      // Re-check: the file may have changed between stat and read.
      if (bytes.byteLength !== f.size) throw sizeError(f, p, bytes.byteLength);
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
  };
}

function sizeError(f: PackFile, p: string, actual: number): FluxError {
  return new FluxError('pack_file_corrupt', `${p}: ${actual} bytes, manifest says ${f.size}.`, {
    details: { file: f.path, path: p, expectedSize: f.size, actualSize: actual },
  });
}

async function checkSize(f: PackFile, p: string): Promise<number> {
  let size: number;
  try {
    size = (await stat(p)).size;
  } catch (e) {
    if (isNotFound(e)) throw new FluxError('pack_file_missing', `${p} is missing (listed in the manifest as "${f.path}").`, { cause: e, details: { file: f.path, path: p } });
    throw e;
  }
  if (size !== f.size) throw sizeError(f, p, size);
  return size;
}

export interface FsVerifyProgress {
  status: 'verify';
  file: string;
  loadedBytes: number;
  totalBytes: number;
}

/** Check every file's size and sha256, streaming (1 MiB reads), so multi-GB files are never held whole. */
export async function verifyPack(
  pack: string | FsPackSource,
  options: { onProgress?: (e: FsVerifyProgress) => void } = {},
): Promise<FileCheck[]> {
  const source = typeof pack === 'string' ? await openFsPack(pack) : pack;
  const totalBytes = packSizeBytes(source.manifest);
  let loadedBytes = 0;
  const results: FileCheck[] = [];
  for (const f of source.manifest.files) {
    const base = { path: f.path, expectedSize: f.size, expectedSha256: f.sha256 };
    const p = source.localPath(f.path);
    const size = await stat(p).then((s) => s.size, (e: unknown) => (isNotFound(e) ? null : Promise.reject(e)));
    if (size === null || size !== f.size) {
      results.push({ ...base, ok: false, problem: size === null ? 'missing' : 'size', actualSize: size, actualSha256: null });
      loadedBytes += f.size;
      continue;
    }
    const hasher = await Sha256Hasher.create();
    for await (const piece of createReadStream(p, { highWaterMark: 1 << 20 })) {
      hasher.update(piece as Buffer);
      loadedBytes += (piece as Buffer).byteLength;
      options.onProgress?.({ status: 'verify', file: f.path, loadedBytes, totalBytes });
    }
    const actualSha256 = hasher.hex();
    results.push({ ...base, ok: actualSha256 === f.sha256, ...(actualSha256 !== f.sha256 ? { problem: 'sha256' as const } : {}), actualSize: size, actualSha256 });
  }
  return results;
}
