"""`list suites|systems|metrics|models`: what the harness knows, as lm-eval's `--tasks list` does."""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table

from pare_bench.metrics import METRICS
from pare_bench.suite import SuiteError, known_suites, load_suite
from pare_bench.tiny.zoo import TINY_MODELS
from pare_bench.wan.zoo import WAN_MODELS


def _suites() -> Table:
    table = Table("suite file", "suite", "model", "prompts", "systems", title="suites")
    for path in known_suites():
        try:
            suite = load_suite(path)
        except SuiteError as error:
            table.add_row(os.path.relpath(path), "(invalid)", str(error).splitlines()[1].strip(), "", "")
            continue
        table.add_row(os.path.relpath(path), suite.suite, suite.model, suite.prompts, str(len(suite.systems)))
    return table


def _kind(spec) -> str:
    if spec.cache:
        return f"cache: {next(iter(spec.cache))}"
    if spec.recipe is None:
        return "model as loaded"
    parts = [name for name in ("width", "depth", "step_distill") if getattr(spec.recipe, name) is not None]
    return "recipe: " + " + ".join(parts) if parts else "recipe"


def _systems() -> Table:
    table = Table("suite", "system", "what it is", title="systems, by suite")
    for path in known_suites():
        try:
            suite = load_suite(path)
        except SuiteError:
            continue
        for spec in suite.systems:
            table.add_row(suite.suite, spec.name, _kind(spec))
    return table


def _metrics() -> Table:
    table = Table("metric", "kind", "better", "columns", "options", title="metrics")
    for info in sorted(METRICS.values(), key=lambda m: (m.kind, m.name)):
        better = "higher" if info.higher_is_better else "lower"
        table.add_row(info.name, info.kind, better, ", ".join(info.columns), ", ".join(info.options) or "-")
    return table


def _models() -> Table:
    table = Table("model", "task", "blocks", "heads", "weights", title="models")
    for name, spec in TINY_MODELS.items():
        config = spec.transformer
        table.add_row(name, spec.task, str(config["num_layers"]), str(config["num_attention_heads"]), "shipped")
    for name, spec in WAN_MODELS.items():
        config = spec.transformer
        blocks, heads = str(config["num_layers"]), str(config["num_attention_heads"])
        table.add_row(name, spec.task, blocks, heads, f"local copy of {spec.repo}")
    return table


LISTINGS = {"suites": _suites, "systems": _systems, "metrics": _metrics, "models": _models}


def print_listing(what: str, console: Console | None = None) -> None:
    (console or Console()).print(LISTINGS[what]())
