"""The regression gate on hand-made leaderboards: directions, tolerances, bad input."""

import pandas as pd
import pytest

from pare_bench.__main__ import main
from pare_bench.compare import DEFAULT_TOLERANCES, compare_runs, load_tolerances

BASE = pd.DataFrame(
    {
        "failures": [0, 0],
        "psnr": [float("nan"), 28.0],
        "motion_direction": [0.4, 0.39],
        "fid": [800.0, 900.0],
        "latency_p50": [2.0, 1.5],
    },
    index=pd.Index(["baseline", "fbcache"], name="system"),
)


def _regressed(new: pd.DataFrame, tolerances=None) -> set[tuple[str, str]]:
    table = compare_runs(BASE, new, tolerances or load_tolerances(None))
    return {(row.system, row.metric) for row in table.itertuples() if row.regressed}


def test_identical_runs_pass():
    assert _regressed(BASE.copy()) == set()


@pytest.mark.parametrize(
    ("column", "system", "value", "regressed"),
    [
        ("psnr", "fbcache", 27.6, False),  # within 0.5 dB
        ("psnr", "fbcache", 27.4, True),
        ("psnr", "fbcache", 35.0, False),  # better is never a regression
        ("motion_direction", "baseline", 0.34, True),
        ("latency_p50", "fbcache", 2.2, False),  # within 1.5x
        ("latency_p50", "fbcache", 2.3, True),
        ("latency_p50", "baseline", 0.1, False),
        ("failures", "baseline", 1, True),
        ("fid", "fbcache", 985.0, False),  # lower is better: within 1.1x
        ("fid", "fbcache", 1000.0, True),
        ("fid", "baseline", 100.0, False),
    ],
)
def test_quality_falls_and_cost_rises_beyond_tolerance(column, system, value, regressed):
    new = BASE.copy()
    new.loc[system, column] = value
    assert ((system, column) in _regressed(new)) == regressed


def test_a_missing_system_or_metric_regresses():
    assert _regressed(BASE.drop(index="fbcache")) == {("fbcache", "(system)")}
    assert ("fbcache", "psnr") in _regressed(BASE.drop(columns="psnr"))


def test_tolerance_file_overrides_defaults(tmp_path):
    path = tmp_path / "tolerance.yaml"
    path.write_text("quality: {psnr: 2.0}\ncost: {latency_p50: 3.0}\n")
    tolerances = load_tolerances(path)
    assert tolerances["quality"]["psnr"] == 2.0 and tolerances["cost"]["latency_p50"] == 3.0
    assert tolerances["quality"]["ssim"] == DEFAULT_TOLERANCES["quality"]["ssim"]
    new = BASE.copy()
    new.loc["fbcache", ["psnr", "latency_p50"]] = [26.5, 4.0]
    assert _regressed(new, tolerances) == set()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("quality: {pnsr: 1.0}\n", "unknown quality metric 'pnsr'"),
        ("cost: {latency_p50: 0.5}\n", "cost.latency_p50 must be a ratio >= 1"),
        ("quality: {psnr: -1}\n", "quality.psnr must be >= 0"),
        ("qualty: {}\n", "qualty: Extra inputs are not permitted"),
        ("quality: [1\n", "cannot read tolerance file"),
    ],
)
def test_bad_tolerance_files_exit_2(text, message, tmp_path, capsys):
    for name in ("base", "new"):
        (tmp_path / name).mkdir()
        BASE.to_csv(tmp_path / name / "leaderboard.csv")
    (tmp_path / "t.yaml").write_text(text)
    assert (
        main(["compare", str(tmp_path / "base"), str(tmp_path / "new"), "--tolerance", str(tmp_path / "t.yaml")]) == 2
    )
    assert message in " ".join(capsys.readouterr().out.split())


def test_a_directory_without_leaderboard_exits_2(tmp_path, capsys):
    assert main(["compare", str(tmp_path), str(tmp_path)]) == 2
    assert "no leaderboard at" in capsys.readouterr().out


def test_a_noisy_timing_is_not_judged():
    """A latency far past tolerance in a run whose timing is flagged noisy is neither passed nor failed."""
    new = BASE.copy()
    new.loc["fbcache", "latency_p50"] = 30.0
    new["timing_noisy"] = ["False", "True"]
    table = compare_runs(BASE, new, load_tolerances(None)).set_index(["system", "metric"])
    assert table.loc[("fbcache", "latency_p50"), "status"] == "NOT JUDGED (timing spread too large)"
    assert not table["regressed"].any()
    new["timing_noisy"] = ["False", "False"]
    assert ("fbcache", "latency_p50") in _regressed(new)


def test_speedup_intervals_flag_a_loaded_timing():
    """Interleaved rounds: steady pairs support the speedup; rounds where load came and went do not."""
    from pare_bench.intervals import speedup_intervals

    steady = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98]
    records = [{"kind": "latency", "system": "baseline", "seconds": [2 * s for s in steady]}]
    quiet = speedup_intervals([*records, {"kind": "latency", "system": "fast", "seconds": steady}], "baseline")
    assert not quiet["fast"]["timing_noisy"] and quiet["fast"]["speedup_low"] > 1.9
    loaded = [1.0, 6.0, 1.0, 0.4, 5.0, 1.0]  # another process took the cores for some rounds
    noisy = speedup_intervals([*records, {"kind": "latency", "system": "fast", "seconds": loaded}], "baseline")
    assert noisy["fast"]["timing_noisy"]


def test_gate_defaults_come_from_the_metric_registry():
    from pare_bench.metrics import METRICS

    world = METRICS["world"]
    assert {f"{c}_heldout" for c in world.columns} <= set(DEFAULT_TOLERANCES["quality"])
    assert DEFAULT_TOLERANCES["quality"]["still_accuracy"] == world.tolerance
    assert DEFAULT_TOLERANCES["lower"]["fid"] == METRICS["fid"].tolerance
    assert set(DEFAULT_TOLERANCES["cost"]) == {"flops_per_step", "flops_per_video", "latency_p50", "latency_p90"}
