// Checks every graph written by tools/testpack/build.py against the PyTorch outputs it saved, with
// onnxruntime-node (CPU), then runs the whole FLUX pipeline on the ONNX pack for each golden case of
// tests/fixtures/reference and compares with the PyTorch reference. Exits non-zero on any failure.
//
//   node tools/testpack/check_onnx.mjs            (from the repo root)
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PACK = join(ROOT, 'public/packs/flux-test-tiny');
const REF = join(ROOT, 'tests/fixtures/reference');

// ---------------------------------------------------------------------------------------------- npy
const NPY_TYPES = {
  '<f4': ['float32', Float32Array],
  '<f2': ['float16', Uint16Array],
  '<i8': ['int64', BigInt64Array],
  '<i4': ['int32', Int32Array],
  '|u1': ['uint8', Uint8Array],
};

function readNpy(path) {
  const buf = readFileSync(path);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${path}: fortran order`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const [type, Ctor] = NPY_TYPES[descr] ?? [];
  if (!type) throw new Error(`${path}: unsupported dtype ${descr}`);
  const off = hstart + hlen;
  const bytes = buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length);
  return { type, shape, data: new Ctor(bytes) };
}

const tensor = (a) => new ort.Tensor(a.type, a.data, a.shape);

function halfToFloat(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function asFloats(type, data) {
  if (type === 'float16') return Float64Array.from(data instanceof Uint16Array ? data : new Uint16Array(data.buffer), halfToFloat);
  if (type === 'int64') return Float64Array.from(data, Number);
  return data;
}

function maxAbsDiff(a, b) {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

const rows = [];
let failures = 0;
function report(check, output, diff, tol, extra = '') {
  const ok = diff <= tol;
  if (!ok) failures++;
  rows.push({ check, output, 'max |diff|': diff.toExponential(2), tol: tol.toExponential(0), ok: ok ? 'ok' : 'FAIL', extra });
}

const sessions = new Map();
async function session(path) {
  if (!sessions.has(path)) sessions.set(path, await ort.InferenceSession.create(path));
  return sessions.get(path);
}

// ---------------------------------------------------------------------------------------------- graph checks
const checks = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/models/checks.json'), 'utf8')).checks;
for (const c of checks) {
  const s = await session(join(ROOT, c.graph));
  const feeds = {};
  for (const [name, p] of Object.entries(c.inputs)) feeds[name] = tensor(readNpy(join(ROOT, p)));
  const missing = s.inputNames.filter((n) => !(n in feeds));
  if (missing.length) throw new Error(`${c.name}: graph inputs ${missing} not fed`);
  const out = await s.run(feeds);
  const outNames = Object.keys(c.outputs);
  if (JSON.stringify([...s.outputNames].sort()) !== JSON.stringify([...outNames].sort())) {
    failures++;
    rows.push({ check: c.name, output: `names ${s.outputNames} != ${outNames}`, ok: 'FAIL' });
    continue;
  }
  for (const [name, p] of Object.entries(c.outputs)) {
    const want = readNpy(join(ROOT, p));
    const got = out[name];
    if (JSON.stringify(got.dims) !== JSON.stringify(want.shape) || got.type !== want.type) {
      failures++;
      rows.push({ check: c.name, output: `${name} ${got.type}${JSON.stringify(got.dims)} != ${want.type}${JSON.stringify(want.shape)}`, ok: 'FAIL' });
      continue;
    }
    report(c.name, `${name} ${JSON.stringify(got.dims)}`, maxAbsDiff(asFloats(got.type, got.data), asFloats(want.type, want.data)), c.tolerance);
  }
}

// ---------------------------------------------------------------------------------------------- full pipeline
// Independent JS implementation of docs/flux-pipeline.md §4-§6 on the ONNX pack.
const f32 = Math.fround;

function pack(lat, B, C, h, w) {
  const S = (h / 2) * (w / 2);
  const out = new Float32Array(B * S * C * 4);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          out[(b * S + (y >> 1) * (w / 2) + (x >> 1)) * C * 4 + 4 * c + 2 * (y & 1) + (x & 1)] = lat[((b * C + c) * h + y) * w + x];
  return out;
}

function unpack(p, B, C, h, w) {
  const S = (h / 2) * (w / 2);
  const out = new Float32Array(B * C * h * w);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          out[((b * C + c) * h + y) * w + x] = p[(b * S + (y >> 1) * (w / 2) + (x >> 1)) * C * 4 + 4 * c + 2 * (y & 1) + (x & 1)];
  return out;
}

function sigmasFor(n) {
  // numpy linspace(1, 1/n, n) in float64, cast to float32, then a terminal 0
  const s = [];
  for (let i = 0; i < n; i++) s.push(f32(n === 1 ? 1 : i === n - 1 ? 1 / n : 1 + i * ((1 / n - 1) / (n - 1))));
  return [...s, 0];
}

const manifest = JSON.parse(readFileSync(join(PACK, 'manifest.json'), 'utf8'));
const g = (name) => join(PACK, manifest.components[name].graph);
const caseNames = readdirSync(REF).filter((d) => existsSync(join(REF, d, 'case.json')) && d !== 'encoders').sort();
for (const name of caseNames) {
  const dir = join(REF, name);
  const info = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8'));
  const lat0 = readNpy(join(dir, 'latents.npy'));
  const [B, C, h, w] = lat0.shape;
  let emb = readNpy(join(dir, 'prompt_embeds.npy'));
  let pooled = readNpy(join(dir, 'pooled_prompt_embeds.npy'));
  const L = emb.shape[1];
  if (existsSync(join(dir, 'clip_input_ids.npy'))) {
    // text encoders on ONNX too: the whole ids -> image chain runs through onnxruntime
    const clipOut = await (await session(g('clip'))).run({ input_ids: tensor(readNpy(join(dir, 'clip_input_ids.npy'))) });
    const t5Out = await (await session(g('t5'))).run({ input_ids: tensor(readNpy(join(dir, 't5_input_ids.npy'))) });
    const pooledOnnx = clipOut[manifest.components.clip.outputs.pooled];
    const embOnnx = t5Out.last_hidden_state;
    report(`pipeline ${name}`, 'clip pooled (onnx) vs ref', maxAbsDiff(pooledOnnx.data, pooled.data), 2e-5);
    report(`pipeline ${name}`, 't5 embeds (onnx) vs ref', maxAbsDiff(embOnnx.data, emb.data), 2e-5);
    emb = { type: 'float32', shape: embOnnx.dims, data: embOnnx.data };
    pooled = { type: 'float32', shape: pooledOnnx.dims, data: pooledOnnx.data };
  }
  const S = (h / 2) * (w / 2);
  const imgIds = new Float32Array(S * 3);
  for (let i = 0; i < h / 2; i++) for (let j = 0; j < w / 2; j++) { imgIds[(i * (w / 2) + j) * 3 + 1] = i; imgIds[(i * (w / 2) + j) * 3 + 2] = j; }
  const sig = sigmasFor(info.steps);
  const sigOk = sig.every((s, i) => s === f32(info.sigmas[i]));
  const fedOk = info.timesteps_fed.every((t, i) => f32(t) === sig[i]);
  let x = pack(lat0.data, B, C, h, w);
  const tr = await session(g('transformer'));
  for (let i = 0; i < info.steps; i++) {
    const out = await tr.run({
      hidden_states: new ort.Tensor('float32', x, [B, S, C * 4]),
      encoder_hidden_states: new ort.Tensor('float32', emb.data, [B, L, emb.shape[2]]),
      pooled_projections: new ort.Tensor('float32', pooled.data, pooled.shape),
      timestep: new ort.Tensor('float32', new Float32Array(B).fill(sig[i]), [B]),
      img_ids: new ort.Tensor('float32', imgIds, [S, 3]),
      txt_ids: new ort.Tensor('float32', new Float32Array(L * 3), [L, 3]),
    });
    const v = out.latent.data;
    const dt = f32(sig[i + 1] - sig[i]);
    const nx = new Float32Array(x.length);
    for (let k = 0; k < x.length; k++) nx[k] = x[k] + f32(dt * v[k]);
    x = nx;
  }
  const lat = unpack(x, B, C, h, w);
  const want = readNpy(join(dir, 'final_latents.npy'));
  report(`pipeline ${name}`, `final_latents [${want.shape}]`, maxAbsDiff(lat, want.data), 1e-4,
    `sigmas ${sigOk ? '=' : '!='} ref, timestep fed ${fedOk ? '=' : '!='} ref`);
  if (!sigOk) failures++;
  const z = new Float32Array(lat.length);
  for (let k = 0; k < z.length; k++) z[k] = f32(lat[k] / 0.3611) + 0.1159;
  const vae = await (await session(g('vae_decoder'))).run({ latent: new ort.Tensor('float32', z, [B, C, h, w]) });
  const [, , H, W] = vae.images.dims;
  const img = vae.images.data;
  const u8 = new Uint8Array(B * H * W * 3);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < H; y++)
        for (let xx = 0; xx < W; xx++) {
          const vv = Math.min(1, Math.max(0, f32(f32(img[((b * 3 + c) * H + y) * W + xx] / 2) + 0.5)));
          u8[((b * H + y) * W + xx) * 3 + c] = Math.round(f32(vv * 255));
        }
  const wantImg = readNpy(join(dir, 'image.npy'));
  let nd = 0;
  for (let k = 0; k < u8.length; k++) if (u8[k] !== wantImg.data[k]) nd++;
  const sizeOk = H === info.height && W === info.width;
  report(`pipeline ${name}`, `image uint8 [${B},${H},${W},3]`, sizeOk ? maxAbsDiff(u8, wantImg.data) : Infinity, 1,
    `${nd} of ${u8.length} values differ`);
}

// ---------------------------------------------------------------------------------------------- report
const cols = ['check', 'output', 'max |diff|', 'tol', 'ok', 'extra'];
const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
const line = (r) => cols.map((c, i) => String(r[c] ?? '').padEnd(width[i])).join('  ');
console.log(line(Object.fromEntries(cols.map((c) => [c, c]))));
console.log(width.map((n) => '-'.repeat(n)).join('  '));
for (const r of rows) console.log(line(r));
console.log(`\n${rows.length - failures} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
