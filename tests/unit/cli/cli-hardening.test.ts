/**
 * CLI hardening: prompts from a file or stdin (long --prompt arguments crash onnxruntime-node, so they are refused
 * before any session), output paths checked before generation, model-config bounds from flags and manifests,
 * tokenizer errors that name the file, embeddings checked against the transformer's declared shape, strict
 * numbers and strict .npy sizes. No error ends in a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main, MAX_PROMPT_ARG_BYTES } from '../../../src/cli/main.js';
import { encodeNpy, parseNpy } from '../../../src/cli/npy.js';
import { parseManifest } from '../../../src/pack/manifest.js';
import { referenceCases, ROOT, TEST_PACK_DIR } from '../../support/fixtures.js';
import { captureCliOutput } from '../../support/cli-output.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-cli-hard-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cli = captureCliOutput(() => (process.env.XDG_CACHE_HOME = join(tmp, 'cache')));
const ref = referenceCases().find((c) => c.name === 'steps2_80x48_b1')!;
const base = (extra: string[]) => ['generate', '--pack', TEST_PACK_DIR, '--steps', '1', '--image-size', '32x32', '--seed', '5', ...extra];
/** The CLI never printed a JS stack and never got as far as loading the model. */
function expectEarlyCleanError(): void {
  expect(cli.stderr).not.toMatch(/\n\s+at /);
  expect(cli.stderr).not.toMatch(/^model: /m);
}

/** The real CLI in a child process (argv limits and stdin are process-level). */
function spawnCli(args: string[], input?: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], {
    cwd: ROOT,
    input,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, XDG_CACHE_HOME: join(tmp, 'cache') },
  });
}

describe('prompts from a file or stdin; long --prompt refused before any session', () => {
  // 28–29 kB of argv segfaults onnxruntime-node 1.30 at session creation (measured: 28000 B ok, 29000 B exit 139).
  const long = 'a lighthouse at dusk, '.repeat(1500); // 33 kB

  it('a --prompt over the bound is refused with a pointer to --prompt-file, before the model loads', async () => {
    expect(MAX_PROMPT_ARG_BYTES).toBeLessThanOrEqual(16384);
    expect(await main(base(['--prompt', 'x'.repeat(MAX_PROMPT_ARG_BYTES + 1), '--out', join(tmp, 'l.png')]))).toBe(2);
    expect(cli.stderr).toMatch(new RegExp(`--prompt: is ${MAX_PROMPT_ARG_BYTES + 1} bytes; at most ${MAX_PROMPT_ARG_BYTES} fit on the command line.*--prompt-file`));
    expectEarlyCleanError();
    // Multi-byte characters count in UTF-8 bytes.
    expect(await main(base(['--prompt', 'é'.repeat(MAX_PROMPT_ARG_BYTES / 2 + 1), '--out', join(tmp, 'l.png')]))).toBe(2);
    expect(cli.stderr).toMatch(/--prompt: is \d+ bytes/);
  });

  it('--prompt-file gives the same image as --prompt (one trailing newline dropped)', async () => {
    writeFileSync(join(tmp, 'p.txt'), 'a red fox in the snow\n');
    expect(await main(base(['--prompt', 'a red fox in the snow', '--out', join(tmp, 'arg.png')])), cli.stderr).toBe(0);
    expect(await main(base(['--prompt-file', join(tmp, 'p.txt'), '--out', join(tmp, 'file.png')])), cli.stderr).toBe(0);
    expect(readFileSync(join(tmp, 'file.png'))).toEqual(readFileSync(join(tmp, 'arg.png')));
  });

  it('--prompt-file errors: with --prompt, missing, a folder, not UTF-8, too large', async () => {
    const cases: [string[], RegExp][] = [
      [['--prompt', 'x', '--prompt-file', join(tmp, 'p.txt')], /--prompt-file: give either --prompt or --prompt-file, not both/],
      [['--prompt-file', join(tmp, 'nope.txt')], /--prompt-file: cannot read .*nope\.txt \(ENOENT\)/],
      [['--prompt-file', tmp], /--prompt-file: .* is a folder/],
      [['--prompt-file', join(tmp, 'latin1.txt')], /--prompt-file: .*latin1\.txt is not UTF-8 text/],
      [['--prompt-file', join(tmp, 'big.txt')], /--prompt-file: .*big\.txt is larger than 1 MiB/],
    ];
    writeFileSync(join(tmp, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    writeFileSync(join(tmp, 'big.txt'), Buffer.alloc(2 ** 20 + 1, 0x61));
    for (const [extra, message] of cases) {
      expect(await main(base([...extra, '--out', join(tmp, 'pf.png')])), extra.join(' ')).toBe(2);
      expect(cli.stderr).toMatch(message);
      expectEarlyCleanError();
    }
  });

  it('in a real process: a 33 kB --prompt exits 2 with the message (not 139), the same prompt from stdin and from a file works', () => {
    const argv = spawnCli(base(['--prompt', long, '--out', join(tmp, 'argv.png')]));
    expect(argv.status, argv.stderr).toBe(2);
    expect(argv.stderr).toMatch(/--prompt: is 33000 bytes/);
    const stdin = spawnCli(base(['--prompt-file', '-', '--out', join(tmp, 'stdin.png')]), long);
    expect(stdin.status, stdin.stderr).toBe(0);
    writeFileSync(join(tmp, 'long.txt'), long);
    const file = spawnCli(base(['--prompt-file', join(tmp, 'long.txt'), '--out', join(tmp, 'longfile.png')]));
    expect(file.status, file.stderr).toBe(0);
    expect(readFileSync(join(tmp, 'stdin.png'))).toEqual(readFileSync(join(tmp, 'longfile.png')));
  });
});

describe('paths are checked before generation, without stack traces', () => {
  mkdirSync(join(tmp, 'a-dir.png'), { recursive: true });
  writeFileSync(join(tmp, 'a-file'), 'x');
  it.each<[string, string[], RegExp]>([
    ['--pack pointing at a file', ['--pack', join(ROOT, 'README.md')], /--pack: .*README\.md is a file, not a pack folder/],
    ['--out in an unwritable folder', ['--out', '/sys/flux.png'], /--out: cannot write \/sys\/flux\.png: .*\/sys.*(EACCES|EPERM|EROFS)/],
    ['--out under a file', ['--out', join(tmp, 'a-file', 'x.png')], /--out: cannot write .*a-file\/x\.png: .*a-file is a file, not a folder/],
    ['--out folder that is a file', ['--out', join(tmp, 'a-file')], /--out: cannot write into .*a-file: it is a file, not a folder/],
    ['--out image path that is a folder', ['--out', join(tmp, 'a-dir.png')], /--out: cannot write .*a-dir\.png: it is a folder/],
    ['--save-latents unwritable', ['--save-latents', '/sys/l.npy'], /--save-latents: cannot write \/sys\/l\.npy/],
  ])('%s', async (_what, extra, message) => {
    const args = base(['--prompt', 'x', ...extra]);
    if (!extra.includes('--out')) args.push('--out', join(tmp, 'ok.png'));
    const code = await main(args);
    expect(code).toBe(2);
    expect(cli.stderr).toMatch(message);
    expectEarlyCleanError();
  });

  it('an unexpected error prints its message, not a stack trace', async () => {
    // A manifest.json that is a folder: a read error the CLI has no specific message for.
    const dir = join(tmp, 'weird-pack');
    mkdirSync(join(dir, 'manifest.json'), { recursive: true });
    expect(await main(base(['--pack', dir, '--prompt', 'x', '--out', join(tmp, 'w.png')]))).toBe(1);
    expect(cli.stderr).toMatch(/^error.*EISDIR/m);
    expect(cli.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('model-config bounds, from flags and from manifests', () => {
  it.each<[string, string, RegExp]>([
    ['--vae-scale-factor', '3', /--vae-scale-factor: must be a power of two between 1 and 16, got 3/],
    ['--vae-scale-factor', '32', /--vae-scale-factor: must be a power of two between 1 and 16, got 32/],
    ['--latent-channels', '1000', /--latent-channels: must be a positive integer between 1 and 128, got 1000/],
    ['--latent-channels', '2.5', /--latent-channels: must be a positive integer between 1 and 128, got 2\.5/],
    ['--t5-max-length', '100000', /--t5-max-length: must be a positive integer between 1 and 512, got 100000/],
    ['--t5-max-length', '0', /--t5-max-length: must be a positive integer between 1 and 512, got 0/],
  ])('%s %s', async (flag, value, message) => {
    const t0 = performance.now();
    expect(await main(base(['--prompt', 'x', flag, value, '--out', join(tmp, 'c.png')]))).toBe(2);
    expect(cli.stderr).toMatch(message);
    expectEarlyCleanError();
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('a manifest with config.vaeScaleFactor 3 or t5MaxLength 100000 is refused on its field', async () => {
    const m = JSON.parse(readFileSync(join(TEST_PACK_DIR, 'manifest.json'), 'utf8'));
    expect(() => parseManifest({ ...m, config: { vaeScaleFactor: 3 } })).toThrow(/config\.vaeScaleFactor: must be a power of two between 1 and 16, got 3/);
    expect(() => parseManifest({ ...m, config: { t5MaxLength: 100000 } })).toThrow(/config\.t5MaxLength: must be a positive integer between 1 and 512/);
    expect(() => parseManifest({ ...m, config: { latentChannels: 4096 } })).toThrow(/config\.latentChannels: must be a positive integer between 1 and 128/);
    const dir = join(tmp, 'bad-config-pack');
    cpSync(TEST_PACK_DIR, dir, { recursive: true });
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...m, config: { vaeScaleFactor: 3 } }));
    expect(await main(base(['--pack', dir, '--prompt', 'x', '--out', join(tmp, 'm.png')]))).toBe(1);
    expect(cli.stderr).toMatch(/invalid_manifest.*config\.vaeScaleFactor: must be a power of two/);
  });
});

describe('tokenizer files that do not load are named', () => {
  const tok = (name: string, file: string, text: string) => {
    const d = join(tmp, name);
    cpSync(join(TEST_PACK_DIR, 'tokenizer'), d, { recursive: true });
    writeFileSync(join(d, file), text);
    return d;
  };
  const loose = (clipTok: string) => [
    'generate', '--transformer', join(TEST_PACK_DIR, 'transformer/model.onnx'), '--vae-decoder', join(TEST_PACK_DIR, 'vae_decoder/model.onnx'),
    '--clip', join(TEST_PACK_DIR, 'clip/model.onnx'), '--t5', join(TEST_PACK_DIR, 't5/model.onnx'),
    '--clip-tokenizer', clipTok, '--t5-tokenizer', join(TEST_PACK_DIR, 'tokenizer_2'), '--prompt', 'x', '--steps', '1', '--image-size', '32x32', '--out', join(tmp, 't.png'),
  ];
  it.each<[string, string, string, RegExp]>([
    ['tokenizer.json that is not JSON', 'tokenizer.json', '{"model": ', /--clip-tokenizer: .*tok-a\/tokenizer\.json is not valid JSON/],
    ['tokenizer.json that is not a tokenizer', 'tokenizer.json', '{"model": {"type": "nonsense"}}', /Could not load the CLIP tokenizer from .*tok-b\/tokenizer\.json/],
    ['tokenizer_config.json that is not JSON (was silently ignored)', 'tokenizer_config.json', '{', /--clip-tokenizer: .*tok-c\/tokenizer_config\.json is not valid JSON/],
  ])('%s', async (_what, file, text, message) => {
    const name = { 'tokenizer.json': text.startsWith('{"model": {') ? 'tok-b' : 'tok-a', 'tokenizer_config.json': 'tok-c' }[file]!;
    expect(await main(loose(tok(name, file, text)))).not.toBe(0);
    expect(cli.stderr).toMatch(message);
    expect(cli.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('a pack tokenizer that does not load is named too', () => {
  it('tokenizer.json of a pack that parses but is not a tokenizer (manifest sizes and hashes updated)', async () => {
    const dir = join(tmp, 'bad-tok-pack');
    cpSync(TEST_PACK_DIR, dir, { recursive: true });
    const bytes = Buffer.from('{"model": {"type": "nonsense"}}');
    writeFileSync(join(dir, 'tokenizer', 'tokenizer.json'), bytes);
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    const f = m.files.find((x: { path: string }) => x.path === 'tokenizer/tokenizer.json');
    Object.assign(f, { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
    expect(await main(base(['--pack', dir, '--prompt', 'x', '--out', join(tmp, 'bt.png')]))).toBe(1);
    expect(cli.stderr).toMatch(/Could not load the CLIP tokenizer from .*bad-tok-pack\/tokenizer\/tokenizer\.json/);
    expect(cli.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('embeddings and latents get field errors, not onnxruntime text', () => {
  const npy = (name: string, dims: number[]) => {
    const p = join(tmp, name);
    writeFileSync(p, encodeNpy(new Float32Array(dims.reduce((a, b) => a * b, 1)), dims));
    return p;
  };
  const embeds = (pe: string, pp: string, extra: string[] = []) =>
    main(['generate', '--pack', TEST_PACK_DIR, '--prompt-embeds', pe, '--pooled-prompt-embeds', pp, '--steps', '1', '--image-size', '32x32', '--out', join(tmp, 'e.png'), ...extra]);
  const pe = join(ref.dir, 'prompt_embeds.npy');
  const pp = join(ref.dir, 'pooled_prompt_embeds.npy');

  it.each<[string, () => Promise<number>, RegExp]>([
    ['prompt_embeds with the wrong width', () => embeds(npy('pe63.npy', [1, 7, 63]), pp), /prompt_embeds: the transformer takes \[B, L, 64\] \(encoder_hidden_states\), got \[1, 7, 63\]/],
    ['pooled_prompt_embeds with the wrong width', () => embeds(pe, npy('pp31.npy', [1, 31])), /pooled_prompt_embeds: the transformer takes \[B, 32\] \(pooled_projections\), got \[1, 31\]/],
    ['prompt_embeds of rank 2', () => embeds(npy('pe2.npy', [7, 64]), pp), /prompt_embeds: must have shape \[B, L, D\]/],
    ['latents with 15 channels', () => main(base(['--prompt', 'x', '--latents', npy('l15.npy', [1, 15, 4, 4]), '--out', join(tmp, 'e.png')])), /latents: must have 16 channels/],
    ['latents of rank 3', () => main(base(['--prompt', 'x', '--latents', npy('l3.npy', [16, 4, 4]), '--out', join(tmp, 'e.png')])), /latents: must have shape \[B, 16, h, w\]/],
  ])('%s', async (_what, run, message) => {
    expect(await run()).toBe(2);
    expect(cli.stderr).toMatch(message);
    expect(cli.stderr).not.toMatch(/Got invalid dimensions|Please fix either the inputs/);
  });
});

describe('strict numbers and strict .npy sizes', () => {
  it.each([
    ['--steps', '0x2'],
    ['--steps', '2abc'],
    ['--seed', '0b101'],
    ['--seed', '1e'],
    ['--num-images', ' 1'],
    ['--width', '0o100'],
    ['--height', ''],
    ['--vae-scaling-factor', '0x1'],
    ['--vae-shift-factor', 'Infinity'],
    ['--latent-channels', '16px'],
  ])('%s %j is refused', async (flag, value) => {
    const extra = flag === '--width' ? ['--height', '64'] : flag === '--height' ? ['--width', '64'] : [];
    const args = ['generate', '--pack', TEST_PACK_DIR, '--prompt', 'x', '--out', join(tmp, 'n.png'), `${flag}=${value}`, ...extra];
    expect(await main(args)).toBe(2);
    expect(cli.stderr).toContain(`${flag}: must be`);
    expect(cli.stderr).toContain(JSON.stringify(value));
    expectEarlyCleanError();
  });

  it('a .npy whose data is longer or shorter than its shape is refused', async () => {
    const good = encodeNpy(new Float32Array(6), [2, 3]);
    expect(parseNpy(good).dims).toEqual([2, 3]);
    const longer = Buffer.concat([Buffer.from(good), Buffer.alloc(4)]);
    const shorter = Buffer.from(good).subarray(0, good.length - 4);
    expect(() => parseNpy(longer, 'x.npy')).toThrow(/x\.npy: file holds 28 data bytes, shape \[2, 3\] of <f4 needs 24/);
    expect(() => parseNpy(shorter, 'x.npy')).toThrow(/x\.npy: file holds 20 data bytes, shape \[2, 3\] of <f4 needs 24/);
    writeFileSync(join(tmp, 'long-latents.npy'), Buffer.concat([Buffer.from(readFileSync(join(ref.dir, 'latents.npy'))), Buffer.alloc(64)]));
    expect(await main(base(['--prompt', 'x', '--latents', join(tmp, 'long-latents.npy'), '--out', join(tmp, 'n.png')]))).toBe(2);
    expect(cli.stderr).toMatch(/--latents: .*long-latents\.npy: file holds \d+ data bytes, shape \[1, 16, 6, 10\] of <f4 needs 3840/);
  });
});
