// Encodes texts with @huggingface/tokenizers and with transformers.js (CLIPTokenizer / T5Tokenizer)
// for the toy tokenizers of the test pack. Called by build.py:
//   node tools/testpack/tokenize_cases.mjs < {"pack": "<dir>", "texts": [...]}  ->  JSON on stdout
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { CLIPTokenizer, T5Tokenizer } from '@huggingface/transformers';

const input = JSON.parse(readFileSync(0, 'utf8'));
const load = (dir) => [
  JSON.parse(readFileSync(join(input.pack, dir, 'tokenizer.json'), 'utf8')),
  JSON.parse(readFileSync(join(input.pack, dir, 'tokenizer_config.json'), 'utf8')),
];
const [clipJson, clipCfg] = load('tokenizer');
const [t5Json, t5Cfg] = load('tokenizer_2');

const libs = {
  clip: { tokenizers: new Tokenizer(clipJson, clipCfg), transformers: new CLIPTokenizer(clipJson, clipCfg) },
  t5: { tokenizers: new Tokenizer(t5Json, t5Cfg), transformers: new T5Tokenizer(t5Json, t5Cfg) },
};

const out = { cases: [], specials: {} };
for (const text of input.texts) {
  const c = { text };
  for (const [name, l] of Object.entries(libs)) {
    const a = l.tokenizers.encode(text, { add_special_tokens: false }).ids;
    const b = l.transformers.encode(text, { add_special_tokens: false });
    const withSpecials = l.tokenizers.encode(text).ids;
    const tokens = l.tokenizers.encode(text, { add_special_tokens: false }).tokens;
    c[name] = { tokenizers: a, transformers: Array.from(b, Number), with_specials: withSpecials, tokens,
      decoded: a.length ? l.tokenizers.decode(a, { skip_special_tokens: true }) : '' };
  }
  out.cases.push(c);
}
out.specials.clip = {
  bos: libs.clip.transformers.bos_token_id, eos: libs.clip.transformers.eos_token_id,
  pad: libs.clip.transformers.pad_token_id, unk: libs.clip.transformers.unk_token_id,
};
out.specials.t5 = {
  eos: libs.t5.transformers.eos_token_id, pad: libs.t5.transformers.pad_token_id, unk: libs.t5.transformers.unk_token_id,
};
process.stdout.write(JSON.stringify(out));
