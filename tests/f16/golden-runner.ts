/**
 * Runs the golden cases (tests/fixtures/reference) through the real pipeline (FluxEngine) on onnxruntime-web's
 * WebGPU build in Node, on Dawn (npm `webgpu`) over Mesa 25 lavapipe, the one CPU adapter with shader-f16
 * (docs: /work/shared/docs/webgpu-testing.md §3). Converts the test pack three ways first (fp32 as shipped,
 * int4 + fp32 activations, int4 + fp16 activations), writes a JSON file with the adapter, every image and the
 * fp16-overflow graph's outputs (tests/f16/overflow-model.ts).
 *
 * Run under `node --liftoff-only --import tsx` with scripts/setup-lavapipe.sh's env.sh sourced
 * (tests/f16/fp16-golden.test.ts does both). Without --liftoff-only V8 stalls ~30 s compiling ORT's wasm.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { parseNpy } from '../../src/cli/npy.js';
import { convertPack } from '../../src/convert/index.js';
import { FluxEngine } from '../../src/engine/flux-engine.js';
import type { OrtApi } from '../../src/runtime/ort-api.js';
import { createFluxGpu } from '../../src/runtime/webgpu-device.js';
import { openFsPack } from '../../src/storage/fs-pack-source.js';
import { referenceCases, ROOT, TEST_PACK_DIR } from '../support/fixtures.js';
import { OVERFLOW_INPUT, writeOverflowModels } from './overflow-model.js';

interface Dawn {
  create: (flags: string[]) => GPU;
  globals: Record<string, unknown>;
}

/** npm `webgpu` from the project, else from the folder scripts/setup-lavapipe.sh installs it to. */
async function loadDawn(): Promise<Dawn> {
  try {
    return (await import('webgpu' as string)) as Dawn;
  } catch {
    const local = join(ROOT, '.cache', 'f16-deps', 'node_modules', 'webgpu', 'index.js');
    return (await import(pathToFileURL(local).href)) as Dawn;
  }
}

async function main(): Promise<void> {
  const outFile = process.argv[2];
  if (!outFile) throw new Error('usage: golden-runner.ts <out.json>');
  const dawn = await loadDawn();
  Object.assign(globalThis, dawn.globals);
  const gpuApi = dawn.create([]);
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: gpuApi, hardwareConcurrency: 2 }, configurable: true });

  const gpu = await createFluxGpu(gpuApi);
  // dawn.node's writeBuffer rejects views of a SharedArrayBuffer (ORT's wasm memory): copy into a plain buffer.
  type WriteBuffer = (buffer: unknown, offset: number, data: ArrayBufferView | ArrayBuffer, dataOffset?: number, size?: number) => void;
  const queueProto = Object.getPrototypeOf(gpu.device.queue) as { writeBuffer: WriteBuffer };
  const writeBuffer = queueProto.writeBuffer;
  queueProto.writeBuffer = function (this: unknown, buffer, offset, data, dataOffset = 0, size) {
    const bytes = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
    const el = ArrayBuffer.isView(data) && 'BYTES_PER_ELEMENT' in data ? (data as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT : 1;
    const start = dataOffset * el;
    const len = size === undefined ? bytes.byteLength - start : size * el;
    const copy = new Uint8Array(len);
    copy.set(bytes.subarray(start, start + len));
    return writeBuffer.call(this, buffer, offset, copy, 0, len);
  };

  const ort = (await import(pathToFileURL(join(ROOT, 'node_modules', 'onnxruntime-web', 'dist', 'ort.webgpu.mjs')).href)) as unknown as OrtApi & {
    env: { wasm: { numThreads: number; proxy: boolean } };
  };
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;

  const tmp = mkdtempSync(join(tmpdir(), 'flux-f16-golden-'));
  try {
    const src = (c: string) => join(TEST_PACK_DIR, c, 'model.onnx');
    const packs: Record<string, string> = { fp32: TEST_PACK_DIR };
    for (const [name, activations] of [['int4', 'fp32'], ['int4_fp16act', 'fp16']] as const) {
      const out = join(tmp, name);
      await convertPack({
        transformer: src('transformer'), vaeDecoder: src('vae_decoder'), clip: src('clip'), t5: src('t5'), tokenizers: TEST_PACK_DIR,
        quant: 'int4', activations, out, testPack: true, verifyMb: 0, reconRows: 0,
      });
      packs[name] = out;
    }

    const images: Record<string, Record<string, { width: number; height: number; rgb: number[] }[]>> = {};
    const components: Record<string, unknown> = {};
    for (const [name, dir] of Object.entries(packs)) {
      const engine = new FluxEngine({
        runtime: { ort, target: 'webgpu', gpuFeatures: new Set(gpu.report.features), gpuDevice: gpu.device },
        jpeg: async () => {
          throw new Error('png only');
        },
      });
      const pack = await openFsPack(dir);
      const info = await engine.loadPack(pack);
      components[name] = Object.fromEntries(
        Object.entries(pack.manifest.components).map(([k, spec]) => [k, { requiredFeatures: spec?.requiredFeatures ?? [], weights: spec?.weights, loaded: info.components[k as keyof typeof info.components] }]),
      );
      images[name] = {};
      for (const c of referenceCases()) {
        const npy = (f: string) => parseNpy(new Uint8Array(readFileSync(join(c.dir, f))), f);
        const r = await engine.generate({
          latents: npy('latents.npy'),
          prompt_embeds: npy('prompt_embeds.npy'),
          pooled_prompt_embeds: npy('pooled_prompt_embeds.npy'),
          num_inference_steps: c.steps,
          image_size: { width: c.width, height: c.height },
          num_images: c.batch,
          output_format: 'png',
          enable_safety_checker: false,
        } as never);
        images[name][c.name] = r.images.map((img) => {
          const png = PNG.sync.read(Buffer.from(img.bytes));
          const rgb: number[] = new Array(png.width * png.height * 3);
          for (let i = 0; i < png.width * png.height; i++) for (let k = 0; k < 3; k++) rgb[i * 3 + k] = png.data[i * 4 + k]!;
          return { width: png.width, height: png.height, rgb };
        });
      }
    }
    // The fp16 residual overflow, computed in real f16 here (ORT CPU would compute it in fp32).
    const { clamped, unclamped } = writeOverflowModels(tmp);
    const overflow: Record<string, number[]> = {};
    for (const [name, path] of [['clamped', clamped], ['unclamped', unclamped]] as const) {
      const session = await ort.InferenceSession.create(new Uint8Array(readFileSync(path)), { executionProviders: ['webgpu'] } as never);
      const r = await session.run({ x: new ort.Tensor('float32', OVERFLOW_INPUT, [1, 8]) } as never);
      overflow[name] = Array.from((await (r as Record<string, { getData: () => Promise<Float32Array> }>).y!.getData()) as Float32Array, (v) => (Number.isNaN(v) ? -1e30 : v));
      await session.release();
    }
    // Written to a file: a large stdout write can be cut short by process.exit.
    writeFileSync(
      outFile,
      JSON.stringify({
        overflow,
        adapter: gpu.report.adapter,
        deviceFeatures: [...gpu.device.features].sort(),
        adapterFeatures: [...gpu.adapter.features].sort(),
        ortVersion: (ort.env as unknown as { versions: Record<string, string> }).versions,
        components,
        images,
      }),
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  gpu.device.destroy();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`golden-runner: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
