/**
 * How far a generation is, 0–1, for the progress bar: local runs move through text encoding, the denoising steps
 * (most of the time) and decoding; a remote run is indeterminate (null) until fal says it is done, since fal's queue
 * gives positions, not durations.
 */
import type { FluxProgressEvent } from '../client/flux-api.js';

/** Share of a local run before the first step, where the last step ends, and where decoding starts. */
const BEFORE_STEPS = 0.05;
const STEPS_END = 0.9;
const DECODE_AT = 0.92;

export function progressFraction(e: FluxProgressEvent): number | null {
  if (e.target === 'remote') return e.stage === 'completed' ? 0.98 : null;
  switch (e.stage) {
    case 'load':
      return 0;
    case 'encode_text':
      return BEFORE_STEPS / 2;
    case 'denoise':
      return BEFORE_STEPS + ((STEPS_END - BEFORE_STEPS) * (e.step ?? 0)) / Math.max(1, e.totalSteps);
    case 'decode':
      return DECODE_AT;
    case 'postprocess':
    case 'encode_image':
      return 0.97;
  }
}
