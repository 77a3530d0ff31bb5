/**
 * Where a loaded pack's bytes come from. The runtime only sees this interface, so the same loading code
 * serves IndexedDB (browser, installed packs), plain HTTP (a pack folder served beside the app) and the
 * file system (Node CLI).
 */
import type { PackManifest } from '../pack/manifest.js';

/** File contents. Blobs let large external data reach ORT without first being copied into the JS heap. */
export type PackFileData = Uint8Array | Blob;

export interface PackSource {
  readonly manifest: PackManifest;
  /** Human-readable origin for messages ("IndexedDB", a URL, a folder). */
  readonly description: string;
  /**
   * Contents of a file listed in the manifest. Throws FluxError 'pack_file_missing' if it is not there and
   * 'pack_file_corrupt' if its size does not match the manifest.
   */
  getFile(path: string): Promise<PackFileData>;
  /** Absolute file-system path of a file, where the source is a local folder (lets onnxruntime-node mmap it). */
  localPath?(path: string): string;
}

/** Read a PackFileData fully into memory (for graphs and tokenizer files, which are small). */
export async function toBytes(data: PackFileData): Promise<Uint8Array> {
  return data instanceof Uint8Array ? data : new Uint8Array(await data.arrayBuffer());
}

export async function readJsonFile(source: PackSource, path: string): Promise<unknown> {
  const bytes = await toBytes(await source.getFile(path));
  return JSON.parse(new TextDecoder().decode(bytes));
}
