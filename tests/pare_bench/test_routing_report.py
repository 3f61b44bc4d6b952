"""The routing summary against hand counts, and its plot."""

import itertools

import numpy as np
import pytest

from pare_bench.routing_report import plot_routing, spread, summarize_routing


def _video(system, prompt, routing):
    return {"kind": "video", "system": system, "name": prompt, "prompt": prompt, "routing": routing}


def _brute_spread(gates: np.ndarray) -> float:
    """Mean over steps of the mean Hamming distance over all ordered pairs of different videos."""
    pairs = list(itertools.permutations(range(len(gates)), 2))
    return float(
        np.mean([np.mean([np.abs(gates[i, s] - gates[j, s]).sum() for i, j in pairs]) for s in range(gates.shape[1])])
    )


def test_spread_is_the_mean_pairwise_hamming_distance():
    rng = np.random.default_rng(0)
    gates = (rng.random((5, 7, 8)) > 0.4).astype(float)
    assert spread(gates) == pytest.approx(_brute_spread(gates))
    assert spread(np.repeat(gates[:1], 4, axis=0)) == 0.0


def test_summary_counts_blocks_spread_and_sets():
    records = [
        _video("r", "a", ["1100", "1111"]),
        _video("r", "b", ["1010", "1111"]),
        _video("t", "a", ["1100", "0011"]),
        _video("t", "b", ["1100", "0011"]),
        {"kind": "video", "system": "baseline", "name": "a", "prompt": "a"},
    ]
    table = summarize_routing(records)
    assert list(table.index) == ["r", "t"]
    assert table.loc["r", "blocks_per_step"] == 3.0  # (2 + 4 + 2 + 4) / 4
    assert table.loc["r", "route_spread"] == 1.0  # 2 blocks differ at step 0, none at step 1
    assert table.loc["r", "route_sets_per_step"] == 1.5
    assert table.loc["t", "route_spread"] == 0.0


def test_routing_plot_is_drawn_only_for_routed_runs(tmp_path):
    records = [_video("r", p, ["1100", "1011", "0111"]) for p in "abcd"]
    assert plot_routing(records, tmp_path / "routing.png")
    assert (tmp_path / "routing.png").stat().st_size > 0
    assert not plot_routing([{"kind": "video", "system": "b", "name": "a", "prompt": "a"}], tmp_path / "none.png")
