/**
 * A minimal ZIP reader over a Blob for history imports: it reads the central directory from the end of the file
 * and then each member by itself with Blob.slice, so importing a large export never holds the whole file in
 * memory (fflate's unzipSync needs it all as one Uint8Array). Stored (method 0) and deflated (method 8) members;
 * no ZIP64, no encryption, no multi-disk archives. CRC-32 and sizes are checked on every read.
 */
import { inflateSync } from 'fflate';
import { crc32 } from '../image/crc32.js';

export interface ZipMember {
  name: string;
  /** 0 stored, 8 deflate */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  /** Uncompressed size */
  size: number;
  localHeaderOffset: number;
}

/** Why a file could not be read as a ZIP archive, or a member's bytes are wrong. */
export class ZipFormatError extends Error {
  override readonly name = 'ZipFormatError';
}

const EOCD_SIG = 0x06054b50;
const CDH_SIG = 0x02014b50;
const LFH_SIG = 0x04034b50;
const EOCD_MIN = 22;
const MAX_COMMENT = 0xffff;

async function bytesOf(blob: Blob): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await blob.arrayBuffer());
}

export class ZipReader {
  private constructor(
    private readonly file: Blob,
    readonly members: ReadonlyMap<string, ZipMember>,
  ) {}

  /** Reads the central directory; throws ZipFormatError when `file` is not a ZIP archive this reader supports. */
  static async open(file: Blob): Promise<ZipReader> {
    if (file.size < EOCD_MIN) throw new ZipFormatError(`not a ZIP file (${file.size} bytes)`);
    const tailStart = Math.max(0, file.size - EOCD_MIN - MAX_COMMENT);
    const tail = await bytesOf(file.slice(tailStart));
    const tv = new DataView(tail.buffer);
    let eocd = -1;
    for (let i = tail.length - EOCD_MIN; i >= 0; i--) {
      if (tv.getUint32(i, true) === EOCD_SIG && i + EOCD_MIN + tv.getUint16(i + 20, true) <= tail.length) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw new ZipFormatError('not a ZIP file (no end-of-central-directory record)');
    const disk = tv.getUint16(eocd + 4, true);
    const count = tv.getUint16(eocd + 10, true);
    const cdSize = tv.getUint32(eocd + 12, true);
    const cdOffset = tv.getUint32(eocd + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) throw new ZipFormatError('ZIP64 archives are not supported');
    if (disk !== 0) throw new ZipFormatError('multi-part ZIP archives are not supported');
    const eocdAbs = tailStart + eocd;
    if (cdOffset + cdSize > eocdAbs) throw new ZipFormatError('damaged ZIP file (central directory out of range)');
    const cd = await bytesOf(file.slice(cdOffset, cdOffset + cdSize));
    const v = new DataView(cd.buffer);
    const members = new Map<string, ZipMember>();
    const utf8 = new TextDecoder('utf-8', { fatal: false });
    let p = 0;
    for (let n = 0; n < count; n++) {
      if (p + 46 > cd.length || v.getUint32(p, true) !== CDH_SIG) throw new ZipFormatError('damaged ZIP file (bad central directory entry)');
      const nameLen = v.getUint16(p + 28, true);
      const extraLen = v.getUint16(p + 30, true);
      const commentLen = v.getUint16(p + 32, true);
      if (p + 46 + nameLen > cd.length) throw new ZipFormatError('damaged ZIP file (central directory entry out of range)');
      const m: ZipMember = {
        name: utf8.decode(cd.subarray(p + 46, p + 46 + nameLen)),
        flags: v.getUint16(p + 8, true),
        method: v.getUint16(p + 10, true),
        crc32: v.getUint32(p + 16, true),
        compressedSize: v.getUint32(p + 20, true),
        size: v.getUint32(p + 24, true),
        localHeaderOffset: v.getUint32(p + 42, true),
      };
      if (m.compressedSize === 0xffffffff || m.size === 0xffffffff || m.localHeaderOffset === 0xffffffff) {
        throw new ZipFormatError('ZIP64 archives are not supported');
      }
      if (!members.has(m.name)) members.set(m.name, m);
      p += 46 + nameLen + extraLen + commentLen;
    }
    return new ZipReader(file, members);
  }

  /** The member's uncompressed bytes, checked against its size and CRC-32; ZipFormatError when they are wrong. */
  async read(name: string): Promise<Uint8Array<ArrayBuffer>> {
    const m = this.members.get(name);
    if (!m) throw new ZipFormatError(`"${name}" is not in the ZIP file`);
    if (m.flags & 1) throw new ZipFormatError(`"${name}" is encrypted`);
    if (m.method !== 0 && m.method !== 8) throw new ZipFormatError(`"${name}" uses unsupported compression method ${m.method}`);
    const lh = await bytesOf(this.file.slice(m.localHeaderOffset, m.localHeaderOffset + 30));
    const lv = new DataView(lh.buffer);
    if (lh.length < 30 || lv.getUint32(0, true) !== LFH_SIG) throw new ZipFormatError(`damaged ZIP file (bad local header for "${name}")`);
    const start = m.localHeaderOffset + 30 + lv.getUint16(26, true) + lv.getUint16(28, true);
    if (start + m.compressedSize > this.file.size) throw new ZipFormatError(`damaged ZIP file ("${name}" is cut off)`);
    const raw = await bytesOf(this.file.slice(start, start + m.compressedSize));
    let data: Uint8Array<ArrayBuffer>;
    if (m.method === 0) data = raw;
    else {
      try {
        data = inflateSync(raw, { out: new Uint8Array(m.size) });
      } catch (e) {
        throw new ZipFormatError(`damaged ZIP file ("${name}" does not decompress: ${e instanceof Error ? e.message : String(e)})`);
      }
    }
    if (data.length !== m.size) throw new ZipFormatError(`damaged ZIP file ("${name}" is ${data.length} bytes, the directory says ${m.size})`);
    if (crc32(data) !== m.crc32) throw new ZipFormatError(`damaged ZIP file ("${name}" fails its CRC-32 check)`);
    return data;
  }
}
