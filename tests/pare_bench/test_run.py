"""End to end: `python -m pare_bench run` on a tiny suite, through the CLI entry point."""

import json
from pathlib import Path

import pandas as pd
import pytest

from pare_bench.__main__ import main
from pare_bench.store import RunStore

SUITE = Path(__file__).parents[1] / "data" / "suites" / "run_tiny.yaml"
WORLD = ["colour_fidelity", "motion_direction", "dynamic_degree", "subject_consistency", "background_consistency"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["run", str(SUITE), "--out", str(out), "--limit", "2"]) == 0
    return out


@pytest.mark.integration
def test_run_writes_every_output(run_dir):
    names = ["a yellow circle moving up-0", "a magenta circle moving left-0"]
    expected = {"manifest.json", "records.jsonl", "leaderboard.csv", "report.md", "plots/quality_vs_flops.png"}
    for system in ("baseline", "fbcache"):
        expected |= {f"frames/{system}/{n}.npz" for n in names} | {f"videos/{system}/{n}.mp4" for n in names}
    written = {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}
    assert written == expected


@pytest.mark.integration
def test_leaderboard_rows_and_columns(run_dir):
    board = pd.read_csv(run_dir / "leaderboard.csv", index_col="system")
    assert list(board.index) == ["baseline", "fbcache"]
    for column in [
        "psnr",
        "ssim",
        *WORLD,
        "flops_per_step",
        "flops_per_video",
        "latency_p50",
        "latency_p90",
        "speedup",
    ]:
        assert column in board
    assert board.loc["baseline", "speedup"] == 1.0
    assert board.loc["fbcache", "flops_per_video"] <= board.loc["baseline", "flops_per_video"]
    assert 0 <= board.loc["fbcache", "ssim"] <= 1


@pytest.mark.integration
def test_manifest_and_flops_cross_check(run_dir):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {"suite", "suite_hash", "git", "versions", "hardware", "conventions"} <= set(manifest)
    (check,) = [r for r in RunStore(run_dir).records() if r["kind"] == "flops_check"]
    assert check["runtime_per_video"] == pytest.approx(check["analytic_per_video"], rel=0.01)
    assert check["fvcore_x2_per_forward"] == pytest.approx(check["analytic_per_forward"], rel=0.01)


@pytest.mark.integration
def test_rerun_resumes_without_redoing_work(run_dir):
    before = RunStore(run_dir).records()
    assert main(["run", str(SUITE), "--out", str(run_dir), "--limit", "2"]) == 0
    assert RunStore(run_dir).records() == before


@pytest.mark.integration
def test_same_seed_same_video_bytes(run_dir, tmp_path):
    assert main(["run", str(SUITE), "--out", str(tmp_path), "--limit", "1"]) == 0
    name = "videos/baseline/a yellow circle moving up-0.mp4"
    assert (tmp_path / name).read_bytes() == (run_dir / name).read_bytes()
    frames = "frames/baseline/a yellow circle moving up-0.npz"
    assert (tmp_path / frames).read_bytes() == (run_dir / frames).read_bytes()


BAD_SUITES = {
    "unknown_key": (
        "suite: x\ntask: t2v\nmodel: tiny-wan-t2v\nprompts: world:smoke\nsytems: [{name: baseline}]\nmetrics: []\n",
        ["did you mean 'systems'"],
    ),
    "wrong_type": (
        "suite: x\ntask: t2v\nmodel: tiny-wan-t2v\nprompts: world:smoke\nsamples_per_prompt: two\n"
        "systems: [{name: baseline}]\nmetrics: []\n",
        ["samples_per_prompt", ":5:"],
    ),
    "missing_prompts": (
        "suite: x\ntask: t2v\nmodel: tiny-wan-t2v\nprompts: nowhere.txt\nsystems: [{name: baseline}]\nmetrics: []\n",
        ["prompt file not found", "nowhere.txt"],
    ),
    "malformed": ("suite: x\ntask: [t2v\nmodel: tiny\n", ["malformed YAML", "line"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_bad_suite_exits_2_and_writes_nothing(case, tmp_path, capsys):
    text, fragments = BAD_SUITES[case]
    suite = tmp_path / "suite.yaml"
    suite.write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out)]) == 2
    message = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in message
    assert not out.exists()


def test_all_problems_in_one_message(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "suite: x\ntask: t2v\nmodel: tiny-wan-t2v\nprompts: nowhere.txt\nsamples_per_prompt: two\n"
        "sytems: [{name: baseline}]\nmetrics: [{metric: pnsr}]\n"
    )
    assert main(["run", str(suite), "--out", str(tmp_path / "out")]) == 2
    message = capsys.readouterr().err
    for fragment in ("nowhere.txt", "samples_per_prompt", "did you mean 'systems'", "did you mean 'psnr'"):
        assert fragment in message


def test_other_suite_in_run_dir_is_refused_and_fresh_starts_over(run_dir, tmp_path, capsys):
    other = tmp_path / "other.yaml"
    other.write_text(
        SUITE.read_text()
        .replace("suite: test_run_tiny", "suite: another")
        .replace("include: ../../../", f"include: {Path(__file__).parents[2]}/")
    )
    assert main(["run", str(other), "--out", str(run_dir)]) == 2
    assert "different suite" in capsys.readouterr().err
    not_a_run = tmp_path / "keep"
    (not_a_run / "precious.txt").parent.mkdir()
    (not_a_run / "precious.txt").write_text("x")
    assert main(["run", str(other), "--out", str(not_a_run), "--fresh"]) == 2
    assert (not_a_run / "precious.txt").exists()
