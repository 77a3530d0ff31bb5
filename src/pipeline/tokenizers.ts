/**
 * Prompt tokenizers for CLIP (BPE) and T5 (Unigram), loaded from Hugging Face `tokenizer.json` files with
 * @huggingface/tokenizers (the tokenizer engine of transformers.js; pure JS, no I/O). They produce raw ids;
 * framing (BOS/EOS/padding/truncation) is done by tokens.ts so it is exactly FLUX's.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { FluxError } from '../errors.js';
import { CLIP_SPECIAL_TOKENS, T5_SPECIAL_TOKENS, type ClipSpecialTokens, type T5SpecialTokens } from './config.js';

export interface ClipTokenizer {
  /** Raw BPE ids without BOS/EOS. */
  encode(text: string): number[];
  readonly special: ClipSpecialTokens;
}
export interface T5Tokenizer {
  /** Raw SentencePiece ids without EOS. */
  encode(text: string): number[];
  readonly special: T5SpecialTokens;
}

/** `source` names the file the JSON came from, for the message. */
function build(json: unknown, config: unknown, what: string, source: string | undefined): Tokenizer {
  try {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('tokenizer.json must hold a JSON object');
    return new Tokenizer(json, (config ?? {}) as object);
  } catch (e) {
    throw new FluxError('invalid_manifest', `Could not load the ${what} tokenizer${source ? ` from ${source}` : ''}: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
      ...(source ? { details: { file: source } } : {}),
    });
  }
}

function idOf(tok: Tokenizer, token: unknown, fallback: number): number {
  const name = typeof token === 'string' ? token : typeof token === 'object' && token && 'content' in token ? String((token as { content: unknown }).content) : undefined;
  return (name !== undefined ? tok.token_to_id(name) : undefined) ?? fallback;
}

export function loadClipTokenizer(json: unknown, config?: Record<string, unknown>, source?: string): ClipTokenizer {
  const tok = build(json, config, 'CLIP', source);
  const bos = idOf(tok, config?.bos_token ?? '<|startoftext|>', CLIP_SPECIAL_TOKENS.bos);
  const eos = idOf(tok, config?.eos_token ?? '<|endoftext|>', CLIP_SPECIAL_TOKENS.eos);
  // FLUX's tokenizer pads with <|endoftext|> (special_tokens_map.json); respect a config that says otherwise.
  const pad = idOf(tok, config?.pad_token ?? '<|endoftext|>', eos);
  return {
    special: { bos, eos, pad },
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
  };
}

export function loadT5Tokenizer(json: unknown, config?: Record<string, unknown>, source?: string): T5Tokenizer {
  const tok = build(json, config, 'T5', source);
  const eos = idOf(tok, config?.eos_token ?? '</s>', T5_SPECIAL_TOKENS.eos);
  const pad = idOf(tok, config?.pad_token ?? '<pad>', T5_SPECIAL_TOKENS.pad);
  return {
    special: { eos, pad },
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
  };
}
