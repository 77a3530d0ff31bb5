/**
 * The CLI's safety checker: from a pack or `--safety-checker <onnx>` (with its Hugging Face configs or
 * `--safety-config`), per-image flags and scores printed, placeholders written, `--no-safety-checker`, JSON output.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { decodePng, TEST_PACK_DIR } from '../../support/fixtures.js';
import { FLAGGED_SEED, MIXED_BATCH, SAFETY_CHECKER_NAME, SAFETY_MODEL, safetyPackFiles, writePack } from '../../support/safety-pack.js';
import { captureCliOutput } from '../../support/cli-output.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-cli-safety-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const SAFETY_PACK = writePack(join(tmp, 'pack'), safetyPackFiles());
const cli = captureCliOutput(() => (process.env.XDG_CACHE_HOME = mkdtempSync(join(tmp, 'cache-'))));

const request = (seed: number, extra: string[] = []) => ['generate', '--prompt', 'a red fox in the snow', '--seed', String(seed), '--steps', '2', '--width', '32', '--height', '32', ...extra];
const black = (path: string) => decodePng(new Uint8Array(readFileSync(path))).rgb.every((v) => v === 0);

describe('npm run flux -- generate with a safety checker', () => {
  it('from the pack: prints each image’s flag and score, writes placeholders for flagged ones', async () => {
    const out = join(tmp, 'pack-batch.png');
    const code = await main(request(MIXED_BATCH.seed, ['--pack', SAFETY_PACK, '--num-images', '4', '--out', out]));
    expect(code, cli.stderr).toBe(0);
    expect(cli.stderr).toContain(`safety checker: ${SAFETY_CHECKER_NAME} (flags nsfw ≥ 0.5)`);
    expect(cli.stdout).toContain(`safety checker: ${SAFETY_CHECKER_NAME} (flagged when the unsafe score ≥ 0.5)`);
    const lines = cli.stdout.split('\n').filter((l) => /^ {2}image \d: /.test(l));
    expect(lines).toHaveLength(4);
    MIXED_BATCH.flags.forEach((f, i) => {
      expect(lines[i]).toMatch(f ? /^ {2}image \d: FLAGGED, replaced by a black placeholder {2}score 0\.9\d+/ : /^ {2}image \d: ok {2}score 0\.0\d+/);
      expect(black(join(tmp, `pack-batch-${i}.png`))).toBe(f);
    });
  });

  it('--json carries has_nsfw_concepts and safety; --no-safety-checker turns it off and says so', async () => {
    expect(await main(request(FLAGGED_SEED, ['--pack', SAFETY_PACK, '--out', join(tmp, 'j.png'), '--json'])), cli.stderr).toBe(0);
    const r = JSON.parse(cli.stdout) as { has_nsfw_concepts: boolean[]; safety: { ran: boolean; checker: string; scores: number[]; threshold: number } };
    expect(r.has_nsfw_concepts).toEqual([true]);
    expect(r.safety).toMatchObject({ ran: true, checker: SAFETY_CHECKER_NAME, threshold: 0.5 });
    expect(r.safety.scores[0]).toBeGreaterThan(0.9);

    cli.stdout = '';
    expect(await main(request(FLAGGED_SEED, ['--pack', SAFETY_PACK, '--out', join(tmp, 'off.png'), '--no-safety-checker'])), cli.stderr).toBe(0);
    expect(cli.stdout).toContain('safety checker: not run (disabled by enable_safety_checker: false)');
    expect(black(join(tmp, 'off.png'))).toBe(false);
  });

  it('a pack without a checker: not run, and why', async () => {
    expect(await main(request(FLAGGED_SEED, ['--pack', TEST_PACK_DIR, '--out', join(tmp, 'none.png')])), cli.stderr).toBe(0);
    expect(cli.stdout).toContain('safety checker: not run (this model pack has no safety checker); has_nsfw_concepts is false only because nothing was checked');
  });

  it('--safety-checker <onnx> with the Hugging Face configs beside it (an optimum export folder)', async () => {
    const out = join(tmp, 'loose.png');
    const code = await main(request(MIXED_BATCH.seed, ['--pack', TEST_PACK_DIR, '--safety-checker', SAFETY_MODEL, '--num-images', '4', '--out', out, '--json']));
    expect(code, cli.stderr).toBe(0);
    const r = JSON.parse(cli.stdout) as { has_nsfw_concepts: boolean[]; safety: { checker: string } };
    expect(r.has_nsfw_concepts).toEqual(MIXED_BATCH.flags);
    expect(r.safety.checker).toBe(SAFETY_CHECKER_NAME);
  });

  it('--safety-checker without configs needs --safety-config, which can describe it whole', async () => {
    const dir = join(tmp, 'bare');
    mkdirSync(dir, { recursive: true });
    copyFileSync(SAFETY_MODEL, join(dir, 'classifier.onnx'));
    const args = request(FLAGGED_SEED, ['--pack', TEST_PACK_DIR, '--safety-checker', join(dir, 'classifier.onnx'), '--out', join(tmp, 'bare.png')]);
    expect(await main(args)).toBe(2);
    expect(cli.stderr).toMatch(/no preprocessor_config\.json \+ config\.json beside it.*--safety-config/);

    const cfg = join(dir, 'safety.json');
    writeFileSync(cfg, JSON.stringify({
      model: 'my red checker',
      preprocess: { height: 24, width: 24, fit: 'stretch', resample: 'bicubic', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
      labels: ['normal', 'nsfw'],
      unsafeLabels: ['nsfw'],
      scores: 'softmax',
      threshold: 0.5,
    }));
    cli.stdout = '';
    expect(await main([...args, '--safety-config', cfg]), cli.stderr).toBe(0);
    expect(cli.stdout).toContain('safety checker: my red checker');
    expect(cli.stdout).toMatch(/image 0: FLAGGED/);

    writeFileSync(cfg, JSON.stringify({ labels: ['normal', 'nsfw'] }));
    cli.stderr = '';
    expect(await main([...args, '--safety-config', cfg])).toBe(2);
    expect(cli.stderr).toMatch(/safety\.json: safety_checker\.preprocess: must be an object/);
  });

  it('conflicting flags are refused', async () => {
    expect(await main(request(1, ['--pack', SAFETY_PACK, '--out', join(tmp, 'x.png'), '--no-safety-checker', '--safety-checker', SAFETY_MODEL]))).toBe(2);
    expect(cli.stderr).toMatch(/--no-safety-checker.*contradicts --safety-checker/);
    cli.stderr = '';
    expect(await main(request(1, ['--pack', SAFETY_PACK, '--out', join(tmp, 'x.png'), '--safety-config', 'x.json']))).toBe(2);
    expect(cli.stderr).toMatch(/--safety-config.*goes with --safety-checker/);
  });
});
