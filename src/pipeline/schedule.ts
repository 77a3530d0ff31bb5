/**
 * Flow-matching Euler schedule of FLUX.1 [schnell] (docs/flux-pipeline.md §5), reproduced in float32
 * exactly as diffusers computes it: sigmas = float32(linspace(1, 1/N, N)), optional static shift, then a
 * terminal 0; the transformer's `timestep` input is float32(float32(1000·σ) / 1000).
 */
const f32 = Math.fround;

/**
 * σ schedule with the terminal 0 appended: length N + 1.
 * linspace is computed like numpy's (start + i·step, the last element set to `stop` exactly).
 */
export function schnellSigmas(numSteps: number, shift = 1): Float32Array {
  if (!Number.isInteger(numSteps) || numSteps < 1) throw new RangeError(`numSteps must be a positive integer, got ${numSteps}`);
  const start = 1;
  const stop = 1 / numSteps;
  const sigmas = new Float32Array(numSteps + 1);
  const step = numSteps > 1 ? (stop - start) / (numSteps - 1) : 0;
  for (let i = 0; i < numSteps; i++) {
    const linear = i === numSteps - 1 ? stop : start + i * step;
    let s = f32(linear);
    // FlowMatchEulerDiscreteScheduler static shift (identity for shift = 1), evaluated in float32.
    if (shift !== 1) s = f32(f32(f32(shift) * s) / f32(1 + f32(f32(shift - 1) * s)));
    sigmas[i] = s;
  }
  sigmas[numSteps] = 0;
  return sigmas;
}

/** The transformer's `timestep` input for σ: diffusers passes (1000σ as float32) / 1000 in float32. */
export function timestepInput(sigma: number): number {
  return f32(f32(sigma * 1000) / 1000);
}

/** Euler step size dt_i = σ_{i+1} − σ_i (negative), in float32. */
export function eulerDt(sigmas: Float32Array, i: number): number {
  return f32(sigmas[i + 1]! - sigmas[i]!);
}

/** x ← x + dt·v in float32, as the scheduler does it (reference for the on-device graph). */
export function eulerStep(x: Float32Array, v: Float32Array, dt: number): Float32Array {
  if (x.length !== v.length) throw new RangeError(`eulerStep: x has ${x.length} values, v has ${v.length}`);
  const out = new Float32Array(x.length);
  const d = f32(dt);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! + f32(d * v[i]!);
  return out;
}
