"""Making the videos of a run and timing them: every missing (system, work item) generated once, the FLOP counter
around the items a metric asks it for, and whole-video latency in interleaved rounds.

The cost metrics say what they need from this phase through their registry entries (`counted`, `phase`), so the
runner calls them without knowing their names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from rich.console import Console

from pare_bench.backend import Backend
from pare_bench.distributed import Ranks
from pare_bench.metrics.vbench import LONG_SECONDS
from pare_bench.progress import progress
from pare_bench.store import RunStore, video_name
from pare_bench.suite import MetricSpec, Suite
from pare_bench.systems import System
from pare_bench.tiny.world.render import to_uint8
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
    counted: set[str],
    console: Console,
    dist: Ranks | None = None,
) -> None:
    """Generate every missing video; the items named in `counted` run under the FLOP counter in every system
    (its per-op dispatch makes a tiny model's sampling about 4x slower on CPU). In a split run each rank takes its
    share of the missing items (`dist.part`)."""
    done = {(r["system"], r["name"]) for r in store.records() if r["kind"] == "video"}
    todo = [(s, i) for s in systems for i in items if (s.name, i.name) not in done]
    todo = todo if dist is None else dist.part(todo)
    with progress(console) as bar:
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
    with progress(console) as bar:
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


@dataclass
class RunParts:
    """What a cost metric's phase works on: the run's backend, store, built systems and work items."""

    backend: Backend
    store: RunStore
    systems: list[System]
    items: list[WorkItem]
    console: Console


def flops_counted(spec: MetricSpec, items: list[WorkItem]) -> set[str]:
    """The `flops` metric's items: the first `videos` (all by default) run under the FLOP counter."""
    return {item.name for item in items[: spec.options.get("videos", len(items))]}


def flops_phase(run: RunParts, spec: MetricSpec) -> None:
    """The `flops` metric after generation: each dense or routed system's count cross-checked by the backend."""
    for system in (s for s in run.systems if s.dense or s.routed):
        run.backend.flops_cross_check(run.store, system)


def latency_phase(run: RunParts, spec: MetricSpec) -> None:
    """The `latency` metric after generation: interleaved timing rounds (`measure_latency`)."""
    options = spec.options
    measure_latency(
        run.backend, run.store, run.systems, run.items, options.get("warmup", 1), options.get("repeats", 3), run.console
    )
