/**
 * Node only: the safety checker's classifier config for a loose ONNX file (`--safety-checker` of `npm run flux`
 * and `npm run pack`). Sources, merged in this order (later wins):
 *   1. Hugging Face `preprocessor_config.json` + `config.json` beside the graph (what `optimum-cli export onnx`
 *      writes), when both exist;
 *   2. `--safety-config <json>`: the manifest's classifier fields (model, preprocess, labels, unsafeLabels, scores,
 *      threshold; docs/model-pack.md), whole or in part; `preprocess` merges field by field.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FluxError } from '../errors.js';
import { parseSafetyCheckerConfig, safetyConfigFromHuggingFace, type SafetyCheckerConfig } from '../pack/safety-checker.js';

function readJson(path: string, flag: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FluxError('invalid_input', `${flag}: cannot read ${path}: ${(e as Error).message}`, { field: flag });
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new FluxError('invalid_input', `${flag}: ${path} is not a JSON object: ${(e as Error).message}`, { field: flag });
  }
}

export function loadSafetyCheckerConfig(onnxPath: string, configPath?: string): SafetyCheckerConfig {
  const dir = dirname(onnxPath);
  const hf = { preprocessor: join(dir, 'preprocessor_config.json'), config: join(dir, 'config.json') };
  const hasHf = existsSync(hf.preprocessor) && existsSync(hf.config);
  const overrides = configPath ? readJson(configPath, '--safety-config') : {};
  // The name a result reports: the config's, else the Hub id optimum records, else the folder's name.
  const fallbackName = basename(dir) || basename(onnxPath);
  try {
    if (hasHf) {
      return safetyConfigFromHuggingFace(readJson(hf.preprocessor, '--safety-checker'), readJson(hf.config, '--safety-checker'), fallbackName, overrides);
    }
    if (!configPath) {
      throw new FluxError(
        'invalid_input',
        `--safety-checker ${onnxPath}: no preprocessor_config.json + config.json beside it (an optimum export has them); describe the classifier with --safety-config <json> (docs/model-pack.md)`,
        { field: '--safety-config' },
      );
    }
    return parseSafetyCheckerConfig({ model: fallbackName, ...overrides }, 'safety_checker', `${configPath}: `);
  } catch (e) {
    if (e instanceof FluxError && e.code === 'invalid_manifest') throw new FluxError('invalid_input', e.message, { field: '--safety-config', cause: e });
    throw e;
  }
}
