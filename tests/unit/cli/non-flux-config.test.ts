/**
 * Loose graphs with a non-FLUX config, like diffusers' tiny test pipeline (in_channels 4 → 1 latent channel,
 * VAE scale factor 1, scaling 1.5035 / shift 0.0609). The graphs are built here, with known closed-form outputs:
 *   transformer: v = 0.5 · hidden_states   → one Euler step from σ=1 gives x = x0 − 0.5·x0 = 0.5·x0
 *   VAE:         image = concat(z, z, z)   → pixel = round(clamp(z/2 + 0.5, 0, 1)·255)
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { encodeNpy, parseNpy } from '../../../src/cli/npy.js';
import { encodeModel, OnnxDataType } from '../../../src/onnx/proto-writer.js';
import { decodePng } from '../../support/fixtures.js';
import { captureCliOutput } from '../../support/cli-output.js';

const dir = mkdtempSync(join(tmpdir(), 'flux-tiny-cfg-'));
const F = OnnxDataType.FLOAT;
writeFileSync(
  join(dir, 'transformer.onnx'),
  encodeModel({
    name: 'tiny_transformer',
    inputs: [
      { name: 'hidden_states', type: F, shape: ['B', 'S', 4] },
      { name: 'encoder_hidden_states', type: F, shape: ['B', 'L', 8] },
      { name: 'pooled_projections', type: F, shape: ['B', 8] },
      { name: 'timestep', type: F, shape: ['B'] },
      { name: 'img_ids', type: F, shape: ['S', 3] },
      { name: 'txt_ids', type: F, shape: ['L', 3] },
    ],
    outputs: [{ name: 'out_hidden_states', type: F, shape: ['B', 'S', 4] }],
    nodes: [{ op: 'Mul', inputs: ['hidden_states', 'half'], outputs: ['out_hidden_states'] }],
    initializers: [{ name: 'half', type: F, values: [0.5], dims: [] }],
  }),
);
writeFileSync(
  join(dir, 'vae.onnx'),
  encodeModel({
    name: 'tiny_vae',
    inputs: [{ name: 'latent_sample', type: F, shape: ['B', 1, 'H', 'W'] }],
    outputs: [{ name: 'sample', type: F, shape: ['B', 3, 'H', 'W'] }],
    nodes: [{ op: 'Concat', inputs: ['latent_sample', 'latent_sample', 'latent_sample'], outputs: ['sample'], attributes: { axis: 1 } }],
  }),
);
const x0 = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 1.5);
writeFileSync(join(dir, 'latents.npy'), encodeNpy(x0, [1, 1, 8, 8]));
writeFileSync(join(dir, 'embeds.npy'), encodeNpy(new Float32Array(4 * 8).fill(0.1), [1, 4, 8]));
writeFileSync(join(dir, 'pooled.npy'), encodeNpy(new Float32Array(8).fill(0.2), [1, 8]));

const cli = captureCliOutput();

const args = (extra: string[]) => [
  'generate', '--transformer', join(dir, 'transformer.onnx'), '--vae-decoder', join(dir, 'vae.onnx'),
  '--latents', join(dir, 'latents.npy'), '--prompt-embeds', join(dir, 'embeds.npy'), '--pooled-prompt-embeds', join(dir, 'pooled.npy'),
  '--steps', '1', '--vae-scale-factor', '1', '--vae-scaling-factor', '1.5035', '--vae-shift-factor', '0.0609', ...extra,
];

it('takes the latent channel count from the transformer graph and applies the given VAE constants', async () => {
  const [l, img] = [join(dir, 'out.npy'), join(dir, 'out.png')];
  expect(await main(args(['--save-latents', l, '--out', img])), cli.stderr).toBe(0);
  const latents = parseNpy(new Uint8Array(readFileSync(l)));
  expect(latents.dims).toEqual([1, 1, 8, 8]);
  expect(Array.from(latents.data)).toEqual(Array.from(x0, (v) => Math.fround(v + Math.fround(-1 * Math.fround(0.5 * v)))));
  const png = decodePng(new Uint8Array(readFileSync(img)));
  expect([png.width, png.height]).toEqual([8, 8]);
  const f32 = Math.fround;
  for (let i = 0; i < 64; i++) {
    const z = f32(f32(latents.data[i]! / f32(1.5035)) + f32(0.0609));
    const v = Math.min(1, Math.max(0, f32(f32(z / 2) + 0.5)));
    expect(Math.abs(png.rgb[i * 3]! - Math.round(f32(v * 255)))).toBeLessThanOrEqual(1);
  }
});

it('a stated channel count that contradicts the graph is an error, not garbage', async () => {
  expect(await main(args(['--latent-channels', '16', '--out', join(dir, 'x.png')]))).toBe(1);
  expect(cli.stderr).toMatch(/model_io_mismatch.*hidden_states has 4 features per token, but the config's 16 latent channels need 64/);
});
