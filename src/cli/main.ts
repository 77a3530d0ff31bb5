/**
 * `npm run flux -- generate …`: the same pipeline and engine as the browser worker, on onnxruntime-node.
 * Usage text in USAGE below; docs in README.md.
 */
import { statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FluxEngine, type FluxEngineResult } from '../engine/flux-engine.js';
import { FluxError, invalidInput, isFluxError } from '../errors.js';
import { configValueProblem, type FluxModelConfig, type NumericConfigKey } from '../pipeline/config.js';
import type { FluxSchnellInput } from '../pipeline/request.js';
import { isImageSizePreset } from '../pipeline/image-size.js';
import { componentGraphs as componentGraphsOf } from '../pack/manifest.js';
import { encodeNpy, parseNpy } from './npy.js';
import { loadSafetyCheckerConfig } from './safety-files.js';
import { checkPackTokenizers, createNodeEngineEnv, sourcesFromFiles, type NodeTarget } from './node-runtime.js';
import { openPackDir } from './verified-pack.js';
import { parseNumberFlag } from './args.js';
import { checkWritableFile, checkWritableFolder } from './paths.js';
import { checkEmbeddingShapes } from './embedding-shapes.js';

const USAGE = `Usage: npm run flux -- generate [options]

Model (a pack, or loose graphs; a component flag overrides the pack's):
  --pack <dir>                 model pack folder (manifest.json)
  --transformer <onnx>         transformer graph
  --vae-decoder <onnx>         VAE decoder graph
  --clip <onnx> --t5 <onnx>    text encoders (need --clip-tokenizer/--t5-tokenizer without --pack)
  --clip-tokenizer <dir>       folder with tokenizer.json [+ tokenizer_config.json]
  --t5-tokenizer <dir>
  --no-verify                  skip the sha256 check of pack files (cached per file otherwise)

Safety checker (docs/safety.md; a pack's own checker runs by default):
  --safety-checker <onnx>      image classifier (e.g. an optimum export of Falconsai/nsfw_image_detection); its
                               preprocessor_config.json + config.json beside it describe it
  --safety-config <json>       classifier fields (model, preprocess, labels, unsafeLabels, scores, threshold;
                               docs/model-pack.md), whole or overriding the Hugging Face files
  --no-safety-checker          enable_safety_checker: false (nothing is checked; results say so)

Request (fal FLUX fields):
  --prompt <text>              at most 16 KiB (longer command lines crash onnxruntime-node); else:
  --prompt-file <file|->       the prompt from a UTF-8 file (≤ 1 MiB; one trailing newline dropped), - = stdin
  --seed <n>                   random when omitted (printed)
  --steps <1-4>                num_inference_steps (default 4)
  --image-size <preset|WxH>    square_hd, square, portrait_4_3, portrait_16_9, landscape_4_3, landscape_16_9
  --width <px> --height <px>   custom size (floored to a multiple of 16)
  --num-images <1-4>
  --output-format <png|jpeg>   default: from --out's extension, else jpeg

Reproducibility (NumPy .npy float32):
  --latents <npy>              initial noise, unpacked [B, C, h, w]
  --prompt-embeds <npy>        T5 embeddings [B, L, D]   (with --pooled-prompt-embeds: no text encoders needed)
  --pooled-prompt-embeds <npy> CLIP pooled [B, P]
  --save-latents <npy>         final denoised latents [B, C, h, w], before VAE scaling

Model config (defaults: the pack's, else FLUX.1 schnell):
  --latent-channels <n> --vae-scale-factor <n> --vae-scaling-factor <x> --vae-shift-factor <x> --t5-max-length <n>

Output:
  --out <file|dir>             image file (several images: name-0.png, name-1.png, …) or folder
  --ep <cpu|webgpu>            onnxruntime-node execution provider (default cpu)
  --json                       print the result as JSON
`;

const IMAGE_EXT: Record<string, 'png' | 'jpeg'> = { '.png': 'png', '.jpg': 'jpeg', '.jpeg': 'jpeg' };

/** Plain decimal numbers only ("0x2", " 1", "1e" are refused); ranges are the engine's (fal's schema) to check. */
const num = (value: string | undefined, flag: string) => parseNumberFlag(value, flag);

/**
 * onnxruntime-node 1.30 segfaults at session creation when the process's argv is long (measured on Linux x64:
 * a 28,000-byte argument works, 29,000 bytes exits 139), so --prompt is bounded well below that, checked before
 * any session; longer prompts go through --prompt-file.
 */
export const MAX_PROMPT_ARG_BYTES = 16384;
/** A prompt file larger than this is surely not a prompt (T5 reads 256–512 tokens). */
export const MAX_PROMPT_FILE_BYTES = 2 ** 20;

async function readStdin(): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of process.stdin) {
    parts.push(chunk as Buffer);
    n += (chunk as Buffer).length;
    if (n > MAX_PROMPT_FILE_BYTES) break;
  }
  return Buffer.concat(parts);
}

/** The prompt from a file or stdin ("-"): UTF-8, at most MAX_PROMPT_FILE_BYTES, one trailing newline dropped. */
async function readPromptFile(path: string): Promise<string> {
  const flag = '--prompt-file';
  const label = path === '-' ? 'stdin' : path;
  let bytes: Buffer;
  if (path === '-') bytes = await readStdin();
  else {
    let size: number;
    try {
      const st = statSync(path);
      if (st.isDirectory()) throw invalidInput(flag, `${path} is a folder, not a file`);
      size = st.size;
    } catch (e) {
      if (isFluxError(e)) throw e;
      throw invalidInput(flag, `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (size > MAX_PROMPT_FILE_BYTES) throw invalidInput(flag, `${path} is larger than 1 MiB (${size} bytes); it cannot be a prompt`);
    try {
      bytes = await readFile(path);
    } catch (e) {
      throw invalidInput(flag, `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  if (bytes.length > MAX_PROMPT_FILE_BYTES) throw invalidInput(flag, `${label} is larger than 1 MiB; it cannot be a prompt`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw invalidInput(flag, `${label} is not UTF-8 text`);
  }
  return text.replace(/\r?\n$/, '');
}

async function readNpy(path: string, flag: string) {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (e) {
    throw invalidInput(flag, `cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return parseNpy(bytes, path);
  } catch (e) {
    throw invalidInput(flag, (e as Error).message);
  }
}

/** Where images go: an explicit file path (with an image extension) or a folder. */
function outputPaths(out: string, count: number, format: 'png' | 'jpeg'): string[] {
  const ext = extname(out).toLowerCase();
  const suffix = format === 'png' ? '.png' : '.jpg';
  if (IMAGE_EXT[ext]) {
    if (count === 1) return [out];
    const stem = join(dirname(out), basename(out, extname(out)));
    return Array.from({ length: count }, (_, i) => `${stem}-${i}${extname(out)}`);
  }
  return Array.from({ length: count }, (_, i) => join(out, `image-${i}${suffix}`));
}

export async function generateCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      pack: { type: 'string' },
      transformer: { type: 'string' },
      'vae-decoder': { type: 'string' },
      clip: { type: 'string' },
      t5: { type: 'string' },
      'clip-tokenizer': { type: 'string' },
      't5-tokenizer': { type: 'string' },
      'no-verify': { type: 'boolean' },
      'safety-checker': { type: 'string' },
      'safety-config': { type: 'string' },
      'no-safety-checker': { type: 'boolean' },
      prompt: { type: 'string' },
      'prompt-file': { type: 'string' },
      seed: { type: 'string' },
      steps: { type: 'string' },
      'image-size': { type: 'string' },
      width: { type: 'string' },
      height: { type: 'string' },
      'num-images': { type: 'string' },
      'output-format': { type: 'string' },
      latents: { type: 'string' },
      'prompt-embeds': { type: 'string' },
      'pooled-prompt-embeds': { type: 'string' },
      'save-latents': { type: 'string' },
      'latent-channels': { type: 'string' },
      'vae-scale-factor': { type: 'string' },
      'vae-scaling-factor': { type: 'string' },
      'vae-shift-factor': { type: 'string' },
      't5-max-length': { type: 'string' },
      out: { type: 'string' },
      ep: { type: 'string' },
      json: { type: 'boolean' },
    },
  });

  if (!values.out) throw invalidInput('--out', 'is required (an image file path or a folder)');
  const ep = (values.ep ?? 'cpu') as NodeTarget;
  if (ep !== 'cpu' && ep !== 'webgpu') throw invalidInput('--ep', 'must be cpu or webgpu');

  // Before anything is read or loaded: a long --prompt would crash onnxruntime-node (see MAX_PROMPT_ARG_BYTES).
  if (values.prompt !== undefined) {
    const bytes = Buffer.byteLength(values.prompt, 'utf8');
    if (bytes > MAX_PROMPT_ARG_BYTES) {
      throw invalidInput('--prompt', `is ${bytes} bytes; at most ${MAX_PROMPT_ARG_BYTES} fit on the command line (longer ones crash onnxruntime-node); use --prompt-file <file> or --prompt-file - (stdin)`);
    }
    if (values['prompt-file'] !== undefined) throw invalidInput('--prompt-file', 'give either --prompt or --prompt-file, not both');
  }

  const configOverrides: Partial<FluxModelConfig> = {};
  const cfg = (flag: string, key: NumericConfigKey) => {
    const v = num(values[flag as keyof typeof values] as string | undefined, `--${flag}`);
    if (v !== undefined) {
      // The same bounds as a manifest's config (src/pipeline/config.ts).
      const problem = configValueProblem(key, v);
      if (problem) throw invalidInput(`--${flag}`, problem);
      configOverrides[key] = v;
    }
  };
  cfg('latent-channels', 'latentChannels');
  cfg('vae-scale-factor', 'vaeScaleFactor');
  cfg('vae-scaling-factor', 'vaeScalingFactor');
  cfg('vae-shift-factor', 'vaeShiftFactor');
  cfg('t5-max-length', 't5MaxLength');

  // ---- request (validated by the engine; here only CLI-level parsing) ----
  const input: FluxSchnellInput = {};
  if (values.prompt !== undefined) input.prompt = values.prompt;
  else if (values['prompt-file'] !== undefined) input.prompt = await readPromptFile(values['prompt-file']);
  const seed = num(values.seed, '--seed');
  if (seed !== undefined) input.seed = seed;
  const steps = num(values.steps, '--steps');
  if (steps !== undefined) input.num_inference_steps = steps;
  const images = num(values['num-images'], '--num-images');
  if (images !== undefined) input.num_images = images;
  const w = num(values.width, '--width');
  const h = num(values.height, '--height');
  if (values['image-size'] !== undefined && (w !== undefined || h !== undefined)) {
    throw invalidInput('--image-size', 'give either --image-size or --width/--height, not both');
  }
  if ((w === undefined) !== (h === undefined)) throw invalidInput(w === undefined ? '--width' : '--height', '--width and --height go together');
  if (w !== undefined && h !== undefined) input.image_size = { width: w, height: h };
  const sizeArg = values['image-size'];
  if (sizeArg !== undefined) {
    const m = /^(\d+)x(\d+)$/i.exec(sizeArg);
    if (m) input.image_size = { width: Number(m[1]), height: Number(m[2]) };
    else if (isImageSizePreset(sizeArg)) input.image_size = sizeArg;
    else input.image_size = sizeArg as never; // the engine names the valid presets
  }
  const extFormat = IMAGE_EXT[extname(values.out).toLowerCase()];
  const format = values['output-format'] ?? extFormat ?? 'jpeg';
  if (values['output-format'] !== undefined && extFormat !== undefined && extFormat !== values['output-format']) {
    throw invalidInput('--output-format', `"${values['output-format']}" contradicts the --out extension ${extname(values.out)}`);
  }
  input.output_format = format as 'png' | 'jpeg';
  if (values.latents) input.latents = await readNpy(values.latents, '--latents');
  if (values['prompt-embeds']) input.prompt_embeds = await readNpy(values['prompt-embeds'], '--prompt-embeds');
  if (values['pooled-prompt-embeds']) input.pooled_prompt_embeds = await readNpy(values['pooled-prompt-embeds'], '--pooled-prompt-embeds');
  if (values['no-safety-checker']) {
    if (values['safety-checker']) throw invalidInput('--no-safety-checker', 'contradicts --safety-checker');
    input.enable_safety_checker = false;
  }
  if (values['safety-config'] && !values['safety-checker']) throw invalidInput('--safety-config', 'goes with --safety-checker <onnx>');
  const safetyChecker = values['safety-checker'] ? loadSafetyCheckerConfig(values['safety-checker'], values['safety-config']) : undefined;

  // Output paths, before any model loads (else a typo fails only after the whole generation).
  if (IMAGE_EXT[extname(values.out).toLowerCase()]) checkWritableFile(values.out, '--out');
  else checkWritableFolder(values.out, '--out');
  if (values['save-latents']) checkWritableFile(values['save-latents'], '--save-latents');
  if (values.pack !== undefined) {
    let isDir = false;
    try {
      isDir = statSync(values.pack).isDirectory();
    } catch {
      isDir = true; // missing: openPackDir says "No manifest.json in …"
    }
    if (!isDir) throw invalidInput('--pack', `${values.pack} is a file, not a pack folder (the folder holding manifest.json)`);
  }

  // ---- model ----
  const log = (s: string) => {
    if (!values.json) process.stderr.write(s + '\n');
  };
  const engine = new FluxEngine(await createNodeEngineEnv(ep));
  const tLoad = performance.now();
  const overrides = {
    ...(values.transformer ? { transformer: values.transformer } : {}),
    ...(values['vae-decoder'] ? { vae_decoder: values['vae-decoder'] } : {}),
    ...(values.clip ? { clip: values.clip } : {}),
    ...(values.t5 ? { t5: values.t5 } : {}),
    ...(values['safety-checker'] ? { safety_checker: values['safety-checker'] } : {}),
  };
  const pack = values.pack ? await openPackDir(values.pack, { verify: !values['no-verify'], log }) : null;
  if (!pack && Object.keys(overrides).length === 0) throw invalidInput('--pack', 'give a pack folder or --transformer and --vae-decoder graphs');
  // Embeddings against the transformer's declared input shapes: a field error instead of onnxruntime's text.
  if (input.prompt_embeds || input.pooled_prompt_embeds) {
    const graphs = values.transformer ? [values.transformer] : pack ? componentGraphsOf(pack.manifest.components.transformer).map((g) => pack.localPath(g.graph)) : [];
    checkEmbeddingShapes(graphs, input, values.transformer ? undefined : pack?.manifest.components.transformer.inputs);
  }
  const tokenizerDirs = {
    ...(values['clip-tokenizer'] ? { clip: values['clip-tokenizer'] } : {}),
    ...(values['t5-tokenizer'] ? { t5: values['t5-tokenizer'] } : {}),
  };
  try {
    if (pack && Object.keys(overrides).length === 0 && Object.keys(tokenizerDirs).length === 0) {
      await engine.loadPack(pack, { configOverrides });
    } else {
      const sources = await sourcesFromFiles({ pack, files: overrides, tokenizerDirs, configOverrides, needText: !input.prompt_embeds, ...(safetyChecker ? { safetyChecker } : {}) });
      await engine.loadSources(sources, pack ? `${pack.manifest.name} + overrides` : 'loose graphs');
    }
  } catch (e) {
    // The pack loader's tokenizer errors do not say which file; re-check the pack's tokenizer files to name it.
    if (pack && !Object.keys(tokenizerDirs).length) await checkPackTokenizers(pack);
    throw e;
  }
  const loadMs = performance.now() - tLoad;
  const info = engine.info!;
  log(`model: ${info.name}${info.testPack ? ' [TEST PACK: tiny random weights]' : ''} on ${ep} (load ${loadMs.toFixed(0)} ms)`);
  log(`safety checker: ${info.safetyChecker ? `${info.safetyChecker.model} (flags ${info.safetyChecker.unsafeLabels.join(', ')} ≥ ${info.safetyChecker.threshold})` : 'none in this model'}`);

  // ---- generate ----
  const result: FluxEngineResult = await engine.generate(input, {
    returnLatents: Boolean(values['save-latents']),
    onProgress: (e) => {
      if (e.stage === 'denoise') log(`  step ${e.step}/${e.totalSteps}  ${e.elapsedMs.toFixed(0)} ms`);
    },
  });

  const paths = outputPaths(values.out, result.images.length, format as 'png' | 'jpeg');
  if (!IMAGE_EXT[extname(values.out).toLowerCase()]) await mkdir(values.out, { recursive: true });
  else await mkdir(dirname(resolve(values.out)), { recursive: true });
  for (const [i, img] of result.images.entries()) await writeFile(paths[i]!, img.bytes);
  if (values['save-latents'] && result.latents) {
    await mkdir(dirname(resolve(values['save-latents'])), { recursive: true });
    await writeFile(values['save-latents'], encodeNpy(result.latents.data, result.latents.dims));
  }
  await engine.unload();

  const t = result.timings;
  if (values.json) {
    const { images, latents, ...rest } = result;
    void latents;
    process.stdout.write(
      JSON.stringify({ ...rest, load_ms: loadMs, images: images.map((im, i) => ({ path: paths[i], width: im.width, height: im.height, content_type: im.contentType })) }, null, 2) +
        '\n',
    );
    return;
  }
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  process.stdout.write(
    [
      `seed ${result.seed}, ${result.images.length} image(s) ${result.images[0]!.width}×${result.images[0]!.height}`,
      ...paths.map((p) => `  wrote ${p}`),
      ...(values['save-latents'] ? [`  wrote ${values['save-latents']}`] : []),
      'timings:',
      `  load          ${ms(loadMs)}`,
      `  encode text   ${ms(t.encode_text_ms)}`,
      ...t.step_ms.map((s, i) => `  step ${i + 1}        ${ms(s)}`),
      `  decode        ${ms(t.decode_ms)}`,
      `  postprocess   ${ms(t.postprocess_ms)}`,
      `  encode image  ${ms(t.encode_image_ms)}`,
      `  total         ${ms(t.total_ms)}`,
      ...safetyLines(result, paths),
      '',
    ].join('\n'),
  );
}

/** Per-image flags and scores, or why nothing was checked. */
function safetyLines(result: FluxEngineResult, paths: string[]): string[] {
  const s = result.safety;
  if (!s.ran) return [`safety checker: not run (${s.reason}); has_nsfw_concepts is false only because nothing was checked`];
  return [
    `safety checker: ${s.checker} (flagged when the unsafe score ≥ ${s.threshold})`,
    ...result.has_nsfw_concepts.map((f, i) =>
      `  image ${i}: ${f ? 'FLAGGED, replaced by a black placeholder' : 'ok'}  score ${s.scores?.[i]?.toFixed(4) ?? '?'}  ${paths[i] ?? ''}`.trimEnd(),
    ),
  ];
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  try {
    if (command !== 'generate') throw new FluxError('invalid_input', `unknown command "${command}"; the command is "generate"`);
    await generateCommand(rest);
    return 0;
  } catch (e) {
    if (isFluxError(e)) {
      process.stderr.write(`error [${e.code}]: ${e.message}\n`);
      return e.code === 'invalid_input' ? 2 : 1;
    }
    if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`error: ${(e as Error).message}\n\n${USAGE}`);
      return 2;
    }
    // No stack traces for users; FLUX_DEBUG=1 shows them.
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env.FLUX_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return 1;
  }
}

// Only when executed directly (not when imported by tests).
if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  process.exitCode = await main(process.argv.slice(2));
}
