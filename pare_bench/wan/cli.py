"""The real-model commands: FLOPs, GPU latency, training cost, and the build path from a Wan2.1 folder and
captioned videos to PARE artifacts (encode-latents, build; tiny-wan makes stand-in inputs for trying it,
encode-world makes the tiny world a data source so a tiny teacher builds the same way)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pare_bench.tiny.zoo import TINY_MODELS
from pare_bench.wan.zoo import WAN_MODELS


def _flops(args) -> int:
    from pare_bench.wan.flops_cli import flops_cli

    return flops_cli(args)


def _bench_gpu(args) -> int:
    from pare_bench.wan.bench_gpu import bench_gpu, print_bench

    print_bench(bench_gpu(args.models, args.toy, args.warmup, args.repeats, args.out, args.train_steps))
    print(f"written to {args.out}")
    return 0


def _training_cost(args) -> int:
    import json

    from pare_bench.wan.training_cost import RESOLUTIONS, cost_markdown, stage_costs

    rows = [stage_costs(name, resolution) for name in args.models for resolution in args.resolutions or RESOLUTIONS]
    print(cost_markdown(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))
        print(f"written to {args.out}")
    return 0


def _encode_latents(args) -> int:
    from pare_bench.wan.latent_cache import encode_dataset
    from pare_bench.wan.zoo import load_wan, wan_model

    model = wan_model(args.model)
    try:
        pipe = load_wan(args.model, args.weights)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    height, width = args.height or model.height, args.width or model.width
    count = encode_dataset(pipe, args.videos, args.captions, args.out, args.frames, height, width)
    _report_encoded(count, args.out)
    return 0


def _build(args) -> int:
    from pare_bench.distributed import ranks
    from pare_bench.wan.build import BuildError, build
    from pare_bench.wan.build_recipe import BuildRecipeError, load_build_recipe

    try:
        seconds = build(load_build_recipe(args.recipe), args.model, args.cache, args.out)
    except (BuildRecipeError, BuildError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if ranks().main:
        print("stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()) + f"; built in {args.out}")
    return 0


def _tiny_wan(args) -> int:
    from pare_bench.wan.pipeline import write_tiny_wan

    write_tiny_wan(args.out, task=args.task)
    print(f"random tiny Wan2.1 weights in {args.out / 'weights'}; videos and captions.jsonl beside them")
    return 0


def _report_encoded(count: int, out: Path) -> None:
    from pare_bench.distributed import ranks

    split = ranks()
    who = f"rank {split.rank} of {split.world}: " if split.world > 1 else ""
    print(f"{who}{count} video(s) newly encoded into {out}")


def _encode_world(args) -> int:
    from pare_bench.tiny.zoo import load_tiny
    from pare_bench.wan.latent_cache import encode_world

    count = encode_world(load_tiny(args.model, args.weights), args.out, args.videos, args.seed)
    _report_encoded(count, args.out)
    return 0


def add_wan_commands(sub: argparse._SubParsersAction) -> None:
    flops = sub.add_parser("flops", help="FLOPs of a real Wan2.1 model and a PARE recipe, on the meta device")
    flops.add_argument("--model", required=True, choices=sorted(WAN_MODELS))
    flops.add_argument("--height", type=int, default=480)
    flops.add_argument("--width", type=int, default=832)
    flops.add_argument("--frames", type=int, default=81)
    flops.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's, 50)")
    flops.add_argument("--recipe", type=Path, default=None, help="YAML/JSON recipe (width/depth) or a recipe.json")
    flops.add_argument("--json", action="store_true", help="print JSON instead of the table")
    flops.set_defaults(func=_flops)

    gpu = sub.add_parser("bench-gpu", help="per-step latency of Wan2.1 1.3B/14B (random bf16) and PARE variants")
    gpu.add_argument("--models", nargs="+", default=["wan2.1-t2v-1.3b", "wan2.1-t2v-14b"], choices=sorted(WAN_MODELS))
    gpu.add_argument("--toy", action="store_true", help="a small config on the CPU (tests the command)")
    gpu.add_argument("--warmup", type=int, default=2)
    gpu.add_argument("--repeats", type=int, default=5)
    gpu.add_argument("--train-steps", type=int, default=0, help="also time N steps of training stages 1 and 2")
    gpu.add_argument("--out", type=Path, default=Path("results/bench_gpu.json"))
    gpu.set_defaults(func=_bench_gpu)

    cost = sub.add_parser("training-cost", help="FLOPs, GPU-hours and memory of PARE's training stages on Wan2.1")
    cost.add_argument(
        "--models",
        nargs="+",
        default=["wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "wan2.1-i2v-14b-720p"],
        choices=sorted(WAN_MODELS),
    )
    cost.add_argument("--resolutions", nargs="+", default=None, choices=["480p", "720p"])
    cost.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    cost.set_defaults(func=_training_cost)

    encode = sub.add_parser("encode-latents", help="encode mp4 files + captions (JSONL) to a latent cache for training")
    encode.add_argument("--model", required=True, choices=sorted(WAN_MODELS))
    encode.add_argument("--weights", type=Path, default=None, help="local diffusers directory (default: HF cache)")
    encode.add_argument("--videos", type=Path, required=True)
    encode.add_argument("--captions", type=Path, required=True, help='JSONL: {"file": "clip.mp4", "caption": "..."}')
    encode.add_argument("--out", type=Path, required=True)
    encode.add_argument("--frames", type=int, default=81)
    encode.add_argument("--height", type=int, default=None)
    encode.add_argument("--width", type=int, default=None)
    encode.set_defaults(func=_encode_latents)

    build = sub.add_parser("build", help="a Wan2.1 model or tiny teacher to PARE artifacts (a build recipe)")
    build.add_argument("recipe", type=Path, help="build recipe YAML (recipes/)")
    build.add_argument("--model", type=Path, required=True, help="local diffusers Wan2.1 folder (the teacher)")
    build.add_argument("--cache", type=Path, required=True, help="latent cache from encode-latents")
    build.add_argument("--out", type=Path, required=True, help="build folder: one subfolder per stage")
    build.set_defaults(func=_build)

    world = sub.add_parser("encode-world", help="tiny-world videos as a latent cache: a tiny teacher's build data")
    world.add_argument("model", choices=sorted(TINY_MODELS))
    world.add_argument("--weights", type=Path, default=None, help="teacher weights directory (default: shipped)")
    world.add_argument("--videos", type=int, default=512, help="train-split scenes to render")
    world.add_argument("--seed", type=int, default=0)
    world.add_argument("--out", type=Path, required=True)
    world.set_defaults(func=_encode_world)

    tiny = sub.add_parser("tiny-wan", help="random tiny Wan2.1 weights, mp4 files and captions: build-path inputs")
    tiny.add_argument("out", type=Path)
    tiny.add_argument("--task", choices=["t2v", "i2v"], default="t2v")
    tiny.set_defaults(func=_tiny_wan)
