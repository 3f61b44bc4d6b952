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
from pare_bench.metrics import METRICS, get_metric


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


def _flops_per_step(records: list[dict], systems: list[str]) -> float:
    """Mean executed FLOPs per denoising step over the counted videos of `systems` (NaN if none was counted)."""
    counted = [r for r in records if r["kind"] == "video" and r["system"] in systems and "flops" in r]
    return get_metric("flops").compute(counted)["flops_per_step"] if counted else math.nan


def _wide(records: list[dict]) -> pd.DataFrame:
    """Per-video values indexed by (column, video name, prompt), one column per system (empty without values)."""
    values = video_values(records)
    if not len(values):
        return pd.DataFrame()
    values["prompt"] = values["name"].str.rpartition("-")[0]  # names are `{prompt}-{index}` (store.video_name)
    return values.pivot_table(index=["column", "name", "prompt"], columns="system", values="value")


def _paired(wide: pd.DataFrame, column: str, systems: list[str], references: list[str]):
    """(videos both sides have, per-video difference of the side means) for `column`; None when a side is missing."""
    table = wide.loc[column]
    present = [s for s in systems if s in table]
    against = [s for s in references if s in table]
    if not present or not against:
        return None
    table = table[present + against].dropna(how="any")
    if not len(table):
        return None
    return table, table[present].mean(axis=1) - table[against].mean(axis=1)


def compare_to_reference(records: list[dict], manifest: dict, reference: str) -> pd.DataFrame:
    """One row per (comparison, quality column): n prompts and seeds, mean difference, both intervals, verdict,
    and the FLOPs per step of the system over those of what it is compared with (`flops_ratio`: an
    equal-compute comparison reads about 1).

    The comparisons are `comparisons(manifest, reference)`. A side with seed replicas counts as their mean."""
    return compare_pairs(records, manifest, comparisons(manifest, reference))


def compare_pairs(
    records: list[dict], manifest: dict, pairs: list[tuple[str, str]], columns: tuple[str, ...] | None = None
) -> pd.DataFrame:
    """`compare_to_reference`'s table for the given (system group, other group) pairs, all quality columns or
    only `columns`."""
    wide = _wide(records)
    if not len(wide):
        return pd.DataFrame()
    groups = _groups(manifest)
    present_columns = wide.index.get_level_values("column").unique()
    rows = []
    for group, against in pairs:
        for column in present_columns if columns is None else [c for c in columns if c in present_columns]:
            paired = _paired(wide, column, groups[group], groups[against])
            if paired is None:
                continue
            table, diffs = paired
            present = [s for s in groups[group] if s in table]
            references = [s for s in groups[against] if s in table]
            over_prompts = diffs.groupby(level="prompt").mean().to_numpy()
            low, high = _interval(over_prompts)
            seed_low, seed_high = _replica_interval(table, present, references)
            flops_ratio = _flops_per_step(records, present) / _flops_per_step(records, references)
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
                    "flops_ratio": flops_ratio,
                }
            )
    return pd.DataFrame(rows)


def hypotheses_markdown(table: pd.DataFrame, extra: tuple[str, ...] = ()) -> str:
    """The comparison table; `extra` numeric columns of `table` are appended (two decimals)."""
    if not len(table):
        return "No paired comparison in this run.\n"
    view = table.copy()
    view["over prompts"] = [
        f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]" for d, lo, hi in zip(view.difference, view.low_prompts, view.high_prompts)
    ]
    view["over seeds"] = [
        "-" if math.isnan(lo) else f"[{lo:+.3g}, {hi:+.3g}]" for lo, hi in zip(view.low_seeds, view.high_seeds)
    ]
    view["FLOPs ratio"] = ["-" if math.isnan(r) else f"{r:.3f}" for r in view.flops_ratio]
    columns = ["system", "reference", "column", "prompts", "seeds", "over prompts", "over seeds", "verdict"]
    for column in extra:
        view[column.replace("_", " ")] = [f"{v:.2f}" for v in view[column]]
    return view[[*columns, "FLOPs ratio", *(c.replace("_", " ") for c in extra)]].to_markdown(index=False) + "\n"


def _signature(prompt: str) -> tuple | None:
    """What a matched held-in/held-out pair shares: each object's shape and motion (world prompts only)."""
    from pare_bench.tiny.world.prompts import parse_prompt

    try:
        return tuple((obj.shape, obj.motion) for obj in parse_prompt(prompt).objects)
    except (KeyError, ValueError):
        return None


def _pairs(held_in: list[str], held_out: list[str]) -> dict[str, str] | None:
    """Each held-out prompt's matched held-in partner: the next unused held-in prompt of the same signature (the
    world's matched sets are built twin by twin, in order). None unless every held-out prompt finds one."""
    free: dict[tuple, list[str]] = {}
    for prompt in held_in:
        free.setdefault(_signature(prompt), []).append(prompt)
    pairs = {}
    for prompt in held_out:
        partners = free.get(_signature(prompt)) if _signature(prompt) is not None else None
        if not partners:
            return None
        pairs[prompt] = partners.pop(0)
    return pairs


def heldout_gaps(records: list[dict], manifest: dict, reference: str) -> pd.DataFrame:
    """Generalisation of each system against the reference: (system - reference) on held-out compositions minus
    (system - reference) on held-in ones, per world column with a held-out twin.

    Per prompt, the paired difference to the reference (same prompt and seed, seed replicas averaged). On matched
    prompt sets (`world:matched`, `world:matched32`) each held-out prompt is paired with its held-in twin and the
    bootstrap runs over pairs; otherwise the two prompt sets are resampled on their own (`paired` False). A gap
    below zero means the system loses more than the reference on compositions never trained on."""
    wide = _wide(records)
    if not len(wide):
        return pd.DataFrame()
    groups = _groups(manifest)
    names = set(wide.index.get_level_values("column"))
    rows = []
    for group in (g for g in groups if reference not in groups[g]):
        for column in sorted(c for c in names if f"{c}_heldout" in names):
            sides = [_paired(wide, name, groups[group], [reference]) for name in (column, f"{column}_heldout")]
            if any(side is None for side in sides):
                continue
            held_in, held_out = (diffs.groupby(level="prompt").mean() for _, diffs in sides)
            pairs = _pairs(list(held_in.index), list(held_out.index))
            if pairs is not None:
                gaps = np.array([held_out[p] - held_in[pairs[p]] for p in held_out.index])
                low, high = _interval(gaps)
            else:
                low, high = difference_interval(held_out.to_numpy(), held_in.to_numpy())
            rows.append(
                {
                    "system": group,
                    "reference": reference,
                    "column": column,
                    "held_in": float(held_in.mean()),
                    "held_out": float(held_out.mean()),
                    "gap": float(held_out.mean() - held_in.mean()),
                    "low": low,
                    "high": high,
                    "paired": pairs is not None,
                    "prompts": len(held_in) + len(held_out),
                    "verdict": verdict(low, high, _higher_is_better(column)),
                }
            )
    return pd.DataFrame(rows)


def gaps_markdown(table: pd.DataFrame) -> str:
    if not len(table):
        return ""
    view = table.copy()
    view["held-in diff"] = [f"{v:+.3g}" for v in view.held_in]
    view["held-out diff"] = [f"{v:+.3g}" for v in view.held_out]
    view["gap [95%]"] = [f"{g:+.3g} [{lo:+.3g}, {hi:+.3g}]" for g, lo, hi in zip(view.gap, view.low, view.high)]
    view["pairs"] = ["matched" if p else "unpaired" for p in view.paired]
    columns = ["system", "reference", "column", "held-in diff", "held-out diff", "gap [95%]", "pairs", "verdict"]
    return "\n".join(
        [
            "",
            "### Held-out minus held-in, against the reference",
            "",
            view[columns].to_markdown(index=False),
            "",
            "Each side is the mean paired difference to the reference (system minus reference, per prompt); the gap is "
            "held-out minus held-in, with a bootstrap 95% interval over matched prompt pairs where the prompt set is "
            "matched (`world:matched*`), else over each side's prompts on its own. `worse`: the system loses more "
            "than the reference on compositions never trained on. Also in `heldout_gaps.csv`.",
            "",
        ]
    )
