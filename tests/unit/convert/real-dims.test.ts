/**
 * Bounded memory at real FLUX dimensions: a synthetic transformer with hidden 3072 / MLP 12288 / joint 4096 and one
 * double-stream + one single-stream block (535 M random fp32 weights, 2.0 GiB of external data) is generated
 * streaming, converted with --quant int4 in a child process, and the converter's peak RSS (its own max RSS from the
 * OS) must stay under 2 GB: the converter holds one tensor at a time, never the model. Prints throughput.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseManifest } from '../../../src/pack/manifest.js';
import { buildSyntheticFlux, REAL_FLUX_DIMS } from '../../../tools/synthetic-flux/build.js';
import { ROOT, TEST_PACK_DIR } from '../../support/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-real-dims-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('converter memory at real FLUX dimensions', () => {
  it('int4 conversion of a 2 GiB synthetic transformer peaks under 2 GB RSS', { timeout: 300_000 }, () => {
    const t0 = performance.now();
    const model = buildSyntheticFlux(join(tmp, 'src', 'model.onnx'), { ...REAL_FLUX_DIMS, double: 1, single: 1 });
    const genS = (performance.now() - t0) / 1000;
    expect(model.weightBytes).toBeGreaterThan(1.9e9);
    console.log(`[real-dims] generated ${(model.params / 1e6).toFixed(1)} M params (${(model.weightBytes / 2 ** 30).toFixed(2)} GiB) in ${genS.toFixed(1)} s`);

    const out = join(tmp, 'pack');
    const reportPath = join(tmp, 'report.json');
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'src/convert/main.ts', '--transformer', model.modelPath, '--vae-decoder', join(TEST_PACK_DIR, 'vae_decoder/model.onnx'),
        '--quant', 'int4', '--block-size', '32', '--out', out, '--verify-mb', '512', '--report-json', reportPath, '--quiet'],
      { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24 },
    );
    if (r.status !== 0) throw new Error(`converter failed (${r.status}): ${r.stderr}`);
    console.log(r.stdout.trim().split('\n').map((l) => `[real-dims] ${l}`).join('\n'));
    const rep = JSON.parse(readFileSync(reportPath, 'utf8')) as {
      peakRssBytes: number; maxRssBytes: number; bytesIn: number; seconds: number;
      components: { component: string; bytesBefore: number; bytesAfter: number; recon: { relError: number; cosine: number }; verify?: { skipped?: string } }[];
    };
    const gbps = rep.bytesIn / 1e9 / rep.seconds;
    console.log(`[real-dims] peak RSS ${(rep.maxRssBytes / 2 ** 20).toFixed(0)} MiB (OS max RSS), ${(rep.peakRssBytes / 2 ** 20).toFixed(0)} MiB sampled; ${(rep.bytesIn / 1e9).toFixed(2)} GB in ${rep.seconds.toFixed(1)} s = ${gbps.toFixed(3)} GB/s`);
    expect(rep.maxRssBytes).toBeLessThan(2e9);
    expect(rep.peakRssBytes).toBeLessThan(2e9);
    expect(rep.bytesIn).toBeGreaterThanOrEqual(model.weightBytes);

    const t = rep.components.find((c) => c.component === 'transformer')!;
    expect(t.verify?.skipped).toMatch(/--verify-mb/);
    expect(t.recon.relError).toBeLessThan(0.1); // int4 block 32 on uniform random weights: ≈ 0.055
    expect(t.bytesBefore / t.bytesAfter).toBeGreaterThan(5.5);
    const m = parseManifest(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')));
    for (const f of m.files) expect(f.size).toBeLessThanOrEqual(512 * 2 ** 20);
  });
});
