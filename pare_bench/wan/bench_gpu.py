"""`python -m pare_bench bench-gpu`: per-step latency of real-size Wan2.1 transformers and their PARE variants.

Random weights (bf16 on CUDA) in the real Wan2.1-1.3B and 14B configs at 480p x 81 frames, batch 1, one
forward per timing. Variants: the baseline; width-pruned (half the self-attention heads of every block); routed
(a fixed router decision running floor(budget x blocks) blocks, evenly spread); both. Timing uses CUDA events
around each forward after a warm-up and reports the median of the repeats; FLOPs are the analytic count, so the
ideal speedup stands beside the measured one. `--toy` runs a small config on the CPU (perf_counter timing),
which is how the command is tested without a GPU.

`--train-steps N` also times N optimizer steps of PARE's two training stages on the same random model at
batch 1: stage-1 recovery of the width student (`pare_core.distill.recover`) and stage-2 joint training of
student and router (`train_joint`), with their step time, peak memory and FLOPs per step (analytic: one teacher
forward plus three student forwards, the backward counted as two).
"""

from __future__ import annotations

import gc
import json
import math
import statistics
import time
from pathlib import Path

import torch

from pare_bench.wan.pipeline import tiny_transformer_config
from pare_bench.wan.zoo import IMAGE_TOKENS, TEXT_TOKENS, latent_grid, wan_model
from pare_core.flops import analytic_flops
from pare_core.importance import static_router
from pare_core.prune import HeadPlan, prune_heads
from pare_core.router import RouterConfig, apply_router

TOY_VIDEO = (9, 64, 64)  # frames, height, width: 3 x 8 x 8 latents, 48 tokens


def _evenly(count: int, total: int) -> list[bool]:
    chosen = {round(i * (total - 1) / max(1, count - 1)) for i in range(count)} if count else set()
    return [i in chosen for i in range(total)]


def _in_dtype(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast to `dtype` but keep the modules diffusers keeps in fp32 (rope, time embedder, norms), as
    `from_pretrained(torch_dtype=...)` does for real weights."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, module in model.named_modules():
        if not any(part in name.split(".") for part in keep):
            for tensor in module.parameters(recurse=False):
                tensor.data = tensor.data.to(dtype)
    return model


def _timer(device: torch.device):
    if device.type == "cuda":

        def timed(fn) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1000

    else:

        def timed(fn) -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

    return timed


def _random_inputs(config: dict, grid: tuple[int, int, int], dtype: torch.dtype, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        "hidden_states": torch.randn(1, config["in_channels"], *grid, generator=generator).to(dtype),
        "timestep": torch.tensor([500.0]),
        "encoder_hidden_states": torch.randn(1, TEXT_TOKENS, config["text_dim"], generator=generator).to(dtype),
    }
    if "image_dim" in config:
        image = torch.randn(1, IMAGE_TOKENS, config["image_dim"], generator=generator)
        inputs["encoder_hidden_states_image"] = image.to(dtype)
    return inputs


def bench_model(
    name: str,
    config: dict,
    video: tuple[int, int, int],
    device: torch.device,
    dtype: torch.dtype,
    warmup: int,
    repeats: int,
    ratio: float = 0.5,
    budget: float = 0.64,
) -> list[dict]:
    from diffusers import WanTransformer3DModel

    from pare_core.distill import to_device

    grid = latent_grid(*video)
    image = "image_dim" in config
    layers, heads = config["num_layers"], config["num_attention_heads"]
    with torch.device(device):
        base = _in_dtype(WanTransformer3DModel(**config), dtype).eval()
    inputs = to_device(_random_inputs(config, grid, dtype, seed=0), device)
    keep = heads - round(heads * ratio)
    plan = HeadPlan(tuple(tuple(range(keep)) for _ in range(layers)))
    executed = math.floor(budget * layers + 1e-9)
    dim = heads * config["attention_head_dim"]
    timed = _timer(device)
    rows = []
    for variant in ("baseline", "width", "routed", "width+routed"):
        model = prune_heads(base, plan) if "width" in variant else base
        if "routed" in variant:
            router = static_router(dim, _evenly(executed, layers), executed / layers).to(device, dtype).eval()
            apply_router(model, router, RouterConfig(budget=1.0, mode="threshold"))
        with torch.no_grad():
            for _ in range(warmup):
                model(**inputs, return_dict=False)
            seconds = [timed(lambda model=model: model(**inputs, return_dict=False)) for _ in range(repeats)]
        flops = analytic_flops(
            config,
            *grid,
            TEXT_TOKENS,
            IMAGE_TOKENS if image else 0,
            heads_per_block=plan.heads_per_block if "width" in variant else None,
            blocks_executed=executed if "routed" in variant else None,
        ).total
        rows.append(
            {
                "model": name,
                "variant": variant,
                "seconds": seconds,
                "median_s": statistics.median(seconds),
                "flops_per_forward": flops,
            }
        )
        if model is not base:
            del model
        else:
            from pare_core.router import remove_router

            if "routed" in variant:
                remove_router(base)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    for row in rows:
        row["speedup"] = rows[0]["median_s"] / row["median_s"]
        row["ideal_speedup"] = rows[0]["flops_per_forward"] / row["flops_per_forward"]
        row["of_ideal"] = row["speedup"] / row["ideal_speedup"]
    del base
    gc.collect()
    return rows


def bench_training(
    name: str,
    config: dict,
    video: tuple[int, int, int],
    device: torch.device,
    dtype: torch.dtype,
    steps: int,
    ratio: float = 0.5,
    budget: float = 0.64,
) -> list[dict]:
    """Seconds per step (median after the first), peak memory and FLOPs per step of stages 1 and 2."""
    from accelerate import Accelerator
    from diffusers import WanTransformer3DModel

    from pare_core.distill import JointConfig, RecoveryConfig, recover, train_joint
    from pare_core.router import BlockRouter

    grid = latent_grid(*video)
    layers, heads = config["num_layers"], config["num_attention_heads"]
    with torch.device(device):
        teacher = _in_dtype(WanTransformer3DModel(**config), dtype).eval()
    keep = heads - round(heads * ratio)
    student = prune_heads(teacher, HeadPlan(tuple(tuple(range(keep)) for _ in range(layers))))
    dim = heads * config["attention_head_dim"]
    flops = {
        kind: analytic_flops(
            config,
            *grid,
            TEXT_TOKENS,
            IMAGE_TOKENS if "image_dim" in config else 0,
            heads_per_block=None if kind == "teacher" else [keep] * layers,
        ).total
        for kind in ("teacher", "student")
    }
    per_step = flops["teacher"] + 3 * flops["student"]  # the routed student runs every block in training
    accelerator = Accelerator(cpu=device.type == "cpu")
    rows = []
    for stage in ("recovery", "joint"):
        stamps: list[float] = []

        def on_step(record: dict, stamps: list[float] = stamps) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        batches = lambda step: _random_inputs(config, grid, dtype, step)  # noqa: E731
        if stage == "recovery":
            config_1 = RecoveryConfig(steps=steps, warmup=1, checkpoint_every=steps + 1)
            student = recover(student, teacher, batches, config_1, on_step=on_step, accelerator=accelerator)
        else:
            with torch.device(device):
                router = _in_dtype(BlockRouter(dim, layers, budget=budget), dtype)
            config_2 = JointConfig(steps=steps, budget=budget, warmup=1, checkpoint_every=steps + 1, rank_weight=0)
            student, _ = train_joint(
                student, router, teacher, batches, None, config_2, on_step=on_step, accelerator=accelerator
            )
        times = [b - a for a, b in zip([start, *stamps], stamps)]
        rows.append(
            {
                "model": name,
                "stage": stage,
                "steps": steps,
                "seconds": times,
                "median_s": statistics.median(times[1:] or times),
                "flops_per_step": per_step,
                "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
            }
        )
    del teacher, student
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


TRAIN_MODELS = ("wan2.1-t2v-1.3b",)  # 14B training needs FSDP across GPUs: its weights, gradients and Adam states alone


def bench_gpu(
    models: list[str],
    toy: bool,
    warmup: int,
    repeats: int,
    out: Path,
    train_steps: int = 0,
    train_models: tuple[str, ...] = TRAIN_MODELS,
) -> dict:
    device = torch.device("cpu" if toy or not torch.cuda.is_available() else "cuda")
    if not toy and device.type != "cuda":
        raise RuntimeError("bench-gpu needs a CUDA device for the real configs; use --toy on a CPU")
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    rows = []
    training = []
    if toy:
        rows += bench_model("toy", tiny_transformer_config(), TOY_VIDEO, device, dtype, warmup, repeats)
        if train_steps:
            training += bench_training("toy", tiny_transformer_config(), TOY_VIDEO, device, dtype, train_steps)
    else:
        for name in models:
            spec = wan_model(name)
            rows += bench_model(name, dict(spec.transformer), (81, 480, 832), device, dtype, warmup, repeats)
            if train_steps and name in train_models:
                training += bench_training(name, dict(spec.transformer), (81, 480, 832), device, dtype, train_steps)
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "dtype": str(dtype),
        "torch": torch.__version__,
        "warmup": warmup,
        "repeats": repeats,
        "rows": rows,
        "training": training,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


def print_bench(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"per-forward latency, batch 1, {result['device']} {result['dtype']}")
    for column in ("model", "variant", "median ms", "GFLOPs", "speedup", "ideal", "of ideal"):
        table.add_column(column, justify="right")
    for row in result["rows"]:
        table.add_row(
            row["model"],
            row["variant"],
            f"{row['median_s'] * 1000:.1f}",
            f"{row['flops_per_forward'] / 1e9:.1f}",
            f"{row['speedup']:.3f}",
            f"{row['ideal_speedup']:.3f}",
            f"{row['of_ideal']:.3f}",
        )
    Console(width=120).print(table)
    if result.get("training"):
        table = Table(title="training step, batch 1 (stage 1 recovery, stage 2 joint)")
        for column in ("model", "stage", "median s/step", "TFLOPs/step", "peak GB"):
            table.add_column(column, justify="right")
        for row in result["training"]:
            memory = "-" if row["peak_memory_gb"] is None else f"{row['peak_memory_gb']:.1f}"
            flops = f"{row['flops_per_step'] / 1e12:.3g}"
            table.add_row(row["model"], row["stage"], f"{row['median_s']:.3f}", flops, memory)
        Console(width=120).print(table)
