"""The metric registry: each metric is registered once, with the metadata the report needs."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass

KINDS = ("paired", "world", "cost", "distribution", "vbench")


@dataclass(frozen=True)
class MetricInfo:
    name: str
    kind: str  # one of KINDS: what the metric needs and when it runs
    higher_is_better: bool
    columns: tuple[str, ...]  # leaderboard columns it produces
    compute: Callable | None = None  # the function computing it; its signature depends on `kind`
    options: tuple[str, ...] = ()  # keys a suite's metric entry may give besides `metric` and `reference`
    # The regression gate's default for each column: an absolute drop for higher-is-better quality, the
    # largest ratio new / base for lower-is-better quality and for cost. None: the gate does not check it.
    tolerance: float | None = None
    heldout: bool = False  # its columns also appear as `<column>_heldout` (world scores on held-out compositions)
    derived: tuple[str, ...] = ()  # columns the report derives from its values (speedup from latency), after `columns`
    per_seed: tuple[str, ...] = ()  # columns (and derived ones) the report summarises across training seeds
    # suite -> what it lacks before a run (weights, an environment), each named; checked before anything is written
    problems: Callable | None = None
    # Cost metrics measured around generation, as "module:function" paths the runner resolves when it runs them
    # (pare_bench.generation imports the metrics, so these cannot be imported here): `counted(spec, items)` names
    # the work items to generate under the FLOP counter, `phase(run, spec)` runs once all videos exist.
    counted: str | None = None
    phase: str | None = None

    def hook(self, name: str) -> Callable | None:
        """The `counted` or `phase` function of this metric, imported now; None when it has none."""
        path = getattr(self, name)
        if path is None:
            return None
        module, _, function = path.partition(":")
        return getattr(importlib.import_module(module), function)

    def gate_columns(self) -> tuple[str, ...]:
        return (*self.columns, *(f"{c}_heldout" for c in self.columns)) if self.heldout else self.columns


METRICS: dict[str, MetricInfo] = {}


def register_metric(
    name: str,
    *,
    kind: str,
    higher_is_better: bool,
    columns: tuple[str, ...] = (),
    options: tuple[str, ...] = (),
    tolerance: float | None = None,
    heldout: bool = False,
    derived: tuple[str, ...] = (),
    per_seed: tuple[str, ...] = (),
    problems: Callable | None = None,
    counted: str | None = None,
    phase: str | None = None,
):
    """Decorator: `@register_metric("psnr", kind="paired", higher_is_better=True)`; duplicates raise."""
    if kind not in KINDS:
        raise ValueError(f"metric kind {kind!r} is not one of {KINDS}")

    def decorate(function: Callable) -> Callable:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        METRICS[name] = MetricInfo(
            name,
            kind,
            higher_is_better,
            columns or (name,),
            function,
            options,
            tolerance,
            heldout,
            derived,
            per_seed,
            problems,
            counted,
            phase,
        )
        return function

    return decorate


def leaderboard_columns(kinds: tuple[str, ...]) -> list[str]:
    """The columns of the metrics of `kinds`, kind by kind in that order, each metric's in registration order:
    its columns, their held-out twins, then its derived columns."""
    return [
        c
        for kind in kinds
        for info in METRICS.values()
        if info.kind == kind
        for c in (*info.gate_columns(), *info.derived)
    ]


def seed_columns() -> list[str]:
    """The columns summarised across training seeds, with the held-out twins of held-out metrics (in KINDS order)."""
    columns = []
    for info in sorted(METRICS.values(), key=lambda info: KINDS.index(info.kind)):
        columns += info.per_seed
        if info.heldout:
            columns += [f"{c}_heldout" for c in info.per_seed if c in info.columns]
    return columns


def default_tolerances() -> dict[str, dict[str, float]]:
    """The gate's defaults, from each metric's registry entry: quality (absolute drop), lower (ratio), cost (ratio)."""
    tolerances: dict[str, dict[str, float]] = {"quality": {}, "lower": {}, "cost": {}}
    for info in METRICS.values():
        if info.tolerance is None:
            continue
        group = "cost" if info.kind == "cost" else ("quality" if info.higher_is_better else "lower")
        tolerances[group].update(dict.fromkeys(info.gate_columns(), info.tolerance))
    return tolerances


def did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def get_metric(name: str) -> MetricInfo:
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}{did_you_mean(name, METRICS)} Known metrics: {sorted(METRICS)}")
    return METRICS[name]
