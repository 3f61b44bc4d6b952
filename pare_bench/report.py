"""Leaderboard, report and plots, built from records.jsonl and manifest.json alone."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pare_bench.metrics import get_metric  # noqa: E402
from pare_bench.store import RunStore  # noqa: E402
from pare_bench.world.detect import WORLD_METRICS  # noqa: E402

WORLD_COLUMNS = (*WORLD_METRICS, "shape_accuracy")
COLUMN_ORDER = (
    "videos",
    "failures",
    "psnr",
    "ssim",
    *WORLD_COLUMNS,
    *(f"{m}_heldout" for m in WORLD_COLUMNS),
    "flops_videos",
    "flops_per_step",
    "flops_per_video",
    "latency_p50",
    "latency_p90",
    "speedup",
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
    if "latency_p50" in table:
        table["speedup"] = table.loc[_reference(manifest), "latency_p50"] / table["latency_p50"]
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
        lines.append(
            f"| {c['system']} | {c['analytic_per_video']:.4e} | {c['runtime_per_video']:.4e} | "
            f"{c['runtime_per_video'] / c['analytic_per_video'] - 1:+.4%} | "
            f"{c['analytic_per_forward']:.4e} | {fv:.4e} | "
            f"{fv / c['analytic_per_forward'] - 1:+.4%} |"
        )
    return "\n".join(lines) + "\n"


def plot_quality_vs_flops(table: pd.DataFrame, path: Path) -> None:
    metrics = [m for m in ("psnr", "motion_direction", "colour_fidelity") if m in table]
    if "flops_per_video" not in table or not metrics:
        return
    figure, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        axis.scatter(table["flops_per_video"] / 1e9, table[metric])
        for system, row in table.iterrows():
            axis.annotate(system, (row["flops_per_video"] / 1e9, row[metric]), fontsize=8)
        axis.set_xlabel("GFLOPs per video")
        axis.set_ylabel(metric)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _report(table: pd.DataFrame, records: list[dict], manifest: dict) -> str:
    suite, git = manifest["suite"], manifest["git"]
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
            f"World scores are held-in compositions; `_heldout` columns are compositions never trained on. "
            f"PSNR/SSIM compare each video with `{_reference(manifest)}` for the same prompt and seed. "
            "Latency is seconds per whole video at batch 1; "
            "speedup is the reference's median over the system's, same run.",
            "",
            "## FLOPs cross-check",
            "",
            _flops_check_table(records),
            "![quality vs FLOPs](plots/quality_vs_flops.png)",
            "",
        ]
    )


def write_outputs(store: RunStore) -> pd.DataFrame:
    """leaderboard.csv, report.md and plots/ from the run directory's records and manifest."""
    manifest = json.loads((store.root / "manifest.json").read_text())
    records = store.records()
    table = summarize(records, manifest)
    table.to_csv(store.root / "leaderboard.csv")
    plot_quality_vs_flops(table, store.root / "plots" / "quality_vs_flops.png")
    (store.root / "report.md").write_text(_report(table, records, manifest))
    return table
