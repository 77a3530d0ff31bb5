/**
 * One reusable buffer for the external data of the session being created, for onnxruntime-web's asyncify build.
 *
 * That build needs a session's external data as bytes; given Blobs it calls `blob.arrayBuffer()` itself, a fresh
 * ArrayBuffer per file. Those become garbage once the session exists, but V8 collects large backing stores late:
 * loading a 2.2 GiB pack in 257 MiB stages peaked at ~1 GiB of dead buffers (measured). Reading every stage into
 * the same buffer keeps the load peak at the largest stage. The buffer is dropped after `idleMs` without use.
 */
export class ExternalDataStaging {
  private buffer: ArrayBuffer | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private idleTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly idleMs = 10_000) {}

  /** Bytes currently held (for stats and tests). */
  get heldBytes(): number {
    return this.buffer?.byteLength ?? 0;
  }

  /**
   * Read `parts` back to back into the buffer and call `fn` with one view per part. The views are valid only
   * until `fn` settles; calls are serialized so two sessions never share the buffer at once.
   */
  use<T>(parts: readonly Blob[], fn: (views: Uint8Array[]) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.idleTimer !== null) clearTimeout(this.idleTimer), (this.idleTimer = null);
      try {
        const total = parts.reduce((s, p) => s + p.size, 0);
        // Drop the old buffer before allocating a larger one, so both never coexist.
        if (!this.buffer || this.buffer.byteLength < total) this.buffer = null, (this.buffer = new ArrayBuffer(total));
        let offset = 0;
        for (const part of parts) offset = await this.readInto(part, offset);
        const views: Uint8Array[] = [];
        offset = 0;
        for (const part of parts) views.push(new Uint8Array(this.buffer, offset, part.size)), (offset += part.size);
        return await fn(views);
      } finally {
        this.scheduleDrop();
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Drop the buffer now. */
  drop(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer), (this.idleTimer = null);
    this.buffer = null;
  }

  private scheduleDrop(): void {
    this.idleTimer = setTimeout(() => ((this.buffer = null), (this.idleTimer = null)), this.idleMs);
    (this.idleTimer as { unref?: () => void }).unref?.();
  }

  /**
   * Copy `blob` into the buffer at `offset` without whole-file temporaries; returns the end offset. A BYOB reader
   * (Blob streams are byte streams in current browsers) reads straight into the buffer; otherwise chunks are copied.
   */
  private async readInto(blob: Blob, offset: number): Promise<number> {
    const end = offset + blob.size;
    const stream = blob.stream();
    let byob: ReadableStreamBYOBReader | null = null;
    try {
      byob = stream.getReader({ mode: 'byob' });
    } catch {
      byob = null; // not a byte stream
    }
    let at = offset;
    if (byob) {
      // Each read transfers the buffer into the result; keep following it.
      while (at < end) {
        const { done, value } = await byob.read(new Uint8Array(this.buffer!, at, end - at));
        if (!value) throw new Error('external data stream ended without a buffer');
        this.buffer = value.buffer as ArrayBuffer;
        if (done) break;
        at += value.byteLength;
      }
      byob.releaseLock();
    } else {
      const reader = stream.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (at + value.byteLength > end) throw new Error('external data grew while being read');
        new Uint8Array(this.buffer!, at, value.byteLength).set(value);
        at += value.byteLength;
      }
    }
    if (at !== end) throw new Error(`external data read ${at - offset} of ${blob.size} bytes`);
    return at;
  }
}
