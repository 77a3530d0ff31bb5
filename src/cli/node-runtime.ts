/**
 * The Node side of the CLI: onnxruntime-node, jpeg-js, and component sources from loose files.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import jpeg from 'jpeg-js';
import type { EngineEnv } from '../engine/flux-engine.js';
import { FluxError } from '../errors.js';
import type { JpegEncoder } from '../image/encode.js';
import type { ComponentName } from '../pack/manifest.js';
import type { SafetyCheckerConfig } from '../pack/safety-checker.js';
import { resolveModelConfig, type FluxModelConfig } from '../pipeline/config.js';
import { loadClipTokenizer, loadT5Tokenizer } from '../pipeline/tokenizers.js';
import { sourcesFromPack, type BackendSources, type ComponentSource } from '../runtime/component-source.js';
import type { OrtApi } from '../runtime/ort-api.js';
import type { PackSource } from '../storage/pack-source.js';
import type { FsPackSource } from '../storage/fs-pack-source.js';

export type NodeTarget = 'cpu' | 'webgpu';

export const jpegJsEncoder: JpegEncoder = async (image, quality) =>
  new Uint8Array(jpeg.encode({ data: image.data, width: image.width, height: image.height }, Math.round(quality * 100)).data);

export async function createNodeEngineEnv(target: NodeTarget): Promise<EngineEnv> {
  return { runtime: { ort: ort as unknown as OrtApi, target }, jpeg: jpegJsEncoder };
}

/** A graph file given on the command line; onnxruntime-node resolves its external data beside it. */
function fileComponent(name: ComponentName, path: string): ComponentSource {
  const label = `${name} (${path})`;
  return {
    label,
    io: {},
    dtype: undefined,
    requiredFeatures: [],
    graphs: [
      {
        label,
        async create(o, options, tune) {
          try {
            if (tune) return await o.InferenceSession.create(path, tune(new Uint8Array(await readFile(path)), options));
            return await o.InferenceSession.create(path, options);
          } catch (e) {
            const msg = e instanceof Error ? e.message : String(e);
            const missing = /no such file|doesn't exist|not exist|ENOENT/i.test(msg);
            throw new FluxError(missing ? 'pack_file_missing' : 'runtime_error', `--${name.replace('_', '-')} ${path}: ${msg}`, { cause: e });
          }
        },
      },
    ],
  };
}

/** A tokenizer folder's JSON files; every error names the file (and the flag). tokenizer_config.json is optional. */
async function readTokenizerDir(dir: string, flag: string): Promise<{ json: unknown; config?: Record<string, unknown>; path: string }> {
  const read = async (file: string, optional: boolean): Promise<unknown> => {
    const path = join(dir, file);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if (optional && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new FluxError('pack_file_missing', `${flag}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e, field: flag });
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      throw new FluxError('invalid_input', `${flag}: ${path} is not valid JSON: ${(e as Error).message}`, { cause: e, field: flag });
    }
  };
  const path = join(dir, 'tokenizer.json');
  const json = await read('tokenizer.json', false);
  const config = await read('tokenizer_config.json', true);
  if (config !== undefined && (typeof config !== 'object' || config === null || Array.isArray(config))) {
    throw new FluxError('invalid_input', `${flag}: ${join(dir, 'tokenizer_config.json')} must hold a JSON object`, { field: flag });
  }
  return config ? { json, config: config as Record<string, unknown>, path } : { json, path };
}

/**
 * Load a pack folder's tokenizer files the way the pack loader does, throwing an error that names the file that
 * fails (the loader itself only says "the CLIP tokenizer"). Used to explain a failed load; returns if all load.
 */
export async function checkPackTokenizers(pack: FsPackSource): Promise<void> {
  const t = pack.manifest.tokenizers;
  if (!t?.clip || !t.t5) return;
  const json = async (rel: string): Promise<unknown> => {
    const path = pack.localPath(rel);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      throw new FluxError('pack_file_missing', `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      throw new FluxError('invalid_manifest', `${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  };
  for (const [spec, load] of [[t.clip, loadClipTokenizer], [t.t5, loadT5Tokenizer]] as const) {
    const tok = await json(spec.tokenizer);
    const config = spec.config ? ((await json(spec.config)) as Record<string, unknown>) : undefined;
    load(tok, config, pack.localPath(spec.tokenizer));
  }
}

/** Combine an optional pack with per-component graph overrides and tokenizer folders. */
export async function sourcesFromFiles(args: {
  pack: PackSource | null;
  files: Partial<Record<ComponentName, string>>;
  tokenizerDirs: { clip?: string; t5?: string };
  configOverrides: Partial<FluxModelConfig>;
  /** False when prompt embeddings are given: text encoders from the pack are then not loaded at all. */
  needText: boolean;
  /** The classifier config of `files.safety_checker` (required with it; src/cli/safety-files.ts). */
  safetyChecker?: SafetyCheckerConfig;
}): Promise<BackendSources> {
  const base: BackendSources = args.pack
    ? await sourcesFromPack(args.pack, args.configOverrides)
    : { config: resolveModelConfig(args.configOverrides), explicitConfig: { ...args.configOverrides }, components: {}, tokenizers: null };
  for (const [name, path] of Object.entries(args.files) as [ComponentName, string][]) base.components[name] = fileComponent(name, path);
  if (args.files.safety_checker) {
    if (!args.safetyChecker) throw new FluxError('invalid_input', '--safety-checker needs its classifier config', { field: '--safety-config' });
    base.safetyChecker = args.safetyChecker;
  }
  if (args.tokenizerDirs.clip || args.tokenizerDirs.t5) {
    if (!args.tokenizerDirs.clip || !args.tokenizerDirs.t5) {
      throw new FluxError('invalid_input', '--clip-tokenizer and --t5-tokenizer go together', { field: args.tokenizerDirs.clip ? '--t5-tokenizer' : '--clip-tokenizer' });
    }
    const [c, t] = [await readTokenizerDir(args.tokenizerDirs.clip, '--clip-tokenizer'), await readTokenizerDir(args.tokenizerDirs.t5, '--t5-tokenizer')];
    base.tokenizers = { clip: loadClipTokenizer(c.json, c.config, c.path), t5: loadT5Tokenizer(t.json, t.config, t.path) };
  }
  if (!args.needText) {
    delete base.components.clip;
    delete base.components.t5;
  } else if ((base.components.clip || base.components.t5) && !base.tokenizers) {
    throw new FluxError('invalid_input', 'Text encoders need tokenizers: pass --clip-tokenizer and --t5-tokenizer (or use --pack).', {
      field: '--clip-tokenizer',
    });
  }
  return base;
}
