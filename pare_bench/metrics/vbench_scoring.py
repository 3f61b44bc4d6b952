"""VBench's Total, Quality and Semantic scores from raw dimension scores, with VBench's own constants.

The constants are those of VBench's `scripts/constant.py` and the arithmetic that of its
`scripts/cal_final_score.py`: each raw score is min-max normalised over the dimension's range and
multiplied by its weight; Quality and Semantic are weighted means over their dimension lists; Total is
(4 Quality + 1 Semantic) / 5. One difference, on purpose: VBench's script scores a missing dimension as 0,
which silently lowers the total. Here a total from a partial set of dimensions is refused.
"""

from __future__ import annotations

NORMALIZE = {  # dimension -> (min, max) of the raw score
    "subject_consistency": (0.1462, 1.0),
    "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0),
    "motion_smoothness": (0.706, 0.9975),
    "dynamic_degree": (0.0, 1.0),
    "aesthetic_quality": (0.0, 1.0),
    "imaging_quality": (0.0, 1.0),
    "object_class": (0.0, 1.0),
    "multiple_objects": (0.0, 1.0),
    "human_action": (0.0, 1.0),
    "color": (0.0, 1.0),
    "spatial_relationship": (0.0, 1.0),
    "scene": (0.0, 0.8222),
    "appearance_style": (0.0009, 0.2855),
    "temporal_style": (0.0, 0.364),
    "overall_consistency": (0.0, 0.364),
}
WEIGHT = {dimension: 0.5 if dimension == "dynamic_degree" else 1.0 for dimension in NORMALIZE}
QUALITY = (
    "subject_consistency",
    "background_consistency",
    "temporal_flickering",
    "motion_smoothness",
    "aesthetic_quality",
    "imaging_quality",
    "dynamic_degree",
)
SEMANTIC = tuple(dimension for dimension in NORMALIZE if dimension not in QUALITY)
QUALITY_WEIGHT, SEMANTIC_WEIGHT = 4, 1
DIMENSIONS = tuple(NORMALIZE)


class PartialDimensionsError(ValueError):
    pass


def normalized(dimension: str, raw: float) -> float:
    """(raw - min) / (max - min) x weight, as VBench's leaderboard."""
    if dimension not in NORMALIZE:
        raise KeyError(f"unknown VBench dimension {dimension!r}; known: {list(DIMENSIONS)}")
    low, high = NORMALIZE[dimension]
    return (raw - low) / (high - low) * WEIGHT[dimension]


def _weighted_mean(raw: dict[str, float], dimensions: tuple[str, ...]) -> float:
    return sum(normalized(d, raw[d]) for d in dimensions) / sum(WEIGHT[d] for d in dimensions)


def scores(raw: dict[str, float]) -> dict[str, float]:
    """Quality, Semantic and Total from the 16 raw dimension scores; refuses a partial set."""
    missing = [d for d in DIMENSIONS if d not in raw]
    if missing:
        raise PartialDimensionsError(
            f"VBench Total/Quality/Semantic need all {len(DIMENSIONS)} dimensions; missing {missing}. "
            "Report the dimensions on their own, or run the missing ones (standard mode, VBench's prompt suite)."
        )
    quality, semantic = _weighted_mean(raw, QUALITY), _weighted_mean(raw, SEMANTIC)
    total = (QUALITY_WEIGHT * quality + SEMANTIC_WEIGHT * semantic) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)
    return {"total": total, "quality": quality, "semantic": semantic}
