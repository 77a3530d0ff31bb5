/**
 * `npm run pack -- …`: build a model pack from ONNX exports of FLUX.1 [schnell]. See USAGE and README.md
 * ("Building the real FLUX.1 [schnell] pack").
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseNumberFlag, type NumberRule } from '../cli/args.js';
import { checkWritableFile } from '../cli/paths.js';
import { ATTENTION_MODES, MAX_ATTENTION_CHUNKS, type AttentionMode } from './attention.js';
import { convertPack, formatResult, QUANT_MODES, type ConvertOptions, type QuantMode } from './index.js';

const USAGE = `Usage: npm run pack -- --transformer <onnx> --vae-decoder <onnx> [--clip <onnx> --t5 <onnx> --tokenizers <dir>]
                     --quant int4|int8|fp16|fp32 --out <dir> [options]

Inputs (ONNX files; external data is read from beside them; bf16 weights become fp32):
  --transformer <onnx>        FLUX transformer (official transformer.opt/bf16/, diffusers/optimum exports)
  --vae-decoder <onnx>        VAE decoder (kept fp32 unless --vae-quant/--vae-fp16)
  --clip <onnx> --t5 <onnx>   text encoders (optional, together)
  --tokenizers <dir>          folder with tokenizer/ (CLIP) and tokenizer_2/ (T5), each with tokenizer.json
  --safety-checker <onnx>     optional image classifier for the safety check (docs/safety.md), e.g. an optimum
                              export of Falconsai/nsfw_image_detection; preprocessor_config.json + config.json
                              beside it describe its preprocessing and labels
  --safety-config <json>      classifier fields (model, preprocess, labels, unsafeLabels, scores, threshold;
                              docs/model-pack.md), whole or overriding the Hugging Face files

Quantization:
  --quant <mode>              int4 | int8 (MatMulNBits weights, fp32 compute) | fp16 (fp32 islands) | fp32
  --transformer-quant, --t5-quant, --clip-quant, --vae-quant <mode>   per-component overrides
  --safety-quant <mode>       safety checker (default int8; norms and softmax stay float)
  --vae-fp16                  same as --vae-quant fp16
  --activations fp32|fp16     int4/int8 transformer and text encoders: fp32 activations (default, any WebGPU GPU)
                              or fp16 with fp32 norms/softmax/RoPE/timestep and clamped residuals (needs shader-f16)
  --attention chunked|unfused transformer and VAE attention: chunked (default) splits the query rows so no buffer
                              holds the S×S scores (docs/attention.md); unfused keeps the export's as is
  --attention-chunks <N>      query chunks per attention when chunked (default 16, 1–${MAX_ATTENTION_CHUNKS})
  --t5-wo int8|fp32|same      T5 FFN output projection (default int8 when T5 is int4)
  --int8-layers <regex>       int4 transformer: MatMuls (node or weight name) kept int8 (default: the conditioning,
                              embedding and output layers; '' = none)
  --block-size 32|64|128      MatMulNBits block along K (default 32: the fast WebGPU path)
  --symmetric | --asymmetric  zero points or not (default: asymmetric int4, symmetric int8)
  --mse-search                per-block range search for the least squared error (same format, ~6× slower;
                              default: ORT's round-to-nearest min/max)
  --embeddings-min <n>        int8 per-row tables for Gather embeddings ≥ n elements (default 1048576; 0 = off)

Output:
  --out <dir>                 pack folder (its component folders and manifest.json are replaced)
  --shard-mb <N>              external-data shard size limit in MiB (default 512; tensors are never split)
  --max-stage-mb <N>          split components with more than N MiB of weights into stages (default 512)
  --id <id> --name <text> --description <text> --license <text> --test-pack
  --verify-mb <N>             compare with the original on ORT CPU when its weights are ≤ N MiB (default 2048)
  --recon-rows <n>            random rows for the per-MatMul reconstruction error (default 4; 0 = off)
  --report-json <file>        write the report (sizes, errors, peak RSS, throughput) as JSON
  --quiet
`;

function mode(v: string | undefined, flag: string): QuantMode | undefined {
  if (v === undefined) return undefined;
  if (!(QUANT_MODES as readonly string[]).includes(v)) throw new Error(`${flag} must be one of ${QUANT_MODES.join(', ')}`);
  return v as QuantMode;
}

/** Numeric flags: plain decimals only ("0x20" or " 8" are refused), within range. */
const num = (v: string | undefined, flag: string, rule: NumberRule = { min: 0 }) => parseNumberFlag(v, flag, rule);

export async function main(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        transformer: { type: 'string' },
        'vae-decoder': { type: 'string' },
        clip: { type: 'string' },
        t5: { type: 'string' },
        tokenizers: { type: 'string' },
        'safety-checker': { type: 'string' },
        'safety-config': { type: 'string' },
        'safety-quant': { type: 'string' },
        quant: { type: 'string' },
        'transformer-quant': { type: 'string' },
        't5-quant': { type: 'string' },
        'clip-quant': { type: 'string' },
        'vae-quant': { type: 'string' },
        'vae-fp16': { type: 'boolean' },
        activations: { type: 'string' },
        attention: { type: 'string' },
        'attention-chunks': { type: 'string' },
        't5-wo': { type: 'string' },
        'int8-layers': { type: 'string' },
        'block-size': { type: 'string' },
        symmetric: { type: 'boolean' },
        asymmetric: { type: 'boolean' },
        'mse-search': { type: 'boolean' },
        'embeddings-min': { type: 'string' },
        'shard-mb': { type: 'string' },
        'max-stage-mb': { type: 'string' },
        id: { type: 'string' },
        name: { type: 'string' },
        description: { type: 'string' },
        license: { type: 'string' },
        'test-pack': { type: 'boolean' },
        'verify-mb': { type: 'string' },
        'recon-rows': { type: 'string' },
        'report-json': { type: 'string' },
        out: { type: 'string' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const s = (k: string) => values[k] as string | undefined;
  try {
    for (const req of ['transformer', 'vae-decoder', 'quant', 'out']) if (!s(req)) throw new Error(`--${req} is required`);
    if (values.symmetric && values.asymmetric) throw new Error('--symmetric and --asymmetric exclude each other');
    const wo = s('t5-wo');
    if (wo !== undefined && wo !== 'int8' && wo !== 'fp32' && wo !== 'same') throw new Error('--t5-wo must be int8, fp32 or same');
    const opts: ConvertOptions = {
      transformer: s('transformer')!,
      vaeDecoder: s('vae-decoder')!,
      out: s('out')!,
      quant: mode(s('quant'), '--quant')!,
    };
    const set = <K extends keyof ConvertOptions>(k: K, v: ConvertOptions[K] | undefined) => {
      if (v !== undefined) opts[k] = v as ConvertOptions[K];
    };
    set('clip', s('clip'));
    set('t5', s('t5'));
    set('tokenizers', s('tokenizers'));
    set('safetyChecker', s('safety-checker'));
    set('safetyConfigFile', s('safety-config'));
    set('safetyQuant', mode(s('safety-quant'), '--safety-quant'));
    set('transformerQuant', mode(s('transformer-quant'), '--transformer-quant'));
    set('t5Quant', mode(s('t5-quant'), '--t5-quant'));
    set('clipQuant', mode(s('clip-quant'), '--clip-quant'));
    set('vaeQuant', mode(s('vae-quant'), '--vae-quant') ?? (values['vae-fp16'] ? 'fp16' : undefined));
    const act = s('activations');
    if (act !== undefined && act !== 'fp32' && act !== 'fp16') throw new Error('--activations must be fp32 or fp16');
    set('activations', act as ConvertOptions['activations']);
    const attn = s('attention');
    if (attn !== undefined && !(ATTENTION_MODES as readonly string[]).includes(attn)) throw new Error(`--attention must be one of ${ATTENTION_MODES.join(', ')}, got "${attn}"`);
    set('attention', attn as AttentionMode | undefined);
    set('attentionChunks', num(s('attention-chunks'), '--attention-chunks', { integer: true, min: 1, max: MAX_ATTENTION_CHUNKS }));
    set('t5Wo', wo as ConvertOptions['t5Wo']);
    set('int8Layers', s('int8-layers'));
    set('blockSize', num(s('block-size'), '--block-size', { integer: true, min: 16, max: 256 }));
    set('symmetric', values.symmetric ? true : values.asymmetric ? false : undefined);
    set('mseSearch', values['mse-search'] ? true : undefined);
    set('embeddingMinElements', num(s('embeddings-min'), '--embeddings-min', { integer: true, min: 0 }));
    set('shardMb', num(s('shard-mb'), '--shard-mb'));
    set('maxStageMb', num(s('max-stage-mb'), '--max-stage-mb'));
    set('id', s('id'));
    set('name', s('name'));
    set('description', s('description'));
    set('license', s('license'));
    set('testPack', values['test-pack'] ? true : undefined);
    set('verifyMb', num(s('verify-mb'), '--verify-mb'));
    set('reconRows', num(s('recon-rows'), '--recon-rows', { integer: true, min: 0 }));
    // Checked before converting, so a bad path fails at once rather than after the whole conversion.
    const reportPath = s('report-json');
    if (reportPath) checkWritableFile(reportPath, '--report-json');
    if (!values.quiet) opts.log = (line) => process.stderr.write(line + '\n');
    const result = await convertPack(opts);
    process.stdout.write(formatResult(result) + '\n');
    const rj = s('report-json');
    if (rj) {
      const { report, ...rest } = result;
      const components = report.components.map(({ quantized, ...c }) => ({
        ...c,
        matmuls: quantized.map((q) => ({ node: q.node, weight: q.weight, K: q.K, N: q.N, bits: q.params.bits, block: q.params.block, symmetric: q.params.symmetric, relError: q.relError })),
      }));
      writeFileSync(rj, JSON.stringify({ ...rest, out: report.out, totalBytes: report.totalBytes, components }, null, 2) + '\n');
    }
    return 0;
  } catch (e) {
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env.FLUX_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  process.exitCode = await main(process.argv.slice(2));
}
