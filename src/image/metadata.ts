/**
 * Generation parameters inside image files, where other image tools put them and read them back:
 * - PNG: a `parameters` text chunk (tEXt when the text is Latin-1, else iTXt in UTF-8), the key that
 *   AUTOMATIC1111-style tools and image viewers read, plus `fal_input` with the request as JSON for exact reuse;
 * - JPEG: a COM segment (UTF-8) and an Exif UserComment (UTF-16, "UNICODE" charset), both right after SOI.
 * Pixels are untouched: only metadata chunks/segments are added.
 */
import { FluxError } from '../errors.js';
import { crc32 } from './crc32.js';
import { pngChunk } from './png.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** A JPEG marker segment holds at most 65535 − 2 bytes after its length field. */
const JPEG_SEGMENT_MAX = 65533;

export type ImageTextFields = Record<string, string>;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const isLatin1 = (s: string) => [...s].every((c) => c.codePointAt(0)! <= 0xff);
const latin1 = (s: string) => Uint8Array.from([...s], (c) => c.codePointAt(0)!);

function isPng(bytes: Uint8Array): boolean {
  return PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}

function isJpeg(bytes: Uint8Array): boolean {
  return bytes[0] === 0xff && bytes[1] === 0xd8;
}

/** A PNG text chunk for `key`: tEXt when `text` is Latin-1, else iTXt (uncompressed, UTF-8). */
function pngTextChunk(key: string, text: string): Uint8Array {
  if (!/^[\x20-\x7e]{1,79}$/.test(key)) throw new RangeError(`PNG text key must be 1–79 printable ASCII characters, got ${JSON.stringify(key)}`);
  if (isLatin1(text)) return pngChunk('tEXt', concat([latin1(key), Uint8Array.of(0), latin1(text)]));
  // keyword \0 compression-flag(0) compression-method(0) language-tag \0 translated-keyword \0 text
  return pngChunk('iTXt', concat([latin1(key), Uint8Array.of(0, 0, 0, 0, 0), new TextEncoder().encode(text)]));
}

/** `bytes` (a PNG) with text chunks added just before IEND. */
export function addPngText(bytes: Uint8Array, fields: ImageTextFields): Uint8Array {
  if (!isPng(bytes)) throw new FluxError('invalid_input', 'addPngText: not a PNG file (bad signature)');
  const iend = findPngChunk(bytes, 'IEND');
  if (iend < 0) throw new FluxError('invalid_input', 'addPngText: the PNG has no IEND chunk');
  const chunks = Object.entries(fields).map(([k, v]) => pngTextChunk(k, v));
  return concat([bytes.subarray(0, iend), ...chunks, bytes.subarray(iend)]);
}

/** Offset of the first chunk of `type`, or −1. */
function findPngChunk(bytes: Uint8Array, type: string): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let o = 8; o + 12 <= bytes.length; ) {
    const len = v.getUint32(o);
    const t = String.fromCharCode(...bytes.subarray(o + 4, o + 8));
    if (t === type) return o;
    o += 12 + len;
  }
  return -1;
}

/** The tEXt/iTXt fields of a PNG (checked against each chunk's CRC). */
export function readPngText(bytes: Uint8Array): ImageTextFields {
  if (!isPng(bytes)) throw new FluxError('invalid_input', 'readPngText: not a PNG file (bad signature)');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: ImageTextFields = {};
  for (let o = 8; o + 12 <= bytes.length; ) {
    const len = v.getUint32(o);
    const type = String.fromCharCode(...bytes.subarray(o + 4, o + 8));
    const data = bytes.subarray(o + 8, o + 8 + len);
    if (crc32(bytes.subarray(o + 4, o + 8 + len)) !== v.getUint32(o + 8 + len)) throw new FluxError('invalid_input', `readPngText: the ${type} chunk at byte ${o} fails its CRC`);
    if (type === 'tEXt' || type === 'iTXt') {
      const nul = data.indexOf(0);
      const key = String.fromCharCode(...data.subarray(0, nul));
      if (type === 'tEXt') out[key] = String.fromCharCode(...data.subarray(nul + 1));
      else {
        // skip compression flag + method, then the language tag and translated keyword (each NUL-terminated)
        let p = nul + 3;
        p = data.indexOf(0, p) + 1;
        p = data.indexOf(0, p) + 1;
        out[key] = new TextDecoder().decode(data.subarray(p));
      }
    }
    if (type === 'IEND') break;
    o += 12 + len;
  }
  return out;
}

function jpegSegment(marker: number, payload: Uint8Array): Uint8Array {
  if (payload.length > JPEG_SEGMENT_MAX) throw new RangeError(`a JPEG segment holds at most ${JPEG_SEGMENT_MAX} bytes, got ${payload.length}`);
  const out = new Uint8Array(4 + payload.length);
  out[0] = 0xff;
  out[1] = marker;
  out[2] = (payload.length + 2) >> 8;
  out[3] = (payload.length + 2) & 0xff;
  out.set(payload, 4);
  return out;
}

/** An APP1 Exif segment (big-endian TIFF) with IFD0 → Exif IFD → UserComment in UTF-16 ("UNICODE" charset). */
function exifUserComment(text: string): Uint8Array | null {
  const comment = new Uint8Array(8 + text.length * 2);
  comment.set(latin1('UNICODE\0'));
  for (let i = 0; i < text.length; i++) {
    comment[8 + 2 * i] = text.charCodeAt(i) >> 8;
    comment[9 + 2 * i] = text.charCodeAt(i) & 0xff;
  }
  // TIFF header (8) + IFD0 (2 + 12 + 4) + Exif IFD (2 + 12 + 4) + comment
  const tiff = new Uint8Array(8 + 18 + 18 + comment.length);
  const v = new DataView(tiff.buffer);
  tiff.set(latin1('MM'));
  v.setUint16(2, 42);
  v.setUint32(4, 8);
  v.setUint16(8, 1); // IFD0: one entry
  v.setUint16(10, 0x8769); // ExifIFDPointer
  v.setUint16(12, 4); // LONG
  v.setUint32(14, 1);
  v.setUint32(18, 26); // offset of the Exif IFD
  v.setUint32(22, 0); // no next IFD
  v.setUint16(26, 1); // Exif IFD: one entry
  v.setUint16(28, 0x9286); // UserComment
  v.setUint16(30, 7); // UNDEFINED
  v.setUint32(32, comment.length);
  v.setUint32(36, 44); // offset of the comment
  v.setUint32(40, 0);
  tiff.set(comment, 44);
  const payload = concat([latin1('Exif\0\0'), tiff]);
  return payload.length <= JPEG_SEGMENT_MAX ? jpegSegment(0xe1, payload) : null;
}

/**
 * `bytes` (a JPEG) with `text` as COM segments (UTF-8; split over several when longer than one segment holds) and,
 * when it fits one segment, an Exif UserComment; both go right after SOI.
 */
export function addJpegText(bytes: Uint8Array, text: string): Uint8Array {
  if (!isJpeg(bytes)) throw new FluxError('invalid_input', 'addJpegText: not a JPEG file (no SOI marker)');
  const utf8 = new TextEncoder().encode(text);
  const segments: Uint8Array[] = [];
  const exif = exifUserComment(text);
  if (exif) segments.push(exif);
  for (let o = 0; o < utf8.length || o === 0; o += JPEG_SEGMENT_MAX) segments.push(jpegSegment(0xfe, utf8.subarray(o, o + JPEG_SEGMENT_MAX)));
  return concat([bytes.subarray(0, 2), ...segments, bytes.subarray(2)]);
}

/** The COM text of a JPEG (segments before the image data, concatenated) and its Exif UserComment, if any. */
export function readJpegText(bytes: Uint8Array): { comment: string; userComment: string | null } {
  if (!isJpeg(bytes)) throw new FluxError('invalid_input', 'readJpegText: not a JPEG file (no SOI marker)');
  const com: Uint8Array[] = [];
  let userComment: string | null = null;
  for (let o = 2; o + 4 <= bytes.length && bytes[o] === 0xff; ) {
    const marker = bytes[o + 1]!;
    if (marker === 0xda || marker === 0xd9) break; // start of scan / end of image
    const len = (bytes[o + 2]! << 8) | bytes[o + 3]!;
    const payload = bytes.subarray(o + 4, o + 2 + len);
    if (marker === 0xfe) com.push(payload);
    if (marker === 0xe1 && String.fromCharCode(...payload.subarray(0, 6)) === 'Exif\0\0') userComment = readUserComment(payload.subarray(6));
    o += 2 + len;
  }
  return { comment: new TextDecoder().decode(concat(com)), userComment };
}

/** UserComment from the TIFF block this module writes (big-endian, IFD0 → Exif IFD), or null if absent. */
function readUserComment(tiff: Uint8Array): string | null {
  const v = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  if (String.fromCharCode(tiff[0]!, tiff[1]!) !== 'MM') return null;
  const entry = (ifd: number, tag: number) => {
    for (let i = 0, n = v.getUint16(ifd); i < n; i++) if (v.getUint16(ifd + 2 + 12 * i) === tag) return ifd + 2 + 12 * i;
    return -1;
  };
  const ptr = entry(v.getUint32(4), 0x8769);
  if (ptr < 0) return null;
  const uc = entry(v.getUint32(ptr + 8), 0x9286);
  if (uc < 0) return null;
  const count = v.getUint32(uc + 4);
  const data = tiff.subarray(v.getUint32(uc + 8) + 8, v.getUint32(uc + 8) + count);
  let s = '';
  for (let i = 0; i + 1 < data.length; i += 2) s += String.fromCharCode((data[i]! << 8) | data[i + 1]!);
  return s;
}

/** What a result's file carries: an A1111-style `parameters` text and the fal request as JSON. */
export interface GenerationParameters {
  prompt: string;
  endpoint: string;
  seed: number;
  width: number;
  height: number;
  steps: number | undefined;
  /** Where it ran: 'local' or 'remote'. */
  target: string;
  /** fal's input as sent, for exact reuse. */
  input: Record<string, unknown>;
}

/** "prompt\nSteps: 4, Seed: 42, Size: 512x512, Model: …" — the line other tools write and parse. */
export function parametersText(p: GenerationParameters): string {
  const fields = [
    ...(p.steps !== undefined ? [`Steps: ${p.steps}`] : []),
    'Sampler: Euler (flow matching)',
    `Seed: ${p.seed}`,
    `Size: ${p.width}x${p.height}`,
    `Model: ${p.endpoint}`,
    `Ran: ${p.target === 'local' ? 'flux-webgpu (this device)' : 'fal'}`,
  ];
  return `${p.prompt}\n${fields.join(', ')}`;
}

/** The image file with its generation parameters embedded (PNG text chunks, or JPEG COM + Exif). */
export function withGenerationParameters(bytes: Uint8Array, contentType: string, p: GenerationParameters): Uint8Array {
  const text = parametersText(p);
  if (contentType === 'image/png') return addPngText(bytes, { parameters: text, fal_input: JSON.stringify(p.input) });
  if (contentType === 'image/jpeg') return addJpegText(bytes, text);
  throw new FluxError('invalid_input', `withGenerationParameters: cannot embed parameters in ${contentType}`);
}
