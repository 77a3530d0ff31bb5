"""Tiny PyTorch re-implementations of the four FLUX.1 [schnell] networks.

Structure and parameter names follow diffusers / transformers (FluxTransformer2DModel,
CLIPTextModel, T5EncoderModel, AutoencoderKL.decoder) so the graphs look like the real ones,
but the widths are tiny and the weights are random (see `init_*`).  Everything is fp32 and
written with plain ops (no scaled_dot_product_attention: torch 1.13) so it exports to ONNX
opset 17.  Spec: docs/flux-pipeline.md §2, §3.3, §6.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------
# configs
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformerConfig:
    in_channels: int = 64
    out_channels: int = 64
    num_layers: int = 2
    num_single_layers: int = 2
    attention_head_dim: int = 16
    num_attention_heads: int = 2
    joint_attention_dim: int = 64
    pooled_projection_dim: int = 32
    axes_dims_rope: Tuple[int, int, int] = (4, 6, 6)
    theta: int = 10000
    mlp_ratio: float = 4.0

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim


@dataclass(frozen=True)
class ClipConfig:
    vocab_size: int = 2014
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 64
    max_position_embeddings: int = 77
    layer_norm_eps: float = 1e-5


@dataclass(frozen=True)
class T5Config:
    vocab_size: int = 1500
    d_model: int = 64
    d_ff: int = 128
    num_heads: int = 4
    d_kv: int = 16
    num_layers: int = 2
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6


@dataclass(frozen=True)
class VaeConfig:
    latent_channels: int = 16
    out_channels: int = 3
    block_out_channels: Tuple[int, ...] = (16, 16, 32, 32)
    layers_per_block: int = 1
    norm_num_groups: int = 8


# ----------------------------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------------------------


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh-approximate GELU (diffusers "gelu-approximate", transformers "gelu_new")."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def layer_norm_no_affine(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    # Static width (traced as a constant). Explicit ones/zeros affine because torch 1.13 exports a
    # weightless layer_norm as a LayerNormalization node with an empty (required) Scale input.
    d = int(x.shape[-1])
    return F.layer_norm(x, (d,), torch.ones(d, dtype=x.dtype), torch.zeros(d, dtype=x.dtype), eps)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Plain softmax attention, q/k/v [B, H, N, d]."""
    scores = torch.matmul(q, k.transpose(-1, -2))
    if scale != 1.0:
        scores = scores * scale
    if bias is not None:
        scores = scores + bias
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, v)


# ----------------------------------------------------------------------------------------------
# FLUX transformer (diffusers FluxTransformer2DModel, guidance_embeds=False)
# ----------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(variance + self.eps) * self.weight


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


def timestep_sinusoid(timesteps: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """diffusers get_timestep_embedding(flip_sin_to_cos=True, downscale_freq_shift=0) -> [cos | sin]."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / half
    freqs = torch.exp(exponent)
    emb = timesteps[:, None].float() * freqs[None, :]
    return torch.cat([torch.cos(emb), torch.sin(emb)], dim=-1)


class CombinedTimestepTextProjEmbeddings(nn.Module):
    def __init__(self, dim: int, pooled_dim: int):
        super().__init__()
        self.timestep_embedder = TimestepEmbedding(256, dim)
        self.text_embedder = TimestepEmbedding(pooled_dim, dim)  # PixArtAlphaTextProjection(act silu)

    def forward(self, timestep: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        t = self.timestep_embedder(timestep_sinusoid(timestep).to(pooled.dtype))
        return t + self.text_embedder(pooled)


class FluxPosEmbed(nn.Module):
    """3-axis RoPE table (cos, sin), each [N, head_dim], repeat_interleave_real=True layout."""

    def __init__(self, theta: int, axes_dim: Sequence[int]):
        super().__init__()
        self.theta = theta
        self.axes_dim = list(axes_dim)

    def forward(self, ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        # diffusers computes the angles in float64 and casts cos/sin to float32. onnxruntime-web
        # has no float64 trig, so the exported graph computes them in float32 (ids are small
        # integers, the difference is ~1e-7).
        use_f64 = not torch.onnx.is_in_onnx_export()
        cos_out, sin_out = [], []
        pos = ids.double() if use_f64 else ids.float()
        for i, d in enumerate(self.axes_dim):
            k = torch.arange(0, d, 2, dtype=torch.float64)[: d // 2] / d
            omega = 1.0 / (self.theta ** k)
            omega = omega if use_f64 else omega.float()
            ang = pos[:, i : i + 1] * omega[None, :]  # [N, d/2]
            c, s = torch.cos(ang), torch.sin(ang)
            # repeat_interleave(2): (c0, c0, c1, c1, ...)
            cos_out.append(torch.stack([c, c], dim=-1).reshape(c.shape[0], d))
            sin_out.append(torch.stack([s, s], dim=-1).reshape(s.shape[0], d))
        return torch.cat(cos_out, dim=-1).float(), torch.cat(sin_out, dim=-1).float()


def apply_rotary_emb(x: torch.Tensor, rope: Tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """diffusers apply_rotary_emb(use_real=True, use_real_unbind_dim=-1); x [B, H, N, d]."""
    cos, sin = rope
    cos = cos[None, None]
    sin = sin[None, None]
    shp = x.shape
    pairs = x.reshape(shp[0], shp[1], shp[2], -1, 2)
    x_real, x_imag = pairs[..., 0], pairs[..., 1]
    x_rotated = torch.stack([-x_imag, x_real], dim=-1).reshape(shp[0], shp[1], shp[2], -1)
    return x * cos + x_rotated * sin


class FluxAttention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, context_pre_only: bool | None, pre_only: bool):
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim
        inner = heads * head_dim
        self.to_q = nn.Linear(dim, inner)
        self.to_k = nn.Linear(dim, inner)
        self.to_v = nn.Linear(dim, inner)
        self.norm_q = RMSNorm(head_dim)
        self.norm_k = RMSNorm(head_dim)
        self.pre_only = pre_only
        if not pre_only:
            self.to_out = nn.ModuleList([nn.Linear(inner, dim)])
        self.has_context = context_pre_only is not None
        if self.has_context:
            self.add_q_proj = nn.Linear(dim, inner)
            self.add_k_proj = nn.Linear(dim, inner)
            self.add_v_proj = nn.Linear(dim, inner)
            self.norm_added_q = RMSNorm(head_dim)
            self.norm_added_k = RMSNorm(head_dim)
            self.to_add_out = nn.Linear(inner, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, D] -> [B, H, N, d]
        return x.reshape(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, hidden_states, encoder_hidden_states=None, rope=None):
        q = self.norm_q(self._heads(self.to_q(hidden_states)))
        k = self.norm_k(self._heads(self.to_k(hidden_states)))
        v = self._heads(self.to_v(hidden_states))
        if encoder_hidden_states is not None:
            eq = self.norm_added_q(self._heads(self.add_q_proj(encoder_hidden_states)))
            ek = self.norm_added_k(self._heads(self.add_k_proj(encoder_hidden_states)))
            ev = self._heads(self.add_v_proj(encoder_hidden_states))
            q = torch.cat([eq, q], dim=2)
            k = torch.cat([ek, k], dim=2)
            v = torch.cat([ev, v], dim=2)
        q = apply_rotary_emb(q, rope)
        k = apply_rotary_emb(k, rope)
        out = attention(q, k, v, 1.0 / math.sqrt(self.head_dim))
        out = out.transpose(1, 2)
        out = out.reshape(out.shape[0], out.shape[1], self.heads * self.head_dim)
        if encoder_hidden_states is None:
            return out
        L = encoder_hidden_states.shape[1]
        ctx, img = out[:, :L], out[:, L:]
        return self.to_out[0](img), self.to_add_out(ctx)


class AdaLayerNormZero(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 6 * dim)

    def forward(self, x, emb):
        emb = self.linear(F.silu(emb))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = emb.chunk(6, dim=1)
        x = layer_norm_no_affine(x) * (1 + scale_msa[:, None]) + shift_msa[:, None]
        return x, gate_msa, shift_mlp, scale_mlp, gate_mlp


class AdaLayerNormZeroSingle(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 3 * dim)

    def forward(self, x, emb):
        emb = self.linear(F.silu(emb))
        shift_msa, scale_msa, gate_msa = emb.chunk(3, dim=1)
        x = layer_norm_no_affine(x) * (1 + scale_msa[:, None]) + shift_msa[:, None]
        return x, gate_msa


class AdaLayerNormContinuous(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * dim)

    def forward(self, x, cond):
        emb = self.linear(F.silu(cond))
        scale, shift = emb.chunk(2, dim=1)  # diffusers order: (scale, shift)
        return layer_norm_no_affine(x) * (1 + scale)[:, None, :] + shift[:, None, :]


class FeedForward(nn.Module):
    """diffusers FeedForward(activation_fn="gelu-approximate"): net.0.proj -> gelu(tanh) -> net.2."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        proj = nn.Module()
        proj.proj = nn.Linear(dim, inner)
        self.net = nn.ModuleList([proj, nn.Identity(), nn.Linear(inner, dim)])

    def forward(self, x):
        return self.net[2](gelu_tanh(self.net[0].proj(x)))


class FluxTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = AdaLayerNormZero(dim)
        self.norm1_context = AdaLayerNormZero(dim)
        self.attn = FluxAttention(dim, heads, head_dim, context_pre_only=False, pre_only=False)
        self.ff = FeedForward(dim, int(dim * mlp_ratio))
        self.ff_context = FeedForward(dim, int(dim * mlp_ratio))

    def forward(self, hidden_states, encoder_hidden_states, temb, rope):
        norm_h, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(hidden_states, temb)
        norm_c, c_gate_msa, c_shift_mlp, c_scale_mlp, c_gate_mlp = self.norm1_context(encoder_hidden_states, temb)
        attn_out, ctx_attn_out = self.attn(norm_h, norm_c, rope)

        hidden_states = hidden_states + gate_msa.unsqueeze(1) * attn_out
        norm_h = layer_norm_no_affine(hidden_states) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        hidden_states = hidden_states + gate_mlp.unsqueeze(1) * self.ff(norm_h)

        encoder_hidden_states = encoder_hidden_states + c_gate_msa.unsqueeze(1) * ctx_attn_out
        norm_c = layer_norm_no_affine(encoder_hidden_states) * (1 + c_scale_mlp[:, None]) + c_shift_mlp[:, None]
        encoder_hidden_states = encoder_hidden_states + c_gate_mlp.unsqueeze(1) * self.ff_context(norm_c)
        return encoder_hidden_states, hidden_states


class FluxSingleTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, mlp_ratio: float):
        super().__init__()
        self.mlp_hidden_dim = int(dim * mlp_ratio)
        self.norm = AdaLayerNormZeroSingle(dim)
        self.proj_mlp = nn.Linear(dim, self.mlp_hidden_dim)
        self.proj_out = nn.Linear(dim + self.mlp_hidden_dim, dim)
        self.attn = FluxAttention(dim, heads, head_dim, context_pre_only=None, pre_only=True)

    def forward(self, hidden_states, encoder_hidden_states, temb, rope):
        L = encoder_hidden_states.shape[1]
        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        residual = hidden_states
        norm_h, gate = self.norm(hidden_states, temb)
        mlp = gelu_tanh(self.proj_mlp(norm_h))
        attn_out = self.attn(norm_h, None, rope)
        hidden_states = torch.cat([attn_out, mlp], dim=2)
        hidden_states = residual + gate.unsqueeze(1) * self.proj_out(hidden_states)
        return hidden_states[:, :L], hidden_states[:, L:]


class FluxTransformer2DModel(nn.Module):
    """I/O: hidden_states [B,S,64], encoder_hidden_states [B,L,Dt], pooled_projections [B,P],
    timestep [B] (sigma in [0,1]; x1000 inside), img_ids [S,3], txt_ids [L,3] -> [B,S,64]."""

    def __init__(self, cfg: TransformerConfig = TransformerConfig()):
        super().__init__()
        self.cfg = cfg
        D = cfg.inner_dim
        assert sum(cfg.axes_dims_rope) == cfg.attention_head_dim
        self.pos_embed = FluxPosEmbed(cfg.theta, cfg.axes_dims_rope)
        self.time_text_embed = CombinedTimestepTextProjEmbeddings(D, cfg.pooled_projection_dim)
        self.context_embedder = nn.Linear(cfg.joint_attention_dim, D)
        self.x_embedder = nn.Linear(cfg.in_channels, D)
        self.transformer_blocks = nn.ModuleList(
            [FluxTransformerBlock(D, cfg.num_attention_heads, cfg.attention_head_dim, cfg.mlp_ratio) for _ in range(cfg.num_layers)]
        )
        self.single_transformer_blocks = nn.ModuleList(
            [FluxSingleTransformerBlock(D, cfg.num_attention_heads, cfg.attention_head_dim, cfg.mlp_ratio) for _ in range(cfg.num_single_layers)]
        )
        self.norm_out = AdaLayerNormContinuous(D)
        self.proj_out = nn.Linear(D, cfg.out_channels)

    def forward(self, hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids):
        hidden_states = self.x_embedder(hidden_states)
        timestep = timestep.to(hidden_states.dtype) * 1000
        temb = self.time_text_embed(timestep, pooled_projections)
        encoder_hidden_states = self.context_embedder(encoder_hidden_states)
        ids = torch.cat([txt_ids, img_ids], dim=0)
        rope = self.pos_embed(ids)
        for block in self.transformer_blocks:
            encoder_hidden_states, hidden_states = block(hidden_states, encoder_hidden_states, temb, rope)
        for block in self.single_transformer_blocks:
            encoder_hidden_states, hidden_states = block(hidden_states, encoder_hidden_states, temb, rope)
        hidden_states = self.norm_out(hidden_states, temb)
        return self.proj_out(hidden_states)


class Transformer3DIds(nn.Module):
    """Old-diffusers style graph: img_ids [B,S,3], txt_ids [B,L,3]; uses row 0 (like diffusers' deprecation path)."""

    def __init__(self, inner: FluxTransformer2DModel):
        super().__init__()
        self.inner = inner

    def forward(self, hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids):
        return self.inner(hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids[0], txt_ids[0])


# ----------------------------------------------------------------------------------------------
# CLIP text model (transformers CLIPTextModel)
# ----------------------------------------------------------------------------------------------


class ClipAttention(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.scale = self.head_dim ** -0.5
        D = cfg.hidden_size
        self.q_proj = nn.Linear(D, D)
        self.k_proj = nn.Linear(D, D)
        self.v_proj = nn.Linear(D, D)
        self.out_proj = nn.Linear(D, D)

    def forward(self, x, mask):
        B, N, D = x.shape
        q = (self.q_proj(x) * self.scale).reshape(B, N, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).reshape(B, N, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).reshape(B, N, self.heads, self.head_dim).transpose(1, 2)
        out = attention(q, k, v, 1.0, mask)
        out = out.transpose(1, 2).reshape(B, N, D)
        return self.out_proj(out)


class ClipMLP(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x):
        h = self.fc1(x)
        h = h * torch.sigmoid(1.702 * h)  # quick_gelu
        return self.fc2(h)


class ClipEncoderLayer(nn.Module):
    def __init__(self, cfg: ClipConfig):
        super().__init__()
        self.self_attn = ClipAttention(cfg)
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = ClipMLP(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class ClipTextModel(nn.Module):
    """input_ids int64 [B,77] -> (last_hidden_state [B,77,D], pooler_output [B,D]).

    pooler_output = final-LN state at argmax(input_ids) per row (transformers casts ids to int32
    before argmax; EOS is the largest id, so this is the first EOS)."""

    def __init__(self, cfg: ClipConfig, outputs: str = "both"):
        super().__init__()
        self.cfg = cfg
        self.outputs = outputs
        D = cfg.hidden_size
        emb = nn.Module()
        emb.token_embedding = nn.Embedding(cfg.vocab_size, D)
        emb.position_embedding = nn.Embedding(cfg.max_position_embeddings, D)
        self.embeddings = emb
        enc = nn.Module()
        enc.layers = nn.ModuleList([ClipEncoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.encoder = enc
        self.final_layer_norm = nn.LayerNorm(D, eps=cfg.layer_norm_eps)
        n = cfg.max_position_embeddings
        self.register_buffer("position_ids", torch.arange(n).unsqueeze(0), persistent=False)
        mask = torch.full((n, n), torch.finfo(torch.float32).min).triu(1)
        self.register_buffer("causal_mask", mask[None, None], persistent=False)

    def forward(self, input_ids):
        N = input_ids.shape[1]
        h = self.embeddings.token_embedding(input_ids) + self.embeddings.position_embedding(self.position_ids[:, :N])
        mask = self.causal_mask[:, :, :N, :N]
        for layer in self.encoder.layers:
            h = layer(h, mask)
        h = self.final_layer_norm(h)
        if self.outputs == "hidden":
            return h
        idx = input_ids.to(torch.int32).argmax(dim=-1)
        pooled = torch.gather(h, 1, idx.to(torch.int64)[:, None, None].expand(-1, 1, h.shape[2])).squeeze(1)
        return h, pooled


# ----------------------------------------------------------------------------------------------
# T5 encoder (transformers T5EncoderModel, gated-gelu FFN)
# ----------------------------------------------------------------------------------------------


class T5LayerNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


def t5_relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """transformers T5Attention._relative_position_bucket, bidirectional=True."""
    num_buckets //= 2
    relative_buckets = (relative_position > 0).to(torch.long) * num_buckets
    relative_position = torch.abs(relative_position)
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    large = max_exact + (
        torch.log(relative_position.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return relative_buckets + torch.where(is_small, relative_position, large)


class T5Attention(nn.Module):
    def __init__(self, cfg: T5Config, has_relative_attention_bias: bool):
        super().__init__()
        self.cfg = cfg
        inner = cfg.num_heads * cfg.d_kv
        self.q = nn.Linear(cfg.d_model, inner, bias=False)
        self.k = nn.Linear(cfg.d_model, inner, bias=False)
        self.v = nn.Linear(cfg.d_model, inner, bias=False)
        self.o = nn.Linear(inner, cfg.d_model, bias=False)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(cfg.relative_attention_num_buckets, cfg.num_heads)

    def compute_bias(self, n: int, ref: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(n, dtype=torch.long)
        rel = pos[None, :] - pos[:, None]  # memory - context
        buckets = t5_relative_position_bucket(rel, self.cfg.relative_attention_num_buckets, self.cfg.relative_attention_max_distance)
        values = self.relative_attention_bias(buckets)  # [n, n, H]
        return values.permute(2, 0, 1).unsqueeze(0)

    def forward(self, x, position_bias):
        B, N, _ = x.shape
        H, d = self.cfg.num_heads, self.cfg.d_kv
        q = self.q(x).reshape(B, N, H, d).transpose(1, 2)
        k = self.k(x).reshape(B, N, H, d).transpose(1, 2)
        v = self.v(x).reshape(B, N, H, d).transpose(1, 2)
        out = attention(q, k, v, 1.0, position_bias)  # T5: no 1/sqrt(d)
        return self.o(out.transpose(1, 2).reshape(B, N, H * d))


class T5Block(nn.Module):
    def __init__(self, cfg: T5Config, has_relative_attention_bias: bool):
        super().__init__()
        sa = nn.Module()
        sa.SelfAttention = T5Attention(cfg, has_relative_attention_bias)
        sa.layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
        ff = nn.Module()
        dense = nn.Module()
        dense.wi_0 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        dense.wi_1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        dense.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        ff.DenseReluDense = dense
        ff.layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.layer = nn.ModuleList([sa, ff])

    def forward(self, x, position_bias):
        sa, ff = self.layer
        x = x + sa.SelfAttention(sa.layer_norm(x), position_bias)
        h = ff.layer_norm(x)
        d = ff.DenseReluDense
        return x + d.wo(gelu_tanh(d.wi_0(h)) * d.wi_1(h))


class T5EncoderModel(nn.Module):
    """input_ids int32 [B,L] -> last_hidden_state [B,L,d_model]; no attention mask (FLUX passes none)."""

    def __init__(self, cfg: T5Config):
        super().__init__()
        self.cfg = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        enc = nn.Module()
        enc.block = nn.ModuleList([T5Block(cfg, i == 0) for i in range(cfg.num_layers)])
        enc.final_layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.encoder = enc

    def forward(self, input_ids):
        h = self.shared(input_ids.to(torch.int64))
        bias = self.encoder.block[0].layer[0].SelfAttention.compute_bias(input_ids.shape[1], h)
        for blk in self.encoder.block:
            h = blk(h, bias)
        return self.encoder.final_layer_norm(h)


# ----------------------------------------------------------------------------------------------
# VAE decoder (diffusers AutoencoderKL.decoder, no post_quant_conv)
# ----------------------------------------------------------------------------------------------


class ResnetBlock2D(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class VaeAttention(nn.Module):
    """Single-head self-attention over h*w positions with a GroupNorm in front (diffusers Attention,
    _from_deprecated_attn_block=True, residual_connection=True)."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.to_q = nn.Linear(c, c)
        self.to_k = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c)])
        self.scale = c ** -0.5

    def forward(self, x):
        B, C, H, W = x.shape
        residual = x
        h = self.group_norm(x).reshape(B, C, H * W).transpose(1, 2)  # [B, HW, C]
        q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)
        out = attention(q[:, None], k[:, None], v[:, None], self.scale)[:, 0]
        out = self.to_out[0](out)
        out = out.transpose(1, 2).reshape(B, C, H, W)
        return out + residual


class Upsample2D(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UpDecoderBlock2D(nn.Module):
    def __init__(self, cin: int, cout: int, num_layers: int, groups: int, add_upsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, groups) for i in range(num_layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if add_upsample else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class VaeDecoder(nn.Module):
    """latent [B,16,h,w] (already z = latents/0.3611 + 0.1159) -> images [B,3,8h,8w] in ~[-1,1]."""

    def __init__(self, cfg: VaeConfig = VaeConfig()):
        super().__init__()
        self.cfg = cfg
        boc = cfg.block_out_channels
        g = cfg.norm_num_groups
        self.conv_in = nn.Conv2d(cfg.latent_channels, boc[-1], 3, padding=1)
        mid = nn.Module()
        mid.resnets = nn.ModuleList([ResnetBlock2D(boc[-1], boc[-1], g), ResnetBlock2D(boc[-1], boc[-1], g)])
        mid.attentions = nn.ModuleList([VaeAttention(boc[-1], g)])
        self.mid_block = mid
        rev = list(reversed(boc))
        blocks = []
        prev = rev[0]
        for i, c in enumerate(rev):
            blocks.append(UpDecoderBlock2D(prev, c, cfg.layers_per_block + 1, g, add_upsample=i != len(rev) - 1))
            prev = c
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = nn.GroupNorm(g, boc[0], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[0], cfg.out_channels, 3, padding=1)

    def forward(self, latent):
        x = self.conv_in(latent)
        x = self.mid_block.resnets[0](x)
        x = self.mid_block.attentions[0](x)
        x = self.mid_block.resnets[1](x)
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


# ----------------------------------------------------------------------------------------------
# deterministic random init
# ----------------------------------------------------------------------------------------------


def _normal(gen: torch.Generator, shape, std: float, mean: float = 0.0) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float32) * std + mean


@torch.no_grad()
def init_params(model: nn.Module, gen: torch.Generator, linear_gain=None, bias_std: float = 0.02, norm_noise: float = 0.1,
                embedding_std: float = 1.0) -> None:
    """Deterministic init in sorted parameter-name order.

    Linear/Conv weights ~ N(0, gain^2/fan_in); biases ~ N(0, bias_std^2); norm weights ~ 1 +/- noise,
    norm biases ~ N(0, bias_std^2); embeddings ~ N(0, embedding_std^2).  `linear_gain(name)` may
    return a per-module gain."""
    modules = dict(model.named_modules())
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        mod_name, _, pname = name.rpartition(".")
        mod = modules[mod_name]
        if isinstance(mod, nn.Embedding):
            std = embedding_std(mod_name) if callable(embedding_std) else embedding_std
            p.copy_(_normal(gen, p.shape, std))
        elif isinstance(mod, (nn.Linear, nn.Conv2d)):
            if pname == "weight":
                fan_in = p.shape[1] * (p.shape[2] * p.shape[3] if p.dim() == 4 else 1)
                gain = linear_gain(mod_name) if linear_gain else 1.0
                p.copy_(_normal(gen, p.shape, gain / math.sqrt(fan_in)))
            else:
                p.copy_(_normal(gen, p.shape, bias_std))
        elif isinstance(mod, (nn.LayerNorm, nn.GroupNorm, RMSNorm, T5LayerNorm)):
            if pname == "weight":
                p.copy_(_normal(gen, p.shape, norm_noise, 1.0))
            else:
                p.copy_(_normal(gen, p.shape, bias_std))
        else:
            raise ValueError(f"no init rule for {name} ({type(mod).__name__})")
