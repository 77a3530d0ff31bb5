/**
 * CLI behaviour: component overrides with differently-named graphs, reproducibility, and clear errors.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { parseNpy } from '../../../src/cli/npy.js';
import { decodePng, maxAbsDiff, MODELS_DIR, readNpyAny, referenceCases, TEST_PACK_DIR } from '../../support/fixtures.js';
import { captureCliOutput } from '../../support/cli-output.js';

const tmp = mkdtempSync(join(tmpdir(), 'flux-cli-'));
// Per-test verification cache, so a corrupted copy is always re-hashed.
const cli = captureCliOutput(() => (process.env.XDG_CACHE_HOME = mkdtempSync(join(tmp, 'cache-'))));

const ref = referenceCases().find((c) => c.name === 'steps2_80x48_b1')!;
const refArgs = (extra: string[] = []) => [
  'generate',
  '--latents', join(ref.dir, 'latents.npy'),
  '--prompt-embeds', join(ref.dir, 'prompt_embeds.npy'),
  '--pooled-prompt-embeds', join(ref.dir, 'pooled_prompt_embeds.npy'),
  '--steps', String(ref.steps),
  ...extra,
];

async function run(args: string[]): Promise<number> {
  return main(args);
}

function expectReferenceOutput(latentsPath: string, imagePath: string, pixelTolerance = 1) {
  const got = parseNpy(new Uint8Array(readFileSync(latentsPath)));
  expect(maxAbsDiff(got.data, readNpyAny(join(ref.dir, 'final_latents.npy')).data as Float32Array)).toBeLessThanOrEqual(1e-4);
  const png = decodePng(new Uint8Array(readFileSync(imagePath)));
  expect(maxAbsDiff(png.rgb, readNpyAny(join(ref.dir, 'image.npy')).data as Uint8Array)).toBeLessThanOrEqual(pixelTolerance);
}

describe('component overrides bind graphs by role, whatever the exporter named their I/O', () => {
  it('diffusers/optimum names (out_hidden_states, latent_sample → sample), no manifest', async () => {
    const [l, img] = [join(tmp, 'opt.npy'), join(tmp, 'opt.png')];
    const code = await run(refArgs(['--transformer', join(MODELS_DIR, 'transformer-optimum.onnx'), '--vae-decoder', join(MODELS_DIR, 'vae-optimum.onnx'), '--save-latents', l, '--out', img]));
    expect(code, cli.stderr).toBe(0);
    expectReferenceOutput(l, img);
  });

  it('TensorRT/BFL names (latent, images) from the pack graphs, as loose files', async () => {
    const [l, img] = [join(tmp, 'trt.npy'), join(tmp, 'trt.png')];
    const code = await run(
      refArgs(['--transformer', join(TEST_PACK_DIR, 'transformer/model.onnx'), '--vae-decoder', join(TEST_PACK_DIR, 'vae_decoder/model.onnx'), '--save-latents', l, '--out', img]),
    );
    expect(code, cli.stderr).toBe(0);
    expectReferenceOutput(l, img);
  });

  it('old 3-D img_ids/txt_ids graphs get [B, N, 3]', async () => {
    const [l, img] = [join(tmp, '3d.npy'), join(tmp, '3d.png')];
    const code = await run(refArgs(['--pack', TEST_PACK_DIR, '--transformer', join(MODELS_DIR, 'transformer-3d-ids.onnx'), '--save-latents', l, '--out', img]));
    expect(code, cli.stderr).toBe(0);
    expectReferenceOutput(l, img);
  });

  it('an fp16 VAE gets its input cast on the device and its output upcast (CPU has no f16 limits)', async () => {
    const [l, img] = [join(tmp, 'f16.npy'), join(tmp, 'f16.png')];
    const code = await run(refArgs(['--pack', TEST_PACK_DIR, '--vae-decoder', join(MODELS_DIR, 'vae-fp16.onnx'), '--save-latents', l, '--out', img]));
    expect(code, cli.stderr).toBe(0);
    expectReferenceOutput(l, img, 3);
  });

  it('a CLIP graph that returns only hidden states is pooled at the first EOS', async () => {
    const c = referenceCases().find((x) => x.name === 'steps4_64x64_b1')!;
    const [a, b] = [join(tmp, 'clip-pack.png'), join(tmp, 'clip-hidden.png')];
    const common = ['generate', '--pack', TEST_PACK_DIR, '--prompt', c.prompts![0]!, '--latents', join(c.dir, 'latents.npy'), '--steps', '4'];
    expect(await run([...common, '--out', a]), cli.stderr).toBe(0);
    expect(await run([...common, '--clip', join(MODELS_DIR, 'clip-hidden-only.onnx'), '--out', b]), cli.stderr).toBe(0);
    expect(readFileSync(a)).toEqual(readFileSync(b));
  });
});

describe('reproducibility', () => {
  it('same seed → same bytes; different seed → different image; seed printed', async () => {
    const args = (seed: number, out: string) => ['generate', '--pack', TEST_PACK_DIR, '--prompt', 'a red fox', '--seed', String(seed), '--steps', '2', '--image-size', '48x32', '--out', out];
    expect(await run(args(7, join(tmp, 's7a.png'))), cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/seed 7/);
    expect(await run(args(7, join(tmp, 's7b.png')))).toBe(0);
    expect(await run(args(8, join(tmp, 's8.png')))).toBe(0);
    expect(readFileSync(join(tmp, 's7a.png'))).toEqual(readFileSync(join(tmp, 's7b.png')));
    expect(readFileSync(join(tmp, 's8.png'))).not.toEqual(readFileSync(join(tmp, 's7a.png')));
  });

  it('without a seed, a random one is used and reported in the JSON result', async () => {
    expect(await run(['generate', '--pack', TEST_PACK_DIR, '--prompt', 'x', '--steps', '1', '--image-size', '32x32', '--out', join(tmp, 'r.jpg'), '--json'])).toBe(0);
    const r = JSON.parse(cli.stdout) as { seed: number; images: { content_type: string }[]; timings: Record<string, unknown> };
    expect(Number.isInteger(r.seed)).toBe(true);
    expect(r.images[0]!.content_type).toBe('image/jpeg');
    expect(r.timings).toHaveProperty('encode_text_ms');
    expect(readFileSync(join(tmp, 'r.jpg')).subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
  });

  it('several images go to name-0, name-1, … and match single-image runs with seed + i', async () => {
    const base = ['generate', '--pack', TEST_PACK_DIR, '--prompt', 'boats', '--steps', '1', '--image-size', '32x32'];
    expect(await run([...base, '--seed', '100', '--num-images', '2', '--out', join(tmp, 'batch.png')]), cli.stderr).toBe(0);
    expect(await run([...base, '--seed', '101', '--out', join(tmp, 'single101.png')])).toBe(0);
    expect(readFileSync(join(tmp, 'batch-1.png'))).toEqual(readFileSync(join(tmp, 'single101.png')));
  });
});

describe('clear errors, never a crash', () => {
  const gen = (extra: string[]) => run(['generate', '--pack', TEST_PACK_DIR, '--prompt', 'x', '--out', join(tmp, 'e.png'), ...extra]);
  it.each([
    [['--steps', '0'], /num_inference_steps: must be an integer between 1 and 12, got 0/],
    [['--steps', '13'], /num_inference_steps: must be an integer between 1 and 12, got 13/],
    [['--num-images', '5'], /num_images: must be an integer between 1 and 4, got 5/],
    [['--width', '10', '--height', '64'], /image_size.width: must be an integer between 16 and 2048, got 10/],
    [['--image-size', 'huge'], /image_size: unknown preset "huge"/],
    [['--seed', 'abc'], /--seed: must be a number/],
    [['--output-format', 'gif', '--out', join(tmp, 'dir-out')], /output_format: must be "jpeg" or "png", got "gif"/],
    [['--output-format', 'jpeg'], /--output-format: "jpeg" contradicts the --out extension \.png/],
  ])('%j', async (extra, message) => {
    expect(await gen(extra)).toBe(2);
    expect(cli.stderr).toMatch(message);
  });

  it('empty prompt', async () => {
    expect(await run(['generate', '--pack', TEST_PACK_DIR, '--prompt', '', '--out', join(tmp, 'e.png')])).toBe(2);
    expect(cli.stderr).toMatch(/prompt: must not be empty/);
  });

  it('a missing pack file names the file', async () => {
    const dir = join(tmp, 'missing-pack');
    cpSync(TEST_PACK_DIR, dir, { recursive: true });
    rmSync(join(dir, 'transformer', 'model.onnx.data'));
    expect(await gen(['--pack', dir])).toBe(1);
    expect(cli.stderr).toMatch(/pack_file_missing.*transformer\/model\.onnx\.data is missing/);
  });

  it('a corrupted pack file (same size, one byte flipped) is detected by sha256', async () => {
    const dir = join(tmp, 'corrupt-pack');
    cpSync(TEST_PACK_DIR, dir, { recursive: true });
    const f = join(dir, 'vae_decoder', 'model.onnx');
    const bytes = readFileSync(f);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(f, bytes);
    expect(await gen(['--pack', dir])).toBe(1);
    expect(cli.stderr).toMatch(/pack_file_corrupt.*vae_decoder\/model\.onnx has sha256 [0-9a-f]{64}, the manifest says/);
  });

  it('a missing pack folder, a missing graph file, a bad .npy', async () => {
    expect(await gen(['--pack', join(tmp, 'nope')])).toBe(1);
    expect(cli.stderr).toMatch(/No manifest\.json/);
    expect(await run(refArgs(['--transformer', join(tmp, 'nope.onnx'), '--vae-decoder', join(tmp, 'nope2.onnx'), '--out', join(tmp, 'x.png')]))).toBe(1);
    expect(cli.stderr).toMatch(/transformer.*nope\.onnx/);
    writeFileSync(join(tmp, 'bad.npy'), 'not numpy');
    expect(await run(['generate', '--pack', TEST_PACK_DIR, '--prompt', 'x', '--latents', join(tmp, 'bad.npy'), '--out', join(tmp, 'x.png')])).toBe(2);
    expect(cli.stderr).toMatch(/--latents: .*not a \.npy file/);
  });

  it('latents that do not match the requested size say so', async () => {
    expect(await run(refArgs(['--pack', TEST_PACK_DIR, '--width', '64', '--height', '64', '--out', join(tmp, 'x.png')]))).toBe(2);
    expect(cli.stderr).toMatch(/image_size: 64×64 needs latents of 8×8.*but latents are 6×10/);
  });

  it('unknown flags and commands', async () => {
    expect(await run(['generate', '--promt', 'x'])).toBe(2);
    expect(cli.stderr).toMatch(/Unknown option '--promt'/);
    expect(await run(['paint'])).toBe(2);
    expect(cli.stderr).toMatch(/unknown command "paint"/);
  });
});
