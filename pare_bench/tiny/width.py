"""PARE width on the tiny models: calibration inputs from the world and head profiles."""

from __future__ import annotations

import random

import torch

from pare_bench.progress import progress
from pare_bench.tiny.train_teacher import TeacherRecipe, noised_inputs, training_batch
from pare_bench.tiny.zoo import TinyWan
from pare_core.heads import HeadProfile, profile_heads

CALIBRATION_TIMESTEPS = (0.9, 0.7, 0.5, 0.3, 0.1)  # noise levels t; layout and motion are decided at high t


@torch.no_grad()
def calibration_inputs(model: TinyWan, videos: int = 8, seed: int = 0) -> list[dict]:
    """Transformer forward kwargs: `videos` training-split scenes, each noised at every calibration level."""
    recipe = TeacherRecipe(batch=videos, prompt_dropout=0.0)
    batch = training_batch(model, recipe, random.Random(seed), model.transformer.device)
    context = model.text_encoder(batch["tokens"])
    generator = torch.Generator().manual_seed(seed)
    inputs = []
    for t in CALIBRATION_TIMESTEPS:
        noise = torch.randn(batch["video"].shape, generator=generator).to(batch["video"].device)
        levels = torch.full((videos,), t, device=batch["video"].device)
        inputs.append(noised_inputs(batch, levels, noise, context))
    return inputs


def profile_model(model: TinyWan, videos: int = 8, query_samples: int = 256) -> HeadProfile:
    inputs = calibration_inputs(model, videos)
    heads = sum(block.attn1.heads for block in model.transformer.blocks)
    with progress() as bar:
        task = bar.add_task("profile heads", total=heads)
        return profile_heads(model.transformer, inputs, query_samples, progress=lambda: bar.advance(task))
