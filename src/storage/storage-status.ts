/**
 * Browser storage quota and persistence (StorageManager) for pack installs. Everything is optional: Node has
 * no `navigator.storage`, and a Worker has `estimate()`/`persisted()` but not `persist()` (Window only), so
 * the client asks for persistence on the main thread and the worker reports `persisted()`.
 */
import { FluxError } from '../errors.js';

/** The parts of StorageManager we use; injectable for tests. */
export interface StorageLike {
  estimate?(): Promise<{ usage?: number; quota?: number }>;
  persist?(): Promise<boolean>;
  persisted?(): Promise<boolean>;
}

export interface StorageStatus {
  /** Bytes this origin uses (padded by the browser); null without the Storage API. */
  usage: number | null;
  /** Bytes this origin may use, as the browser reports it; null without the Storage API. */
  quota: number | null;
  /**
   * True when `quota − usage` is Chrome's artificial 10 GiB ("predictable reported quota", Chrome ≥ 138): the
   * real, enforced quota is not disclosed, so free space is unknown.
   */
  quotaUndisclosed: boolean;
  /** Whether the origin's storage is persistent (not evicted under pressure); null if unknown. */
  persisted: boolean | null;
}

export function defaultStorage(): StorageLike | undefined {
  return (globalThis as { navigator?: { storage?: StorageLike } }).navigator?.storage;
}

export async function storageStatus(storage: StorageLike | undefined = defaultStorage()): Promise<StorageStatus> {
  const est = await storage?.estimate?.().catch(() => undefined);
  const persisted = await storage?.persisted?.().catch(() => null);
  const usage = est?.usage ?? null;
  const quota = est?.quota ?? null;
  return { usage, quota, quotaUndisclosed: quota !== null && isChromeReportedQuota(quota - (usage ?? 0)), persisted: persisted ?? null };
}

/**
 * Ask for persistent storage where `persist()` exists (a Window: Chrome decides silently, Firefox may prompt),
 * otherwise report `persisted()` (a Worker). Null when neither exists.
 */
export async function requestPersistence(storage: StorageLike | undefined = defaultStorage()): Promise<boolean | null> {
  try {
    if (storage?.persist) return await storage.persist();
    if (storage?.persisted) return await storage.persisted();
  } catch {
    // e.g. an opaque origin; persistence is then simply unknown
  }
  return null;
}

/**
 * Chrome ≥ 138 reports quota = usage + min(10 GiB, disk size rounded up to a GiB) to every site without unlimited
 * storage, so the mode of browsing cannot be told from it; the enforced quota (about 60% of the disk) is
 * unchanged and undisclosed. Exactly 10 GiB of headroom is that report, not a measurement.
 */
export const CHROME_REPORTED_HEADROOM = 10 * 1024 ** 3;
export function isChromeReportedQuota(available: number): boolean {
  return available === CHROME_REPORTED_HEADROOM;
}

/** Headroom asked for beyond the bytes still to download: IndexedDB bookkeeping and estimate() padding. */
export function quotaMargin(neededBytes: number): number {
  return 16 * 1024 * 1024 + Math.ceil(neededBytes * 0.01);
}

/** Decimal units, like disk tools and OS storage settings: "9.87 GB", "512 MB", "40 KB". */
export function formatSize(n: number): string {
  const units: [number, string][] = [
    [1e9, 'GB'],
    [1e6, 'MB'],
    [1e3, 'KB'],
  ];
  for (const [scale, unit] of units) {
    if (n >= scale) {
      const v = n / scale;
      return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${unit}`;
    }
  }
  return `${n} B`;
}

/**
 * Throw 'storage_quota' when `quota − usage` is below the bytes still needed plus a margin. Silent when the
 * browser gives no estimate, and when the headroom is Chrome's artificial 10 GiB (refusing a pack above it would
 * be wrong on nearly every disk). Then a full disk shows up as QuotaExceededError on a chunk write, which the
 * installer also reports as 'storage_quota', with the stored bytes kept for a resume.
 */
export async function checkQuota(packId: string, neededBytes: number, storage: StorageLike | undefined = defaultStorage()): Promise<void> {
  if (neededBytes <= 0) return;
  const est = await storage?.estimate?.().catch(() => undefined);
  if (est?.quota === undefined) return;
  const usage = est.usage ?? 0;
  const available = Math.max(0, est.quota - usage);
  const required = neededBytes + quotaMargin(neededBytes);
  if (available >= required || isChromeReportedQuota(available)) return;
  throw new FluxError(
    'storage_quota',
    `Not enough browser storage for pack "${packId}": it needs ${formatSize(neededBytes)} more, but only ${formatSize(available)} is available to this site ` +
      `(quota ${formatSize(est.quota)}, ${formatSize(usage)} in use). Free disk space, or delete other model packs from this site, then install again.`,
    { details: { packId, neededBytes, availableBytes: available, quotaBytes: est.quota, usageBytes: usage, marginBytes: required - neededBytes } },
  );
}
