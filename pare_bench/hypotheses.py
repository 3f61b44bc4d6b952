"""Each system against the reference, decided by an interval: paired bootstrap over prompts and over seeds.

A comparison of two systems is paired: the same prompt and sample index (so the same seed) on both
sides. For each quality column the per-video differences are averaged within each prompt, and a
percentile bootstrap over prompts gives the 95% interval of the mean difference. A system trained
with several recipe seeds (replicas `name-s0`, `name-s1`, ...) is compared as one: its per-prompt
difference is the mean over replicas, and a second interval resamples the replicas themselves (the
spread between trainings).

The verdict reads the interval in the metric's own direction (the registry's `higher_is_better`):
`better` or `worse` when the whole interval is on one side of zero, `undecided` when it holds zero, `same`
when every prompt's difference is exactly zero.

Besides the reference, a system can name others to be compared with (`compare_to` in the suite), e.g. the
content router against the timestep-only router at equal FLOPs; when both sides have seed replicas, the
interval over seeds resamples the replicas of each side.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pare_bench.intervals import difference_interval, mean_interval, video_values
from pare_bench.metrics import METRICS


def _higher_is_better(column: str) -> bool:
    base = column.removesuffix("_heldout")
    for info in METRICS.values():
        if base == info.name or base in info.columns:
            return info.higher_is_better
    return True


def _interval(samples: np.ndarray) -> tuple[float, float]:
    """The bootstrap interval of the mean (intervals.mean_interval); NaN below two samples."""
    return mean_interval(samples)[1:] if len(samples) >= 2 else (math.nan, math.nan)


def verdict(low: float, high: float, higher_is_better: bool) -> str:
    if math.isnan(low):
        return "undecided"
    if low == high == 0:
        return "same"  # every prompt gives exactly the reference's value
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return "undecided"


def _groups(manifest: dict) -> dict[str, list[str]]:
    """Recipe name -> its systems (seed replicas, or the system alone)."""
    groups: dict[str, list[str]] = {}
    for system in manifest["suite"]["systems"]:
        groups.setdefault(system.get("replica_of") or system["name"], []).append(system["name"])
    return groups


def comparisons(manifest: dict, reference: str) -> list[tuple[str, str]]:
    """(system group, reference group) pairs: every group against the suite's reference, then the pairs the
    suite names with `compare_to`."""
    groups = _groups(manifest)
    pairs = [(group, reference) for group, systems in groups.items() if reference not in systems]
    for system in manifest["suite"]["systems"]:
        group = system.get("replica_of") or system["name"]
        for other in system.get("compare_to") or []:
            if (group, other) not in pairs and other in groups:
                pairs.append((group, other))
    return pairs


def _replica_interval(table: pd.DataFrame, systems: list[str], references: list[str]) -> tuple[float, float]:
    """Bootstrap interval over training seeds: resample each side's replicas (their mean over the shared
    videos), difference of the two means. NaN when neither side has two replicas."""
    if len(systems) < 2 and len(references) < 2:
        return math.nan, math.nan
    return difference_interval(table[systems].mean(axis=0).to_numpy(), table[references].mean(axis=0).to_numpy())


def compare_to_reference(records: list[dict], manifest: dict, reference: str) -> pd.DataFrame:
    """One row per (comparison, quality column): n prompts and seeds, mean difference, both intervals, verdict.

    The comparisons are `comparisons(manifest, reference)`. A side with seed replicas counts as their mean."""
    values = video_values(records)
    if not len(values):
        return pd.DataFrame()
    values["prompt"] = values["name"].str.rpartition("-")[0]
    wide = values.pivot_table(index=["column", "name", "prompt"], columns="system", values="value")
    groups = _groups(manifest)
    rows = []
    for group, against in comparisons(manifest, reference):
        for column in wide.index.get_level_values("column").unique():
            table = wide.loc[column]
            present = [s for s in groups[group] if s in table]
            references = [s for s in groups[against] if s in table]
            if not present or not references:
                continue
            table = table[present + references].dropna(how="any")
            if not len(table):
                continue
            diffs = table[present].mean(axis=1) - table[references].mean(axis=1)  # per video
            over_prompts = diffs.groupby(level="prompt").mean().to_numpy()
            low, high = _interval(over_prompts)
            seed_low, seed_high = _replica_interval(table, present, references)
            rows.append(
                {
                    "system": group,
                    "reference": against,
                    "column": column,
                    "prompts": len(over_prompts),
                    "seeds": len(present),
                    "videos": len(table),
                    "difference": float(over_prompts.mean()),
                    "low_prompts": low,
                    "high_prompts": high,
                    "low_seeds": seed_low,
                    "high_seeds": seed_high,
                    "verdict": verdict(low, high, _higher_is_better(column)),
                }
            )
    return pd.DataFrame(rows)


def hypotheses_markdown(table: pd.DataFrame) -> str:
    if not len(table):
        return "No paired comparison in this run.\n"
    view = table.copy()
    view["over prompts"] = [
        f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]" for d, lo, hi in zip(view.difference, view.low_prompts, view.high_prompts)
    ]
    view["over seeds"] = [
        "-" if math.isnan(lo) else f"[{lo:+.3g}, {hi:+.3g}]" for lo, hi in zip(view.low_seeds, view.high_seeds)
    ]
    columns = ["system", "reference", "column", "prompts", "seeds", "over prompts", "over seeds", "verdict"]
    return view[columns].to_markdown(index=False) + "\n"
