/**
 * Deterministic transformer inputs shared with bench/device/flux_torch.py (`inputs`): sin(i·a) patterns, σ = 0.75,
 * image ids [0, row, col], text ids 0 — and a per-step timer to completion (onnxruntime-node returns outputs on the
 * CPU, so each run includes the GPU work and the latent's read-back).
 */
import type * as Ort from 'onnxruntime-node';

export function transformerFeeds(ort: typeof Ort, session: Ort.InferenceSession, width: number, height: number, txt: number): Record<string, Ort.Tensor> {
  const meta = Object.fromEntries(session.inputMetadata.map((x) => [x.name, x as { shape?: (number | string)[] }]));
  const dim = (name: string, i: number) => {
    const d = Number(meta[name]?.shape?.[i]);
    if (!Number.isInteger(d)) throw new Error(`transformer input ${name}: dimension ${i} is not fixed in the graph (${JSON.stringify(meta[name]?.shape)})`);
    return d;
  };
  const C = dim('hidden_states', 2);
  const J = dim('encoder_hidden_states', 2);
  const P = dim('pooled_projections', 1);
  if (width % 16 || height % 16) throw new Error(`size must be a multiple of 16, got ${width}x${height}`);
  const S = (width / 16) * (height / 16);
  const w16 = width / 16;
  const sinArr = (n: number, a: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * a));
  return {
    hidden_states: new ort.Tensor('float32', sinArr(S * C, 0.37), [1, S, C]),
    encoder_hidden_states: new ort.Tensor('float32', sinArr(txt * J, 0.11), [1, txt, J]),
    pooled_projections: new ort.Tensor('float32', sinArr(P, 0.23), [1, P]),
    timestep: new ort.Tensor('float32', Float32Array.of(0.75), [1]),
    img_ids: new ort.Tensor('float32', Float32Array.from({ length: S * 3 }, (_, k) => {
      const i = Math.floor(k / 3);
      return [0, Math.floor(i / w16), i % w16][k % 3]!;
    }), [S, 3]),
    txt_ids: new ort.Tensor('float32', new Float32Array(txt * 3), [txt, 3]),
  };
}

/** One warm-up run (shader compilation), then `steps` timed runs. */
export async function timeSteps(session: Ort.InferenceSession, feeds: Record<string, Ort.Tensor>, steps: number): Promise<{ stepMs: number[]; meanMs: number; latent: Ort.Tensor }> {
  let out = await session.run(feeds);
  const stepMs: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    out = await session.run(feeds);
    stepMs.push(performance.now() - t0);
  }
  return { stepMs, meanMs: stepMs.reduce((a, b) => a + b, 0) / stepMs.length, latent: out.latent! };
}
