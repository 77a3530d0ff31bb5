import { describe, expect, it } from 'vitest';
import {
  activationsFor,
  attentionKind,
  FLUX_SCHNELL_ARCHS,
  inferTransformerArch,
  inferVaeDecoderArch,
  packActivationArchs,
  transformerActivations,
  vaeDecoderActivations,
  type ActivationShape,
} from '../../../src/runtime/activation-memory.js';
import { openFsPack } from '../../../src/storage/fs-pack-source.js';
import type { OnnxGraphInfo } from '../../../src/onnx/proto-reader.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';

const shape = (width: number, height: number, batch = 1): ActivationShape => ({ batch, width, height, t5Length: 256, clipLength: 77, vaeScaleFactor: 8 });
const real = FLUX_SCHNELL_ARCHS;

describe('activation model against hand-computed FLUX.1 [schnell] figures', () => {
  it('unfused transformer scores at 1024²: [1, 24, 4352, 4352] fp32 = 1.82 GB', () => {
    // S = (1024/16)² image tokens + 256 text tokens = 4352; 24·4352²·4 B = 1,818,230,784 B.
    const a = transformerActivations(real.transformer, shape(1024, 1024));
    expect(a.peakBufferBytes).toBe(24 * 4352 * 4352 * 4);
    expect(a.peakBufferBytes).toBe(1_818_230_784);
    expect(a.peakTensor).toBe('transformer attention scores [1, 24, 4352, 4352]');
    // scores + softmax + the projections live with them
    expect(a.totalBytes).toBeGreaterThan(2 * 1_818_230_784);
  });

  it("fal's default landscape_4_3 (1024×768, S = 3328) needs 1.06 GB; batch 2 doubles it", () => {
    expect(transformerActivations(real.transformer, shape(1024, 768)).peakBufferBytes).toBe(1_063_256_064);
    expect(transformerActivations(real.transformer, shape(1024, 768, 2)).peakBufferBytes).toBe(2 * 1_063_256_064);
  });

  it('fused attention: the peak is the single block projection [1, 4352, 21504] fp32 = 374 MB', () => {
    const a = transformerActivations({ ...real.transformer, attention: 'fused' }, shape(1024, 1024));
    expect(a.peakBufferBytes).toBe(4352 * (3 * 3072 + 12288) * 4);
    expect(a.peakTensor).toMatch(/single-block projection/);
  });

  it('VAE decoder at 1024²: mid-block scores [1, 1, 16384, 16384] fp32 = 1.07 GB (as large as the 256-channel full-resolution map)', () => {
    const a = vaeDecoderActivations(real.vae_decoder, shape(1024, 1024));
    expect(a.peakBufferBytes).toBe(16384 * 16384 * 4);
    expect(a.peakBufferBytes).toBe(1_073_741_824);
    const fused = vaeDecoderActivations({ ...real.vae_decoder, attention: 'fused' }, shape(1024, 1024));
    expect(fused.peakBufferBytes).toBe(256 * 1024 * 1024 * 4);
    expect(fused.peakTensor).toMatch(/up block 2 upsampled \[1, 256, 1024, 1024\]/);
    // at 512² everything is a quarter (maps) or a sixteenth (scores)
    expect(vaeDecoderActivations(real.vae_decoder, shape(512, 512)).peakBufferBytes).toBe(256 * 512 * 512 * 4);
  });

  it('text encoders do not depend on the image size; the safety checker scales with the batch only', () => {
    const small = activationsFor(real, shape(256, 256));
    const large = activationsFor(real, shape(1024, 1024, 2));
    const by = (xs: typeof small, n: string) => xs.find((x) => x.component === n)!;
    expect(by(large, 't5')).toEqual(by(small, 't5'));
    expect(by(large, 'clip')).toEqual(by(small, 'clip'));
    // T5-XXL at 256 tokens: scores [1, 64, 256, 256] fp32 = 16.8 MB
    expect(by(small, 't5').peakBufferBytes).toBe(64 * 256 * 256 * 4);
    expect(by(large, 'safety_checker').peakBufferBytes).toBe(2 * by(small, 'safety_checker').peakBufferBytes);
  });

  it('fp16 activations halve every figure', () => {
    expect(transformerActivations(real.transformer, { ...shape(1024, 1024), bytesPerValue: 2 }).peakBufferBytes).toBe(1_818_230_784 / 2);
  });
});

describe('architecture from the graphs', () => {
  const graph = (inits: [string, number[]][], ops: string[] = []): OnnxGraphInfo => ({
    nodes: ops.map((opType, i) => ({ name: `n${i}`, opType, domain: '', inputs: [], outputs: [] })),
    inputs: [],
    outputs: [],
    initializers: inits.map(([name, dims]) => ({ name, dataType: 1, dims })),
  });

  it("reads hidden size, heads and MLP width from diffusers' and BFL's parameter names", () => {
    const diffusers = graph([['x_embedder.bias', [3072]], ['transformer_blocks.0.attn.norm_q.weight', [128]], ['transformer_blocks.0.ff.net.0.proj.bias', [12288]]], ['Softmax']);
    expect(inferTransformerArch([diffusers])).toEqual(real.transformer);
    const bfl = graph([['img_in.bias', [3072]], ['double_blocks.0.img_attn.norm.query_norm.scale', [128]], ['double_blocks.0.img_mlp.0.bias', [12288]]]);
    expect(inferTransformerArch([bfl])).toEqual(real.transformer);
    // a graph that tells nothing is judged as the full model
    expect(inferTransformerArch([graph([])])).toEqual(real.transformer);
  });

  it('fused when the manifest says so, or when the graph has a fused attention op and no Softmax', () => {
    expect(attentionKind([graph([], ['MatMul', 'Softmax', 'MatMul'])])).toBe('unfused');
    expect(attentionKind([graph([], ['MultiHeadAttention'])])).toBe('fused');
    expect(attentionKind([graph([], ['MultiHeadAttention', 'Softmax'])])).toBe('unfused');
    expect(attentionKind([graph([], ['Softmax'])], 'fused')).toBe('fused');
    expect(attentionKind([graph([], ['MultiHeadAttention'])], 'unfused')).toBe('unfused');
    expect(attentionKind([graph([])], 'something else')).toBe('unfused');
  });

  it('reads the VAE decoder blocks in either naming (diffusers: low resolution first; BFL: decoder.up.0 is the highest)', () => {
    const diffusers = graph([
      ...[512, 512, 256, 128].map((c, i) => [`up_blocks.${i}.resnets.0.conv2.bias`, [c]] as [string, number[]]),
      ...[0, 1, 2].map((i) => [`up_blocks.${i}.upsamplers.0.conv.weight`, [1]] as [string, number[]]),
      ['mid_block.attentions.0.to_q.bias', [512]],
    ]);
    expect(inferVaeDecoderArch([diffusers], undefined)).toEqual(real.vae_decoder);
    const bfl = graph([
      ...[128, 256, 512, 512].map((c, i) => [`decoder.up.${i}.block.0.conv2.bias`, [c]] as [string, number[]]),
      ...[1, 2, 3].map((i) => [`decoder.up.${i}.upsample.conv.weight`, [1]] as [string, number[]]),
      ['decoder.mid.attn_1.q.bias', [512]],
    ]);
    expect(inferVaeDecoderArch([bfl])).toEqual(real.vae_decoder);
  });

  it("the test pack's tiny graphs: 2 heads of 16, width 32, a 2-block VAE with one upsampler, unfused", async () => {
    const archs = await packActivationArchs(await openFsPack(TEST_PACK_DIR));
    expect(archs.transformer).toEqual({ hidden: 32, heads: 2, mlpHidden: 128, attention: 'unfused' });
    expect(archs.vae_decoder.blockChannels.length).toBeGreaterThan(0);
    expect(archs.vae_decoder.midChannels).toBe(32);
    expect(archs.vae_decoder.attention).toBe('unfused');
    expect(archs.clip?.hidden).toBe(32);
    expect(archs.t5).toMatchObject({ hidden: 64, heads: 4 }); // relative_attention_bias [32, 4]
  });
});
