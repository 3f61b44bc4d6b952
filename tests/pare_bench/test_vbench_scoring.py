"""VBench's Total/Quality/Semantic against values worked out by hand from VBench's constants."""

import pytest

from pare_bench.metrics.vbench_scoring import DIMENSIONS, PartialDimensionsError, normalized, scores

RAW = {
    "subject_consistency": 0.95,
    "background_consistency": 0.96,
    "temporal_flickering": 0.97,
    "motion_smoothness": 0.98,
    "aesthetic_quality": 0.60,
    "imaging_quality": 0.65,
    "dynamic_degree": 0.50,
    "object_class": 0.80,
    "multiple_objects": 0.40,
    "human_action": 0.90,
    "color": 0.85,
    "spatial_relationship": 0.50,
    "scene": 0.40,
    "appearance_style": 0.20,
    "temporal_style": 0.25,
    "overall_consistency": 0.27,
}


def test_scores_match_the_hand_computation():
    # By hand, with VBench's ranges (scripts/constant.py); dynamic degree weighs 0.5, so Quality's weights sum to 6.5.
    quality = (
        (0.95 - 0.1462) / (1 - 0.1462)
        + (0.96 - 0.2615) / (1 - 0.2615)
        + (0.97 - 0.6293) / (1 - 0.6293)
        + (0.98 - 0.706) / (0.9975 - 0.706)
        + 0.60
        + 0.65
        + 0.50 * 0.5
    ) / 6.5
    semantic = (
        0.80
        + 0.40
        + 0.90
        + 0.85
        + 0.50
        + 0.40 / 0.8222
        + (0.20 - 0.0009) / (0.2855 - 0.0009)
        + 0.25 / 0.364
        + 0.27 / 0.364
    ) / 9
    result = scores(RAW)
    assert result["quality"] == pytest.approx(quality, abs=1e-12) == pytest.approx(0.8071249462906818)
    assert result["semantic"] == pytest.approx(semantic, abs=1e-12) == pytest.approx(0.6738499354759434)
    assert result["total"] == pytest.approx((4 * quality + semantic) / 5, abs=1e-12) == pytest.approx(0.78046994412773)


def test_a_partial_set_of_dimensions_is_refused():
    partial = {k: v for k, v in RAW.items() if k != "scene"}
    with pytest.raises(PartialDimensionsError, match=r"missing \['scene'\]"):
        scores(partial)


def test_normalization_range_ends_and_unknown_dimensions():
    assert normalized("temporal_flickering", 0.6293) == 0 and normalized("temporal_flickering", 1.0) == 1
    assert normalized("dynamic_degree", 1.0) == 0.5
    assert len(DIMENSIONS) == 16
    with pytest.raises(KeyError, match="unknown VBench dimension 'flicker'"):
        normalized("flicker", 0.9)
