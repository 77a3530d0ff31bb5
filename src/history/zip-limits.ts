/**
 * The size of the ZIP that HistoryStore.export() writes, computed before anything is written, and the limits
 * of a ZIP without ZIP64 (docs/history.md, "Export limits").
 *
 * fflate's streaming `Zip` (0.8) writes no ZIP64 records: its offsets, sizes and the member count go into
 * 32- and 16-bit fields and silently wrap past 4 GiB or 65,535 members, producing an archive that no reader
 * (ours included) can open. So export() refuses such an archive up front instead of writing it. The layout
 * below is fflate's, byte for byte (tests/unit/history/zip-limits.test.ts compares it with real output):
 *   per member: local header (30 + name) + data + data descriptor (16); central record (46 + name);
 *   then the end-of-central-directory record (22).
 */
import { Deflate } from 'fflate';

/** Largest archive whose every offset and size fits the 32-bit fields (0xFFFFFFFF itself never occurs as one). */
export const ZIP_MAX_BYTES = 0xffff_ffff;
/** 0xFFFF in the 16-bit member count means "see the ZIP64 record" to readers (ours included). */
export const ZIP_MAX_MEMBERS = 0xfffe;

const LOCAL_HEADER = 30;
const DATA_DESCRIPTOR = 16;
const CENTRAL_HEADER = 46;
const END_RECORD = 22;

export interface ZipMemberSize {
  name: string;
  /** Bytes of the member's data as written (compressed size for a deflated member). */
  dataBytes: number;
}

const utf8 = new TextEncoder();

/** Bytes one member adds to the archive (local part + central record). */
export function zipMemberBytes(m: ZipMemberSize): number {
  const name = utf8.encode(m.name).byteLength;
  return LOCAL_HEADER + name + m.dataBytes + DATA_DESCRIPTOR + CENTRAL_HEADER + name;
}

/** Size of the archive fflate's Zip writes for these members. */
export function zipArchiveBytes(members: readonly ZipMemberSize[]): number {
  return members.reduce((s, m) => s + zipMemberBytes(m), END_RECORD);
}

/** Whether an archive of this many members and bytes is readable without ZIP64. */
export function fitsZip(members: number, bytes: number): boolean {
  return members <= ZIP_MAX_MEMBERS && bytes <= ZIP_MAX_BYTES;
}

/** Deflate level of history.json in an export. */
export const JSON_LEVEL = 6;

/** Deflated size of `data` exactly as ZipDeflate writes it at JSON_LEVEL (the same streaming Deflate). */
export function deflatedBytes(data: Uint8Array): number {
  let n = 0;
  const d = new Deflate({ level: JSON_LEVEL });
  d.ondata = (chunk) => void (n += chunk.byteLength);
  d.push(data, true);
  return n;
}
