"""PARE width on the tiny models: calibration inputs from the world, head profiles, and the FLOPs/latency
measurement of a head-pruned teacher (`python -m pare_bench bench-width`)."""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pare_bench.train_teacher import TeacherRecipe, noised_inputs, training_batch
from pare_bench.zoo import TinyWan, load_tiny
from pare_core.flops import RuntimeFlopCounter, analytic_flops
from pare_core.heads import HeadProfile, profile_heads, select_heads
from pare_core.prune import prune_heads

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
    with Progress(console=Console(stderr=True)) as bar:
        task = bar.add_task("profile heads", total=heads)
        return profile_heads(model.transformer, inputs, query_samples, progress=lambda: bar.advance(task))


def _latency(model: torch.nn.Module, inputs: dict, warmup: int, repeats: int) -> list[float]:
    seconds = []
    with torch.no_grad():
        for run in range(warmup + repeats):
            start = time.perf_counter()
            model(**inputs, return_dict=False)
            if run >= warmup:
                seconds.append(time.perf_counter() - start)
    return seconds


def bench_width(name: str, ratio: float, repeats: int = 20, warmup: int = 3, seed: int = 0) -> dict:
    """Teacher vs head-pruned teacher, one forward at batch 1: run-time FLOPs, analytic FLOPs, latency.

    Which heads go does not change the cost, only how many per block, so the plan is a seeded random
    global selection. The two models are timed alternately so drift in machine load hits both.
    """
    teacher = load_tiny(name)
    blocks = teacher.transformer.blocks
    scores = torch.rand((len(blocks), blocks[0].attn1.heads), generator=torch.Generator().manual_seed(seed))
    plan = select_heads(scores, ratio)
    pruned = prune_heads(teacher.transformer, plan)
    inputs = {k: v[:1] for k, v in calibration_inputs(teacher, videos=1)[0].items()}
    world, config = teacher.spec.world, dict(teacher.transformer.config)
    image_len = inputs["encoder_hidden_states_image"].shape[1] if "encoder_hidden_states_image" in inputs else 0
    result = {
        "model": name,
        "ratio": ratio,
        "heads_per_block": plan.heads_per_block,
        "threads": torch.get_num_threads(),
    }
    for label, model, heads in (("teacher", teacher.transformer, None), ("pruned", pruned, plan.heads_per_block)):
        with RuntimeFlopCounter() as counter, torch.no_grad():
            model(**inputs, return_dict=False)
        result[f"{label}_runtime_flops"] = counter.total
        result[f"{label}_analytic_flops"] = analytic_flops(
            config,
            world.frames,
            world.height,
            world.width,
            inputs["encoder_hidden_states"].shape[1],
            image_len,
            heads_per_block=heads,
        ).total
    times = {"teacher": [], "pruned": []}
    for _ in range(repeats):  # alternate, one timing each per round
        times["teacher"] += _latency(teacher.transformer, inputs, warmup, 1)
        times["pruned"] += _latency(pruned, inputs, warmup, 1)
        warmup = 0
    for label, seconds in times.items():
        result[f"{label}_latency_p50"] = statistics.median(seconds)
        result[f"{label}_latency_p90"] = sorted(seconds)[int(0.9 * (len(seconds) - 1))]
    result["runtime_flops_ratio"] = result["pruned_runtime_flops"] / result["teacher_runtime_flops"]
    result["analytic_flops_ratio"] = result["pruned_analytic_flops"] / result["teacher_analytic_flops"]
    result["latency_ratio"] = result["pruned_latency_p50"] / result["teacher_latency_p50"]
    runtime_drop = result["teacher_runtime_flops"] - result["pruned_runtime_flops"]
    result["flops_drop_vs_analytic"] = runtime_drop / (
        result["teacher_analytic_flops"] - result["pruned_analytic_flops"]
    )
    return result


def print_bench(result: dict, out: Path | None) -> None:
    table = Table(
        title=f"{result['model']}: {result['ratio']:.0%} of self-attention heads removed, one forward, batch 1"
    )
    for column in ("", "teacher", "pruned", "pruned / teacher"):
        table.add_column(column, justify="right")
    for key, fmt in (
        ("runtime_flops", ".4e"),
        ("analytic_flops", ".4e"),
        ("latency_p50", ".4f"),
        ("latency_p90", ".4f"),
    ):
        t, p = result[f"teacher_{key}"], result[f"pruned_{key}"]
        table.add_row(key, format(t, fmt), format(p, fmt), f"{p / t:.4f}")
    Console().print(table)
    print(
        f"measured FLOPs drop / analytic drop = {result['flops_drop_vs_analytic']:.5f}; "
        f"latency ratio / FLOPs ratio = {result['latency_ratio'] / result['runtime_flops_ratio']:.3f}"
    )
    if out:
        out.write_text(json.dumps(result, indent=2))
