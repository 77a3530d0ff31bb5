/**
 * Draws the PWA icons (public/icons/*.png) with no image tools: an indigo→violet gradient tile with a white
 * lightning bolt. `npx tsx tools/icons/make-icons.ts`; the output is committed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { PNG } from 'pngjs';

const BOLT: [number, number][] = [
  [0.58, 0.12], [0.26, 0.56], [0.47, 0.56], [0.4, 0.88], [0.74, 0.42], [0.53, 0.42], [0.62, 0.12],
];

function inside(x: number, y: number, poly: [number, number][]): boolean {
  let c = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i]!;
    const [xj, yj] = poly[j]!;
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) c = !c;
  }
  return c;
}

/** `maskable`: full-bleed background and the bolt inside the 80 % safe zone; else a rounded tile. */
function icon(size: number, maskable: boolean): Buffer {
  const png = new PNG({ width: size, height: size });
  const ss = 4; // supersampling for smooth edges
  const radius = maskable ? 0 : 0.22;
  const scale = maskable ? 0.7 : 1;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let bg = 0;
      let bolt = 0;
      for (let sy = 0; sy < ss; sy++) {
        for (let sx = 0; sx < ss; sx++) {
          const x = (px + (sx + 0.5) / ss) / size;
          const y = (py + (sy + 0.5) / ss) / size;
          const dx = Math.max(radius - x, 0, x - (1 - radius));
          const dy = Math.max(radius - y, 0, y - (1 - radius));
          if (dx * dx + dy * dy <= radius * radius) bg++;
          if (inside(0.5 + (x - 0.5) / scale, 0.5 + (y - 0.5) / scale, BOLT)) bolt++;
        }
      }
      const a = bg / (ss * ss);
      const b = bolt / (ss * ss);
      const t = (px + py) / (2 * size);
      const r = 79 + (139 - 79) * t;
      const g = 70 + (92 - 70) * t;
      const bl = 229 + (246 - 229) * t;
      const i = (py * size + px) * 4;
      png.data[i] = Math.round(r * (1 - b) + 255 * b);
      png.data[i + 1] = Math.round(g * (1 - b) + 255 * b);
      png.data[i + 2] = Math.round(bl * (1 - b) + 255 * b);
      png.data[i + 3] = Math.round(255 * a);
    }
  }
  return PNG.sync.write(png);
}

mkdirSync('public/icons', { recursive: true });
writeFileSync('public/icons/icon-192.png', icon(192, false));
writeFileSync('public/icons/icon-512.png', icon(512, false));
writeFileSync('public/icons/maskable-512.png', icon(512, true));
writeFileSync('public/icons/apple-touch-icon.png', icon(180, true));
console.log('wrote public/icons/*.png');
