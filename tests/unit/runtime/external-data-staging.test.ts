import { describe, expect, it } from 'vitest';
import { ExternalDataStaging } from '../../../src/runtime/external-data-staging.js';

function blobOf(length: number, seed: number): { blob: Blob; bytes: Uint8Array } {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return { blob: new Blob([bytes]), bytes };
}

describe('ExternalDataStaging', () => {
  it('reads every part back to back into one buffer and hands out exact views', async () => {
    const staging = new ExternalDataStaging();
    const parts = [blobOf(300_001, 1), blobOf(5, 2), blobOf(0, 3), blobOf(70_000, 4)];
    const seen = await staging.use(
      parts.map((p) => p.blob),
      async (views) => {
        expect(new Set(views.map((v) => v.buffer)).size).toBe(1);
        return views.map((v) => v.slice());
      },
    );
    seen.forEach((v, i) => expect(v).toEqual(parts[i]!.bytes));
    expect(staging.heldBytes).toBe(370_006);
    staging.drop();
  });

  it('reuses the buffer for smaller loads and grows it for larger ones', async () => {
    const staging = new ExternalDataStaging();
    const buffers: ArrayBufferLike[] = [];
    for (const size of [1000, 400, 1000]) await staging.use([blobOf(size, size).blob], async ([v]) => void buffers.push(v!.buffer));
    expect(staging.heldBytes).toBe(1000);
    await staging.use([blobOf(5000, 9).blob], async ([v]) => expect(v!.byteLength).toBe(5000));
    expect(staging.heldBytes).toBe(5000);
    staging.drop();
    expect(staging.heldBytes).toBe(0);
  });

  it('serializes users so no session sees bytes of another, also after a failure', async () => {
    const staging = new ExternalDataStaging();
    const a = blobOf(4096, 1);
    const b = blobOf(4096, 2);
    const order: string[] = [];
    const first = staging.use([a.blob], async ([v]) => {
      order.push('a start');
      await new Promise((r) => setTimeout(r, 20));
      expect(v).toEqual(a.bytes); // b has not overwritten the buffer
      order.push('a end');
      throw new Error('session failed');
    });
    const second = staging.use([b.blob], async ([v]) => {
      order.push('b');
      expect(v).toEqual(b.bytes);
    });
    await expect(first).rejects.toThrow('session failed');
    await second;
    expect(order).toEqual(['a start', 'a end', 'b']);
    staging.drop();
  });

  it('copies chunk by chunk where Blob streams are not byte streams', async () => {
    const { bytes } = blobOf(10_000, 7);
    const chunked = {
      size: bytes.length,
      stream: () =>
        new ReadableStream<Uint8Array>({
          start(c) {
            for (let i = 0; i < bytes.length; i += 999) c.enqueue(bytes.slice(i, i + 999));
            c.close();
          },
        }),
    } as unknown as Blob;
    const staging = new ExternalDataStaging();
    await staging.use([chunked], async ([v]) => expect(v).toEqual(bytes));
    const short = { ...chunked, size: bytes.length + 1, stream: chunked.stream } as unknown as Blob;
    await expect(staging.use([short], async () => undefined)).rejects.toThrow(/read 10000 of 10001 bytes/);
    staging.drop();
  });

  it('drops the buffer after the idle time', async () => {
    const staging = new ExternalDataStaging(10);
    await staging.use([blobOf(100, 1).blob], async () => undefined);
    expect(staging.heldBytes).toBe(100);
    await new Promise((r) => setTimeout(r, 40));
    expect(staging.heldBytes).toBe(0);
  });
});
