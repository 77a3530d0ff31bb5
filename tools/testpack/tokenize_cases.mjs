// Encodes texts with @huggingface/tokenizers for the toy tokenizers of the test pack; build.py compares the ids
// with its independent Python encoder (tools/testpack/tokenizers_toy.py) and records them as reference ids.
//   node tools/testpack/tokenize_cases.mjs < {"pack": "<dir>", "texts": [...]}  ->  JSON on stdout
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

const input = JSON.parse(readFileSync(0, 'utf8'));
const load = (dir) => {
  const json = JSON.parse(readFileSync(join(input.pack, dir, 'tokenizer.json'), 'utf8'));
  const config = JSON.parse(readFileSync(join(input.pack, dir, 'tokenizer_config.json'), 'utf8'));
  return { tokenizer: new Tokenizer(json, config), config };
};
const libs = { clip: load('tokenizer'), t5: load('tokenizer_2') };

/** The id of a special token named in tokenizer_config.json (a string or an AddedToken object). */
const specialId = ({ tokenizer, config }, key) => {
  const token = config[key];
  if (token === undefined || token === null) return undefined;
  return tokenizer.token_to_id(typeof token === 'string' ? token : token.content);
};

const out = { cases: [], specials: {} };
for (const text of input.texts) {
  const c = { text };
  for (const [name, { tokenizer }] of Object.entries(libs)) {
    const raw = tokenizer.encode(text, { add_special_tokens: false });
    c[name] = { tokenizers: raw.ids, with_specials: tokenizer.encode(text).ids, tokens: raw.tokens,
      decoded: raw.ids.length ? tokenizer.decode(raw.ids, { skip_special_tokens: true }) : '' };
  }
  out.cases.push(c);
}
out.specials.clip = Object.fromEntries(['bos', 'eos', 'pad', 'unk'].map((k) => [k, specialId(libs.clip, `${k}_token`)]));
out.specials.t5 = Object.fromEntries(['eos', 'pad', 'unk'].map((k) => [k, specialId(libs.t5, `${k}_token`)]));
process.stdout.write(JSON.stringify(out));
