/**
 * Turning decoded pixels into files. PNG is encoded in JS everywhere (byte-identical across platforms);
 * JPEG uses the platform's encoder (OffscreenCanvas in browsers, jpeg-js in Node), injected by the entry point.
 */
import type { RgbaImage } from '../pipeline/vae.js';
import { encodePng } from './png.js';

export type ImageContentType = 'image/png' | 'image/jpeg';

export interface EncodedImage {
  bytes: Uint8Array;
  width: number;
  height: number;
  contentType: ImageContentType;
}

export type JpegEncoder = (image: RgbaImage, quality: number) => Promise<Uint8Array>;

/** JPEG quality used for output_format "jpeg" (0–1). */
export const JPEG_QUALITY = 0.92;

export async function encodeImage(image: RgbaImage, format: 'png' | 'jpeg', jpeg: JpegEncoder): Promise<EncodedImage> {
  if (format === 'png') {
    return { bytes: encodePng(image.data, image.width, image.height), width: image.width, height: image.height, contentType: 'image/png' };
  }
  return { bytes: await jpeg(image, JPEG_QUALITY), width: image.width, height: image.height, contentType: 'image/jpeg' };
}

/** JPEG through OffscreenCanvas (browser window or worker). */
export const canvasJpegEncoder: JpegEncoder = async (image, quality) => {
  const canvas = new OffscreenCanvas(image.width, image.height);
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('OffscreenCanvas 2D context is not available');
  ctx.putImageData(new ImageData(new Uint8ClampedArray(image.data), image.width, image.height), 0, 0);
  const blob = await canvas.convertToBlob({ type: 'image/jpeg', quality });
  return new Uint8Array(await blob.arrayBuffer());
};

/** data: URI for encoded bytes (sync_mode). Chunked so large images don't overflow the argument stack. */
export function toDataUri(bytes: Uint8Array, contentType: string): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return `data:${contentType};base64,${btoa(binary)}`;
}
