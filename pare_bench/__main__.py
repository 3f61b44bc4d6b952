"""Thin CLI: each subcommand maps to one importable function in pare_bench."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from pare_bench.suite import WIDTH_SCORES
from pare_bench.tiny.train_teacher import TeacherRecipe
from pare_bench.tiny.zoo import TINY_MODELS
from pare_bench.wan.cli import add_wan_commands


def _train_teacher(args) -> int:
    from pare_bench.tiny.train_teacher import train_teacher

    recipe = TeacherRecipe(
        **{k: v for k, v in vars(args).items() if k in TeacherRecipe.__dataclass_fields__ and v is not None}
    )
    out = args.out or Path("runs") / "teachers" / args.model
    ema = train_teacher(args.model, out, recipe, device=args.device, minutes=args.minutes)
    print(f"EMA weights in {ema}; copy them to pare_bench/weights/{args.model} to ship them")
    return 0


def _eval_teacher(args) -> int:
    from pare_bench.tiny.evaluate import evaluate_teacher

    evaluate_teacher(args.model, args.weights, seeds_per_prompt=args.seeds, steps=args.steps)
    return 0


def _probe_content(args) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from pare_bench.tiny.content_probe import probe_content
    from pare_bench.tiny.zoo import load_tiny

    rows = probe_content(load_tiny(args.model, args.weights), scenes=args.scenes)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    table = Table(title=f"router content features of {args.model}: held-out probe accuracy ({args.scenes} scenes)")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    Console().print(table)
    return 0


def _run(args) -> int:
    from pare_bench.runner import run_suite_cli
    from pare_bench.tiny.recipes import ARTIFACTS_ENV

    if args.artifacts is not None:  # every rank of a launch parses its own argv, so all see the same folder
        os.environ[ARTIFACTS_ENV] = str(args.artifacts)
    return run_suite_cli(
        args.suite,
        out=args.out,
        limit=args.limit,
        fresh=args.fresh,
        retrain=args.retrain,
        threads=args.threads,
        train_only=args.train_only,
    )


def _report(args) -> int:
    from pare_bench.report import write_outputs
    from pare_bench.store import RunStore

    if not (args.run_dir / "manifest.json").is_file():
        print(f"error: {args.run_dir} is not a run directory (no manifest.json)", file=sys.stderr)
        return 2
    write_outputs(RunStore(args.run_dir))
    print(f"leaderboard.csv, report.md and plots/ rebuilt in {args.run_dir}")
    return 0


def _bench_width(args) -> int:
    from pare_bench.suite import WidthRecipe
    from pare_bench.tiny.width_bench import bench_width, print_bench

    recipe = WidthRecipe(
        ratio=args.ratio,
        cross_ratio=args.cross_ratio,
        score=args.score,
        norm_correction=not args.no_norm_correction,
        recovery_steps=0,
    )
    print_bench(bench_width(args.model, recipe, repeats=args.repeats, fused=args.fuse_qkv), args.json)
    return 0


def _export(args) -> int:
    import json

    from pare_bench.report import summarize, vbench_style
    from pare_bench.store import RunStore

    if not (args.run_dir / "manifest.json").is_file():
        print(f"error: {args.run_dir} is not a run directory (no manifest.json)", file=sys.stderr)
        return 2
    store = RunStore(args.run_dir)
    table = summarize(store.records(), json.loads((args.run_dir / "manifest.json").read_text()))
    out = args.out or args.run_dir / "leaderboard_vbench.csv"
    board = vbench_style(table)
    board.to_csv(out, index=False)
    print(f"{args.format} leaderboard written to {out} ({board['Scores note'].iloc[0]})")
    return 0


def _train_world_features(args) -> int:
    import torch

    from pare_bench.metrics.fid import WEIGHTS, attribute_accuracy, train_world_features

    model = train_world_features(steps=args.steps)
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), WEIGHTS)
    print(f"world feature network written to {WEIGHTS}; held-out attribute accuracy {attribute_accuracy(model):.4f}")
    return 0


def _setup_vbench(args) -> int:
    from pare_bench.metrics.vbench import default_env, setup_env

    env = args.env or default_env()
    setup_env(env)
    print(f"VBench environment ready at {env}" + ("" if args.env is None else f"; export PARE_VBENCH_ENV={env}"))
    return 0


def _compare(args) -> int:
    from pare_bench.compare import compare_cli

    return compare_cli(args.base_dir, args.new_dir, args.tolerance)


def _profile_heads(args) -> int:
    from pare_bench.tiny.width import profile_model
    from pare_bench.tiny.zoo import load_tiny

    profile = profile_model(load_tiny(args.model, args.weights), videos=args.videos)
    profile.save(args.out)
    print(f"head profile written to {args.out}")
    return 0


def _bench_systems(args) -> int:
    import json

    from pare_bench.system_bench import bench_systems, print_systems

    result = bench_systems(args.suite, args.systems, repeats=args.repeats)
    print_systems(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _score(args) -> int:
    from pare_bench.metrics.vbench import vbench_problems
    from pare_bench.score import ScoreError, score_folder

    out = args.out or Path("runs") / f"score-{args.videos.resolve().name}"
    problems = vbench_problems(args.dimensions or ["temporal_flickering"]) if "vbench" in args.metrics else []
    if problems:
        print("error: cannot score:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return 2
    try:
        score_folder(args.videos, args.reference, args.metrics, args.dimensions, args.world, out)
    except (ScoreError, KeyError) as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    return 0


def _list(args) -> int:
    from pare_bench.listing import print_listing

    print_listing(args.what)
    return 0


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse exits 2 with the message otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pare_bench", description="PARE benchmark harness")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a benchmark suite")
    run.add_argument("suite", type=Path)
    run.add_argument("--out", type=Path, default=None, help="run directory (default runs/<suite name>)")
    run.add_argument("--limit", type=positive_int, default=None, help="use only the first N prompts (N >= 1)")
    run.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch intra-op threads (default: 1 for the tiny models, which stay fast beside other work; "
        "torch's own default for Wan models)",
    )
    run.add_argument("--fresh", action="store_true", help="delete an earlier run in --out and start over")
    run.add_argument("--retrain", action="store_true", help="rebuild recipe artifacts instead of loading them")
    run.add_argument(
        "--train-only",
        action="store_true",
        help="train (or load) the suite's students and stop: no run directory, nothing generated",
    )
    run.add_argument(
        "--artifacts",
        type=Path,
        default=None,
        help="folder of trained students (default $PARE_BENCH_ARTIFACTS, else ./artifacts)",
    )
    run.set_defaults(func=_run)

    score = sub.add_parser("score", help="score a folder of mp4 files named {prompt}-{index}.mp4 (VBench's naming)")
    score.add_argument("videos", type=Path)
    score.add_argument("--reference", type=Path, default=None, help="folder of the same names: paired metrics and FID")
    score.add_argument(
        "--metrics", nargs="+", default=["world"], help="any of: world, psnr, ssim, lpips, fid, vbench (default world)"
    )
    score.add_argument("--dimensions", nargs="+", default=[], help="VBench dimensions (default temporal_flickering)")
    score.add_argument("--world", action="store_true", help="the videos are of the tiny world: world metrics apply")
    score.add_argument("--out", type=Path, default=None, help="output run directory (default runs/score-<folder>)")
    score.set_defaults(func=_score)

    listing = sub.add_parser("list", help="the suites, systems, metrics or models the harness knows")
    listing.add_argument("what", choices=["suites", "systems", "metrics", "models"])
    listing.set_defaults(func=_list)

    report = sub.add_parser("report", help="rebuild leaderboard.csv, report.md and plots from a run's records")
    report.add_argument("run_dir", type=Path)
    report.set_defaults(func=_report)

    export = sub.add_parser("export", help="rebuild a leaderboard in another layout from a run's records alone")
    export.add_argument("run_dir", type=Path)
    export.add_argument("--format", choices=["vbench-csv"], default="vbench-csv")
    export.add_argument("--out", type=Path, default=None, help="default RUN_DIR/leaderboard_vbench.csv")
    export.set_defaults(func=_export)

    features = sub.add_parser("train-world-features", help="train the tiny world's FID feature network")
    features.add_argument("--steps", type=int, default=600)
    features.set_defaults(func=_train_world_features)

    setup = sub.add_parser("setup-vbench", help="create the separate environment the real vbench package runs in")
    setup.add_argument("--env", type=Path, default=None, help="where (default $PARE_VBENCH_ENV or ~/.cache/pare-bench)")
    setup.set_defaults(func=_setup_vbench)

    compare = sub.add_parser(
        "compare", help="regression gate: exit 1 when NEW is worse than BASE beyond tolerance (pare_bench/compare.py)"
    )
    compare.add_argument("base_dir", type=Path)
    compare.add_argument("new_dir", type=Path)
    compare.add_argument("--tolerance", type=Path, default=None, help="YAML overriding the default tolerances")
    compare.set_defaults(func=_compare)

    train = sub.add_parser("train-teacher", help="train a tiny Wan teacher on the tiny world")
    train.add_argument("model", choices=sorted(TINY_MODELS))
    train.add_argument("--out", type=Path, default=None)
    train.add_argument("--device", default="cpu")
    train.add_argument("--minutes", type=float, default=None, help="wall-clock budget; the LR schedule follows it")
    for field in dataclasses.fields(TeacherRecipe):  # one option per numeric or switch field: the recipe owns them
        flag = f"--{field.name.replace('_', '-')}"
        kind = {"int": int, "float": float}.get(field.type)
        if kind is not None:
            train.add_argument(flag, dest=field.name, type=kind, default=None, help=f"default {field.default}")
        elif field.type == "bool":
            train.add_argument(flag, dest=field.name, action="store_true", default=None, help="off by default")
    train.add_argument("--init", default=None, help="start from these weights: 'shipped' or a directory")
    train.set_defaults(func=_train_teacher)

    bench = sub.add_parser(
        "bench-width", help="FLOPs, latency and output error of a head-pruned teacher (before recovery) vs the teacher"
    )
    bench.add_argument("model", choices=sorted(TINY_MODELS))
    bench.add_argument("--ratio", type=float, default=0.5, help="share of self-attention heads removed")
    bench.add_argument("--cross-ratio", type=float, default=0.0, help="share of cross-attention heads removed")
    bench.add_argument("--score", default="temporal_aware", choices=WIDTH_SCORES, help="self-attention head score")
    bench.add_argument("--no-norm-correction", action="store_true", help="skip the q/k norm shift correction")
    bench.add_argument("--fuse-qkv", action="store_true", help="time both models with fused q/k/v projections")
    bench.add_argument("--repeats", type=int, default=20)
    bench.add_argument("--json", type=Path, default=None, help="also write the raw result here")
    bench.set_defaults(func=_bench_width)

    add_wan_commands(sub)

    systems = sub.add_parser("bench-systems", help="one forward at batch 1 of suite systems against its baseline")
    systems.add_argument("suite", type=Path)
    systems.add_argument("--systems", nargs="+", required=True)
    systems.add_argument("--repeats", type=int, default=40)
    systems.add_argument("--json", type=Path, default=None)
    systems.set_defaults(func=_bench_systems)

    profile = sub.add_parser("profile-heads", help="temporal role, importance and magnitude of every head")
    profile.add_argument("model", choices=sorted(TINY_MODELS))
    profile.add_argument("--weights", type=Path, default=None)
    profile.add_argument("--videos", type=int, default=8, help="calibration videos (each at 5 noise levels)")
    profile.add_argument("--out", type=Path, required=True)
    profile.set_defaults(func=_profile_heads)

    evaluate = sub.add_parser("eval-teacher", help="world scores of a teacher on held-out seeds and compositions")
    evaluate.add_argument("model", choices=sorted(TINY_MODELS))
    evaluate.add_argument("--weights", type=Path, default=None, help="weights directory (default: shipped)")
    evaluate.add_argument("--seeds", type=int, default=2, help="videos per prompt")
    evaluate.add_argument("--steps", type=int, default=20)
    evaluate.set_defaults(func=_eval_teacher)

    probe = sub.add_parser("probe-content", help="what the depth router's content features carry (linear probes)")
    probe.add_argument("model", choices=sorted(TINY_MODELS))
    probe.add_argument("--weights", type=Path, default=None, help="weights directory (default: shipped)")
    probe.add_argument("--scenes", type=positive_int, default=400, help="training scenes per probe (as many held out)")
    probe.add_argument("--json", type=Path, default=None, help="also write the rows here")
    probe.set_defaults(func=_probe_content)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
