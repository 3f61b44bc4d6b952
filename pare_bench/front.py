"""Quality against measured speedup: every system of a run on one front, each cache sweep drawn as a curve.

A cache method swept over its main option (`sweep:` in the suite) gives one point per value; joined in order of
speedup they make the method's curve. A trained system (with its seed replicas pooled) is one point. At each
trained system's speedup from `MIN_SPEEDUP` up, every curve's quality is read off by linear interpolation between
its two neighbouring points, so PARE and a cache are compared at the same measured speedup, not at their own
settings. Speedups are the run's own (interleaved latency rounds); the FLOPs-ideal speedup is the reference's
FLOPs per video over the system's, and `of_ideal` how much of it the measured speedup realises.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pare_bench.hypotheses import compare_pairs, hypotheses_markdown  # noqa: E402
from pare_bench.intervals import mean_interval, video_values  # noqa: E402
from pare_bench.plots import save_figure  # noqa: E402

FRONT_QUALITY = ("psnr", "motion_direction", "motion_direction_heldout")  # columns drawn and compared
MIN_SPEEDUP = 1.5  # the matched-speedup comparison starts here


def _kinds(manifest: dict) -> dict[str, tuple[str, str]]:
    """System -> (group, kind): a sweep point belongs to its curve, a seed replica to its recipe."""
    kinds = {}
    for system in manifest["suite"]["systems"]:
        if system.get("sweep_of"):
            kinds[system["name"]] = (system["sweep_of"], "curve")
        elif system.get("replica_of") or system.get("recipe") or system.get("artifact"):
            kinds[system["name"]] = (system.get("replica_of") or system["name"], "trained")
        else:
            kinds[system["name"]] = (system["name"], "cache" if system.get("cache") else "reference")
    return kinds


def _quality(values: pd.DataFrame, systems: list[str], column: str) -> tuple[float, float, float]:
    """Mean and 95% interval over videos, each video's value averaged over `systems` (seed replicas)."""
    rows = values[(values["column"] == column) & values["system"].isin(systems)]
    if not len(rows):
        return math.nan, math.nan, math.nan
    per_video = rows.pivot_table(index="name", columns="system", values="value").dropna().mean(axis=1)
    return mean_interval(per_video.to_numpy())


def front_table(table: pd.DataFrame, records: list[dict], manifest: dict, reference: str) -> pd.DataFrame:
    """One row per group (a curve's points stay rows of their own): speedup with its interval, the FLOPs-ideal
    speedup, the fraction of it realised, and each quality column with its interval."""
    if "speedup" not in table:
        return pd.DataFrame()
    values = video_values(records)
    kinds = _kinds(manifest)
    rows = []
    units: dict[str, tuple[str, str, list[str]]] = {}  # a point of the front: (group, kind, its systems)
    for system, (group, kind) in kinds.items():
        name = group if kind == "trained" else system  # seed replicas pool into one point; sweep points stay apart
        units.setdefault(name, (group, kind, []))[2].append(system)
    for name, (group, kind, systems) in units.items():
        present = [s for s in systems if s in table.index and not pd.isna(table.loc[s, "speedup"])]
        if not present:
            continue
        part = table.loc[present]
        row = {
            "system": name,
            "group": group,
            "kind": kind,
            "replicas": len(present),
            "speedup": part["speedup"].mean(),
            "speedup_low": part.get("speedup_low", part["speedup"]).min(),
            "speedup_high": part.get("speedup_high", part["speedup"]).max(),
        }
        if "flops_per_video" in table and not pd.isna(table.loc[reference, "flops_per_video"]):
            row["ideal_speedup"] = table.loc[reference, "flops_per_video"] / part["flops_per_video"].mean()
            row["of_ideal"] = row["speedup"] / row["ideal_speedup"]
        for column in FRONT_QUALITY:
            row[column], row[f"{column}_low"], row[f"{column}_high"] = _quality(values, present, column)
        rows.append(row)
    return pd.DataFrame(rows)


def _interpolate(curve: pd.DataFrame, speedup: float, column: str) -> float:
    """The curve's `column` at `speedup` (linear between neighbouring points); NaN outside its span."""
    points = curve.dropna(subset=[column]).sort_values("speedup")
    if len(points) < 1 or not points["speedup"].min() <= speedup <= points["speedup"].max():
        return math.nan
    return float(np.interp(speedup, points["speedup"], points[column]))


def matched_speedups(front: pd.DataFrame, minimum: float = MIN_SPEEDUP) -> pd.DataFrame:
    """Each trained system from `minimum`x up against every cache curve at the trained system's speedup.

    `position`: `above` when the curve's interpolated quality is below the trained system's interval, `below`
    when above it, `inside` otherwise; `not reached` when the curve does not span that speedup."""
    if not len(front):
        return pd.DataFrame()
    curves = front[front["kind"] == "curve"]
    rows = []
    for _, point in front[(front["kind"] == "trained") & (front["speedup"] >= minimum)].iterrows():
        for curve_name, curve in curves.groupby("group", sort=False):
            for column in FRONT_QUALITY:
                if pd.isna(point[column]):
                    continue
                value = _interpolate(curve, point["speedup"], column)
                if math.isnan(value):
                    position = "not reached"
                elif value < point[f"{column}_low"]:
                    position = "above"
                elif value > point[f"{column}_high"]:
                    position = "below"
                else:
                    position = "inside"
                rows.append(
                    {
                        "system": point["system"],
                        "speedup": point["speedup"],
                        "curve": curve_name,
                        "column": column,
                        "system_value": point[column],
                        "system_low": point[f"{column}_low"],
                        "system_high": point[f"{column}_high"],
                        "curve_value": value,
                        "position": position,
                    }
                )
    return pd.DataFrame(rows)


def nearest_points(
    front: pd.DataFrame, records: list[dict], manifest: dict, minimum: float = MIN_SPEEDUP
) -> pd.DataFrame:
    """Each trained system from `minimum`x up, paired against every curve's point nearest its speedup (in log
    speedup): the same prompts and seeds on both sides, bootstrap over prompts and over training seeds, a
    verdict (hypotheses.compare_pairs). `matched_speedups` reads an interpolated curve mean against the trained
    system's interval and so ignores the curve's own spread; this comparison does not, at the price of a speedup
    that only approximately matches (`speedup_ratio`: the trained system's over the point's)."""
    if not len(front):
        return pd.DataFrame()
    curves = front[front["kind"] == "curve"]
    pairs, ratios = [], {}
    for _, point in front[(front["kind"] == "trained") & (front["speedup"] >= minimum)].iterrows():
        for _, curve in curves.groupby("group", sort=False):
            nearest = curve.iloc[int(np.argmin(np.abs(np.log(curve["speedup"].to_numpy() / point["speedup"]))))]
            pairs.append((point["system"], nearest["system"]))
            ratios[pairs[-1]] = point["speedup"] / nearest["speedup"]
    table = compare_pairs(records, manifest, pairs, FRONT_QUALITY)
    if len(table):
        table["speedup_ratio"] = [ratios[(a, b)] for a, b in zip(table["system"], table["reference"])]
    return table


def front_markdown(front: pd.DataFrame, matched: pd.DataFrame, nearest: pd.DataFrame | None = None) -> str:
    if not len(front):
        return "No latency in this run: no speedup to put quality against.\n"
    view = pd.DataFrame({"system": front["system"], "kind": front["kind"], "seeds": front["replicas"]})
    view["speedup [interval]"] = [
        f"{s:.2f} [{lo:.2f}, {hi:.2f}]" for s, lo, hi in zip(front.speedup, front.speedup_low, front.speedup_high)
    ]
    if "ideal_speedup" in front:
        view["FLOPs-ideal"] = [f"{v:.2f}" for v in front["ideal_speedup"]]
        view["of ideal"] = [f"{v:.2f}" for v in front["of_ideal"]]
    for column in FRONT_QUALITY:
        view[column] = [
            "-" if pd.isna(m) else f"{m:.3g} [{lo:.3g}, {hi:.3g}]"
            for m, lo, hi in zip(front[column], front[f"{column}_low"], front[f"{column}_high"])
        ]
    text = view.to_markdown(index=False) + "\n"
    if len(matched):
        cells = matched.copy()
        cells["system [interval]"] = [
            f"{v:.3g} [{lo:.3g}, {hi:.3g}]"
            for v, lo, hi in zip(cells.system_value, cells.system_low, cells.system_high)
        ]
        cells["curve at that speedup"] = ["-" if pd.isna(v) else f"{v:.3g}" for v in cells.curve_value]
        cells["speedup"] = [f"{v:.2f}" for v in cells.speedup]
        columns = ["system", "speedup", "column", "curve", "system [interval]", "curve at that speedup", "position"]
        text += "\n" + cells[columns].to_markdown(index=False) + "\n"
    if nearest is not None and len(nearest):
        text += (
            "\nPaired against each curve's point nearest in speedup (same prompts and seeds; `nearest_points.csv`):\n\n"
            + hypotheses_markdown(nearest, extra=("speedup_ratio",))
        )
    return text


def plot_front(front: pd.DataFrame, path) -> bool:
    """One panel per quality column: curves for the cache sweeps, points with interval bars for the rest."""
    columns = [c for c in FRONT_QUALITY if c in front and front[c].notna().any()]
    if not len(front) or not columns:
        return False
    figure, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 4), squeeze=False)
    # one colour per group in every panel: a group missing from one panel (the reference has no PSNR against
    # itself) must not shift the colours of the others, or the one legend mislabels that panel
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {group: palette[i % len(palette)] for i, group in enumerate(front["group"].unique())}
    for axis, column in zip(axes[0], columns):
        for group, part in front.groupby("group", sort=False):
            part = part.dropna(subset=[column]).sort_values("speedup")
            if not len(part):
                continue
            curve = part["kind"].iloc[0] == "curve"
            axis.errorbar(
                part["speedup"],
                part[column],
                xerr=[part["speedup"] - part["speedup_low"], part["speedup_high"] - part["speedup"]],
                yerr=[part[column] - part[f"{column}_low"], part[f"{column}_high"] - part[column]],
                fmt="-o" if curve else "s",
                markersize=4 if curve else 7,
                capsize=2,
                color=colours[group],
                label=group,
            )
        axis.set_xscale("log")  # caches sit between 1x and 3x, step-distilled systems near 10-20x
        axis.axvline(MIN_SPEEDUP, color="grey", linestyle=":", linewidth=1)
        axis.set_xlabel("measured speedup (whole video, same run)")
        axis.set_ylabel(column)
        axis.set_title(column.replace("_heldout", " (held-out comp.)"), fontsize=9)
    axes[0][-1].legend(fontsize=7, loc="best")
    figure.suptitle("quality against measured speedup (95% intervals)")
    save_figure(figure, path)
    return True


def write_front(table: pd.DataFrame, records: list[dict], manifest: dict, reference: str, root) -> tuple[bool, str]:
    """The run's front: `front.csv`, `matched_speedups.csv`, `nearest_points.csv` and `plots/front.png` under
    `root`; returns (whether the plot was drawn, the report's markdown)."""
    front = front_table(table, records, manifest, reference)
    matched = matched_speedups(front)
    nearest = nearest_points(front, records, manifest)
    for name, part in (("front", front), ("matched_speedups", matched), ("nearest_points", nearest)):
        if len(part):
            part.to_csv(root / f"{name}.csv", index=False)
    return plot_front(front, root / "plots" / "front.png"), front_markdown(front, matched, nearest)
