/**
 * Prompt tokenization: our loaders (@huggingface/tokenizers) + FLUX framing on the pack's toy CLIP BPE / T5 Unigram
 * files give the ids recorded from an independent Python encoder (tools/testpack/tokenizers_toy.py).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadClipTokenizer, loadT5Tokenizer } from '../../../src/pipeline/tokenizers.js';
import { frameClipIds, frameT5Ids } from '../../../src/pipeline/tokens.js';
import { ROOT, TEST_PACK_DIR } from '../../support/fixtures.js';

const json = (p: string) => JSON.parse(readFileSync(join(TEST_PACK_DIR, p), 'utf8')) as Record<string, unknown>;
const clipFiles = [json('tokenizer/tokenizer.json'), json('tokenizer/tokenizer_config.json')] as const;
const t5Files = [json('tokenizer_2/tokenizer.json'), json('tokenizer_2/tokenizer_config.json')] as const;
const clip = loadClipTokenizer(...clipFiles);
const t5 = loadT5Tokenizer(...t5Files);

interface Case {
  text: string;
  clip: { ids: number[]; framed: number[] };
  t5: { ids: number[]; framed_256: number[] };
}
const fixture = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/tokenizer-cases.json'), 'utf8')) as { specials: { clip: Record<string, number>; t5: Record<string, number> }; cases: Case[] };

describe('special ids come from the tokenizer files', () => {
  it('CLIP: BOS/EOS/pad = <|startoftext|>, <|endoftext|>, <|endoftext|>', () => {
    expect(clip.special).toEqual({ bos: fixture.specials.clip.bos, eos: fixture.specials.clip.eos, pad: fixture.specials.clip.pad });
  });
  it('T5: EOS 1, pad 0', () => {
    expect(t5.special).toEqual({ eos: 1, pad: 0 });
  });
});

describe.each(fixture.cases)('prompt $text', (c) => {
  it('raw and framed ids match the reference encoder', () => {
    expect(clip.encode(c.text)).toEqual(c.clip.ids);
    expect(Array.from(frameClipIds(clip.encode(c.text), clip.special, 77))).toEqual(c.clip.framed);
    expect(t5.encode(c.text)).toEqual(c.t5.ids);
    expect(Array.from(frameT5Ids(t5.encode(c.text), t5.special, 256))).toEqual(c.t5.framed_256);
  });
});

it('long prompts are truncated to 75 CLIP tokens and 255 T5 tokens plus EOS', () => {
  const long = fixture.cases.find((c) => c.clip.ids.length > 75 && c.t5.ids.length > 255)!;
  expect(long).toBeDefined();
  const framedClip = frameClipIds(clip.encode(long.text), clip.special, 77);
  expect(framedClip[76]).toBe(clip.special.eos);
  expect(Array.from(framedClip.slice(1, 76))).toEqual(long.clip.ids.slice(0, 75));
  const framedT5 = frameT5Ids(t5.encode(long.text), t5.special, 256);
  expect(framedT5[255]).toBe(1);
});
