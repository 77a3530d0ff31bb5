/**
 * `--activations fp16`: int4/int8 weights (MatMulNBits) with fp16 activations, for adapters with `shader-f16`.
 *
 * The precision split is `--quant fp16`'s (src/convert/fp16.ts: norms, softmax, RMSNorm chains, the timestep/RoPE
 * trig and T5's `wo` + residual stay fp32 islands); MatMulNBits then takes fp16 A and fp16 scales, which is what
 * onnxruntime-web's WebGPU kernel runs in f16.
 *
 * On top of that, every fp16 Add of two activations (the residual stream and the modulation shift) is clamped to
 * ±65504, as diffusers does for FLUX in fp16 (`hidden_states.clip(-65504, 65504)` after the residual adds) and
 * community FLUX.2 ports copy: an Add that overflows gives ±inf, and the next norm turns inf into NaN for the whole
 * token. The clamp maps ±inf back to the fp16 range and leaves every finite value as it is.
 */
import { copyInit, inferTypes, type ComponentGraph } from './graph.js';
import { convertToFp16, type Fp16Options, type Fp16Report } from './fp16.js';
import { DT, node, type NodeProto } from './onnx.js';
import { toFloat16Bits } from '../runtime/float16.js';

export const FP16_MAX = 65504;

export interface Fp16ActivationsReport extends Fp16Report {
  /** MatMulNBits nodes computing in fp16 / kept fp32 (islands such as T5's `wo`). */
  nbitsFp16: number;
  nbitsFp32: number;
  /** Clip nodes added after fp16 Adds of two activations. */
  clamps: number;
}

function fp16Scalar(g: ComponentGraph, name: string, value: number): string {
  if (!g.inits.has(name)) {
    const bytes = new Uint8Array(new Uint16Array([toFloat16Bits(value)]).buffer);
    g.inits.set(name, copyInit({ name, dims: [], dataType: DT.FLOAT16, byteLength: 2, source: { kind: 'inline', bytes } }, name));
  }
  return name;
}

/** Clamp fp16 Adds whose two inputs are both computed (not initializers/Constants). Returns the count. */
export function clampResidualAdds(g: ComponentGraph): number {
  const types = inferTypes(g);
  const constants = new Set<string>(g.inits.keys());
  for (const n of g.nodes) if (n.opType === 'Constant') for (const o of n.output ?? []) constants.add(o);
  const opset = g.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx')?.version ?? 0;
  // Clip takes min/max as inputs from opset 11, and accepts float16 there; older graphs are not FLUX exports.
  if (opset < 11) throw new Error(`--activations fp16 needs an opset ≥ 11 graph (this one is opset ${opset})`);
  const lo = fp16Scalar(g, 'fp16_clamp_min', -FP16_MAX);
  const hi = fp16Scalar(g, 'fp16_clamp_max', FP16_MAX);
  const out: NodeProto[] = [];
  let clamps = 0;
  for (const n of g.nodes) {
    out.push(n);
    if (n.opType !== 'Add' || (n.domain && n.domain !== 'ai.onnx')) continue;
    const [a, b] = n.input ?? [];
    const y = n.output?.[0] ?? '';
    if (!a || !b || !y || constants.has(a) || constants.has(b) || types.get(y) !== DT.FLOAT16) continue;
    // The Add now writes `raw`; the Clip takes over its output name, so consumers and graph outputs are unchanged.
    const raw = `${y}_unclamped`;
    n.output![0] = raw;
    out.push(node('Clip', [raw, lo, hi], [y], {}, { name: `${n.name || y}_fp16_clamp` }));
    clamps++;
  }
  g.nodes = out;
  return clamps;
}

/**
 * Run after quantizeMatMuls: fp16 everywhere outside the islands (fp16.ts), fp16 MatMulNBits scales, clamped
 * residual Adds. Graph inputs/outputs keep `ioTypes`, so the pipeline feeds and reads the component as before.
 */
export function convertActivationsToFp16(g: ComponentGraph, opts: Fp16Options): Fp16ActivationsReport {
  const report = convertToFp16(g, opts);
  const types = inferTypes(g);
  let nbitsFp16 = 0;
  let nbitsFp32 = 0;
  for (const n of g.nodes) {
    if (n.opType !== 'MatMulNBits') continue;
    if (types.get(n.input?.[0] ?? '') === DT.FLOAT16) nbitsFp16++;
    else nbitsFp32++;
  }
  const clamps = clampResidualAdds(g);
  return { ...report, nbitsFp16, nbitsFp32, clamps };
}
