"""The report's plots: quality against cost, frame strips, head roles. Files only (Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pare_bench.metrics import METRICS  # noqa: E402
from pare_bench.store import RunStore  # noqa: E402

# Natural ranges of the plotted quality columns (a 0-1 score must not auto-zoom to 0.98-1.02).
RANGES = {"psnr": None, "ssim": (0, 1)}
QUALITY = ("motion_direction", "still_accuracy", "colour_fidelity", "psnr")


def save_figure(figure, path: Path, tight: bool = False) -> None:
    """Write `figure` to `path` (its folder made if needed) and free it: every plot of the report ends here."""
    if not tight:
        figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, **({"bbox_inches": "tight"} if tight else {}))
    plt.close(figure)


def plot_head_roles(records: list[dict], path: Path) -> bool:
    """Blocks x heads coloured by the teacher's temporal score, a cross on each head a width system removed.

    Systems with the same plan (seed replicas of a deterministic score) share one panel.
    """
    plans: dict[tuple, list[str]] = {}
    temporal = None
    for record in (r for r in records if r["kind"] == "heads"):
        temporal = record["temporal"]
        plans.setdefault(tuple(tuple(heads) for heads in record["keep"]), []).append(record["system"])
    if temporal is None:
        return False
    figure, axes = plt.subplots(1, len(plans), figsize=(3.6 * len(plans), 3.6), squeeze=False)
    for panel, (axis, (keep, systems)) in enumerate(zip(axes[0], plans.items())):
        image = axis.imshow(temporal, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        removed = [(h, b) for b, row in enumerate(temporal) for h in range(len(row)) if h not in keep[b]]
        axis.scatter(*zip(*removed), marker="x", color="red", s=40, label="pruned") if removed else None
        axis.set_title("\n".join(_shorten(systems)), fontsize=8)
        axis.set_xlabel("head")
        axis.set_ylabel("block" if panel == 0 else "")
    figure.colorbar(image, ax=axes[0].tolist(), label="temporal score (0 same frame, 1 other frames)")
    save_figure(figure, path, tight=True)
    return True


def _shorten(systems: list[str], most: int = 3) -> list[str]:
    return systems if len(systems) <= most else [*systems[:most], f"+{len(systems) - most} more"]


def _range(metric: str) -> tuple[float, float] | None:
    """The y range a metric is drawn on: [0, 1] for scores, the data's own for dB."""
    base = metric.removesuffix("_heldout")
    return RANGES.get(base, (0, 1)) if base in RANGES or base in METRICS["world"].columns else None


def plot_quality_vs_flops(table: pd.DataFrame, path: Path, title: str = "") -> None:
    """One panel per quality column (held-in and held-out side by side) against GFLOPs per video."""
    metrics = [m for base in QUALITY for m in (base, f"{base}_heldout") if m in table and table[m].notna().sum() > 1]
    if "flops_per_video" not in table or not metrics:
        return
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        axis.scatter(table["flops_per_video"] / 1e9, table[metric])
        for system, row in table.iterrows():
            axis.annotate(system, (row["flops_per_video"] / 1e9, row[metric]), fontsize=8)
        axis.set_xlabel("GFLOPs per video")
        axis.set_ylabel(metric)
        axis.set_title(metric.replace("_heldout", " (held-out comp.)"), fontsize=9)
        if _range(metric):
            axis.set_ylim(*_range(metric))
    figure.suptitle(f"{title}: quality against cost (per-system means; intervals in report.md)")
    save_figure(figure, path)


def _strip(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) -> (H, F*(W+1), 3): frames side by side, a grey column after each (objects wrap at edges)."""
    gap = np.full((frames.shape[1], 1, 3), 128, dtype=frames.dtype)
    return np.concatenate([part for frame in frames for part in (frame, gap)], axis=1)


def plot_frame_strips(store: RunStore, records: list[dict], reference: str, path: Path, prompts: int = 3) -> bool:
    """Rows of every frame for the first sample of `prompts` prompts, the reference's row first in each group."""
    videos = [r for r in records if r["kind"] == "video" and "failed" not in r]
    systems = list(dict.fromkeys([reference] + [r["system"] for r in videos]))
    names = list(dict.fromkeys(r["name"] for r in videos if r["system"] == reference))[:prompts]
    rows = [(n, s) for n in names for s in systems if store.frames_path(s, n).is_file()]
    if not rows:
        return False
    strips = [_strip(store.load_frames(s, n)) for n, s in rows]
    figure, axes = plt.subplots(len(rows), 1, figsize=(1.1 * strips[0].shape[1] / strips[0].shape[0], 1.0 * len(rows)))
    for axis, (name, system), strip in zip(np.atleast_1d(axes), rows, strips):
        axis.imshow(strip, interpolation="nearest")
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_ylabel(system, rotation=0, ha="right", va="center", fontsize=7)
        if system == reference:
            axis.set_title(name, fontsize=7, loc="left")
    figure.suptitle("frames, left to right", fontsize=8)
    figure.subplots_adjust(hspace=0.6)
    save_figure(figure, path, tight=True)
    return True


def plot_training(records: list[dict], path: Path) -> bool:
    """One panel per training stage: each system's held-out validation loss against the step, a cross where the
    stop rule ended it."""
    stages: dict[str, list[dict]] = {}
    for record in (r for r in records if r["kind"] == "training" and r["curve"]):
        stages.setdefault(record["stage"], []).append(record)
    if not stages:
        return False
    figure, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 3.8), squeeze=False)
    for axis, (stage, entries) in zip(axes[0], stages.items()):
        seen = set()
        for entry in entries:
            if entry["directory"] in seen:  # systems sharing a student (pare and pare+sd share stage 1) drawn once
                continue
            seen.add(entry["directory"])
            steps, losses = zip(*entry["curve"])
            (line,) = axis.plot(steps, losses, linewidth=1, label=entry["system"])
            if entry.get("stopped") == "plateau":
                axis.scatter([steps[-1]], [losses[-1]], marker="x", color=line.get_color())
        axis.set_yscale("log")
        axis.set_xlabel("step")
        axis.set_ylabel("held-out validation loss")
        axis.set_title(stage, fontsize=9)
        axis.legend(fontsize=6)
    figure.suptitle("training curves (x: stopped on a plateau)")
    save_figure(figure, path)
    return True
