/** Per-client token buckets, kept in memory (one process; see docs/proxy.md for multi-instance setups). */

export interface TokenBucketConfig {
  /** Tokens added per second. */
  ratePerSecond: number;
  /** Bucket size: how many requests may arrive at once after a quiet spell. */
  burst: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/** Above this many clients, idle (full) buckets are swept (at most every SWEEP_EVERY_MS, so it stays cheap);
 * at MAX_CLIENTS the least recently seen is dropped. */
const SWEEP_AT = 1_000;
const SWEEP_EVERY_MS = 10_000;
const MAX_CLIENTS = 50_000;

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private readonly rate: number;
  private readonly burst: number;
  private lastSweepMs = -Infinity;

  constructor(
    config: TokenBucketConfig,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(config.ratePerSecond > 0) || !Number.isFinite(config.ratePerSecond)) throw new RangeError(`ratePerSecond must be a positive number, got ${config.ratePerSecond}`);
    if (!(config.burst >= 1) || !Number.isFinite(config.burst)) throw new RangeError(`burst must be at least 1, got ${config.burst}`);
    this.rate = config.ratePerSecond;
    this.burst = config.burst;
  }

  /** Takes one token for `client`: 0 when allowed, else the seconds to wait before one is available. */
  take(client: string): number {
    const now = this.now();
    let b = this.buckets.get(client);
    if (b) {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.updatedMs) / 1000) * this.rate);
      b.updatedMs = now;
      // Re-insert so Map order is least-recently-used first, for eviction.
      this.buckets.delete(client);
    } else {
      b = { tokens: this.burst, updatedMs: now };
      if (this.buckets.size >= SWEEP_AT && now - this.lastSweepMs >= SWEEP_EVERY_MS) this.sweep(now);
      if (this.buckets.size >= MAX_CLIENTS) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
    }
    this.buckets.set(client, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return (1 - b.tokens) / this.rate;
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number): void {
    this.lastSweepMs = now;
    // A bucket that has refilled completely is indistinguishable from a new one.
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.updatedMs) / 1000) * this.rate >= this.burst) this.buckets.delete(k);
    }
  }
}
