/**
 * The test pack with the tiny safety checker (tests/fixtures/safety, built by tools/testpack/safety_checker.py)
 * added as `components.safety_checker`. Assembled from the committed files, so no copy of the pack is committed:
 * e2e tests serve it by request interception, Node tests write it to a temporary folder.
 *
 * The checker's rule (docs/safety.md): on its 24×24 input, flagged when mean(R) − (mean(G) + mean(B))/2 > 0.06
 * (P(nsfw) = sigmoid(100·(d − 0.06)), threshold 0.5).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { PackManifest } from '../../src/pack/manifest.js';
import { safetyConfigFromHuggingFace, type SafetyCheckerConfig } from '../../src/pack/safety-checker.js';
import { ROOT, TEST_PACK_DIR } from './fixtures.js';

export const SAFETY_DIR = join(ROOT, 'tests', 'fixtures', 'safety');
export const SAFETY_MODEL = join(SAFETY_DIR, 'model.onnx');
export const SAFETY_PACK_ID = 'flux-test-tiny-safety';
export const SAFETY_CHECKER_NAME = 'flux-webgpu/tiny-red-safety-checker';

/**
 * Requests whose images the fixture checker flags or passes, with wide margins (d = the rule's red excess; the
 * flag needs d > 0.06). Same on ORT CPU and WebGPU (they agree within 2/255). Image i of a batch uses seed + i.
 *   prompt 'a red fox in the snow', 32×32, 2 steps: seed 7 → d 0.029, 8 → 0.104, 9 → 0.007, 10 → 0.104
 */
export const SAFETY_REQUEST = { prompt: 'a red fox in the snow', image_size: { width: 32, height: 32 }, num_inference_steps: 2, output_format: 'png' as const };
export const FLAGGED_SEED = 8;
export const UNFLAGGED_SEED = 9;
/** Batch from seed 7: [7, 8, 9, 10] → [pass, flag, pass, flag]. */
export const MIXED_BATCH = { seed: 7, flags: [false, true, false, true] };

export function fixtureSafetyConfig(overrides: Record<string, unknown> = {}): SafetyCheckerConfig {
  const read = (f: string) => JSON.parse(readFileSync(join(SAFETY_DIR, f), 'utf8')) as unknown;
  return safetyConfigFromHuggingFace(read('preprocessor_config.json'), read('config.json'), 'safety_checker', overrides);
}

export interface AssembledPack {
  manifest: PackManifest;
  files: Map<string, Buffer>;
}

/** The test pack plus the fixture checker (or `checker` bytes/config given), under another id. */
export function safetyPackFiles(options: { id?: string; checker?: Buffer; config?: Partial<SafetyCheckerConfig> } = {}): AssembledPack {
  const base = JSON.parse(readFileSync(join(TEST_PACK_DIR, 'manifest.json'), 'utf8')) as PackManifest;
  const files = new Map<string, Buffer>(base.files.map((f) => [f.path, readFileSync(join(TEST_PACK_DIR, f.path))]));
  const graph = options.checker ?? readFileSync(SAFETY_MODEL);
  files.set('safety_checker/model.onnx', graph);
  const entry = (path: string, bytes: Buffer) => ({ path, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
  const manifest: PackManifest = {
    ...base,
    id: options.id ?? SAFETY_PACK_ID,
    name: 'FLUX test pack + tiny safety checker (tiny random weights — not FLUX.1)',
    files: [...base.files, entry('safety_checker/model.onnx', graph)],
    components: {
      ...base.components,
      safety_checker: { graph: 'safety_checker/model.onnx', dtype: 'float32', weights: 'float32', ...fixtureSafetyConfig(), ...options.config },
    },
  };
  return { manifest, files };
}

/** Write an assembled pack to a folder; returns the folder. */
export function writePack(dir: string, pack: AssembledPack): string {
  for (const [path, bytes] of pack.files) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), bytes);
  }
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(pack.manifest, null, 2) + '\n');
  return dir;
}
