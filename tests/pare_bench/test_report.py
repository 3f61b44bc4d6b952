"""Report pieces computed from records alone: the seed summary and the head-role map."""

import math

import pytest

from pare_bench.plots import plot_head_roles
from pare_bench.report import summarize, summarize_seeds

MANIFEST = {
    "suite": {
        "systems": [
            {"name": "base"},
            {"name": "pw-s0", "replica_of": "pw"},
            {"name": "pw-s1", "replica_of": "pw"},
            {"name": "pw-s2", "replica_of": "pw"},
        ],
        "metrics": [{"metric": "psnr", "reference": "base"}],
    }
}


def _psnr(system: str, name: str, value: float) -> dict:
    return {
        "kind": "metric",
        "system": system,
        "name": name,
        "metric": "psnr",
        "values": {"psnr": value},
        "held_out": None,
    }


def test_seed_summary_is_mean_and_sample_std_of_the_replica_means():
    records = [{"kind": "video", "system": s["name"], "name": "v"} for s in MANIFEST["suite"]["systems"]]
    # per replica two videos; replica means 20, 22, 27
    for system, values in (("pw-s0", (19, 21)), ("pw-s1", (22, 22)), ("pw-s2", (26, 28))):
        records += [_psnr(system, f"v{i}", value) for i, value in enumerate(values)]
    summary = summarize_seeds(summarize(records, MANIFEST), MANIFEST)
    assert list(summary.index) == ["base", "pw"]
    assert summary.loc["pw", "seeds"] == 3 and summary.loc["base", "seeds"] == 1
    assert summary.loc["pw", "psnr_mean"] == pytest.approx(23.0)
    assert summary.loc["pw", "psnr_std"] == pytest.approx(math.sqrt(((20 - 23) ** 2 + 1 + 16) / 2))


def test_no_seed_summary_without_replicas():
    manifest = {"suite": {"systems": [{"name": "a"}, {"name": "b"}], "metrics": []}}
    assert summarize_seeds(summarize([], manifest), manifest) is None


def test_head_role_map_draws_one_panel_per_distinct_plan(tmp_path, monkeypatch):
    import pare_bench.plots as report

    panels = []
    monkeypatch.setattr(report.plt, "subplots", _recording(report.plt.subplots, panels))
    temporal = [[0.1, 0.9], [0.5, 0.4]]
    records = [
        {"kind": "heads", "system": "a-s0", "temporal": temporal, "keep": [[1], [0, 1]]},
        {"kind": "heads", "system": "a-s1", "temporal": temporal, "keep": [[1], [0, 1]]},
        {"kind": "heads", "system": "r-s0", "temporal": temporal, "keep": [[0], [1]]},
    ]
    assert plot_head_roles(records, tmp_path / "roles.png")
    assert (tmp_path / "roles.png").stat().st_size > 0
    assert panels == [(1, 2)]
    assert not plot_head_roles([{"kind": "video"}], tmp_path / "none.png")


def test_plan_table_gives_each_width_system_its_overlap_and_temporal_share():
    from pare_bench.report import _plans_table

    temporal = [[0.1, 0.9], [0.5, 0.4]]
    records = [
        {
            "kind": "heads",
            "system": "q-s0",
            "temporal": temporal,
            "keep": [[1], [0, 1]],
            "overlap_importance": 1 / 3,
            "temporal_kept": 2 / 3,
        },
        {"kind": "heads", "system": "old", "temporal": temporal, "keep": [[0], [1]]},  # a run from before the fields
        {"kind": "video", "system": "q-s0"},
    ]
    rows = [line.split("|")[1:-1] for line in _plans_table(records).splitlines()[2:]]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["q-s0", "1 2", "0.67", "0.33"],
        ["old", "1 1", "-", "-"],
    ]


def _recording(subplots, calls):
    def wrapper(rows, columns, **options):
        calls.append((rows, columns))
        return subplots(rows, columns, **options)

    return wrapper


def test_vbench_style_csv_has_scores_only_from_all_sixteen_dimensions():
    from pare_bench.metrics.vbench_scoring import DIMENSIONS, scores
    from pare_bench.report import vbench_style

    manifest = {"suite": {"systems": [{"name": "full"}, {"name": "partial"}], "metrics": []}}
    raw = {d: 0.5 + 0.01 * i for i, d in enumerate(DIMENSIONS)}
    records = [
        {"kind": "vbench", "system": "full", **raw},
        {"kind": "vbench", "system": "partial", "temporal_flickering": 0.9},
    ]
    csv = vbench_style(summarize(records, manifest)).set_index("Model Name")
    assert list(csv.columns[:5]) == [
        "Total Score",
        "Quality Score",
        "Semantic Score",
        "Subject Consistency (raw)",
        "Subject Consistency (normalized)",
    ]
    assert csv.loc["full", "Total Score"] == pytest.approx(scores(raw)["total"])
    assert math.isnan(csv.loc["partial", "Total Score"])
    assert csv.loc["partial", "Scores note"].startswith("Total/Quality/Semantic empty: 1 of 16")
    assert csv.loc["full", "Scores note"] == "all 16 dimensions measured"
    assert csv.loc["partial", "Temporal Flickering (raw)"] == 0.9
    assert csv.loc["partial", "Temporal Flickering (normalized)"] == pytest.approx((0.9 - 0.6293) / (1 - 0.6293))
