"""Sampling from the tiny Wan models with a diffusers flow-matching scheduler and CFG, as WanPipeline does.

The loop mirrors `WanPipeline.__call__`: separate conditional and unconditional forwards, each inside
its own `cache_context` so diffusers' cache hooks (FirstBlockCache and friends) keep separate state
for the two branches, and `noise_pred = uncond + guidance * (cond - uncond)`. Pixel space replaces
the VAE latent space, and the world text encoder replaces UMT5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from diffusers.hooks import HookRegistry

from pare_bench.tiny.world.conditioning import image_condition, image_tokens
from pare_bench.tiny.zoo import IMAGE_PATCH, TinyWan

SCHEDULERS = ("unipc", "euler")


def reset_hooks(transformer) -> None:
    """Reset the stateful hooks (cache methods) on `transformer` and its submodules: what diffusers'
    `CacheMixin._reset_stateful_cache` does, through the hook registry's public call."""
    HookRegistry.check_if_exists_or_initialize(transformer).reset_stateful_hooks(recurse=True)


@dataclass(frozen=True)
class SamplingConfig:
    steps: int = 20  # denoising steps
    guidance: float = 5.0  # CFG scale; 1.0 disables the unconditional branch
    shift: float = 3.0  # flow shift, as Wan2.1 at 480p
    scheduler: str = "unipc"  # Wan2.1's default solver
    frames: int | None = None  # video length; None: the model's world length
    # Both CFG branches in one forward of twice the batch (unconditional first), for cache hooks that split the
    # batch themselves (FasterCache); otherwise two forwards in their own cache contexts, as WanPipeline.
    batched_cfg: bool = False


def make_scheduler(config: SamplingConfig):
    """Wan2.1's scheduler settings (diffusers Wan2.1 scheduler_config.json): flow prediction with shift."""
    if config.scheduler == "unipc":
        return UniPCMultistepScheduler(
            prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=config.shift
        )
    if config.scheduler == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=config.shift)
    raise ValueError(f"unknown scheduler {config.scheduler!r}; known: {SCHEDULERS}")


def initial_noise(seeds: list[int], shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """One CPU generator per video, so a video's noise depends only on its own seed."""
    noise = [torch.randn(shape, generator=torch.Generator().manual_seed(seed)) for seed in seeds]
    return torch.stack(noise).to(device)


def _velocity(
    model: TinyWan, latents, timestep, context, image_kwargs, condition, guidance, where, batched: bool = False
) -> torch.Tensor:
    model_input = latents if condition is None else torch.cat([latents, condition], dim=1)
    transformer = model.transformer
    if batched and guidance != 1.0:
        doubled = {k: torch.cat([v, v]) for k, v in image_kwargs.items()}
        with transformer.cache_context("cfg", **where):
            both = transformer(
                hidden_states=torch.cat([model_input, model_input]),
                timestep=torch.cat([timestep, timestep]),
                encoder_hidden_states=torch.cat([context["uncond"], context["cond"]]),
                return_dict=False,
                **doubled,
            )[0]
        uncond, cond = both.chunk(2)
        return uncond + guidance * (cond - uncond)
    with transformer.cache_context("cond", **where):
        cond = transformer(model_input, timestep, context["cond"], return_dict=False, **image_kwargs)[0]
    if guidance == 1.0:
        return cond
    with transformer.cache_context("uncond", **where):
        uncond = transformer(model_input, timestep, context["uncond"], return_dict=False, **image_kwargs)[0]
    return uncond + guidance * (cond - uncond)


@torch.no_grad()
def sample(
    model: TinyWan,
    prompts: list[str],
    seeds: list[int],
    config: SamplingConfig,
    first_frames: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generate one video per (prompt, seed): (B, 3, F, H, W) floats in [0, 1].

    For I2V models `first_frames` (B, 3, H, W) in [0, 1] is the conditioning image.
    """
    world, device = model.spec.world, model.transformer.device
    if model.spec.task == "i2v" and first_frames is None:
        raise ValueError(f"{model.name} is an image-to-video model: pass first_frames")
    scheduler = make_scheduler(config)
    scheduler.set_timesteps(config.steps, device=device)
    frames = config.frames or world.frames
    latents = initial_noise(seeds, (3, frames, world.height, world.width), device)
    context = {"cond": model.text_encoder.encode(prompts), "uncond": model.text_encoder.encode([""] * len(prompts))}
    condition, image_kwargs = None, {}
    if first_frames is not None:
        image = first_frames.to(device) * 2 - 1
        condition = image_condition(image, frames)
        image_kwargs = {"encoder_hidden_states_image": image_tokens(image, IMAGE_PATCH)}
    # Cache hooks keep state across calls; each video starts clean, as after a WanPipeline call.
    reset_hooks(model.transformer)
    for step, t in enumerate(scheduler.timesteps):
        model.current_timestep = int(t)  # read by timestep-aware cache hooks (PyramidAttentionBroadcast)
        where = {"step_index": step, "num_inference_steps": config.steps, "timestep": t}
        velocity = _velocity(
            model,
            latents,
            t.expand(len(seeds)),
            context,
            image_kwargs,
            condition,
            config.guidance,
            where,
            config.batched_cfg,
        )
        latents = scheduler.step(velocity, t, latents, return_dict=False)[0]
    reset_hooks(model.transformer)
    return ((latents.clamp(-1, 1) + 1) / 2).cpu()
