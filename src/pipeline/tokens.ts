/**
 * Token framing for the two text encoders (docs/flux-pipeline.md §2). The tokenizers produce raw ids without
 * specials; framing (truncation, BOS/EOS, padding) happens here so it is exact and testable.
 */
import type { ClipSpecialTokens, T5SpecialTokens } from './config.js';

/** CLIP: [BOS] + ids[:length−2] + [EOS], right-padded with `pad` to `length` (77). */
export function frameClipIds(rawIds: readonly number[], special: ClipSpecialTokens, length = 77): Int32Array {
  const out = new Int32Array(length).fill(special.pad);
  const body = rawIds.slice(0, length - 2);
  out[0] = special.bos;
  out.set(body, 1);
  out[1 + body.length] = special.eos;
  return out;
}

/** Index of CLIP's pooled token (the first EOS): 1 + min(n, length − 2). */
export function clipPooledIndex(rawTokenCount: number, length = 77): number {
  return 1 + Math.min(rawTokenCount, length - 2);
}

/** T5: ids[:length−1] + [EOS], right-padded with `pad` to `length` (256 for schnell). No BOS, no mask. */
export function frameT5Ids(rawIds: readonly number[], special: T5SpecialTokens, length = 256): Int32Array {
  const out = new Int32Array(length).fill(special.pad);
  const body = rawIds.slice(0, length - 1);
  out.set(body, 0);
  out[body.length] = special.eos;
  return out;
}
