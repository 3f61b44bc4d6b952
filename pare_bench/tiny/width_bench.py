"""`python -m pare_bench bench-width`: what a width recipe's pruning costs and saves, before recovery.

One forward of the teacher and of the pruned (not yet recovered) teacher on the same calibration input at
batch 1: FLOPs from the run-time counter and from the analytic formula, latency, and the output error
against the teacher over every calibration noise level. The two models are timed alternately so drift in
machine load hits both.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
from diffusers.models.transformers.transformer_wan import WanAttention
from rich.console import Console
from rich.table import Table

from pare_bench.suite import WidthRecipe
from pare_bench.tiny.recipes import pruned_teacher
from pare_bench.tiny.width import calibration_inputs
from pare_bench.tiny.zoo import load_tiny
from pare_core.flops import RuntimeFlopCounter, analytic_flops


def _latency(model: torch.nn.Module, inputs: dict, warmup: int, repeats: int) -> list[float]:
    seconds = []
    with torch.no_grad():
        for run in range(warmup + repeats):
            start = time.perf_counter()
            model(**inputs, return_dict=False)
            if run >= warmup:
                seconds.append(time.perf_counter() - start)
    return seconds


@torch.no_grad()
def _relative_error(student: torch.nn.Module, teacher: torch.nn.Module, inputs: list[dict]) -> float:
    """RMS(student - teacher) / RMS(teacher) of the velocity, over all calibration inputs."""
    squared_error = squared_norm = 0.0
    for batch in inputs:
        expected = teacher(**batch, return_dict=False)[0]
        squared_error += float((student(**batch, return_dict=False)[0] - expected).pow(2).sum())
        squared_norm += float(expected.pow(2).sum())
    return (squared_error / squared_norm) ** 0.5


def fuse_qkv(model: torch.nn.Module) -> None:
    """diffusers' fused q/k/v projection (one matmul instead of three) in every Wan attention of `model`."""
    for module in model.modules():
        if isinstance(module, WanAttention):
            module.fuse_projections()


def bench_width(name: str, recipe: WidthRecipe, repeats: int = 20, warmup: int = 3, fused: bool = False) -> dict:
    """`fused`: time both models with fused q/k/v projections (FLOPs are counted unfused, and are the same)."""
    teacher = load_tiny(name)
    plan, pruned = pruned_teacher(teacher, recipe)
    calibration = calibration_inputs(teacher)
    inputs = {k: v[:1] for k, v in calibration[0].items()}
    world = teacher.spec.world
    image_len = inputs["encoder_hidden_states_image"].shape[1] if "encoder_hidden_states_image" in inputs else 0
    result = {
        "model": name,
        "recipe": recipe.model_dump(mode="json"),
        "heads_per_block": plan.heads_per_block,
        "cross_heads_per_block": plan.cross_heads_per_block,
        "threads": torch.get_num_threads(),
        "pruned_relative_error": _relative_error(pruned, teacher.transformer, calibration),
    }
    for label, model in (("teacher", teacher.transformer), ("pruned", pruned)):
        with RuntimeFlopCounter() as counter, torch.no_grad():
            model(**inputs, return_dict=False)
        result[f"{label}_runtime_flops"] = counter.total
        text_len = inputs["encoder_hidden_states"].shape[1]
        config = dict(model.config)  # a pruned config carries its head counts
        result[f"{label}_analytic_flops"] = analytic_flops(
            config, world.frames, world.height, world.width, text_len, image_len
        ).total
    if fused:
        fuse_qkv(teacher.transformer)
        fuse_qkv(pruned)
    result["fused_qkv"] = fused
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
    analytic_drop = result["teacher_analytic_flops"] - result["pruned_analytic_flops"]
    result["flops_drop_vs_analytic"] = runtime_drop / analytic_drop if analytic_drop else float("nan")
    return result


def print_bench(result: dict, out: Path | None) -> None:
    recipe = result["recipe"]
    title = (
        f"{result['model']}: {recipe['ratio']:.0%} of self-attention heads ({recipe['score']}) and "
        f"{recipe['cross_ratio']:.0%} of cross-attention heads removed; one forward, batch 1"
        f"{', fused q/k/v' if result['fused_qkv'] else ''}"
    )
    table = Table(title=title)
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
        f"latency ratio / FLOPs ratio = {result['latency_ratio'] / result['runtime_flops_ratio']:.3f}; "
        f"output error before recovery = {result['pruned_relative_error']:.4f} (RMS, relative to the teacher's)"
    )
    if out:
        out.write_text(json.dumps(result, indent=2))
