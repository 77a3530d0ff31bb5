/**
 * A tiny independent N-d array helper (C-order reshape + permute) used as the reference for packing:
 * it mirrors torch's view/permute/reshape semantics rather than our index formulas.
 */
export function permute(data: Float32Array, dims: number[], perm: number[]): { data: Float32Array; dims: number[] } {
  const outDims = perm.map((p) => dims[p]!);
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((a, b) => a * b, 1));
  const out = new Float32Array(data.length);
  const idx = new Array(outDims.length).fill(0);
  for (let o = 0; o < data.length; o++) {
    let src = 0;
    for (let k = 0; k < perm.length; k++) src += idx[k] * strides[perm[k]!]!;
    out[o] = data[src]!;
    for (let k = outDims.length - 1; k >= 0; k--) {
      if (++idx[k] < outDims[k]!) break;
      idx[k] = 0;
    }
  }
  return { data: out, dims: outDims };
}

/** diffusers FluxPipeline._pack_latents: view(B,C,h/2,2,w/2,2).permute(0,2,4,1,3,5).reshape(B,(h/2)(w/2),4C). */
export function diffusersPack(lat: Float32Array, B: number, C: number, h: number, w: number): Float32Array {
  return permute(lat, [B, C, h / 2, 2, w / 2, 2], [0, 2, 4, 1, 3, 5]).data;
}

/** diffusers FluxPipeline._unpack_latents: view(B,h/2,w/2,C,2,2).permute(0,3,1,4,2,5).reshape(B,C,h,w). */
export function diffusersUnpack(packed: Float32Array, B: number, C: number, h: number, w: number): Float32Array {
  return permute(packed, [B, h / 2, w / 2, C, 2, 2], [0, 3, 1, 4, 2, 5]).data;
}
