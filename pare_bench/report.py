"""Leaderboard, report and plots, built from records.jsonl and manifest.json alone."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI machines
import pandas as pd  # noqa: E402

from pare_bench.front import MIN_SPEEDUP, write_front  # noqa: E402
from pare_bench.hypotheses import compare_to_reference, gaps_markdown, heldout_gaps, hypotheses_markdown  # noqa: E402
from pare_bench.intervals import interval_markdown, speedup_intervals  # noqa: E402
from pare_bench.metrics import get_metric  # noqa: E402
from pare_bench.metrics.registry import leaderboard_columns, seed_columns  # noqa: E402
from pare_bench.metrics.vbench_scoring import NORMALIZE, normalized  # noqa: E402
from pare_bench.metrics.vbench_scoring import scores as vbench_scores  # noqa: E402
from pare_bench.plots import plot_frame_strips, plot_head_roles, plot_quality_vs_flops, plot_training  # noqa: E402
from pare_bench.routing_report import ROUTING_COLUMNS, ROUTING_PER_SEED, plot_routing, summarize_routing  # noqa: E402
from pare_bench.store import RunStore  # noqa: E402

WORLD_COLUMNS = get_metric("world").columns  # the registry entry owns the world metric's columns
# Quality, then held-out quality, then cost, routing and VBench: the metric registry owns each metric's columns.
COLUMN_ORDER = (
    "videos",
    "failures",
    *leaderboard_columns(("paired", "distribution", "world", "cost")),
    *ROUTING_COLUMNS,
    *leaderboard_columns(("vbench",)),
)


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Quality, then held-out quality, then cost; columns this module does not know go last."""
    known = [c for c in COLUMN_ORDER if c in table]
    return table[known + [c for c in table if c not in known]]


def _reference(manifest: dict) -> str:
    """The system speedups are measured against: the paired metrics' reference, else the first system."""
    for spec in manifest["suite"]["metrics"]:
        if spec.get("reference"):
            return spec["reference"]
    return manifest["suite"]["systems"][0]["name"]


def _metric_columns(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric value per system; world scores split into held-in and held-out columns."""
    rows = []
    for record in metrics.itertuples():
        suffix = "_heldout" if record.held_out is True else ""
        rows += [
            {"system": record.system, "column": f"{name}{suffix}", "value": value}
            for name, value in record.values.items()
        ]
    return pd.DataFrame(rows).pivot_table(index="system", columns="column", values="value", aggfunc="mean")


def summarize(records: list[dict], manifest: dict) -> pd.DataFrame:
    systems = [s["name"] for s in manifest["suite"]["systems"]]
    table = pd.DataFrame(index=pd.Index(systems, name="system"))
    videos = [r for r in records if r["kind"] == "video"]
    table["videos"] = [sum(1 for r in videos if r["system"] == s and "failed" not in r) for s in systems]
    table["failures"] = [sum(1 for r in videos if r["system"] == s and "failed" in r) for s in systems]
    metrics = pd.DataFrame([r for r in records if r["kind"] == "metric"])
    if len(metrics):
        table = table.join(_metric_columns(metrics))
    for system in systems:
        counted = [r for r in videos if r["system"] == system and "flops" in r and "failed" not in r]
        if counted:
            table.loc[system, "flops_videos"] = len(counted)
            for key, value in get_metric("flops").compute(counted).items():
                table.loc[system, key] = value
        for record in (r for r in records if r["kind"] == "latency" and r["system"] == system):
            for key, value in get_metric("latency").compute(record["seconds"]).items():
                table.loc[system, key] = value
    for record in (r for r in records if r["kind"] == "distribution"):
        table.loc[record["system"], record["metric"]] = record["value"]
    for record in (r for r in records if r["kind"] == "vbench"):
        for dimension, score in record.items():
            if dimension in NORMALIZE:  # VBench's own aggregate, and its leaderboard normalization
                table.loc[record["system"], f"vbench_{dimension}"] = score
                table.loc[record["system"], f"vbench_{dimension}_norm"] = normalized(dimension, score)
        if all(d in record for d in NORMALIZE):
            for key, value in vbench_scores({d: record[d] for d in NORMALIZE}).items():
                table.loc[record["system"], f"vbench_{key}"] = value
    routing = summarize_routing(records)
    if len(routing):
        table = table.join(routing)
    if "latency_p50" in table:
        table["speedup"] = table.loc[_reference(manifest), "latency_p50"] / table["latency_p50"]
        for system, values in speedup_intervals(records, _reference(manifest)).items():
            for key, value in values.items():
                table.loc[system, key] = value
        if "flops_per_video" in table:  # what the FLOPs alone would give, and the share of it measured
            table["ideal_speedup"] = table.loc[_reference(manifest), "flops_per_video"] / table["flops_per_video"]
            table["of_ideal"] = table["speedup"] / table["ideal_speedup"]
    return _ordered(table)


def _flops_check_table(records: list[dict]) -> str:
    checks = [r for r in records if r["kind"] == "flops_check"]
    if not checks:
        return "No FLOPs cross-check in this run (no `flops` metric or no dense system).\n"
    lines = [
        "| system | analytic / video | runtime / video | runtime vs analytic "
        "| analytic / forward | fvcore x2 / forward | fvcore vs analytic |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        fv = c["fvcore_x2_per_forward"]  # fvcore counts a multiply-add as one flop; pare_core doubles it
        fvcore = (
            "- | - (routed: data-dependent)" if fv is None else f"{fv:.4e} | {fv / c['analytic_per_forward'] - 1:+.4%}"
        )
        lines.append(
            f"| {c['system']} | {c['analytic_per_video']:.4e} | {c['runtime_per_video']:.4e} | "
            f"{c['runtime_per_video'] / c['analytic_per_video'] - 1:+.4%} | "
            f"{c['analytic_per_forward']:.4e} | {fvcore} |"
        )
    return "\n".join(lines) + "\n"


SEED_COLUMNS = (*seed_columns(), *ROUTING_PER_SEED)


def summarize_seeds(table: pd.DataFrame, manifest: dict) -> pd.DataFrame | None:
    """Mean and sample std over the seed replicas of each seeded system (None when the suite has none).

    Each replica's value is itself a mean over the run's videos, so the std is the spread between
    trainings (recipe seeds), not between videos.
    """
    groups = {s["name"]: s.get("replica_of") for s in manifest["suite"]["systems"]}
    if not any(groups.values()):
        return None
    labels = pd.Series({name: group or name for name, group in groups.items()}, name="recipe")
    columns = [c for c in SEED_COLUMNS if c in table]
    grouped = table[columns].groupby(labels.reindex(table.index), sort=False)
    summary = grouped.agg(["mean", "std"])
    summary.columns = [f"{column}_{stat}" for column, stat in summary.columns]
    summary.insert(0, "seeds", grouped.size())
    return summary


def _seeds_table(summary: pd.DataFrame) -> str:
    """mean +- std per column, recipes as rows."""
    columns = [c[: -len("_mean")] for c in summary if c.endswith("_mean")]
    cells = pd.DataFrame(index=summary.index)
    cells["seeds"] = summary["seeds"]
    for column in columns:
        mean, std = summary[f"{column}_mean"], summary[f"{column}_std"]
        cells[column] = [_mean_std(m, d) for m, d in zip(mean, std)]
    return cells.to_markdown()


def _mean_std(mean: float, std: float) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.4g}" if pd.isna(std) else f"{mean:.4g} ± {std:.2g}"


def _training_table(records: list[dict]) -> str:
    rows = []
    for r in (r for r in records if r["kind"] == "training"):
        losses = [loss for _, loss in r["curve"]]
        rows.append(
            {
                "system": r["system"],
                "stage": r["stage"],
                "steps": r["steps"],
                "stopped": r["stopped"] or "cap",
                "best val": f"{min(losses):.4g}" if losses else "-",
                "last val": f"{losses[-1]:.4g}" if losses else "-",
                "minutes": "-" if r["seconds"] is None else f"{r['seconds'] / 60:.1f}",
            }
        )
    return pd.DataFrame(rows).to_markdown(index=False)


def _plans_table(records: list[dict]) -> str:
    rows = [
        {
            "system": r["system"],
            "kept heads per block": " ".join(str(len(keep)) for keep in r["keep"]),
            "from the temporal half": _optional(r.get("temporal_kept")),
            "Jaccard with importance-only": _optional(r.get("overlap_importance")),
        }
        for r in records
        if r["kind"] == "heads"
    ]
    return pd.DataFrame(rows).to_markdown(index=False)


def _optional(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _report(
    table: pd.DataFrame,
    records: list[dict],
    manifest: dict,
    seeds: pd.DataFrame | None,
    plots: dict[str, bool],
    front: str,
    gaps: str,
) -> str:
    suite, git = manifest["suite"], manifest["git"]
    extra = []
    if plots["front"]:
        extra += [
            "## Quality against measured speedup",
            "",
            "![front](plots/front.png)",
            "",
            front,
            "Speedups from this run's interleaved latency rounds; FLOPs-ideal is the reference's FLOPs per video over "
            "the system's, `of ideal` the share of it the measured speedup realises. Quality: mean and percentile "
            "bootstrap 95% interval over videos (seed replicas averaged per video). Below, each trained system from "
            f"{MIN_SPEEDUP}x up against every cache curve, read off the curve by linear interpolation at the same "
            "speedup: `above` when the curve falls below the system's interval. Also in `front.csv`.",
            "",
        ]
    if seeds is not None:
        extra += [
            "## Over recipe seeds",
            "",
            _seeds_table(seeds),
            "",
            "Mean ± sample std over the seed replicas of each trained system (each replica's value is its mean "
            "over all videos above); systems without seeds have one row each.",
            "",
        ]
    if plots["frames"]:
        extra += [
            "## Frames",
            "",
            "![frames](plots/frames.png)",
            "",
            f"Every frame of the first sample of a few prompts, each system beside `{_reference(manifest)}`.",
            "",
        ]
    if plots["routing"]:
        extra += [
            "## Routing",
            "",
            "![routing](plots/routing.png)",
            "",
            "Blocks each routed system ran at each denoising step (step 0 is pure noise): the mean over all videos, "
            "then single videos. `route_spread` is the mean, over steps, of the expected number of blocks on which "
            "two different videos' decisions differ at the same step; a timestep-only router has 0 by construction.",
            "",
        ]
    if plots["training"]:
        extra += [
            "## Training",
            "",
            _training_table(records),
            "",
            "![training](plots/training.png)",
            "",
            "Each trained system's stages as their logs in `artifacts/` say: steps run, whether the stop rule ended "
            "the stage on a plateau of its held-out validation loss, the best and last validation loss, and the "
            "compute time (the gaps between logged steps summed, a resume's pause left out; `-`: a log without times).",
            "",
        ]
    if plots["head_roles"]:
        extra += [
            "## Head roles",
            "",
            _plans_table(records),
            "",
            "![head roles](plots/head_roles.png)",
            "",
            "Each width system's plan: heads kept per block, the share of its kept heads from the temporal half "
            "(temporal score at or above the teacher's median) and the Jaccard overlap of its kept heads with the "
            "importance-only plan at the same ratio (1: the same heads). Below, the teacher's self-attention "
            "heads, coloured by temporal score; a red cross marks a head the system's plan removed.",
            "",
        ]
    return "\n".join(
        [
            f"# {suite['suite']}: {suite['model']} ({suite['task']})",
            "",
            f"- suite hash `{manifest['suite_hash']}`, git `{git['sha']}`{' (dirty)' if git['dirty'] else ''}",
            f"- hardware: {manifest['hardware']}",
            f"- {len(manifest['prompts'])} prompts x {suite['samples_per_prompt']} samples, "
            f"seeds {suite['seed']['base']} + index, "
            f"sampling {suite['sampling']}",
            "",
            "## Leaderboard",
            "",
            table.T.to_markdown(floatfmt=".4g"),  # systems as columns: the metric list is long
            "",
            "## Quality with 95% intervals",
            "",
            interval_markdown(records, _reference(manifest)),
            "Mean over videos, percentile bootstrap 95% interval over videos (2,000 resamples), and the number of "
            "videos behind each number. A world score counts only the videos that have an object it scores "
            "(docs/WORLD.md). Paired metrics of the reference system read `reference`.",
            "",
            "## Against the reference, decided by intervals",
            "",
            hypotheses_markdown(compare_to_reference(records, manifest, _reference(manifest))),
            gaps,
            "Mean paired difference (system minus reference; same prompt and seed), percentile bootstrap 95% "
            "interval over prompts and, for systems trained with several recipe seeds, over those seeds. The verdict "
            "reads the interval in the metric's direction: `better`/`worse` when it excludes zero. Also in "
            "`hypotheses.csv`.",
            "",
            f"World scores are held-in compositions; `_heldout` columns are compositions never trained on. "
            f"PSNR/SSIM compare each video with `{_reference(manifest)}` for the same prompt and seed. "
            "Latency is seconds per whole video at batch 1; "
            "speedup is the reference's median over the system's, same run.",
            "",
            *extra,
            "## FLOPs cross-check",
            "",
            _flops_check_table(records),
            "![quality vs FLOPs](plots/quality_vs_flops.png)",
            "",
        ]
    )


def vbench_style(table: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard in the VBench leaderboard's layout: Model Name, Total/Quality/Semantic Score (empty unless
    all 16 dimensions were measured), each measured dimension raw and normalized, then this harness's columns."""
    out = pd.DataFrame({"Model Name": table.index})
    for key, title in (("total", "Total Score"), ("quality", "Quality Score"), ("semantic", "Semantic Score")):
        out[title] = table[f"vbench_{key}"].to_numpy() if f"vbench_{key}" in table else float("nan")
    for dimension in NORMALIZE:
        if f"vbench_{dimension}" in table:
            title = dimension.replace("_", " ").title()
            out[f"{title} (raw)"] = table[f"vbench_{dimension}"].to_numpy()
            out[f"{title} (normalized)"] = table[f"vbench_{dimension}_norm"].to_numpy()
    rest = {
        "fid": "FID",
        "psnr": "PSNR",
        "ssim": "SSIM",
        "lpips": "LPIPS",
        **{c: c.replace("_", " ").title() for c in WORLD_COLUMNS},
        **{f"{c}_heldout": f"{c.replace('_', ' ').title()} (held-out)" for c in WORLD_COLUMNS},
        "flops_per_step": "FLOPs per step",
        "flops_per_video": "FLOPs per video",
        "latency_p50": "Latency p50 (s)",
        "latency_p90": "Latency p90 (s)",
        "speedup": "Speedup",
    }
    for column, title in rest.items():
        if column in table:
            out[title] = table[column].to_numpy()
    out["Scores note"] = _total_note(table)
    return out


def _total_note(table: pd.DataFrame) -> list[str]:
    """Per system, why Total/Quality/Semantic are empty: VBench defines them over all 16 dimensions only."""
    notes = []
    for _, row in table.iterrows():
        measured = sum(1 for d in NORMALIZE if not pd.isna(row.get(f"vbench_{d}", float("nan"))))
        if measured == len(NORMALIZE):
            notes.append(f"all {len(NORMALIZE)} dimensions measured")
        else:
            notes.append(
                f"Total/Quality/Semantic empty: {measured} of {len(NORMALIZE)} VBench dimensions measured "
                "(VBench defines them over all 16)"
            )
    return notes


def write_outputs(store: RunStore) -> pd.DataFrame:
    """leaderboard.csv, report.md and plots/ from the run directory's records and manifest."""
    manifest = json.loads((store.root / "manifest.json").read_text())
    records = store.records()
    table = summarize(records, manifest)
    table.to_csv(store.root / "leaderboard.csv")
    seeds = summarize_seeds(table, manifest)
    if seeds is not None:
        seeds.to_csv(store.root / "leaderboard_seeds.csv")
    compare_to_reference(records, manifest, _reference(manifest)).to_csv(store.root / "hypotheses.csv", index=False)
    plot_quality_vs_flops(table, store.root / "plots" / "quality_vs_flops.png", manifest["suite"]["suite"])
    front_drawn, front = write_front(table, records, manifest, _reference(manifest), store.root)
    gaps = heldout_gaps(records, manifest, _reference(manifest))
    if len(gaps):
        gaps.to_csv(store.root / "heldout_gaps.csv", index=False)
    plots = {
        "front": front_drawn,
        "frames": plot_frame_strips(store, records, _reference(manifest), store.root / "plots" / "frames.png"),
        "head_roles": plot_head_roles(records, store.root / "plots" / "head_roles.png"),
        "routing": plot_routing(records, store.root / "plots" / "routing.png"),
        "training": plot_training(records, store.root / "plots" / "training.png"),
    }
    text = _report(table, records, manifest, seeds, plots, front, gaps_markdown(gaps))
    (store.root / "report.md").write_text(text)
    return table
