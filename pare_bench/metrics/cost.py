"""Cost metrics. They are measured by the runner while it generates (FLOPs, with
torch.utils.flop_counter around the real sampling call) or in a timing pass (latency); these
functions reduce the raw records to leaderboard values."""

from __future__ import annotations

import numpy as np

from pare_bench.metrics.registry import register_metric


@register_metric(
    "flops",
    kind="cost",
    higher_is_better=False,
    columns=("flops_per_step", "flops_per_video"),
    options=("videos",),
    tolerance=1.01,
    derived=("flops_videos",),  # how many videos each system ran under the counter
    per_seed=("flops_per_step",),
    counted="pare_bench.generation:flops_counted",
    phase="pare_bench.generation:flops_phase",
)
def flops(video_records: list[dict]) -> dict[str, float]:
    """Mean executed FLOPs per video and per denoising step (a CFG step counts both branches)."""
    per_video = np.array([r["flops"] for r in video_records], dtype=np.float64)
    per_step = per_video / np.array([r["steps"] for r in video_records])
    return {"flops_per_step": float(per_step.mean()), "flops_per_video": float(per_video.mean())}


@register_metric(
    "latency",
    kind="cost",
    higher_is_better=False,
    columns=("latency_p50", "latency_p90"),
    options=("warmup", "repeats"),
    tolerance=1.5,
    # speedup and its spread: pare_bench.intervals; the FLOPs-ideal speedup and the share of it realised: report
    derived=("speedup", "speedup_low", "speedup_high", "latency_spread", "timing_noisy", "ideal_speedup", "of_ideal"),
    per_seed=("latency_p50", "speedup", "speedup_low", "speedup_high", "latency_spread", "timing_noisy"),
    phase="pare_bench.generation:latency_phase",
)
def latency(seconds: list[float]) -> dict[str, float]:
    """Median and p90 of whole-video generation times (batch 1, after warm-up)."""
    return {"latency_p50": float(np.percentile(seconds, 50)), "latency_p90": float(np.percentile(seconds, 90))}
