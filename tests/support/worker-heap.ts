/**
 * Samples the JS memory of the page's dedicated workers through the browser's DevTools protocol:
 * `Runtime.getHeapUsage` gives the V8 heap and the ArrayBuffer backing stores (where downloaded or decoded
 * bytes, and ORT's wasm memory, live). Peak = max over samples of used heap + backing stores.
 */
import type { Page } from 'playwright-core';

export interface HeapSample {
  usedBytes: number;
  backingBytes: number;
}

export interface HeapSampler {
  /** Largest used + backing seen so far, and its parts. */
  peak(): HeapSample & { totalBytes: number };
  latest(): HeapSample | null;
  stop(): Promise<void>;
}

/** Sample the dedicated workers of `page` (attached through the page's DevTools session). */
export async function sampleWorkerHeap(page: Page, intervalMs = 100): Promise<HeapSampler> {
  const cdp = await page.context().newCDPSession(page);
  let nextId = 1;
  const pending = new Map<number, (r: unknown) => void>();
  cdp.on('Target.receivedMessageFromTarget', (e: { message: string }) => {
    const msg = JSON.parse(e.message) as { id?: number; result?: unknown };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result), pending.delete(msg.id);
  });
  const sessions = new Map<string, string>(); // targetId → sessionId
  cdp.on('Target.attachedToTarget', (e: { sessionId: string; targetInfo: { targetId: string; type: string } }) => {
    if (e.targetInfo.type === 'worker') sessions.set(e.targetInfo.targetId, e.sessionId);
  });
  cdp.on('Target.detachedFromTarget', (e: { targetId?: string }) => {
    if (e.targetId) sessions.delete(e.targetId);
  });
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: false });
  let peak = { usedBytes: 0, backingBytes: 0, totalBytes: 0 };
  let latest: HeapSample | null = null;
  let stopped = false;

  async function tick(): Promise<void> {
    let used = 0;
    let backing = 0;
    for (const sessionId of sessions.values()) {
      const id = nextId++;
      const result = new Promise<unknown>((r) => pending.set(id, r));
      await cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method: 'Runtime.getHeapUsage' }) }).catch(() => undefined);
      const r = (await Promise.race([result, new Promise((res) => setTimeout(() => res(null), 2000))])) as { usedSize: number; backingStorageSize?: number } | null;
      if (r) {
        used += r.usedSize;
        backing += r.backingStorageSize ?? 0;
      }
    }
    latest = { usedBytes: used, backingBytes: backing };
    if (used + backing > peak.totalBytes) peak = { usedBytes: used, backingBytes: backing, totalBytes: used + backing };
  }

  const loop = (async () => {
    while (!stopped) {
      await tick().catch(() => undefined);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();

  return {
    peak: () => peak,
    latest: () => latest,
    async stop() {
      stopped = true;
      await loop;
      await cdp.detach().catch(() => undefined);
    },
  };
}
