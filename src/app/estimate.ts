/**
 * "About how long": per-device timings of earlier runs, kept in localStorage, keyed by what drives the cost
 * (where it ran, model, pixels, steps, images). An exponential average adapts as caches warm or drivers change.
 */
export interface RunShape {
  target: 'local' | 'remote';
  endpoint: string;
  width: number;
  height: number;
  steps: number;
  images: number;
}

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

const STORAGE_KEY = 'flux-webgpu:timings';
const ALPHA = 0.5;
const MAX_KEYS = 200;

function keyOf(s: RunShape): string {
  return `${s.target}|${s.endpoint}|${s.width}x${s.height}|${s.steps}|${s.images}`;
}

export class TimingHistory {
  constructor(private readonly store: KeyValueStore | null = safeLocalStorage()) {}

  private read(): Record<string, number> {
    try {
      const v = JSON.parse(this.store?.getItem(STORAGE_KEY) ?? '{}') as unknown;
      return v && typeof v === 'object' ? (v as Record<string, number>) : {};
    } catch {
      return {}; // corrupt: start over (only estimates are lost)
    }
  }

  /** Record a finished run's wall time. */
  record(shape: RunShape, ms: number): void {
    if (!this.store || !(ms > 0)) return;
    const all = this.read();
    const k = keyOf(shape);
    const prev = all[k];
    delete all[k];
    all[k] = prev === undefined ? ms : prev + ALPHA * (ms - prev);
    const keys = Object.keys(all);
    for (const old of keys.slice(0, Math.max(0, keys.length - MAX_KEYS))) delete all[old]; // oldest first
    try {
      this.store.setItem(STORAGE_KEY, JSON.stringify(all));
    } catch {
      // storage full: estimates are a nicety
    }
  }

  /** Expected wall time, ms: this exact shape, else scaled from the nearest shape run at the same place. */
  estimate(shape: RunShape): number | null {
    const all = this.read();
    const exact = all[keyOf(shape)];
    if (exact !== undefined) return exact;
    // Scale by pixels × steps × images from the most similar recorded run at the same target and endpoint.
    const work = (s: { width: number; height: number; steps: number; images: number }) => s.width * s.height * s.steps * s.images;
    let best: { ms: number; ratio: number } | null = null;
    for (const [k, ms] of Object.entries(all)) {
      const [target, endpoint, size, steps, images] = k.split('|');
      if (target !== shape.target || endpoint !== shape.endpoint) continue;
      const [w, h] = size!.split('x').map(Number);
      const ratio = work(shape) / work({ width: w!, height: h!, steps: Number(steps), images: Number(images) });
      if (!best || Math.abs(Math.log(ratio)) < Math.abs(Math.log(best.ratio))) best = { ms, ratio };
    }
    if (!best) return null;
    // Remote time is mostly queue and transfer, not pixels: don't scale it.
    return shape.target === 'remote' ? best.ms : best.ms * best.ratio;
  }
}

function safeLocalStorage(): KeyValueStore | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}
