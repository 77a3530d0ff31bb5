/**
 * What `convertPack` checks before it converts anything, and how it writes --out without ever destroying the pack
 * already there: the new pack is built in a temporary sibling folder and renamed into place only on success.
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { invalidInput, isFluxError } from '../errors.js';
import type { ComponentName } from '../pack/manifest.js';
import { loadClipTokenizer, loadT5Tokenizer } from '../pipeline/tokenizers.js';
import { bindComponentIo } from '../runtime/component-io.js';
import { readModel, type LoadedModel } from './model-reader.js';

/** The entries of --out that a conversion writes (and replaces); anything else there is kept. */
export const PACK_ENTRIES = ['transformer', 'vae_decoder', 'clip', 't5', 'safety_checker', 'tokenizer', 'tokenizer_2', 'manifest.json'];

const FLAG: Record<ComponentName, string> = {
  transformer: '--transformer',
  vae_decoder: '--vae-decoder',
  clip: '--clip',
  t5: '--t5',
  safety_checker: '--safety-checker',
};
const WHAT: Record<ComponentName, string> = {
  transformer: 'a FLUX transformer',
  vae_decoder: 'a VAE decoder',
  clip: 'a CLIP text encoder',
  t5: 'a T5 text encoder',
  safety_checker: 'an image classifier',
};

/** Throw unless `path` is an existing, readable regular file. */
export function checkReadableFile(path: string, flag: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw invalidInput(flag, code === 'ENOENT' ? `${path} does not exist` : `cannot read ${path} (${code ?? (e as Error).message})`);
  }
  try {
    if (!fstatSync(fd).isFile()) throw invalidInput(flag, `${path} is not a file`);
  } finally {
    closeSync(fd);
  }
}

/** The output names the converter declares in the manifest for a graph with several outputs (see convertPack). */
function declaredOutputs(name: ComponentName, outputs: string[]): Record<string, string> | undefined {
  if (outputs.length < 2) return undefined;
  if (name === 't5') {
    const h = ['last_hidden_state', 'text_embeddings', 'hidden_states'].find((p) => outputs.includes(p));
    return h ? { last_hidden_state: h } : undefined;
  }
  return undefined;
}

/**
 * Read each graph (structure only) and check that it binds as its component (the same rules the runtime uses) and
 * that its external data files hold every tensor. Returns the models for the conversion to reuse.
 */
export function checkGraphs(components: readonly (readonly [ComponentName, string])[], declared: Partial<Record<ComponentName, { inputs?: Record<string, string>; outputs?: Record<string, string> }>> = {}): Map<ComponentName, LoadedModel> {
  const models = new Map<ComponentName, LoadedModel>();
  for (const [name, src] of components) checkReadableFile(src, FLAG[name]);
  for (const [name, src] of components) {
    let model: LoadedModel;
    try {
      model = readModel(src);
    } catch (e) {
      if (isFluxError(e)) throw e; // already names the graph (e.g. an external-data location outside its folder)
      throw invalidInput(FLAG[name], `${src}: ${(e as Error).message}`);
    }
    const inits = new Set(model.initializers.keys());
    const inputNames = (model.graph.input ?? []).map((i) => i.name ?? '').filter((n) => !inits.has(n));
    const outputNames = (model.graph.output ?? []).map((o) => o.name ?? '');
    const outputs = declared[name]?.outputs ?? declaredOutputs(name, outputNames);
    try {
      bindComponentIo(name, { inputNames, outputNames }, { ...(declared[name]?.inputs ? { inputs: declared[name].inputs } : {}), ...(outputs ? { outputs } : {}) });
    } catch (e) {
      throw invalidInput(FLAG[name], `${src} is not ${WHAT[name]}: ${(e as Error).message}`);
    }
    const sizes = new Map<string, number>();
    for (const t of model.initializers.values()) {
      if (t.source.kind !== 'file') continue;
      const { path, offset, length } = t.source;
      let size = sizes.get(path);
      if (size === undefined) {
        try {
          checkReadableFile(path, FLAG[name]);
        } catch (e) {
          throw invalidInput(FLAG[name], `${src}: external data of "${t.name}": ${(e as Error).message.replace(/^[^:]+: /, '')}`);
        }
        size = statSync(path).size;
        sizes.set(path, size);
      }
      if (offset + length > size) {
        throw invalidInput(FLAG[name], `${path} has ${size} bytes, but initializer "${t.name}" of ${src} needs bytes ${offset}–${offset + length}`);
      }
    }
    models.set(name, model);
  }
  return models;
}

const TOKENIZER_HINT = {
  clip: (dir: string) =>
    `Make it from vocab.json/merges.txt with: python -c "from transformers import CLIPTokenizerFast; CLIPTokenizerFast.from_pretrained('${dir}').save_pretrained('${dir}')"`,
  t5: () => 'The FLUX.1-schnell repo ships tokenizer_2/tokenizer.json.',
};

function readJson(path: string, flag: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw invalidInput(flag, `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw invalidInput(flag, `${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** --tokenizers must hold tokenizer/ (CLIP) and tokenizer_2/ (T5) with a tokenizer.json that loads. */
export function checkTokenizers(dir: string): void {
  const flag = '--tokenizers';
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw invalidInput(flag, `${dir} is not a folder`);
  for (const [key, folder] of [['clip', 'tokenizer'], ['t5', 'tokenizer_2']] as const) {
    const srcDir = join(dir, folder);
    const tj = join(srcDir, 'tokenizer.json');
    if (!existsSync(tj)) throw invalidInput(flag, `${tj} is missing. ${TOKENIZER_HINT[key](srcDir)}`);
    const json = readJson(tj, flag);
    const cj = join(srcDir, 'tokenizer_config.json');
    const config = existsSync(cj) ? readJson(cj, flag) : undefined;
    if (config !== undefined && (typeof config !== 'object' || config === null || Array.isArray(config))) throw invalidInput(flag, `${cj} must hold a JSON object`);
    try {
      if (key === 'clip') loadClipTokenizer(json, config as Record<string, unknown> | undefined, tj);
      else loadT5Tokenizer(json, config as Record<string, unknown> | undefined, tj);
    } catch (e) {
      throw invalidInput(flag, (e as Error).message);
    }
  }
}

/** The nearest existing folder at or above `path`, or the file that blocks it. */
function nearestExisting(path: string): { path: string; isDir: boolean } {
  let p = path;
  for (;;) {
    try {
      return { path: p, isDir: statSync(p).isDirectory() };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw invalidInput('--out', `cannot inspect ${p} (${code})`);
      const up = dirname(p);
      if (up === p) return { path: p, isDir: true };
      p = up;
    }
  }
}

/**
 * Check --out (a folder or nothing yet, writable) and create the temporary sibling the pack is built in.
 * Returns the temporary folder.
 */
export function prepareOutput(out: string): string {
  const at = nearestExisting(out);
  if (!at.isDir) throw invalidInput('--out', `${out}: ${at.path} is a file, not a folder`);
  const parent = dirname(out);
  const work = join(parent, `.${basename(out)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(parent, { recursive: true });
    mkdirSync(work);
  } catch (e) {
    throw invalidInput('--out', `${out}: cannot write in ${parent} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return work;
}

/**
 * Move the finished pack from `work` to `out`. An existing --out is renamed aside first and restored if the move
 * fails; its files that are not the converter's (PACK_ENTRIES) are carried over into the new pack.
 */
export function commitOutput(work: string, out: string): void {
  if (!existsSync(out)) {
    renameSync(work, out);
    return;
  }
  const old = `${work}.old`;
  renameSync(out, old);
  try {
    renameSync(work, out);
  } catch (e) {
    renameSync(old, out);
    throw e;
  }
  for (const e of readdirSync(old)) {
    if (!PACK_ENTRIES.includes(e)) renameSync(join(old, e), join(out, e));
  }
  rmSync(old, { recursive: true, force: true });
}

/** Remove the temporary folder of a failed conversion. */
export function discardOutput(work: string): void {
  rmSync(work, { recursive: true, force: true });
}
