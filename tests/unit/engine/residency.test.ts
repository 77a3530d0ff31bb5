/**
 * Staged loading: transient components are created for their stage and released after it; a repeated prompt
 * reuses cached embeddings (no text encoder loads or runs); every residency plan gives the same bytes.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { jpegJsEncoder } from '../../../src/cli/node-runtime.js';
import { FluxEngine, type GenerateProgressEvent } from '../../../src/engine/flux-engine.js';
import type { ComponentName } from '../../../src/pack/manifest.js';
import type { OrtApi } from '../../../src/runtime/ort-api.js';
import { openFsPack } from '../../../src/storage/fs-pack-source.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';

async function engineWith(resident?: ComponentName[]) {
  const engine = new FluxEngine({ runtime: { ort: ort as unknown as OrtApi, target: 'cpu' }, jpeg: jpegJsEncoder });
  await engine.loadPack(await openFsPack(TEST_PACK_DIR), resident ? { resident: new Set(resident) } : {});
  return engine;
}
const req = (prompt: string, seed: number) => ({ prompt, seed, image_size: { width: 32, height: 32 }, num_inference_steps: 2, output_format: 'png' as const });

describe('residency', () => {
  it('transient text encoders load per new prompt, are released after encoding, and are skipped for a cached prompt', async () => {
    const engine = await engineWith(['transformer', 'vae_decoder']);
    const components = engine.info!.components;
    expect(components.clip).toMatchObject({ loaded: false, resident: false });
    expect(components.transformer).toMatchObject({ loaded: true, resident: true });

    const events: GenerateProgressEvent[] = [];
    await engine.generate(req('a red fox', 1), { onProgress: (e) => events.push(e) });
    expect(engine.stats!.componentLoads).toEqual({ clip: 1, t5: 1 });
    expect(events.filter((e) => e.stage === 'load').map((e) => e.component)).toEqual(['clip', 't5']);
    expect(engine.info!.components.clip!.loaded).toBe(false);
    expect(engine.info!.components.t5!.loaded).toBe(false);

    await engine.generate(req('a red fox', 2));
    expect(engine.stats!.componentLoads).toEqual({});
    expect(engine.stats!.runsByLabel.t5).toBeUndefined();
    expect(engine.stats!.runsByLabel.clip).toBeUndefined();

    await engine.generate(req('a blue whale', 2));
    expect(engine.stats!.componentLoads).toEqual({ clip: 1, t5: 1 });
    await engine.unload();
  });

  it('all-resident, encoders-transient and all-transient plans give identical images', async () => {
    const plans: (ComponentName[] | undefined)[] = [undefined, ['transformer', 'vae_decoder'], []];
    const bytes: Uint8Array[][] = [];
    for (const plan of plans) {
      const engine = await engineWith(plan);
      const r = await engine.generate({ ...req('boats at dawn', 7), num_images: 2 });
      bytes.push(r.images.map((i) => i.bytes));
      if (plan?.length === 0) expect(engine.stats!.componentLoads).toEqual({ clip: 1, t5: 1, transformer: 1, vae_decoder: 1 });
      await engine.unload();
    }
    expect(bytes[1]).toEqual(bytes[0]);
    expect(bytes[2]).toEqual(bytes[0]);
  });

  it('cached embeddings give the same image as a fresh encode (batch tiling included)', async () => {
    const engine = await engineWith();
    const first = await engine.generate({ ...req('lanterns', 3), num_images: 2 });
    const again = await engine.generate({ ...req('lanterns', 3), num_images: 2 });
    expect(engine.stats!.runsByLabel.t5).toBeUndefined();
    expect(again.images.map((i) => i.bytes)).toEqual(first.images.map((i) => i.bytes));
    await engine.unload();
  });
});

describe('memory budget', () => {
  it('keeps the transformer across generations with a cached prompt and evicts it only for a new prompt', async () => {
    const engine = new FluxEngine({ runtime: { ort: ort as unknown as OrtApi, target: 'cpu' }, jpeg: jpegJsEncoder });
    const pack = await openFsPack(TEST_PACK_DIR);
    const size = (p: string) => pack.manifest.files.find((f) => f.path === p)!.size;
    const componentBytes = {
      clip: size('clip/model.onnx'),
      t5: size('t5/model.onnx'),
      transformer: size('transformer/model.onnx') + size('transformer/model.onnx.data'),
      vae_decoder: size('vae_decoder/model.onnx'),
    };
    // Room for the transformer + VAE, or for the two encoders, but not for the transformer and the encoders together.
    const budgetBytes = Math.max(componentBytes.transformer + componentBytes.vae_decoder, componentBytes.clip + componentBytes.t5) + 1;
    await engine.loadPack(pack, { resident: new Set(), memory: { budgetBytes, componentBytes, reserveBytes: 0 } });

    await engine.generate(req('a red fox', 1));
    expect(engine.stats!.componentLoads).toEqual({ clip: 1, t5: 1, transformer: 1, vae_decoder: 1 });
    await engine.generate(req('a red fox', 2)); // cached prompt: nothing to load, nothing evicted
    expect(engine.stats!.componentLoads).toEqual({});
    expect(engine.stats!.componentEvictions).toEqual({});
    await engine.generate(req('a blue whale', 3)); // new prompt: the encoders need the transformer's room
    expect(engine.stats!.componentLoads).toEqual({ clip: 1, t5: 1, transformer: 1, vae_decoder: 1 });
    expect(engine.stats!.componentEvictions.transformer).toBe(1);
    await engine.unload();
  });
});
