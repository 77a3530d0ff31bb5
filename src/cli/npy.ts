/**
 * NumPy .npy (format 1.0–3.0) for float32 tensors: what diffusers users save with np.save(…, x.astype(np.float32)).
 * float64/float16 arrays are converted to float32 on read; Fortran order and big-endian are rejected clearly.
 */
import { float16ToFloat32 } from '../runtime/float16.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export interface NpyArray {
  data: Float32Array;
  dims: number[];
}

export function parseNpy(bytes: Uint8Array, label = 'array'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new Error(`${label}: not a .npy file (bad magic)`);
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(bytes.subarray(headerStart, headerStart + headerLen));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`${label}: unreadable .npy header ${JSON.stringify(header)}`);
  if (fortran === 'True') throw new Error(`${label}: Fortran-order arrays are not supported; save with np.ascontiguousarray`);
  const dims = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const off = headerStart + headerLen;
  const body = bytes.slice(off); // copy: aligns the data for typed-array views
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new Error(`${label}: bad shape (${shapeText}) in the .npy header`);
  // Exactly the shape's bytes: a longer file is as suspect as a shorter one (a wrong shape, or another array appended).
  const expect = (n: number) => {
    if (body.byteLength !== count * n) throw new Error(`${label}: file holds ${body.byteLength} data bytes, shape [${dims.join(', ')}] of ${descr} needs ${count * n}`);
  };
  switch (descr) {
    case '<f4':
      expect(4);
      return { data: new Float32Array(body.buffer, 0, count), dims };
    case '<f8':
      expect(8);
      return { data: Float32Array.from(new Float64Array(body.buffer, 0, count)), dims };
    case '<f2':
      expect(2);
      return { data: float16ToFloat32(new Uint16Array(body.buffer, 0, count)), dims };
    default:
      throw new Error(`${label}: dtype ${descr} is not supported; save as float32 ('<f4')`);
  }
}

export function encodeNpy(data: Float32Array, dims: readonly number[]): Uint8Array {
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}
