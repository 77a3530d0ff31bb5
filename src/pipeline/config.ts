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
  /** Largest step count this pack is meant to run locally (schnell: 4). */
  maxSteps: number;
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
  maxSteps: 4,
  defaultSteps: 4,
});

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
