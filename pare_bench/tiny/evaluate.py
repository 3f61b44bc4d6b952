"""World-metric evaluation of a tiny teacher on held-out seeds and held-out compositions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from pare_bench.tiny.sample import SamplingConfig, sample
from pare_bench.tiny.world.detect import score_video
from pare_bench.tiny.world.prompts import EVAL_SEED_BASE, split_prompts
from pare_bench.tiny.world.render import render_prompt, to_uint8
from pare_bench.tiny.zoo import TinyWan, load_tiny

# "eval": training compositions with seeds never drawn in training; "heldout": compositions never trained on.
EVAL_SPLITS = {"held-out seeds": "eval", "held-out compositions": "heldout"}


def first_frames(model: TinyWan, prompts: list[str], seeds: list[int]) -> torch.Tensor | None:
    """For I2V, the rendered first frame of each (prompt, seed): (B, 3, H, W) in [0, 1]; None for T2V."""
    if model.spec.task != "i2v":
        return None
    frames = [render_prompt(p, s, model.spec.world)[0] for p, s in zip(prompts, seeds)]
    return torch.stack(frames).permute(0, 3, 1, 2).float() / 255.0


def evaluate(
    model: TinyWan, split: str, seeds_per_prompt: int = 2, steps: int = 20, batch: int = 16
) -> dict[str, float]:
    """World metrics averaged over the split's prompts, `seeds_per_prompt` evaluation seeds each."""
    items = [(p, EVAL_SEED_BASE + i) for p in split_prompts(split) for i in range(seeds_per_prompt)]
    scores = []
    for start in range(0, len(items), batch):
        prompts, seeds = map(list, zip(*items[start : start + batch]))
        videos = to_uint8(
            sample(model, prompts, seeds, SamplingConfig(steps=steps), first_frames(model, prompts, seeds))
        )
        scores += [score_video(video.numpy(), text) for video, text in zip(videos, prompts)]
    # NaN marks a video with nothing a score counts (no moving object for motion_direction, say).
    return {name: float(np.nanmean([s[name] for s in scores])) for name in scores[0]}


def evaluate_teacher(name: str, weights: Path | None, seeds_per_prompt: int, steps: int) -> dict[str, dict[str, float]]:
    model = load_tiny(name, weights)
    results = {label: evaluate(model, split, seeds_per_prompt, steps) for label, split in EVAL_SPLITS.items()}
    table = Table(title=f"{name}: world scores ({seeds_per_prompt} seeds/prompt, {steps} steps, CFG 5)")
    table.add_column("metric")
    for label in results:
        table.add_column(label, justify="right")
    for metric in next(iter(results.values())):
        table.add_row(metric, *(f"{results[label][metric]:.3f}" for label in results))
    Console().print(table)
    return results
