/**
 * `npm run pack` never destroys the pack already in --out: it builds in a temporary sibling folder and renames it
 * into place only on success; every input (files, graph I/O, tokenizers, --out) is checked before the first
 * component is converted.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertPack, type ConvertOptions } from '../../../src/convert/index.js';
import { main as packMain } from '../../../src/convert/main.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';
import { captureCliOutput } from '../../support/cli-output.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-convert-out-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const src = (c: string) => join(TEST_PACK_DIR, c, 'model.onnx');
const cli = captureCliOutput();

/** Every file under dir (relative path → sha256). */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p, `${rel}${e}/`);
      else out[`${rel}${e}`] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir, '');
  return out;
}

const parent = join(tmp, 'packs');
const out = join(parent, 'pack');
const full = (extra: Partial<ConvertOptions> = {}, log?: (l: string) => void): ConvertOptions => ({
  transformer: src('transformer'),
  vaeDecoder: src('vae_decoder'),
  clip: src('clip'),
  t5: src('t5'),
  tokenizers: TEST_PACK_DIR,
  quant: 'fp32',
  verifyMb: 0,
  reconRows: 0,
  out,
  ...(log ? { log } : {}),
  ...extra,
});
let before: Record<string, string>;

beforeAll(async () => {
  mkdirSync(parent, { recursive: true });
  await convertPack(full());
  writeFileSync(join(out, 'NOTES.txt'), 'mine, not the converter’s');
  before = snapshot(out);
  expect(Object.keys(before)).toContain('manifest.json');
});

/** The old pack is byte-identical and no temporary folder is left beside it. */
function expectIntact(): void {
  expect(snapshot(out)).toEqual(before);
  expect(readdirSync(parent)).toEqual(['pack']);
}

describe('a failed conversion keeps the pack in --out', () => {
  it('a failure in the middle (after the transformer was written) leaves the old pack and no temp folder', async () => {
    const lines: string[] = [];
    const log = (l: string) => {
      lines.push(l);
      if (l.startsWith('vae_decoder: reading')) throw new Error('simulated failure while converting the VAE');
    };
    await expect(convertPack(full({ quant: 'int8' }, log))).rejects.toThrow(/simulated failure/);
    expect(lines.some((l) => l.startsWith('transformer ['))).toBe(true); // the transformer was converted first
    expectIntact();
  });

  it('a successful conversion replaces the pack, keeps unrelated files and leaves no temp folder', async () => {
    const other = join(tmp, 'replace');
    cpSync(out, other, { recursive: true });
    const r = await convertPack(full({ quant: 'int8', out: other }));
    expect(r.report.out).toBe(other);
    const after = snapshot(other);
    expect(after['NOTES.txt']).toBe(before['NOTES.txt']);
    expect(after['transformer/model.onnx']).not.toBe(before['transformer/model.onnx']);
    expect(JSON.parse(readFileSync(join(other, 'manifest.json'), 'utf8')).name).toMatch(/int8/);
    expect(readdirSync(tmp).filter((e) => e.includes('replace'))).toEqual(['replace']);
  });
});

describe('every input is checked before the first component is converted', () => {
  const bad = join(tmp, 'bad');
  mkdirSync(bad, { recursive: true });
  // Tokenizer folders: one without T5's tokenizer.json, one with a broken CLIP tokenizer.json.
  cpSync(join(TEST_PACK_DIR, 'tokenizer'), join(bad, 'tok-missing', 'tokenizer'), { recursive: true });
  cpSync(join(TEST_PACK_DIR, 'tokenizer'), join(bad, 'tok-broken', 'tokenizer'), { recursive: true });
  cpSync(join(TEST_PACK_DIR, 'tokenizer_2'), join(bad, 'tok-broken', 'tokenizer_2'), { recursive: true });
  writeFileSync(join(bad, 'tok-broken', 'tokenizer', 'tokenizer.json'), '{"model": ');
  // A VAE whose external data file is shorter than its tensors: copy the transformer's graph, cut its data.
  mkdirSync(join(bad, 'short'), { recursive: true });
  cpSync(src('transformer'), join(bad, 'short', 'model.onnx'));
  writeFileSync(join(bad, 'short', 'model.onnx.data'), readFileSync(join(TEST_PACK_DIR, 'transformer', 'model.onnx.data')).subarray(0, 1000));
  writeFileSync(join(bad, 'a-file'), 'x');

  it.each<[string, Partial<ConvertOptions>, RegExp]>([
    ['a missing T5 graph', { t5: join(bad, 'nope.onnx') }, /--t5: .*nope\.onnx.*(does not exist|no such file)/i],
    ['a folder given as the VAE', { vaeDecoder: bad }, /--vae-decoder: .*bad is not a file/],
    ['a transformer that is really a VAE', { transformer: src('vae_decoder') }, /--transformer: .*vae_decoder\/model\.onnx.* is not a FLUX transformer: .*no graph input for "hidden_states"/],
    ['a VAE that is really a transformer', { vaeDecoder: src('transformer') }, /--vae-decoder: .* is not a VAE decoder/],
    ['a truncated external data file', { transformer: join(bad, 'short', 'model.onnx') }, /model\.onnx\.data.* 1000 bytes.*needs/],
    ['a tokenizers folder without tokenizer_2/tokenizer.json', { tokenizers: join(bad, 'tok-missing') }, /tok-missing\/tokenizer_2\/tokenizer\.json is missing/],
    ['a tokenizer.json that does not parse', { tokenizers: join(bad, 'tok-broken') }, /tok-broken\/tokenizer\/tokenizer\.json/],
    ['--out that is a file', { out: join(bad, 'a-file') }, /--out: .*a-file: .*a-file is a file, not a folder/],
    ['--out under a file', { out: join(bad, 'a-file', 'pack') }, /--out: .*a-file.* is a file, not a folder/],
    ['--out that cannot be written', { out: '/sys/flux-pack' }, /--out: \/sys\/flux-pack: cannot write in \/sys/],
  ])('%s', async (_what, extra, message) => {
    const lines: string[] = [];
    await expect(convertPack(full(extra, (l) => lines.push(l)))).rejects.toThrow(message);
    expect(lines.filter((l) => /: reading /.test(l))).toEqual([]); // nothing was converted
    expectIntact();
  });

  it('npm run pack: an unwritable --report-json fails before converting', async () => {
    const code = await packMain(['--transformer', src('transformer'), '--vae-decoder', src('vae_decoder'), '--quant', 'fp32', '--out', out, '--report-json', '/sys/report.json']);
    expect(code).toBe(1);
    expect(cli.stderr).toMatch(/--report-json: cannot write \/sys\/report\.json/);
    expect(cli.stderr).not.toMatch(/: reading /);
    expectIntact();
  });

  it('npm run pack: numeric flags are parsed strictly', async () => {
    for (const [flag, value] of [['--block-size', '0x20'], ['--shard-mb', '1e'], ['--recon-rows', '2.5'], ['--verify-mb', ' 8'], ['--embeddings-min', '-1']]) {
      const code = await packMain(['--transformer', src('transformer'), '--vae-decoder', src('vae_decoder'), '--quant', 'fp32', '--out', out, '--quiet', `${flag}=${value}`]);
      expect(code, `${flag} ${value}`).toBe(1);
      expect(cli.stderr).toContain(`${flag}: must be`);
      expect(cli.stderr).toContain(JSON.stringify(value));
    }
    expectIntact();
  });
});
