"""An independent re-implementation of diffusers' `FluxPipeline.__call__` (schnell settings) over the
tiny PyTorch modules of models.py.  It never touches onnxruntime, so golden outputs made with it
check the ONNX graphs *and* the project's TypeScript pipeline independently.

Mirrors diffusers @ 58eb52c (pipeline_flux.py, scheduling_flow_match_euler_discrete.py,
image_processor.py) as literally as possible; spec: docs/flux-pipeline.md §4-§6.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np
import torch

VAE_SCALE_FACTOR = 8  # 2 ** (len(block_out_channels) - 1)
SCALING_FACTOR = 0.3611
SHIFT_FACTOR = 0.1159


def _pack_latents(latents, batch_size, num_channels_latents, height, width):
    latents = latents.view(batch_size, num_channels_latents, height // 2, 2, width // 2, 2)
    latents = latents.permute(0, 2, 4, 1, 3, 5)
    latents = latents.reshape(batch_size, (height // 2) * (width // 2), num_channels_latents * 4)
    return latents


def _unpack_latents(latents, height, width, vae_scale_factor):
    batch_size, num_patches, channels = latents.shape
    height = 2 * (int(height) // (vae_scale_factor * 2))
    width = 2 * (int(width) // (vae_scale_factor * 2))
    latents = latents.view(batch_size, height // 2, width // 2, channels // 4, 2, 2)
    latents = latents.permute(0, 3, 1, 4, 2, 5)
    latents = latents.reshape(batch_size, channels // (2 * 2), height, width)
    return latents


def _prepare_latent_image_ids(batch_size, height, width, device, dtype):
    latent_image_ids = torch.zeros(height, width, 3)
    latent_image_ids[..., 1] = latent_image_ids[..., 1] + torch.arange(height)[:, None]
    latent_image_ids[..., 2] = latent_image_ids[..., 2] + torch.arange(width)[None, :]
    h, w, c = latent_image_ids.shape
    latent_image_ids = latent_image_ids.reshape(h * w, c)
    return latent_image_ids.to(device=device, dtype=dtype)


class FlowMatchEulerDiscreteScheduler:
    """schnell config: num_train_timesteps 1000, shift 1.0, use_dynamic_shifting False."""

    def __init__(self, num_train_timesteps: int = 1000, shift: float = 1.0):
        self.num_train_timesteps = num_train_timesteps
        self.shift = shift

    def set_timesteps(self, sigmas: np.ndarray):
        sigmas = np.array(sigmas).astype(np.float32)
        sigmas = self.shift * sigmas / (1 + (self.shift - 1) * sigmas)  # identity for shift 1
        sigmas = torch.from_numpy(sigmas).to(dtype=torch.float32)
        self.timesteps = sigmas * self.num_train_timesteps
        self.sigmas = torch.cat([sigmas, torch.zeros(1, device=sigmas.device)])
        self.step_index = 0

    def step(self, model_output, timestep, sample):
        sample = sample.to(torch.float32)
        sigma = self.sigmas[self.step_index]
        sigma_next = self.sigmas[self.step_index + 1]
        prev_sample = sample + (sigma_next - sigma) * model_output
        prev_sample = prev_sample.to(model_output.dtype)
        self.step_index += 1
        return prev_sample


def postprocess_np_uint8(image: torch.Tensor) -> np.ndarray:
    """VaeImageProcessor.postprocess(output_type='pil') up to the uint8 array."""
    image = (image / 2 + 0.5).clamp(0, 1)
    image = image.cpu().permute(0, 2, 3, 1).float().numpy()
    return (image * 255).round().astype("uint8")


@dataclass
class PipelineOutput:
    final_latents: np.ndarray  # [B, 16, h, w], denoised, before /scaling + shift
    image_float: np.ndarray  # [B, 3, H, W] raw VAE output
    image: np.ndarray  # uint8 [B, H, W, 3]
    timesteps_fed: List[float]  # the `timestep` input of each transformer call (sigma, float32)
    sigmas: List[float]  # including the terminal 0


@torch.no_grad()
def flux_pipeline(transformer, vae_decoder, latents: torch.Tensor, prompt_embeds: torch.Tensor,
                  pooled_prompt_embeds: torch.Tensor, num_inference_steps: int, height: int, width: int) -> PipelineOutput:
    """FluxPipeline.__call__ with given (unpacked) `latents` [B,16,h,w], prompt_embeds [B,L,D],
    pooled_prompt_embeds [B,P]; guidance off (schnell)."""
    batch_size = latents.shape[0]
    dtype = prompt_embeds.dtype
    device = prompt_embeds.device
    num_channels_latents = latents.shape[1]

    # encode_prompt: text_ids = zeros(L, 3)
    text_ids = torch.zeros(prompt_embeds.shape[1], 3).to(device=device, dtype=dtype)

    # prepare_latents (latents given): h = 2 * (H // 16)
    h = 2 * (int(height) // (VAE_SCALE_FACTOR * 2))
    w = 2 * (int(width) // (VAE_SCALE_FACTOR * 2))
    assert tuple(latents.shape[2:]) == (h, w), (latents.shape, h, w)
    latent_image_ids = _prepare_latent_image_ids(batch_size, h // 2, w // 2, device, dtype)
    latents = _pack_latents(latents.to(device=device, dtype=dtype), batch_size, num_channels_latents, h, w)

    # timesteps
    sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(sigmas)  # mu (calculate_shift) is computed by diffusers but unused: no dynamic shifting
    timesteps = scheduler.timesteps

    fed = []
    for i, t in enumerate(timesteps):
        timestep = t.expand(latents.shape[0]).to(latents.dtype)
        fed.append(float((timestep / 1000)[0]))
        noise_pred = transformer(
            hidden_states=latents,
            timestep=timestep / 1000,
            pooled_projections=pooled_prompt_embeds,
            encoder_hidden_states=prompt_embeds,
            txt_ids=text_ids,
            img_ids=latent_image_ids,
        )
        latents_dtype = latents.dtype
        latents = scheduler.step(noise_pred, t, latents)
        assert latents.dtype == latents_dtype

    latents = _unpack_latents(latents, height, width, VAE_SCALE_FACTOR)
    final_latents = latents.clone()
    latents = (latents / SCALING_FACTOR) + SHIFT_FACTOR
    image = vae_decoder(latents)
    return PipelineOutput(
        final_latents=final_latents.numpy().astype(np.float32),
        image_float=image.numpy().astype(np.float32),
        image=postprocess_np_uint8(image),
        timesteps_fed=fed,
        sigmas=[float(s) for s in scheduler.sigmas],
    )


@torch.no_grad()
def encode_prompt(clip, t5, clip_ids: torch.Tensor, t5_ids: torch.Tensor):
    """diffusers encode_prompt: pooled = CLIP(ids77).pooler_output, prompt_embeds = T5(ids)."""
    _, pooled = clip(clip_ids)
    prompt_embeds = t5(t5_ids)
    return prompt_embeds, pooled
