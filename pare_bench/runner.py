"""`run`: suite -> systems -> work items -> videos + costs -> metrics -> leaderboard and report.

Every work item is keyed by (system, prompt, sample index). Each phase skips what records.jsonl
already holds, so rerunning the same command after a crash finishes the run without redoing work.
"""

from __future__ import annotations

import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from rich.console import Console

from pare_bench import vbench_i2v
from pare_bench.backend import Backend
from pare_bench.checkpoint import CorruptCheckpointError
from pare_bench.distributed import ranks
from pare_bench.generation import RunParts, generate_all, work_items
from pare_bench.intervals import print_end_of_run
from pare_bench.manifest import build_manifest, load_average
from pare_bench.metrics import get_metric
from pare_bench.metrics.vbench import vbench_dimensions
from pare_bench.progress import progress
from pare_bench.report import write_outputs
from pare_bench.store import RunDirError, RunStore
from pare_bench.suite import Suite, SuiteError, load_suite, model_directory, resolve_prompts, suite_hash
from pare_bench.systems import artifact_problems, build_system
from pare_bench.tiny.backend import TinyBackend
from pare_bench.tiny.world.prompts import parse_prompt
from pare_bench.tiny.zoo import TINY_MODELS, load_tiny
from pare_bench.vbench_phase import compute_vbench
from pare_bench.wan.zoo import WAN_MODELS


def load_model(suite: Suite, suite_path: Path) -> Backend:
    """The suite's backend: a tiny teacher, or a Wan pipeline from local files (missing weights fail here,
    before any write)."""
    if suite.model in WAN_MODELS:
        from pare_bench.wan.run import load_wan_run

        return load_wan_run(suite, suite_path)
    directory = model_directory(suite, suite_path)
    teacher = load_tiny(suite.model if directory is None else f"tiny-wan-{suite.task}", directory)
    return TinyBackend(teacher, Path(suite_path).parent)


def compute_metrics(store: RunStore, suite: Suite, console: Console) -> None:
    """Quality metrics of every generated video; each (system, video, metric) is computed once."""
    records = store.records()
    done = {(r["system"], r["name"], r["metric"]) for r in records if r["kind"] == "metric"}
    videos = [r for r in records if r["kind"] == "video" and "failed" not in r]
    quality = [spec for spec in suite.metrics if get_metric(spec.metric).kind in ("paired", "world")]
    generated = {(video["system"], video["name"]) for video in videos}
    # A paired metric needs its reference video; a failed reference leaves the pair unscored.
    jobs = [
        (spec, video)
        for spec in quality
        for video in videos
        if (video["system"], video["name"], spec.metric) not in done
        and video["system"] != spec.reference
        and (spec.reference is None or (spec.reference, video["name"]) in generated)
    ]
    with progress(console) as bar:
        task = bar.add_task("metrics", total=len(jobs))
        for spec, video in jobs:
            info = get_metric(spec.metric)
            frames = store.load_frames(video["system"], video["name"])
            if info.kind == "paired":
                value = info.compute(frames, store.load_frames(spec.reference, video["name"]))
            else:
                value = info.compute(frames, video["prompt"])
            values = value if isinstance(value, dict) else {spec.metric: value}
            store.append(
                {
                    "kind": "metric",
                    "system": video["system"],
                    "name": video["name"],
                    "metric": spec.metric,
                    "reference": spec.reference,
                    "values": values,
                    "held_out": parse_prompt(video["prompt"]).held_out if info.kind == "world" else None,
                }
            )
            bar.advance(task)


def compute_distributions(backend: Backend, store: RunStore, suite: Suite, console: Console) -> None:
    """FID of each system's videos against its backend's references (the world's renders of the same prompts and
    seeds, or the reference system's videos for a real model)."""
    records = store.records()
    done = {(r["system"], r["metric"]) for r in records if r["kind"] == "distribution"}
    specs = [spec for spec in suite.metrics if get_metric(spec.metric).kind == "distribution"]
    for spec in specs:
        for system in (s.name for s in suite.systems if (s.name, spec.metric) not in done):
            videos = [r for r in records if r["kind"] == "video" and r["system"] == system and "failed" not in r]
            if len(videos) < 2:
                continue
            value = backend.distribution(spec, system, videos, store)
            if value is None:
                continue
            console.print(f"{spec.metric} {system}: {value:.4g} ({len(videos)} videos)")
            store.append(
                {"kind": "distribution", "system": system, "metric": spec.metric, "value": value, "videos": len(videos)}
            )


class PreflightError(RuntimeError):
    """Something a suite needs is missing; found before any generation."""


def _clear_run_dir(root: Path) -> None:
    """--fresh: remove an earlier run, but only a directory that is one (it has a manifest)."""
    if not root.exists():
        return
    if not (root / "manifest.json").is_file():
        raise RunDirError(f"--fresh refuses to delete {root}: it is not a run directory (no manifest.json)")
    shutil.rmtree(root)


def run_suite(
    suite_path: Path,
    out: Path | None = None,
    limit: int | None = None,
    console: Console | None = None,
    fresh: bool = False,
    retrain: bool = False,
    threads: int | None = None,
    train_only: bool = False,
) -> Path | None:
    """Run `suite_path` into `out` (resuming what is there); `train_only` trains or loads the suite's students
    and returns None without touching a run directory (to train on one machine and evaluate later)."""
    console = console or Console(stderr=True)
    suite = load_suite(suite_path)
    set_threads(suite, threads)
    problems = []
    for name in dict.fromkeys(spec.metric for spec in suite.metrics):  # each metric's needs (its registry entry)
        check = get_metric(name).problems
        problems += check(suite) if check else []
    if suite.model in WAN_MODELS:
        from pare_bench.wan.run import wan_problems

        problems += wan_problems(suite, suite_path)
    problems += artifact_problems(suite, suite_path)
    if problems:
        raise PreflightError("cannot run this suite:\n" + "\n".join(f"  {p}" for p in problems))
    prompts = resolve_prompts(suite, suite_path)[:limit]  # after the checks: VBench's suites live in files
    backend = load_model(suite, suite_path)  # missing weights fail here, before anything is written
    if train_only:
        for spec in suite.systems:
            build_system(spec, suite, backend, retrain=retrain)
        console.print(f"the {len(suite.systems)} systems of {suite.suite} are trained")
        return None
    store = RunStore(out or Path("runs") / suite.suite)
    dist = ranks()
    if dist.main:
        if fresh:
            _clear_run_dir(store.root)
        store.prepare(build_manifest(suite, suite_path, suite_hash(suite), prompts))
        store.merge_shards()  # records a split run left behind when it was interrupted
    with dist.main_first():  # rank 0 trains missing recipe artifacts; the others load them
        systems = [build_system(spec, suite, backend, retrain=retrain and dist.main) for spec in suite.systems]
    items = work_items(suite, prompts)
    counted = set()
    for spec in suite.metrics:  # the items each metric wants generated under the FLOP counter
        hook = get_metric(spec.metric).hook("counted")
        counted |= hook(spec, items) if hook else set()
    start = time.perf_counter()
    if dist.world > 1:
        generate_all(backend, RunStore(store.root, shard=dist.rank), systems, items, counted, console, dist)
        dist.barrier()
        if not dist.main:
            return store.root
        store.merge_shards()
    else:
        generate_all(backend, store, systems, items, counted, console)
    _note_seconds(store, "generate", start)  # not `timed`: the other ranks return inside, and only rank 0 writes
    backend.record_recipes(store, suite)
    run = RunParts(backend, store, systems, items, console)
    for spec in suite.metrics:  # what each metric measures once every video exists (latency rounds, FLOPs check)
        phase = get_metric(spec.metric).hook("phase")
        if phase:
            with timed(store, spec.metric):
                phase(run, spec)
    with timed(store, "quality metrics"):
        compute_metrics(store, suite, console)
    with timed(store, "distributions"):
        compute_distributions(backend, store, suite, console)
    dimensions = vbench_dimensions(suite)
    if dimensions:  # VBench runs once per system in its own environment, not per video like the others
        with timed(store, "vbench"):
            compute_vbench(store, suite, dimensions, console, vbench_i2v.locate(suite, suite_path))
    store.note_in_manifest("hardware", {"load_average_end": load_average()})
    leaderboard = write_outputs(store)
    print_end_of_run(store.records(), leaderboard, reference_system(suite), console)
    console.print(f"run written to {store.root} (leaderboard.csv, report.md, plots/)")
    return store.root


@contextmanager
def timed(store: RunStore, phase: str):
    """Record the wall seconds of one phase of this invocation in manifest.json ("phase_seconds"), so a slow run
    says where its time went. A resumed run overwrites the phases it ran again."""
    start = time.perf_counter()
    yield
    _note_seconds(store, phase, start)


def _note_seconds(store: RunStore, phase: str, start: float) -> None:
    store.note_in_manifest("phase_seconds", {phase: round(time.perf_counter() - start, 1)})


def reference_system(suite: Suite) -> str | None:
    """The system paired metrics compare against, if any."""
    return next((spec.reference for spec in suite.metrics if spec.reference), None)


def set_threads(suite: Suite, threads: int | None) -> None:
    """Pin torch's intra-op threads: `threads`, else 1 for the tiny models.

    A tiny model's ops are too small to gain from a second thread, and on a shared 2-core machine two
    threads fought other work for the cores: single videos took 1.9 s to 90 s instead of a steady 1.0 s.
    """
    if threads is None and suite.model in TINY_MODELS:
        threads = 1
    if threads is not None:
        torch.set_num_threads(threads)


def run_suite_cli(
    suite_path: Path,
    out: Path | None,
    limit: int | None,
    fresh: bool = False,
    retrain: bool = False,
    threads: int | None = None,
    train_only: bool = False,
) -> int:
    """Exit codes: 0 done, 1 some work items failed or a write failed (rerun to resume), 2 bad input."""
    try:
        root = run_suite(suite_path, out, limit, fresh=fresh, retrain=retrain, threads=threads, train_only=train_only)
    except SuiteError as error:
        print(error, file=sys.stderr)
        return 2
    except (RunDirError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except PreflightError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except CorruptCheckpointError as error:
        print(f"error: {error} (or rerun with --retrain)", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk or a failing device mid-run: finished work items are kept
        where = f" ({error.filename})" if error.filename else ""
        print(
            f"error: a write failed{where}: {error.strerror or error}. Finished work items are kept; "
            "fix the cause (free disk space) and rerun the same command to resume.",
            file=sys.stderr,
        )
        return 1
    if root is None:
        return 0
    failures = sum(1 for r in RunStore(root).records() if r["kind"] == "video" and "failed" in r)
    return 1 if failures else 0
