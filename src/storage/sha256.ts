/**
 * SHA-256 for pack verification. Whole files are hashed incrementally as they stream (WebCrypto's digest is
 * one-shot: a 2 GB file would have to be whole in memory) with hash-wasm's WASM SHA-256 (~310 MB/s here, vs
 * ~145 MB/s for @noble/hashes, which remains the synchronous one-shot fallback for small inputs).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { createSHA256, type IHasher } from 'hash-wasm';

/** Slice size when hashing a Blob: bounds memory to one slice, not the whole Blob. */
export const HASH_SLICE_BYTES = 8 * 1024 * 1024;

/** Incremental hasher: feed bytes as they stream in, read the hex digest once at the end. */
export class Sha256Hasher {
  private constructor(private readonly h: IHasher) {}

  static async create(): Promise<Sha256Hasher> {
    const h = await createSHA256();
    h.init();
    return new Sha256Hasher(h);
  }

  update(bytes: Uint8Array): this {
    this.h.update(bytes);
    return this;
  }
  /** Lowercase hex, the manifest's format. Finalises the hasher. */
  hex(): string {
    return this.h.digest('hex');
  }
}

/** Hex SHA-256 of bytes or of a Blob, read in slices of `sliceBytes`. */
export async function sha256Hex(data: Uint8Array | Blob, sliceBytes = HASH_SLICE_BYTES): Promise<string> {
  if (data instanceof Uint8Array) return bytesToHex(sha256(data));
  const h = await Sha256Hasher.create();
  for (let off = 0; off < data.size; off += sliceBytes) {
    h.update(new Uint8Array(await data.slice(off, off + sliceBytes).arrayBuffer()));
  }
  return h.hex();
}

/**
 * Hex SHA-256 of one chunk (≤ chunkBytes, already in memory). WebCrypto where present: one-shot is fine for a
 * chunk, it is native and runs beside noble's incremental whole-file hash, so the per-chunk hashes that
 * localise storage corruption cost little extra CPU. Falls back to noble.
 */
export async function chunkSha256(bytes: Uint8Array): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle) return bytesToHex(new Uint8Array(await subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)));
  return bytesToHex(sha256(bytes));
}

/** Outcome of checking one stored file against its manifest entry. */
export interface FileCheck {
  path: string;
  ok: boolean;
  /** What was wrong, when not ok. */
  problem?: 'missing' | 'size' | 'sha256';
  expectedSize: number;
  /** Bytes found; null when the file is missing. */
  actualSize: number | null;
  expectedSha256: string;
  /** Null when the file is missing or its size is already wrong (not hashed). */
  actualSha256: string | null;
  /**
   * For a bad file whose chunk hashes were recorded at download: the chunks whose bytes no longer match
   * (storage corruption). The next install refetches only these (HTTP Range). Absent: refetch the file.
   */
  badChunks?: number[];
}
