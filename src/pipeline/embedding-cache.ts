/**
 * Prompt embeddings kept on the device between generations: the same prompt again (another seed, size or
 * step count) skips both text encoders — and, when they are not resident, loading them. Least recently used
 * entries are disposed beyond `capacity`. Owned by the engine; the pipeline never disposes cached tensors.
 */
import type { DeviceTensor } from './backend.js';

export interface PromptEmbeddings {
  /** T5 [1, L, D]. */
  txt: DeviceTensor;
  /** CLIP pooled [1, P]. */
  pooled: DeviceTensor;
}

export class PromptEmbeddingCache {
  private readonly entries = new Map<string, PromptEmbeddings>();

  /** @param capacity prompts kept (≈4 MB each for the real model in fp32). */
  constructor(readonly capacity = 8) {}

  get(prompt: string): PromptEmbeddings | undefined {
    const e = this.entries.get(prompt);
    if (e) {
      this.entries.delete(prompt); // re-insert: most recently used last
      this.entries.set(prompt, e);
    }
    return e;
  }

  put(prompt: string, e: PromptEmbeddings): void {
    const old = this.entries.get(prompt);
    if (old && old !== e) dispose(old);
    this.entries.delete(prompt);
    this.entries.set(prompt, e);
    while (this.entries.size > this.capacity) {
      const [oldest, v] = this.entries.entries().next().value as [string, PromptEmbeddings];
      this.entries.delete(oldest);
      dispose(v);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** Dispose everything (model unloaded or device lost). */
  clear(): void {
    for (const e of this.entries.values()) dispose(e);
    this.entries.clear();
  }
}

function dispose(e: PromptEmbeddings): void {
  e.txt.dispose();
  e.pooled.dispose();
}
