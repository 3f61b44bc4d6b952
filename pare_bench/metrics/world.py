"""World metrics of the tiny world: the detector's scores of each video against its prompt."""

from __future__ import annotations

import numpy as np

from pare_bench.metrics.registry import register_metric
from pare_bench.tiny.world.detect import WORLD_METRICS, score_video


@register_metric(
    "world",
    kind="world",
    higher_is_better=True,
    columns=(*WORLD_METRICS, "shape_accuracy"),
    tolerance=0.05,
    heldout=True,
    per_seed=("colour_fidelity", "motion_direction"),
)
def world(video: np.ndarray, prompt: str) -> dict[str, float]:
    return score_video(video, prompt)
