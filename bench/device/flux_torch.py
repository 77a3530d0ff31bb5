#!/usr/bin/env python3
"""Native PyTorch run of the synthetic FLUX.1 [schnell] transformer (tools/synthetic-flux), same architecture and
same weights, for the WebGPU/native ratio of bench/device/run-h200.sh.

The weights are not read from the ONNX files: tools/synthetic-flux's weights are counter-based
(graph.ts `weightValue`), so this script regenerates every tensor from weights.json (name, dims, std, mean and the
component seed) directly on the device, bit-identical to the ONNX initializers (float32, then bf16 round to nearest
even). The forward pass mirrors tools/synthetic-flux/build.ts node for node (diffusers FluxTransformer2DModel
layout; attention through F.scaled_dot_product_attention, which is flash attention on CUDA).

  python3 bench/device/flux_torch.py --weights <set>/weights.json --device cuda --dtype bf16 \
      --sizes 512x512,1024x1024 --steps 4 [--double 19 --single 38] [--json out.json]
  python3 bench/device/flux_torch.py --weights <set>/weights.json --device cpu --dtype fp32 --check <dir>
      (compares with an ORT output written by bench/device/ort_transformer.ts --dump <dir>)

--double/--single override the block counts of weights.json (blocks past the file's count are generated with
the same naming rule), so the full 19 + 38 depth runs natively from a slice's weights.json.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

GOLDEN = 0x9E3779B9
M32 = 0xFFFFFFFF


def _mul32(a: torch.Tensor, c: int) -> torch.Tensor:
    """(a · c) mod 2^32 for int64 tensors holding uint32 values, without int64 overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (a * lo + (((a * hi) & 0xFFFF) << 16)) & M32


def _fmix32_t(h: torch.Tensor) -> torch.Tensor:
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def fmix32(h: int) -> int:
    h &= M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    return h ^ (h >> 16)


def fnv1a(s: str) -> int:
    h = 0x811C9DC5
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & M32
    return h


def tensor_seed(seed: int, name: str) -> int:
    return fmix32(fnv1a(name) ^ fmix32(seed))


def make_weight(seed: int, spec: dict, device, chunk: int = 1 << 26) -> torch.Tensor:
    """graph.ts GraphBuilder.weight: w_i = mean + (std·√3)·(2·h_i/2^32 − 1), h_i = fmix32(i·φ + seed_t), float32."""
    n = math.prod(spec["dims"])
    ts = tensor_seed(seed, spec["name"])
    a = spec["std"] * math.sqrt(3)
    out = torch.empty(n, dtype=torch.float32, device=device)
    for s in range(0, n, chunk):
        i = torch.arange(s, min(n, s + chunk), dtype=torch.int64, device=device)
        h = _fmix32_t((_mul32(i, GOLDEN) + ts) & M32)
        out[s : s + i.numel()] = (spec["mean"] + a * ((2 * h).double() / 4294967296 - 1)).float()
    return out.reshape(spec["dims"])


class Weights:
    """Weights by name, generated on first use (the full transformer is ~24 GB in bf16)."""

    def __init__(self, index: dict, component: str, device, dtype):
        self.seed = index["seeds"][component]
        self.specs = {w["name"]: w for w in index["components"][component]}
        self.device, self.dtype = device, dtype
        self.cache = {}
        self.params = 0
        self.bf16_source = index["config"].get("dtype") == "bfloat16"

    def spec(self, name: str) -> dict:
        if name in self.specs:
            return self.specs[name]
        # A block beyond the file's depth: same shapes and init as block 0 of its kind, its own name (and values).
        for kind in ("transformer_blocks.", "single_transformer_blocks."):
            if name.startswith(kind):
                rest = name[len(kind):].split(".", 1)[1]
                base = self.specs[f"{kind}0.{rest}"]
                return {**base, "name": name}
        raise KeyError(name)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.cache:
            w = make_weight(self.seed, self.spec(name), self.device)
            self.params += w.numel()
            # As the ONNX source stores it (bf16: round to nearest even), then the compute dtype.
            self.cache[name] = (w.to(torch.bfloat16) if self.bf16_source else w).to(self.dtype)
        return self.cache[name]


def sdpa(q, k, v, scale):
    """softmax(q·kᵀ·scale)·v; scale is 1/√head_dim, SDPA's default (torch < 2.0 has no SDPA: plain math)."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v)
    return torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1) @ v


class FluxTransformer:
    def __init__(self, W: Weights, cfg: dict, double: int, single: int):
        self.W, self.cfg, self.double, self.single = W, cfg, double, single
        self.D, self.H, self.d = cfg["hidden"], cfg["heads"], cfg["headDim"]

    def lin3(self, x, name):  # MatMul(x, weight_t [K, N]) + bias
        return x @ self.W[f"{name}.weight_t"] + self.W[f"{name}.bias"]

    def lin2(self, x, name):  # Gemm transB: x @ weightᵀ + bias
        return x @ self.W[f"{name}.weight"].t() + self.W[f"{name}.bias"]

    def ln(self, x):
        return F.layer_norm(x, (x.shape[-1],), eps=1e-6)

    def modulate(self, x, shift, scale):
        return self.ln(x) * (1 + scale) + shift

    def chunks(self, svec, name, k):
        return self.lin2(svec, name).unsqueeze(1).split(self.D, dim=2)

    def heads(self, x):
        B, N, _ = x.shape
        return x.reshape(B, N, self.H, self.d).transpose(1, 2)

    def rms(self, x, name):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.W[f"{name}.weight"]

    @staticmethod
    def gelu(x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.pow(3))))

    def rope_tables(self, ids):
        angles = []
        for a, da in enumerate(self.cfg["axes"]):
            omega = torch.tensor([10000 ** (-2 * k / da) for k in range(da // 2)], dtype=torch.float32, device=ids.device)
            angles.append(ids[:, a : a + 1].float() * omega[None, :])
        ang = torch.cat(angles, dim=1)
        shape = (1, 1, -1, self.d // 2, 1)
        return torch.cos(ang).reshape(shape), torch.sin(ang).reshape(shape)

    def rope(self, x, cos, sin):
        B, H, N, d = x.shape
        xr = x.reshape(B, H, N, d // 2, 2).float()
        x0, x1 = xr[..., 0:1], xr[..., 1:2]
        o = torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=4)
        return o.reshape(B, H, N, d).to(x.dtype)

    def attention(self, q, k, v):
        o = sdpa(q, k, v, 1 / math.sqrt(self.d))
        B, H, N, d = o.shape
        return o.transpose(1, 2).reshape(B, N, H * d)

    def __call__(self, hidden_states, encoder_hidden_states, pooled, timestep, img_ids, txt_ids):
        img = self.lin3(hidden_states, "x_embedder")
        txt = self.lin3(encoder_hidden_states, "context_embedder")
        freqs = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32, device=img.device) / 128)
        args = (timestep.float() * 1000)[:, None] * freqs[None, :]
        temb_in = torch.cat([torch.cos(args), torch.sin(args)], dim=1).to(img.dtype)
        temb = self.lin2(F.silu(self.lin2(temb_in, "time_text_embed.timestep_embedder.linear_1")), "time_text_embed.timestep_embedder.linear_2")
        pemb = self.lin2(F.silu(self.lin2(pooled, "time_text_embed.text_embedder.linear_1")), "time_text_embed.text_embedder.linear_2")
        svec = F.silu(temb + pemb)
        cos, sin = self.rope_tables(torch.cat([txt_ids, img_ids], dim=0))
        L = encoder_hidden_states.shape[1]
        for i in range(self.double):
            p = f"transformer_blocks.{i}"
            sh1, sc1, g1, sh2, sc2, g2 = self.chunks(svec, f"{p}.norm1.linear", 6)
            csh1, csc1, cg1, csh2, csc2, cg2 = self.chunks(svec, f"{p}.norm1_context.linear", 6)
            hi, ht = self.modulate(img, sh1, sc1), self.modulate(txt, csh1, csc1)
            qi = self.rms(self.heads(self.lin3(hi, f"{p}.attn.to_q")), f"{p}.attn.norm_q")
            ki = self.rms(self.heads(self.lin3(hi, f"{p}.attn.to_k")), f"{p}.attn.norm_k")
            vi = self.heads(self.lin3(hi, f"{p}.attn.to_v"))
            qt = self.rms(self.heads(self.lin3(ht, f"{p}.attn.add_q_proj")), f"{p}.attn.norm_added_q")
            kt = self.rms(self.heads(self.lin3(ht, f"{p}.attn.add_k_proj")), f"{p}.attn.norm_added_k")
            vt = self.heads(self.lin3(ht, f"{p}.attn.add_v_proj"))
            q = self.rope(torch.cat([qt, qi], dim=2), cos, sin)
            k = self.rope(torch.cat([kt, ki], dim=2), cos, sin)
            a = self.attention(q, k, torch.cat([vt, vi], dim=2))
            img = img + g1 * self.lin3(a[:, L:], f"{p}.attn.to_out.0")
            txt = txt + cg1 * self.lin3(a[:, :L], f"{p}.attn.to_add_out")
            img = img + g2 * self.lin3(self.gelu(self.lin3(self.modulate(img, sh2, sc2), f"{p}.ff.net.0.proj")), f"{p}.ff.net.2")
            txt = txt + cg2 * self.lin3(self.gelu(self.lin3(self.modulate(txt, csh2, csc2), f"{p}.ff_context.net.0.proj")), f"{p}.ff_context.net.2")
        x = torch.cat([txt, img], dim=1)
        for i in range(self.single):
            p = f"single_transformer_blocks.{i}"
            sh, sc, g = self.chunks(svec, f"{p}.norm.linear", 3)
            h = self.modulate(x, sh, sc)
            q = self.rope(self.rms(self.heads(self.lin3(h, f"{p}.attn.to_q")), f"{p}.attn.norm_q"), cos, sin)
            k = self.rope(self.rms(self.heads(self.lin3(h, f"{p}.attn.to_k")), f"{p}.attn.norm_k"), cos, sin)
            a = self.attention(q, k, self.heads(self.lin3(h, f"{p}.attn.to_v")))
            m = self.gelu(self.lin3(h, f"{p}.proj_mlp"))
            x = x + g * self.lin3(torch.cat([a, m], dim=2), f"{p}.proj_out")
        img = x[:, L:]
        scale, shift = self.chunks(svec, "norm_out.linear", 2)
        return self.lin3(self.modulate(img, shift, scale), "proj_out")


def inputs(cfg: dict, width: int, height: int, txt: int, device, dtype):
    """Deterministic inputs, the same formulas as bench/device/ort_transformer.ts."""
    S = (width // 16) * (height // 16)
    C, J, P = cfg["inChannels"], cfg["jointDim"], cfg["pooledDim"]
    f = lambda n, a: torch.sin(torch.arange(n, dtype=torch.float64, device=device) * a).float()
    hs = f(S * C, 0.37).reshape(1, S, C)
    ehs = f(txt * J, 0.11).reshape(1, txt, J)
    pooled = f(P, 0.23).reshape(1, P)
    timestep = torch.tensor([0.75], device=device)
    w16 = width // 16
    img_ids = torch.stack([torch.zeros(S, device=device), torch.arange(S, device=device).div(w16, rounding_mode="floor").float(), (torch.arange(S, device=device) % w16).float()], dim=1)
    txt_ids = torch.zeros(txt, 3, device=device)
    return hs.to(dtype), ehs.to(dtype), pooled.to(dtype), timestep.to(dtype), img_ids, txt_ids


def read_npy(path):
    import numpy as np

    return torch.from_numpy(np.load(path).astype("float32"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="weights.json of a tools/synthetic-flux set")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--sizes", default="512x512,1024x1024")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--txt", type=int, default=256, help="T5 tokens (schnell: 256)")
    ap.add_argument("--double", type=int)
    ap.add_argument("--single", type=int)
    ap.add_argument("--json")
    ap.add_argument("--check", help="folder from ort_transformer.ts --dump: compare with its latent.npy")
    a = ap.parse_args()
    index = json.load(open(a.weights))
    cfg = index["config"]["transformer"]
    double = a.double if a.double is not None else cfg["double"]
    single = a.single if a.single is not None else cfg["single"]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype]
    dev = torch.device(a.device)
    W = Weights(index, "transformer", dev, dtype)
    model = FluxTransformer(W, cfg, double, single)
    out = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "torch": torch.__version__, "dtype": a.dtype, "double": double, "single": single, "sizes": []}

    if a.check:
        meta = json.load(open(os.path.join(a.check, "meta.json")))
        x = inputs(cfg, meta["width"], meta["height"], meta["txt"], dev, dtype)
        with torch.no_grad():
            got = model(*x).float().cpu()
        want = read_npy(os.path.join(a.check, "latent.npy")).reshape(got.shape)
        err = (got - want).abs().max().item()
        cos = F.cosine_similarity(got.flatten(), want.flatten(), dim=0).item()
        print(f"parity vs ORT ({meta['ep']}, {meta['width']}x{meta['height']}): max abs {err:.3e}, cosine {cos:.6f}, max |ref| {want.abs().max().item():.3e}")
        sys.exit(0 if cos > 0.9999 else 1)

    t0 = time.perf_counter()
    with torch.no_grad():
        for w, h in [tuple(map(int, s.split("x"))) for s in a.sizes.split(",")]:
            x = inputs(cfg, w, h, a.txt, dev, dtype)
            sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
            model(*x)  # warm-up (and, the first time, weight generation)
            sync()
            if out["sizes"] == []:
                out["weights_s"] = time.perf_counter() - t0
                out["params"] = W.params
            times = []
            for _ in range(a.steps):
                t = time.perf_counter()
                y = model(*x)
                sync()
                times.append((time.perf_counter() - t) * 1000)
            peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
            r = {"size": f"{w}x{h}", "step_ms": times, "mean_step_ms": sum(times) / len(times), "peak_bytes": peak, "finite": bool(torch.isfinite(y).all())}
            out["sizes"].append(r)
            print(f"torch {a.dtype} {out['device']} {double}+{single} blocks {w}x{h}: step {r['mean_step_ms']:.1f} ms (mean of {a.steps}){'' if peak is None else f', peak {peak / 2**30:.2f} GiB'}", flush=True)
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
