"""`run`: suite -> systems -> work items -> videos + costs -> metrics -> leaderboard and report.

Every work item is keyed by (system, prompt, sample index). Each phase skips what records.jsonl
already holds, so rerunning the same command after a crash finishes the run without redoing work.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from pare_bench import vbench_i2v
from pare_bench.backend import Backend
from pare_bench.checkpoint import CorruptCheckpointError
from pare_bench.distributed import Ranks, ranks
from pare_bench.intervals import print_end_of_run
from pare_bench.manifest import build_manifest, load_average
from pare_bench.metrics import get_metric
from pare_bench.metrics.vbench import LONG_SECONDS, vbench_dimensions
from pare_bench.progress import progress
from pare_bench.report import write_outputs
from pare_bench.store import RunDirError, RunStore, video_name
from pare_bench.suite import Suite, SuiteError, load_suite, model_directory, resolve_prompts, suite_hash
from pare_bench.systems import System, artifact_problems, build_system
from pare_bench.tiny.backend import TinyBackend
from pare_bench.tiny.world.prompts import parse_prompt
from pare_bench.tiny.world.render import to_uint8
from pare_bench.tiny.zoo import TINY_MODELS, load_tiny
from pare_bench.vbench_phase import compute_vbench
from pare_bench.wan.zoo import WAN_MODELS
from pare_core.flops import RuntimeFlopCounter


@dataclass(frozen=True)
class WorkItem:
    prompt: str
    index: int  # sample index per prompt
    seed: int  # suite seed base + index, as VBench and the MLPerf Wan benchmark

    @property
    def name(self) -> str:
        return video_name(self.prompt, self.index)


def work_items(suite: Suite, prompts: list[str]) -> list[WorkItem]:
    return [WorkItem(p, i, suite.seed.base + i) for p in prompts for i in range(suite.samples_per_prompt)]


def _progress(console: Console):
    return progress(console)


def load_model(suite: Suite, suite_path: Path) -> Backend:
    """The suite's backend: a tiny teacher, or a Wan pipeline from local files (missing weights fail here,
    before any write)."""
    if suite.model in WAN_MODELS:
        from pare_bench.wan.run import load_wan_run

        return load_wan_run(suite, suite_path)
    directory = model_directory(suite, suite_path)
    teacher = load_tiny(suite.model if directory is None else f"tiny-wan-{suite.task}", directory)
    return TinyBackend(teacher, Path(suite_path).parent)


def _one_video(backend: Backend, system: System, item: WorkItem) -> torch.Tensor:
    """One video at batch 1 (I2V systems get the item's first frame: rendered by the tiny world, or the prompt's
    image from VBench's I2V image suite for Wan)."""
    return system.generate([item.prompt], [item.seed], backend.first_frames([item.prompt], [item.seed]))


def _generate(backend: Backend, system: System, item: WorkItem, count_flops: bool) -> tuple[torch.Tensor, int | None]:
    """One video, with the FLOPs that actually executed (cache hooks skip work) if asked."""
    if not count_flops:
        return _one_video(backend, system, item), None
    with RuntimeFlopCounter() as counter:
        video = _one_video(backend, system, item)
    return video, counter.total


def generate_all(
    backend: Backend,
    store: RunStore,
    systems: list[System],
    items: list[WorkItem],
    flops_videos: int,
    console: Console,
    dist: Ranks | None = None,
) -> None:
    """Generate every missing video; the first `flops_videos` items of each system run under the FLOP
    counter (its per-op dispatch makes a tiny model's sampling about 4x slower on CPU). In a split run each
    rank takes its share of the missing items (`dist.part`)."""
    done = {(r["system"], r["name"]) for r in store.records() if r["kind"] == "video"}
    counted = {item.name for item in items[:flops_videos]}
    todo = [(s, i) for s in systems for i in items if (s.name, i.name) not in done]
    todo = todo if dist is None else dist.part(todo)
    with _progress(console) as bar:
        task = bar.add_task("generate", total=len(todo))
        for system, item in todo:
            bar.update(task, description=f"generate {system.name}")
            video, flops = _generate(backend, system, item, item.name in counted)
            record = {
                "kind": "video",
                "system": system.name,
                "name": item.name,
                "prompt": item.prompt,
                "index": item.index,
                "seed": item.seed,
                "steps": system.sampling.steps,
                "seconds": video.shape[2] / system.fps,
                "vbench_long": video.shape[2] / system.fps >= LONG_SECONDS,
            }
            if flops is not None:
                record["flops"] = flops
            if system.routed:
                record["routing"] = system.step_routing()
            if not torch.isfinite(video).all():
                store.append({**record, "failed": "non-finite values in the sample"})
            else:
                frames = to_uint8(video)[0].numpy()
                store.save_frames(system.name, item.name, frames)
                store.save_video(system.name, item.name, frames, system.fps, system.lossless_video)
                store.append(record)
            bar.advance(task)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed_generation(backend: Backend, system: System, item: WorkItem) -> float:
    _sync()
    start = time.perf_counter()
    _one_video(backend, system, item)
    _sync()
    return time.perf_counter() - start


def measure_latency(
    backend: Backend,
    store: RunStore,
    systems: list[System],
    items: list[WorkItem],
    warmup: int,
    repeats: int,
    console: Console,
) -> None:
    """Whole-video latency at batch 1: `warmup` untimed runs per system, then `repeats` rounds in which every
    system generates the same work item once (cycling over the first items, the ones the FLOP counter also
    sees, so a cache whose savings depend on the content is timed on the same videos as every other system)."""
    done = {r["system"] for r in store.records() if r["kind"] == "latency"}
    todo = [s for s in systems if s.name not in done]
    timed = [items[run % len(items)] for run in range(repeats)]
    seconds: dict[str, list[float]] = {system.name: [] for system in todo}
    with _progress(console) as bar:
        task = bar.add_task("latency", total=len(todo) * (warmup + repeats))
        for system in todo:
            for _ in range(warmup):
                _timed_generation(backend, system, items[0])
                bar.advance(task)
        # Round-robin: each round times every system once, so drift in machine load hits them all alike
        # (timing one system's repeats after another's put a slow minute on whichever ran then).
        for item in timed:
            for system in todo:
                seconds[system.name].append(_timed_generation(backend, system, item))
                bar.advance(task)
    for system in todo:  # written together: an interrupted latency phase is timed again in full
        store.append(
            {
                "kind": "latency",
                "system": system.name,
                "names": [item.name for item in timed],
                "seconds": seconds[system.name],
                "warmup": warmup,
                "threads": torch.get_num_threads(),
                "rounds": "interleaved",
            }
        )


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
    with _progress(console) as bar:
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
    flops_spec = next((spec for spec in suite.metrics if spec.metric == "flops"), None)
    flops_videos = 0 if flops_spec is None else flops_spec.options.get("videos", len(items))
    if dist.world > 1:
        generate_all(backend, RunStore(store.root, shard=dist.rank), systems, items, flops_videos, console, dist)
        dist.barrier()
        if not dist.main:
            return store.root
        store.merge_shards()
    else:
        generate_all(backend, store, systems, items, flops_videos, console)
    backend.record_recipes(store, suite)
    for spec in suite.metrics:
        if spec.metric == "latency":
            options = spec.options
            measure_latency(
                backend, store, systems, items, options.get("warmup", 1), options.get("repeats", 3), console
            )
    compute_metrics(store, suite, console)
    compute_distributions(backend, store, suite, console)
    dimensions = vbench_dimensions(suite)
    if dimensions:  # VBench runs once per system in its own environment, not per video like the others
        compute_vbench(store, suite, dimensions, console, vbench_i2v.locate(suite, suite_path))
    if flops_spec is not None:
        for system in (s for s in systems if s.dense or s.routed):
            backend.flops_cross_check(store, system)
    store.note_in_manifest("hardware", {"load_average_end": load_average()})
    leaderboard = write_outputs(store)
    print_end_of_run(store.records(), leaderboard, reference_system(suite), console)
    console.print(f"run written to {store.root} (leaderboard.csv, report.md, plots/)")
    return store.root


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
