"""`python -m pare_bench flops`: FLOPs of a real Wan2.1 model and of a PARE recipe, without weights.

The model is built on the meta device (shapes only: no weights, no memory) and run under torch's FLOP counter;
the analytic formula (`pare_core.flops`) gives the same numbers independently, and both are printed.

A recipe file is YAML or JSON with the suite's recipe keys (`width: {ratio, cross_ratio}`, `depth: {budget}`),
or a width/depth artifact's `recipe.json`. Without a head profile of the real model, a `ratio` keeps the same
number of heads in every block (a recipe.json's `heads_per_block` is used as is). Depth is the expected cost:
with equal blocks the router keeps floor(budget x blocks) of them per forward; the run-time count builds that
many blocks and adds the router's own count.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from pare_bench.wan.zoo import IMAGE_TOKENS, TEXT_TOKENS, latent_grid, wan_model
from pare_core.flops import FlopBreakdown, RuntimeFlopCounter, analytic_flops
from pare_core.router import BlockRouter, router_size

ROUTER_HIDDEN = 64


@dataclass(frozen=True)
class Variant:
    name: str
    heads_per_block: list[int] | None = None
    cross_heads_per_block: list[int] | None = None
    blocks_executed: int | None = None  # None: all


def read_recipe(path: Path, config: dict) -> Variant:
    """A recipe file -> the kept heads per block and executed blocks it implies for `config`."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict) or not ({"width", "depth", "heads_per_block"} & set(data)):
        raise ValueError(f"{path}: a recipe needs a `width` or `depth` entry (or a recipe.json's heads_per_block)")
    layers, heads = config["num_layers"], config["num_attention_heads"]
    width = data.get("width") or {}
    keep = data.get("heads_per_block") or [heads - round(heads * width.get("ratio", 0.0))] * layers
    cross = data.get("cross_heads_per_block") or [heads - round(heads * width.get("cross_ratio", 0.0))] * layers
    if len(keep) != layers or len(cross) != layers:
        raise ValueError(f"{path}: heads per block for {len(keep)} blocks, the model has {layers}")
    depth = data.get("depth")
    executed = None if depth is None else max(0, math.floor(depth["budget"] * layers + 1e-9))
    return Variant("pare", keep, cross, executed)


def _inputs(config: dict, grid: tuple[int, int, int], image: bool) -> dict:
    kwargs = {
        "hidden_states": torch.empty(1, config["in_channels"], *grid),
        "timestep": torch.tensor([500.0]),
        "encoder_hidden_states": torch.empty(1, TEXT_TOKENS, config["text_dim"]),
    }
    if image:
        kwargs["encoder_hidden_states_image"] = torch.empty(1, IMAGE_TOKENS, config["image_dim"])
    return kwargs


def runtime_flops(config: dict, grid: tuple[int, int, int], variant: Variant, image: bool) -> int:
    """One forward counted at dispatch on the meta device; a routed variant is built with its executed blocks
    only (equal blocks: which ones does not change the count), plus one router call."""
    from pare_core.prune import PrunedWanTransformer3DModel

    layers = config["num_layers"] if variant.blocks_executed is None else variant.blocks_executed
    pruned = variant.heads_per_block is not None
    options = {**config, "num_layers": layers}
    if pruned:
        options["heads_per_block"] = variant.heads_per_block[:layers]
        options["cross_heads_per_block"] = variant.cross_heads_per_block[:layers]
    with torch.device("meta"), torch.no_grad():
        model = PrunedWanTransformer3DModel(**options) if pruned else _dense(options)
        with RuntimeFlopCounter() as counter:
            model(**_inputs(config, grid, image), return_dict=False)
            if variant.blocks_executed is not None:
                dim = config["num_attention_heads"] * config["attention_head_dim"]
                router = BlockRouter(dim, config["num_layers"], ROUTER_HIDDEN)
                router(torch.empty(1, dim), torch.empty(1, router.content_norm.normalized_shape[0]))
    return counter.total


def _dense(config: dict):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(**config)


def analytic(config: dict, grid: tuple[int, int, int], variant: Variant, image: bool) -> FlopBreakdown:
    breakdown = analytic_flops(
        config,
        *grid,
        TEXT_TOKENS,
        IMAGE_TOKENS if image else 0,
        heads_per_block=variant.heads_per_block,
        cross_heads_per_block=variant.cross_heads_per_block,
        blocks_executed=variant.blocks_executed,
    )
    if variant.blocks_executed is not None:
        dim = config["num_attention_heads"] * config["attention_head_dim"]
        breakdown.router = router_size(BlockRouter(dim, config["num_layers"], ROUTER_HIDDEN))["flops_per_sample"]
    return breakdown


def flops_table(
    name: str, height: int, width: int, frames: int, recipe: Path | None = None, steps: int | None = None
) -> dict:
    model = wan_model(name)
    config, image = dict(model.transformer), model.task == "i2v"
    grid = latent_grid(frames, height, width)
    steps = steps or model.steps
    forwards = 2 if model.guidance != 1.0 else 1  # CFG: conditional and unconditional forward per step
    variants = [Variant("baseline")] + ([read_recipe(recipe, config)] if recipe else [])
    rows = []
    for variant in variants:
        parts = analytic(config, grid, variant, image)
        runtime = runtime_flops(config, grid, variant, image)
        rows.append(
            {
                "variant": variant.name,
                "blocks_executed": variant.blocks_executed or config["num_layers"],
                "heads_kept": sum(variant.heads_per_block or [config["num_attention_heads"]] * config["num_layers"]),
                **{k: v for k, v in parts.as_dict().items() if k != "total"},
                "per_forward": parts.total,
                "per_step": parts.total * forwards,
                "per_video": parts.total * forwards * steps,
                "runtime_per_forward": runtime,
                "runtime_vs_analytic": runtime / parts.total - 1,
            }
        )
    for row in rows:
        row["ratio_to_baseline"] = row["per_forward"] / rows[0]["per_forward"]
    tokens = math.prod(grid) // math.prod(config["patch_size"])
    return {
        "model": name,
        "video": {"frames": frames, "height": height, "width": width},
        "latent": grid,
        "tokens": tokens,
        "steps": steps,
        "forwards_per_step": forwards,
        "rows": rows,
    }


def print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    video = result["video"]
    title = (
        f"{result['model']} at {video['height']}x{video['width']}x{video['frames']} "
        f"({result['tokens']:,} tokens), {result['steps']} steps x {result['forwards_per_step']} forwards"
    )
    table = Table(title=title)
    columns = ("self_attention", "cross_attention", "ffn", "embedding", "output", "router", "per_forward")
    for column in ("variant", *columns, "per_step", "per_video", "ratio", "runtime vs analytic"):
        table.add_column(column, justify="right")
    for row in result["rows"]:
        cells = [f"{row[c] / 1e12:.3f}T" for c in (*columns, "per_step")] + [f"{row['per_video'] / 1e15:.1f}P"]
        table.add_row(row["variant"], *cells, f"{row['ratio_to_baseline']:.4f}", f"{row['runtime_vs_analytic']:+.2e}")
    Console(width=170).print(table)


def flops_cli(args) -> int:
    try:
        result = flops_table(args.model, args.height, args.width, args.frames, args.recipe, args.steps)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=__import__("sys").stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0
