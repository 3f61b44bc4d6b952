"""Per-video quality values and their bootstrap 95% intervals, from records.jsonl alone.

A leaderboard mean says nothing about how far it can be trusted: 0.406 against 0.391 is one video in
64. Each quality column here comes with the number of videos behind it and a percentile bootstrap
interval over those videos (scipy.stats.bootstrap).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from scipy.stats import bootstrap

from pare_bench.metrics import get_metric

CONFIDENCE = 0.95
RESAMPLES = 2000


def video_values(records: list[dict]) -> pd.DataFrame:
    """One row per (system, video, column): the quality records' values, world scores split by held-out."""
    rows = []
    for record in records:
        if record["kind"] != "metric":
            continue
        suffix = "_heldout" if record.get("held_out") is True else ""
        for column, value in record["values"].items():
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                rows.append(
                    {"system": record["system"], "name": record["name"], "column": column + suffix, "value": value}
                )
    return pd.DataFrame(rows, columns=["system", "name", "column", "value"])


def mean_interval(values: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of a percentile bootstrap interval of the mean; NaN bounds below two values."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean()) if len(values) else math.nan
    if len(values) < 2 or np.all(values == values[0]):
        return mean, mean if len(values) else math.nan, mean if len(values) else math.nan
    result = bootstrap(
        (values,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES, method="percentile", random_state=seed
    )
    return mean, float(result.confidence_interval.low), float(result.confidence_interval.high)


def difference_interval(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """(low, high) of a percentile bootstrap interval of mean(a) - mean(b), each sample resampled on its own
    (unpaired: e.g. the training-seed replicas of two systems). A one-value side is a constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(b) == 1:
        return mean_interval(a - b[0], seed)[1:]
    if len(a) == 1:
        _, low, high = mean_interval(b, seed)
        return a[0] - high, a[0] - low
    if np.all(a == a[0]) and np.all(b == b[0]):
        return a[0] - b[0], a[0] - b[0]
    result = bootstrap(
        (a, b),
        lambda x, y, axis=-1: x.mean(axis) - y.mean(axis),
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        random_state=seed,
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def interval_table(records: list[dict]) -> pd.DataFrame:
    """Rows (system, column): n, mean, low, high, over the videos behind each quality column."""
    values = video_values(records)
    rows = []
    for (system, column), group in values.groupby(["system", "column"], sort=False):
        mean, low, high = mean_interval(group["value"].to_numpy())
        rows.append({"system": system, "column": column, "n": len(group), "mean": mean, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["system", "column", "n", "mean", "low", "high"])


def format_interval(row) -> str:
    if math.isnan(row["low"]) or row["low"] == row["high"]:
        return f"{row['mean']:.3g} (n={row['n']})"
    return f"{row['mean']:.3g} [{row['low']:.3g}, {row['high']:.3g}] (n={row['n']})"


def interval_markdown(records: list[dict], reference: str | None) -> str:
    """Systems as columns, quality columns as rows: 'mean [low, high] (n=videos)'; the reference reads 'reference'."""
    table = interval_table(records)
    if not len(table):
        return "No per-video quality values in this run.\n"
    table["cell"] = table.apply(format_interval, axis=1)
    wide = table.pivot(index="column", columns="system", values="cell")
    if reference is not None:
        paired = [column for column in wide.index if _is_paired(column)]
        for column in paired:
            wide.loc[column, reference] = "reference"
    return wide.fillna("-").to_markdown() + "\n"


def _is_paired(column: str) -> bool:
    try:
        return get_metric(column).kind == "paired"
    except KeyError:
        return False


def print_end_of_run(records: list[dict], leaderboard: pd.DataFrame, reference: str | None, console: Console) -> None:
    """The table a run ends with: each quality column with its interval and count, then FLOPs and speedup."""
    intervals = interval_table(records)
    systems = list(leaderboard.index)
    table = Table("column", *systems, title="95% bootstrap intervals over videos (n = videos behind each number)")
    order = {column: index for index, column in enumerate(leaderboard.columns)}
    groups = sorted(intervals.groupby("column", sort=False), key=lambda item: order.get(item[0], len(order)))
    for column, group in groups:
        cells = {row["system"]: format_interval(row) for _, row in group.iterrows()}
        if reference is not None and _is_paired(column):
            cells[reference] = "reference"
        table.add_row(column, *(cells.get(system, "-") for system in systems))
    for column in ("flops_per_step", "speedup"):
        if column in leaderboard:
            table.add_row(column, *(f"{leaderboard.loc[s, column]:.4g}" for s in systems))
    console.print(table)


NOISY_WIDTH = 0.2  # a speedup whose 95% interval is wider than this share of itself is flagged
MIN_ROUNDS = 5  # fewer interleaved timing rounds than this support no speedup claim


def speedup_intervals(records: list[dict], reference: str) -> dict[str, dict[str, float | bool]]:
    """Per system: the 95% interval of the median per-round speedup, and whether timing noise flags it.

    The latency phase interleaves rounds (each round times every system once on the same video), so
    round r's reference time over the system's is one paired speedup sample; machine load that comes
    and goes hits both sides of a pair alike, and shows up as spread between rounds.
    """
    timings = {r["system"]: np.asarray(r["seconds"], dtype=np.float64) for r in records if r["kind"] == "latency"}
    if reference not in timings:
        return {}
    out = {}
    for system, seconds in timings.items():
        ratios = timings[reference][: len(seconds)] / seconds[: len(timings[reference])]
        median = float(np.median(ratios))
        if len(ratios) >= 2 and not np.all(ratios == ratios[0]):
            result = bootstrap((ratios,), np.median, n_resamples=RESAMPLES, method="percentile", random_state=0)
            low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        else:
            low = high = median
        too_few = system != reference and len(ratios) < MIN_ROUNDS
        noisy = system != reference and (too_few or (high - low) / median > NOISY_WIDTH)
        spread = float((np.percentile(seconds, 90) - np.percentile(seconds, 10)) / np.median(seconds))
        out[system] = {"speedup_low": low, "speedup_high": high, "latency_spread": spread, "timing_noisy": noisy}
    return out
