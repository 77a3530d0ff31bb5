/**
 * Thumbnails for the history gallery. The store takes any `Thumbnailer`; `canvasThumbnailer` is the browser one
 * (Window or Worker): createImageBitmap + OffscreenCanvas, encoded as WebP, or JPEG where the browser cannot
 * encode WebP (Safari). The aspect ratio is kept: the longer side becomes `maxSide` (never upscaled).
 */

export type Thumbnailer = (image: Blob, maxSide: number) => Promise<Blob>;

export const THUMBNAIL_QUALITY = 0.8;

/** Whether canvasThumbnailer can run here (false in Node, and in browsers without OffscreenCanvas). */
export function canvasThumbnailerAvailable(): boolean {
  return typeof createImageBitmap === 'function' && typeof OffscreenCanvas === 'function';
}

/** Size of an image scaled so that its longer side is at most `maxSide` (at least 1×1). */
export function thumbnailSize(width: number, height: number, maxSide: number): { width: number; height: number } {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

export const canvasThumbnailer: Thumbnailer = async (image, maxSide) => {
  if (!canvasThumbnailerAvailable()) throw new Error('canvasThumbnailer needs createImageBitmap and OffscreenCanvas');
  const bitmap = await createImageBitmap(image);
  try {
    const { width, height } = thumbnailSize(bitmap.width, bitmap.height, maxSide);
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext('2d');
    if (!ctx) throw new Error('no 2d context on OffscreenCanvas');
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bitmap, 0, 0, width, height);
    const webp = await canvas.convertToBlob({ type: 'image/webp', quality: THUMBNAIL_QUALITY });
    // An encoder that does not know WebP returns PNG: JPEG is much smaller for photos.
    if (webp.type === 'image/webp') return webp;
    return await canvas.convertToBlob({ type: 'image/jpeg', quality: THUMBNAIL_QUALITY });
  } finally {
    bitmap.close();
  }
};
