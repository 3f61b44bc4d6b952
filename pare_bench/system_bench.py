"""`python -m pare_bench bench-systems SUITE --systems A B ...`: one forward at batch 1, each system against the
suite's baseline, timed alternately in one process so drift in machine load hits all of them alike.

The input is a calibration batch of one world video at one noise level; FLOPs come from the run-time counter
(a routed system's count includes its router and only the blocks it ran), so `latency ratio / FLOPs ratio`
says how close a system's speedup comes to its FLOPs-ideal one. Whole-video latency is `run`'s job; this
isolates the transformer forward, where PARE saves.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from pare_bench.runner import load_model
from pare_bench.suite import load_suite
from pare_bench.systems import build_system
from pare_bench.tiny.backend import TinyBackend
from pare_bench.tiny.width import calibration_inputs
from pare_bench.tiny.width_bench import _latency
from pare_core.flops import RuntimeFlopCounter


def bench_systems(suite_path: Path, names: list[str], repeats: int = 40, warmup: int = 3, level: int = 2) -> dict:
    suite = load_suite(suite_path)
    backend = load_model(suite, suite_path)
    if not isinstance(backend, TinyBackend):
        raise ValueError(f"bench-systems runs tiny-world suites; {suite.model} is a real model (use bench-gpu)")
    specs = [suite.system("baseline")] + [suite.system(name) for name in names]
    models = {spec.name: build_system(spec, suite, backend).model.transformer for spec in specs}
    inputs = {k: v[:1] for k, v in calibration_inputs(backend.teacher)[level].items()}
    result = {"suite": suite.suite, "threads": torch.get_num_threads(), "repeats": repeats, "systems": {}}
    for name, model in models.items():
        with RuntimeFlopCounter() as counter, torch.no_grad():
            model(**inputs, return_dict=False)
        result["systems"][name] = {"flops": counter.total, "seconds": []}
    for round_ in range(repeats):  # alternate: one timing of every system per round
        for name, model in models.items():
            result["systems"][name]["seconds"] += _latency(model, inputs, warmup if round_ == 0 else 0, 1)
    base = result["systems"]["baseline"]
    base_p50 = statistics.median(base["seconds"])
    for entry in result["systems"].values():
        entry["latency_p50"] = statistics.median(entry["seconds"])
        entry["flops_ratio"] = entry["flops"] / base["flops"]
        entry["latency_ratio"] = entry["latency_p50"] / base_p50
        entry["of_ideal"] = (1 / entry["latency_ratio"]) / (1 / entry["flops_ratio"])
    return result


def print_systems(result: dict) -> None:
    table = Table(title=f"{result['suite']}: one forward, batch 1, {result['repeats']} alternating rounds")
    for column in ("system", "FLOPs", "FLOPs ratio", "latency p50 (ms)", "latency ratio", "speedup / ideal"):
        table.add_column(column, justify="right")
    for name, entry in result["systems"].items():
        table.add_row(
            name,
            f"{entry['flops']:.4e}",
            f"{entry['flops_ratio']:.4f}",
            f"{entry['latency_p50'] * 1000:.2f}",
            f"{entry['latency_ratio']:.4f}",
            f"{entry['of_ideal']:.3f}",
        )
    Console(width=140).print(table)
