/**
 * Model configuration of a FLUX pack. Every value the pipeline needs that differs between
 * FLUX-family models (or between the real model and a tiny test model) lives here, so nothing
 * downstream hard-codes 16 channels, 8x, 4096 or 768.
 *
 * Defaults are FLUX.1 [schnell] (see docs/flux-pipeline.md, §2, §4, §5, §6).
 */
export interface FluxModelConfig {
  /** VAE latent channels (FLUX: 16). The transformer sees 4x this per packed token. */
  latentChannels: number;
  /** Pixels per latent cell (FLUX: 8 = 2^(len(block_out_channels)-1)). */
  vaeScaleFactor: number;
  /** VAE input is `latents / vaeScalingFactor + vaeShiftFactor` (FLUX: 0.3611). */
  vaeScalingFactor: number;
  /** (FLUX: 0.1159). */
  vaeShiftFactor: number;
  /** CLIP token sequence length, BOS + 75 + EOS (FLUX: 77). */
  clipMaxLength: number;
  /** T5 token sequence length including EOS (schnell: 256; dev: 512). */
  t5MaxLength: number;
  /** Static scheduler shift, σ' = shift·σ / (1 + (shift−1)·σ) (schnell: 1, i.e. identity). */
  schedulerShift: number;
  /** Largest step count this pack runs locally (schnell: 12, fal's range; the σ schedule is defined for any N). */
  maxSteps: number;
  /** Why a pack allows fewer than fal's 12 steps; required then, and quoted when a request asks for more. */
  maxStepsReason?: string;
  /** Step count used when a request gives none (schnell: 4). */
  defaultSteps: number;
}

export const FLUX_SCHNELL_CONFIG: Readonly<FluxModelConfig> = Object.freeze({
  latentChannels: 16,
  vaeScaleFactor: 8,
  vaeScalingFactor: 0.3611,
  vaeShiftFactor: 0.1159,
  clipMaxLength: 77,
  t5MaxLength: 256,
  schedulerShift: 1,
  maxSteps: 12,
  defaultSteps: 4,
});

/** The numeric config keys (every key but the reason text), which carry bounds. */
export type NumericConfigKey = Exclude<keyof FluxModelConfig, 'maxStepsReason'>;

/**
 * Allowed values of each config key, shared by the manifest validator and the CLI flags. Out-of-range values would
 * otherwise reach onnxruntime: `vaeScaleFactor: 3` makes a 340×340 latent for 1024 px and tries to allocate
 * ~30 GB in attention, a huge t5MaxLength or latentChannels sizes tensors the same way.
 */
export interface ConfigBound {
  integer?: boolean;
  /** Exclusive lower bound 0 when `min` is absent. */
  min?: number;
  max?: number;
  powerOfTwo?: boolean;
}
export const MODEL_CONFIG_BOUNDS: Readonly<Record<NumericConfigKey, ConfigBound>> = Object.freeze({
  // FLUX.1: 16; FLUX.2 and other VAEs: up to 128.
  latentChannels: { integer: true, min: 1, max: 128 },
  // A VAE halves the size per down block: 8 for FLUX/SD, 1–16 for tiny test models.
  vaeScaleFactor: { integer: true, min: 1, max: 16, powerOfTwo: true },
  vaeScalingFactor: {},
  vaeShiftFactor: {},
  // CLIP's position embeddings hold 77 tokens.
  clipMaxLength: { integer: true, min: 2, max: 77 },
  // schnell: 256, dev: 512.
  t5MaxLength: { integer: true, min: 1, max: 512 },
  schedulerShift: {},
  // fal's schnell range is 1–12: a pack may narrow it (with maxStepsReason), not widen it.
  maxSteps: { integer: true, min: 1, max: 12 },
  defaultSteps: { integer: true, min: 1, max: 12 },
});

/** Why `value` is not allowed for `key` ("must be …, got …"), or undefined when it is. */
export function configValueProblem(key: NumericConfigKey, value: unknown): string | undefined {
  const b = MODEL_CONFIG_BOUNDS[key];
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    value > 0 &&
    (!b.integer || Number.isInteger(value)) &&
    (b.min === undefined || value >= b.min) &&
    (b.max === undefined || value <= b.max) &&
    (!b.powerOfTwo || (value & (value - 1)) === 0);
  if (ok) return undefined;
  const kind = b.powerOfTwo ? 'a power of two' : b.integer ? 'a positive integer' : 'a positive number';
  const range = b.min !== undefined && b.max !== undefined ? ` between ${b.min} and ${b.max}` : b.max !== undefined ? ` ≤ ${b.max}` : '';
  return `must be ${kind}${range}, got ${typeof value === 'number' ? value : JSON.stringify(value)}`;
}

/** Merge a partial config (from a manifest or CLI flags) over the FLUX.1 [schnell] defaults. */
export function resolveModelConfig(...overrides: (Partial<FluxModelConfig> | undefined)[]): FluxModelConfig {
  const config: FluxModelConfig = { ...FLUX_SCHNELL_CONFIG };
  for (const o of overrides) {
    if (!o) continue;
    for (const [k, v] of Object.entries(o)) {
      if (v !== undefined) (config as unknown as Record<string, unknown>)[k] = v;
    }
  }
  return config;
}

/** Special token ids used for framing. The real tokenizer files define them; these are FLUX's. */
export interface ClipSpecialTokens {
  bos: number;
  eos: number;
  pad: number;
}
export interface T5SpecialTokens {
  eos: number;
  pad: number;
}
export const CLIP_SPECIAL_TOKENS: Readonly<ClipSpecialTokens> = Object.freeze({ bos: 49406, eos: 49407, pad: 49407 });
export const T5_SPECIAL_TOKENS: Readonly<T5SpecialTokens> = Object.freeze({ eos: 1, pad: 0 });
