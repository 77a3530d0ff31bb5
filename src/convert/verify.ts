/**
 * Verification on onnxruntime-node (CPU EP): the converted graph (or its stages chained) against the original on
 * random inputs of the component's real interface.
 */
import * as ort from 'onnxruntime-node';
import { fromFloat16Bits, toFloat16Bits } from '../runtime/float16.js';
import { randomNormals } from './quantize.js';

export type Feeds = Record<string, ort.Tensor>;

export interface CompareStats {
  output: string;
  maxAbs: number;
  meanAbs: number;
  cosine: number;
  /** ‖a − b‖ / ‖a‖ */
  relL2: number;
  count: number;
}

export function compareArrays(name: string, ref: ArrayLike<number>, got: ArrayLike<number>): CompareStats {
  if (ref.length !== got.length) throw new Error(`${name}: ${got.length} values vs ${ref.length} in the original`);
  let maxAbs = 0;
  let sumAbs = 0;
  let dot = 0;
  let na = 0;
  let nb = 0;
  let se = 0;
  for (let i = 0; i < ref.length; i++) {
    const a = ref[i]!;
    const b = got[i]!;
    const d = Math.abs(a - b);
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? NaN : d;
    sumAbs += d;
    se += d * d;
    dot += a * b;
    na += a * a;
    nb += b * b;
  }
  return {
    output: name,
    maxAbs,
    meanAbs: ref.length ? sumAbs / ref.length : 0,
    cosine: na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : na === nb ? 1 : 0,
    relL2: na > 0 ? Math.sqrt(se / na) : Math.sqrt(se),
    count: ref.length,
  };
}

function numbers(t: ort.Tensor): Float32Array | number[] {
  const d = t.data as unknown;
  if (d instanceof Float32Array) return d;
  if (t.type === 'float16') {
    // Uint16 bits (or Float16Array where available)
    const arr = d as ArrayLike<number>;
    if (d instanceof Uint16Array) {
      const out = new Float32Array(arr.length);
      for (let i = 0; i < arr.length; i++) out[i] = fromFloat16Bits(arr[i]!);
      return out;
    }
    return Array.from(arr);
  }
  if (d instanceof BigInt64Array) return Array.from(d, Number);
  return Array.from(d as ArrayLike<number>);
}

interface InputMeta {
  name: string;
  type: string;
  shape: (number | string)[];
}

export interface InputConfig {
  component: string;
  /** Token vocabulary size for id inputs (from the embedding table), when known. */
  vocab?: number;
  seqImg?: number;
  seqTxt?: number;
  seed?: number;
  /** Safety checker: the classifier's pixel_values shape ([1, 3, h, w] or [1, h, w, 3]). */
  pixelShape?: readonly number[];
}

function makeTensor(type: string, values: number[] | Float32Array, dims: number[]): ort.Tensor {
  if (type === 'float32') return new ort.Tensor('float32', values instanceof Float32Array ? values : Float32Array.from(values), dims);
  if (type === 'float16') return new ort.Tensor('float16', Uint16Array.from(values as ArrayLike<number>, toFloat16Bits), dims);
  if (type === 'int64') return new ort.Tensor('int64', BigInt64Array.from(Array.from(values as ArrayLike<number>), (v) => BigInt(Math.round(v))), dims);
  if (type === 'int32') return new ort.Tensor('int32', Int32Array.from(values as ArrayLike<number>), dims);
  throw new Error(`cannot make a random ${type} input`);
}

/** Random inputs of a FLUX component's interface, from the graph's input metadata. */
export function makeInputs(metas: readonly InputMeta[], cfg: InputConfig): Feeds {
  const S = cfg.seqImg ?? 16;
  const L = cfg.seqTxt ?? 8;
  const gridW = Math.max(1, Math.round(Math.sqrt(S)));
  let seed = cfg.seed ?? 7;
  const feeds: Feeds = {};
  const dimOf = (m: InputMeta, i: number, fallback: number) => (typeof m.shape[i] === 'number' && (m.shape[i] as number) > 0 ? (m.shape[i] as number) : fallback);
  for (const m of metas) {
    const name = m.name;
    if (cfg.component === 'transformer') {
      if (name === 'hidden_states') {
        const dims = [dimOf(m, 0, 1), dimOf(m, 1, S), dimOf(m, 2, 64)];
        feeds[name] = makeTensor(m.type, randomNormals(dims[0]! * dims[1]! * dims[2]!, seed++), dims);
        continue;
      }
      if (name === 'encoder_hidden_states') {
        const dims = [dimOf(m, 0, 1), dimOf(m, 1, L), dimOf(m, 2, 4096)];
        feeds[name] = makeTensor(m.type, randomNormals(dims[0]! * dims[1]! * dims[2]!, seed++), dims);
        continue;
      }
      if (name === 'pooled_projections') {
        const dims = [dimOf(m, 0, 1), dimOf(m, 1, 768)];
        feeds[name] = makeTensor(m.type, randomNormals(dims[0]! * dims[1]!, seed++), dims);
        continue;
      }
      if (name === 'timestep' || name === 'guidance') {
        const b = dimOf(m, 0, 1);
        feeds[name] = makeTensor(m.type, new Array(b).fill(name === 'timestep' ? 0.75 : 3.5), m.shape.length ? [b] : []);
        continue;
      }
      if (name === 'img_ids' || name === 'txt_ids') {
        const n = name === 'img_ids' ? S : L;
        const rank3 = m.shape.length === 3;
        const count = rank3 ? dimOf(m, 1, n) : dimOf(m, 0, n);
        const vals: number[] = [];
        for (let i = 0; i < count; i++) vals.push(0, name === 'img_ids' ? Math.floor(i / gridW) : 0, name === 'img_ids' ? i % gridW : 0);
        feeds[name] = makeTensor(m.type, vals, rank3 ? [1, count, 3] : [count, 3]);
        continue;
      }
    }
    const dims =
      cfg.pixelShape && m.shape.length === cfg.pixelShape.length
        ? [...cfg.pixelShape]
        : m.shape.map((d, i) => (typeof d === 'number' && d > 0 ? d : i === 0 ? 1 : cfg.component === 'vae_decoder' ? 8 : L));
    const n = dims.reduce((a, b) => a * b, 1);
    if (m.type === 'float32' || m.type === 'float16') {
      feeds[name] = makeTensor(m.type, randomNormals(n, seed++), dims);
    } else if (m.type === 'int32' || m.type === 'int64') {
      const vocab = cfg.vocab ?? 100;
      const ids: number[] = [];
      const rnd = randomNormals(n, seed++);
      const len = dims[dims.length - 1] ?? n;
      for (let i = 0; i < n; i++) {
        const pos = i % len;
        const r = Math.abs(rnd[i]! * 1e4) % 1;
        if (cfg.component === 'clip') {
          // BOS, a few tokens, EOS, EOS padding (EOS = the largest id, BOS the one before, as in CLIP).
          ids.push(pos === 0 ? vocab - 2 : pos <= 5 ? Math.floor(r * (vocab - 2)) : vocab - 1);
        } else if (cfg.component === 't5') {
          ids.push(pos < len - 3 ? 3 + Math.floor(r * (vocab - 3)) : pos === len - 3 ? 1 : 0);
        } else ids.push(Math.floor(r * vocab));
      }
      feeds[name] = makeTensor(m.type, ids, dims);
    } else throw new Error(`input "${name}": cannot make random ${m.type} data`);
  }
  return feeds;
}

/** Run one graph or a chain of stage graphs; returns every requested output. */
export async function runGraphs(paths: readonly string[], feeds: Feeds, wanted?: readonly string[]): Promise<Record<string, ort.Tensor>> {
  const env: Record<string, ort.Tensor> = { ...feeds };
  let last: Record<string, ort.Tensor> = {};
  for (const p of paths) {
    const s = await ort.InferenceSession.create(p, { graphOptimizationLevel: 'all', intraOpNumThreads: 2 });
    try {
      const f: Feeds = {};
      for (const n of s.inputNames) {
        if (!env[n]) throw new Error(`${p}: input "${n}" is neither a component input nor an output of an earlier stage`);
        f[n] = env[n]!;
      }
      last = await s.run(f);
      Object.assign(env, last);
    } finally {
      await s.release();
    }
  }
  if (!wanted) return last;
  const out: Record<string, ort.Tensor> = {};
  for (const w of wanted) if (env[w]) out[w] = env[w]!;
  return out;
}

export async function inputMetadata(path: string): Promise<InputMeta[]> {
  const s = await ort.InferenceSession.create(path);
  try {
    const meta = (s as unknown as { inputMetadata: { name: string; isTensor: boolean; type: string; shape: (number | string)[] }[] }).inputMetadata;
    return meta.map((m) => ({ name: m.name, type: m.type, shape: m.shape ?? [] }));
  } finally {
    await s.release();
  }
}

export interface VerifyResult {
  inputs: Record<string, number[]>;
  outputs: CompareStats[];
}

/** Original vs converted (single graph or stages) on the same random inputs. */
export async function verifyComponent(original: string, converted: readonly string[], cfg: InputConfig): Promise<VerifyResult> {
  const metas = await inputMetadata(original);
  const feeds = makeInputs(metas, cfg);
  const ref = await runGraphs([original], feeds);
  const got = await runGraphs(converted, feeds, Object.keys(ref));
  const outputs: CompareStats[] = [];
  for (const [name, t] of Object.entries(ref)) {
    if (t.type !== 'float32' && t.type !== 'float16') continue;
    const g = got[name];
    if (!g) throw new Error(`converted graph does not produce "${name}"`);
    outputs.push(compareArrays(name, numbers(t), numbers(g)));
  }
  return { inputs: Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, [...v.dims]])), outputs };
}

export { numbers as tensorNumbers };
