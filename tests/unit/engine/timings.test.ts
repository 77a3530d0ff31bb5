/**
 * Honest timings: each step is timed until the device finished its work (RuntimeEnv.gpuWorkDone, the WebGPU
 * queue's onSubmittedWorkDone in the worker), and the queued part is kept apart; a capacity hook refuses a
 * request before any session runs. On onnxruntime-node with a GPU that "finishes" 40 ms after being asked.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { jpegJsEncoder } from '../../../src/cli/node-runtime.js';
import { FluxEngine } from '../../../src/engine/flux-engine.js';
import { FluxError } from '../../../src/errors.js';
import type { OrtApi } from '../../../src/runtime/ort-api.js';
import { openFsPack } from '../../../src/storage/fs-pack-source.js';
import { TEST_PACK_DIR } from '../../support/fixtures.js';
import { rejection } from '../../support/errors.js';

const GPU_MS = 40;
const req = { prompt: 'a lighthouse', seed: 5, image_size: { width: 32, height: 32 }, num_inference_steps: 3, output_format: 'png' as const };

async function engine() {
  let waits = 0;
  const gpuWorkDone = () => {
    waits++;
    return new Promise<void>((r) => setTimeout(r, GPU_MS));
  };
  const e = new FluxEngine({ runtime: { ort: ort as unknown as OrtApi, target: 'cpu', gpuWorkDone }, jpeg: jpegJsEncoder });
  await e.loadPack(await openFsPack(TEST_PACK_DIR));
  return { e, waits: () => waits };
}

describe('timings to GPU completion', () => {
  it('every step waits for the device once; step_ms covers the wait, step_queued_ms is the rest', async () => {
    const { e, waits } = await engine();
    const r = await e.generate(req);
    // one wait after text encoding, one per step; decode ends in its read-back
    expect(waits()).toBe(1 + 3);
    expect(e.stats!.gpuWaits).toBe(4);
    expect(e.stats!.gpuWaitMs).toBeGreaterThanOrEqual(4 * GPU_MS - 4);
    expect(r.timings.step_ms).toHaveLength(3);
    expect(r.timings.step_queued_ms).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      expect(r.timings.step_ms[i]!).toBeGreaterThanOrEqual(r.timings.step_queued_ms[i]! + GPU_MS - 2);
    }
    expect(r.timings.encode_text_ms).toBeGreaterThanOrEqual(GPU_MS - 2);
    expect(r.timings.denoise_ms).toBeCloseTo(r.timings.step_ms.reduce((a, b) => a + b, 0), 6);
    // fal's inference: the pipeline (text → finished images), not the PNG/JPEG encoding after it
    const pipelineMs = r.timings.total_ms - r.timings.encode_image_ms;
    expect(r.timings.inference * 1000).toBeLessThanOrEqual(pipelineMs + 1);
    expect(r.timings.inference * 1000).toBeGreaterThanOrEqual(r.timings.encode_text_ms + r.timings.denoise_ms + r.timings.decode_ms);
    // still exactly one read-back: the image
    expect(e.stats!.readbacks).toBe(1);
  });

  it("'none' measures queueing only (the old figures); 'readback' synchronises by reading the latents back", async () => {
    const { e, waits } = await engine();
    e.setTimingSync('none');
    await e.generate(req);
    expect(waits()).toBe(0);
    expect(e.stats!.gpuWaits).toBe(0);
    e.setTimingSync('readback');
    await e.generate(req);
    expect(waits()).toBe(0);
    // the text embeddings, the latents after each step, the image
    expect(e.stats!.readbacks).toBe(1 + 3 + 1);
    expect(e.stats!.gpuWaits).toBe(4);
  });

  it('the admit hook sees the validated request and refuses before any session runs', async () => {
    const { e } = await engine();
    await e.generate(req);
    const seen: unknown[] = [];
    const err = await rejection(
      e.generate({ ...req, image_size: 'square_hd', num_images: 2 }, {
        admit: (s) => {
          seen.push({ batch: s.batch, width: s.width, height: s.height, textLength: s.textLength });
          throw new FluxError('insufficient_capacity', 'image_size: too big', { field: 'image_size' });
        },
      }),
    );
    expect(err).toMatchObject({ code: 'insufficient_capacity', field: 'image_size' });
    expect(seen).toEqual([{ batch: 2, width: 1024, height: 1024, textLength: e.info!.config.t5MaxLength }]);
    expect(e.stats!.sessionRuns).toBe(0);
    expect(e.stats!.readbacks).toBe(0);
  });
});
