"""`python -m pare_bench bench-gpu`: per-step latency of real-size Wan2.1 transformers and their PARE variants.

Random weights (bf16 on CUDA) in the real Wan2.1-1.3B and 14B configs at 480p x 81 frames, batch 1, one
forward per timing. Variants: the baseline; width-pruned (half the self-attention heads of every block); routed
(a fixed router decision running floor(budget x blocks) blocks, evenly spread); both. Timing uses CUDA events
around each forward after a warm-up and reports the median of the repeats; FLOPs are the analytic count, so the
ideal speedup stands beside the measured one. `--toy` runs a small config on the CPU (perf_counter timing),
which is how the command is tested without a GPU.
"""

from __future__ import annotations

import gc
import json
import math
import statistics
import time
from pathlib import Path

import torch

from pare_bench.wan_pipeline import tiny_transformer_config
from pare_bench.wan_zoo import IMAGE_TOKENS, TEXT_TOKENS, latent_grid, wan_model
from pare_core.flops import analytic_flops
from pare_core.prune import HeadPlan, prune_heads
from pare_core.router import RouterConfig, apply_router, static_router

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

    grid = latent_grid(*video)
    image = "image_dim" in config
    layers, heads = config["num_layers"], config["num_attention_heads"]
    with torch.device(device):
        base = _in_dtype(WanTransformer3DModel(**config), dtype).eval()
        inputs = {
            "hidden_states": torch.randn(1, config["in_channels"], *grid, dtype=dtype),
            "timestep": torch.tensor([500.0]),
            "encoder_hidden_states": torch.randn(1, TEXT_TOKENS, config["text_dim"], dtype=dtype),
        }
        if image:
            inputs["encoder_hidden_states_image"] = torch.randn(1, IMAGE_TOKENS, config["image_dim"], dtype=dtype)
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


def bench_gpu(models: list[str], toy: bool, warmup: int, repeats: int, out: Path) -> dict:
    device = torch.device("cpu" if toy or not torch.cuda.is_available() else "cuda")
    if not toy and device.type != "cuda":
        raise RuntimeError("bench-gpu needs a CUDA device for the real configs; use --toy on a CPU")
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    rows = []
    if toy:
        rows += bench_model("toy", tiny_transformer_config(), TOY_VIDEO, device, dtype, warmup, repeats)
    else:
        for name in models:
            spec = wan_model(name)
            rows += bench_model(name, dict(spec.transformer), (81, 480, 832), device, dtype, warmup, repeats)
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "dtype": str(dtype),
        "torch": torch.__version__,
        "warmup": warmup,
        "repeats": repeats,
        "rows": rows,
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
