/**
 * Image bytes for the fake: a cheap pattern derived from a key (seed + prompt + index), so different requests
 * give visibly different images while the same inputs give the same bytes. Plus dimension sniffing and data URIs.
 */
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

export interface ImageSize {
  width: number;
  height: number;
}

/** fal's image_size presets (docs/fal-protocol.md §4.1). */
export const IMAGE_SIZE_PRESETS = {
  square_hd: { width: 1024, height: 1024 },
  square: { width: 512, height: 512 },
  portrait_4_3: { width: 768, height: 1024 },
  portrait_16_9: { width: 576, height: 1024 },
  landscape_4_3: { width: 1024, height: 768 },
  landscape_16_9: { width: 1024, height: 576 },
} as const satisfies Record<string, ImageSize>;

export type ImageFormat = 'jpeg' | 'png';

export const CONTENT_TYPES: Record<ImageFormat, string> = { jpeg: 'image/jpeg', png: 'image/png' };
export const EXTENSIONS: Record<ImageFormat, string> = { jpeg: 'jpg', png: 'png' };

/** Encodes a width×height image whose pattern depends only on `key`. */
export function renderImage(size: ImageSize, key: string, format: ImageFormat): Buffer {
  const rgba = renderPattern(size, key);
  if (format === 'jpeg') return jpeg.encode({ width: size.width, height: size.height, data: rgba }, 85).data;
  const png = new PNG({ width: size.width, height: size.height });
  png.data = rgba;
  return PNG.sync.write(png);
}

/** A two-colour diagonal gradient with a disc and stripes; colours and geometry come from the key's hash. */
function renderPattern({ width, height }: ImageSize, key: string): Buffer {
  const rand = mulberry32(fnv1a(key));
  const byte = () => Math.floor(rand() * 256);
  const c0 = [byte(), byte(), byte()];
  const c1 = [byte(), byte(), byte()];
  const dx = rand() * 2 - 1;
  const dy = rand() * 2 - 1;
  const cx = rand() * width;
  const cy = rand() * height;
  const r2 = (0.1 + rand() * 0.3) ** 2 * Math.min(width, height) ** 2;
  const period = 16 + Math.floor(rand() * 48);
  const span = Math.abs(dx) * width + Math.abs(dy) * height || 1;
  const offset = Math.min(0, dx * width) + Math.min(0, dy * height);
  const out = Buffer.allocUnsafe(width * height * 4);
  let i = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x * dx + y * dy - offset) / span;
      const inDisc = (x - cx) ** 2 + (y - cy) ** 2 < r2;
      const stripe = ((x + y) / period) & 1 ? 24 : 0;
      for (let c = 0; c < 3; c++) {
        const v = Math.min(255, c0[c]! + (c1[c]! - c0[c]!) * t + stripe);
        out[i++] = inDisc ? 255 - v : v;
      }
      out[i++] = 255;
    }
  }
  return out;
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Width and height from a PNG IHDR or a JPEG SOF marker, without decoding pixels; null for anything else. */
export function sniffImageSize(bytes: Uint8Array): (ImageSize & { format: ImageFormat }) | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length >= 24 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    return { width: view.getUint32(16), height: view.getUint32(20), format: 'png' };
  }
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return null;
  let i = 2;
  while (i + 4 <= bytes.length) {
    if (bytes[i] !== 0xff) return null;
    const marker = bytes[i + 1]!;
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    // Standalone markers carry no length.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd9)) {
      i += 2;
      continue;
    }
    const length = view.getUint16(i + 2);
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof && i + 9 <= bytes.length) return { height: view.getUint16(i + 5), width: view.getUint16(i + 7), format: 'jpeg' };
    i += 2 + length;
  }
  return null;
}

export function toDataUri(bytes: Uint8Array, contentType: string): string {
  return `data:${contentType};base64,${Buffer.from(bytes).toString('base64')}`;
}

/** Parses `data:[<type>][;base64],<data>`; null when malformed. */
export function parseDataUri(uri: string): { contentType: string; bytes: Buffer } | null {
  const m = /^data:([^,]*?),(.*)$/is.exec(uri);
  if (!m) return null;
  const params = m[1]!.split(';');
  const base64 = params.slice(1).some((p) => p.trim().toLowerCase() === 'base64');
  const data = m[2]!;
  if (base64) {
    if (!/^[A-Za-z0-9+/=\s_-]*$/.test(data)) return null;
    return { contentType: params[0] || 'text/plain', bytes: Buffer.from(data, 'base64') };
  }
  try {
    return { contentType: params[0] || 'text/plain', bytes: Buffer.from(decodeURIComponent(data), 'utf8') };
  } catch {
    return null;
  }
}
