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
    expected |= {"plots/frames.png", "hypotheses.csv", "front.csv", "plots/front.png"}  # front: latency was timed
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


# ------------------------------------------------------------------------------------- reliability (issue 9)

TIMING = [
    "latency_p50",
    "latency_p90",
    "speedup",
    "speedup_low",
    "speedup_high",
    "latency_spread",
    "timing_noisy",
    "of_ideal",
]


def _board(run: Path) -> pd.DataFrame:
    """The leaderboard without the timing columns, which differ between any two runs."""
    return pd.read_csv(run / "leaderboard.csv", index_col="system").drop(columns=TIMING)


def _write_suite(tmp_path: Path, extra: str) -> Path:
    """run_tiny.yaml with `extra` appended (later keys win), written next to nothing it includes."""
    text = SUITE.read_text().replace("include: ../../../", f"include: {Path(__file__).parents[2]}/")
    path = tmp_path / "suite.yaml"
    path.write_text(text + extra)
    return path


@pytest.mark.integration
def test_gate_passes_on_the_reference_and_fails_on_a_degraded_system(run_dir, tmp_path, capsys):
    assert main(["compare", str(run_dir), str(run_dir)]) == 0
    assert "no regression" in capsys.readouterr().out
    # the same systems, but fbcache deliberately degraded: one denoising step instead of two
    degraded = _write_suite(
        tmp_path,
        "systems:\n  - {name: baseline}\n"
        "  - {name: fbcache, cache: {first_block: {threshold: 0.1}}, sampling: {steps: 1}}\n",
    )
    assert main(["run", str(degraded), "--out", str(tmp_path / "run"), "--limit", "2"]) == 0
    assert main(["compare", str(run_dir), str(tmp_path / "run")]) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "psnr" in out and "regression(s)" in out


@pytest.mark.integration
def test_non_finite_sample_fails_its_item_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    from pare_bench.systems import System

    real = System.generate

    def poisoned(self, prompts, seeds, first_frames=None):
        video = real(self, prompts, seeds, first_frames)
        return video * float("nan") if self.name == "fbcache" and "yellow" in prompts[0] else video

    monkeypatch.setattr(System, "generate", poisoned)
    assert main(["run", str(SUITE), "--out", str(tmp_path), "--limit", "2"]) == 1
    board = pd.read_csv(tmp_path / "leaderboard.csv", index_col="system")
    assert board.loc["fbcache", "failures"] == 1 and board.loc["fbcache", "videos"] == 1
    assert board.loc["baseline", "failures"] == 0 and board.loc["baseline", "videos"] == 2
    (failed,) = [r for r in RunStore(tmp_path).records() if "failed" in r]
    assert failed["failed"] == "non-finite values in the sample" and failed["system"] == "fbcache"


@pytest.mark.integration
def test_full_disk_mid_run_keeps_finished_work_and_a_rerun_completes(run_dir, tmp_path, monkeypatch, capsys):
    import errno
    import os

    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > 6:  # the manifest and a few frames, videos and records get through
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert main(["run", str(SUITE), "--out", str(tmp_path), "--limit", "2"]) == 1
    message = capsys.readouterr().err
    assert "No space left on device" in message and "rerun the same command to resume" in message
    monkeypatch.setattr(os, "fsync", real)
    assert not list(tmp_path.rglob(".*.tmp"))  # no half-written file left behind
    kept = [r for r in RunStore(tmp_path).records() if r["kind"] == "video"]
    assert kept and all(RunStore(tmp_path).frames_path(r["system"], r["name"]).is_file() for r in kept)
    assert main(["run", str(SUITE), "--out", str(tmp_path), "--limit", "2"]) == 0
    pd.testing.assert_frame_equal(_board(tmp_path), _board(run_dir))


def test_missing_weights_fail_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "weights" / "transformer").mkdir(parents=True)
    suite = _write_suite(tmp_path, "model: weights\n")
    assert main(["run", str(suite), "--out", str(tmp_path / "out")]) == 2
    message = capsys.readouterr().err
    assert "transformer/diffusion_pytorch_model.safetensors" in message
    assert "text_encoder/diffusion_pytorch_model.safetensors" in message
    assert "train-teacher" in message
    assert not (tmp_path / "out").exists()


def test_unwritable_output_directory_exits_2(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["run", str(SUITE), "--out", str(tmp_path / "file" / "run"), "--limit", "1"]) == 2
    assert "cannot write the run directory" in capsys.readouterr().err


@pytest.mark.integration
def test_kill_and_resume_at_random_points_gives_the_same_leaderboard(run_dir, tmp_path):
    """SIGKILL the run at several random moments, rerun the same command each time, then let it finish.

    A kill moment is a random number of new records (0: during start-up) plus a random delay, so the
    kills land at random places in the run's progress on any machine speed.
    """
    import random
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "pare_bench", "run", str(SUITE), "--out", str(tmp_path), "--limit", "2"]
    records = tmp_path / "records.jsonl"

    def count() -> int:
        return len(records.read_text().splitlines()) if records.exists() else 0

    rng, kills = random.Random(9), []
    for _ in range(5):
        target = count() + rng.randint(0, 3)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None and count() < target:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills.append(count())
        process.wait()
    print(f"killed at record counts {kills}")  # shown with -s, for the record
    assert len(kills) >= 3, f"only {len(kills)} kills landed before the run finished"
    assert subprocess.run(command, capture_output=True).returncode == 0
    pd.testing.assert_frame_equal(_board(tmp_path), _board(run_dir))
    assert _mp4_digests(tmp_path) == _mp4_digests(run_dir) and _mp4_digests(run_dir)  # byte-identical videos
    videos = [(r["system"], r["name"]) for r in RunStore(tmp_path).records() if r["kind"] == "video"]
    assert len(videos) == len(set(videos)) == 4  # no work item done twice


def test_corrupt_recovery_checkpoint_is_named_and_exits_2(tmp_path, monkeypatch, capsys):

    import pare_bench.tiny.recipes as recipes
    from pare_bench.suite import load_suite
    from pare_bench.tiny.zoo import load_tiny

    monkeypatch.setenv(recipes.ARTIFACTS_ENV, str(tmp_path / "artifacts"))
    suite = _write_suite(
        tmp_path, "systems:\n  - {name: baseline}\n  - {name: pw, recipe: {width: {ratio: 0.5, recovery_steps: 4}}}\n"
    )
    recipe = load_suite(suite).system("pw").recipe.width
    key = recipes.teacher_key(load_tiny("tiny-wan-t2v"))
    directory = tmp_path / "artifacts" / "tiny-wan-t2v" / f"width-{recipes.recipe_hash(key, recipe)}"
    directory.mkdir(parents=True)
    (directory / "recovery.pt").write_bytes(b"truncated")
    (directory / "recovery.pt.sha256").write_text("0" * 64)
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--limit", "1"]) == 2
    message = capsys.readouterr().err
    assert f"{directory / 'recovery.pt'} does not match its checksum" in message and "--retrain" in message


@pytest.mark.integration
def test_export_vbench_csv_rebuilds_from_records(run_dir, tmp_path, capsys):
    out = tmp_path / "board.csv"
    assert main(["export", str(run_dir), "--format", "vbench-csv", "--out", str(out)]) == 0
    board = pd.read_csv(out)
    assert list(board["Model Name"]) == ["baseline", "fbcache"]
    assert board["PSNR"].iloc[1] == pd.read_csv(run_dir / "leaderboard.csv")["psnr"].iloc[1]
    assert main(["export", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_routed_system_records_its_routing_and_its_flops_match_the_decisions(tmp_path, monkeypatch):
    """Run-time FLOPs of a routed video equal the analytic count of the blocks its recorded decisions kept."""
    import pare_bench.tiny.recipes as recipes

    monkeypatch.setenv(recipes.ARTIFACTS_ENV, str(tmp_path / "artifacts"))
    suite = _write_suite(
        tmp_path,
        "systems:\n  - {name: baseline}\n"
        "  - {name: routed, recipe: {depth: {budget: 0.6, router: content, steps: 2, pool: 2}}}\n",
    )
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--limit", "1"]) == 0
    records = RunStore(tmp_path / "out").records()
    (video,) = [r for r in records if r["kind"] == "video" and r["system"] == "routed"]
    assert len(video["routing"]) == video["steps"] and {len(step) for step in video["routing"]} == {8}
    assert video["seconds"] == 1.0 and video["vbench_long"] is False  # 8 frames at 8 fps: not VBench-Long
    checks = {r["system"]: r for r in records if r["kind"] == "flops_check"}
    assert checks["routed"]["runtime_per_video"] == pytest.approx(checks["routed"]["analytic_per_video"], rel=0.01)
    assert checks["routed"]["runtime_per_video"] < 0.7 * checks["baseline"]["runtime_per_video"]


def _mp4_digests(run_dir: Path) -> dict[str, str]:
    """sha256 of every mp4 the run wrote, by path in the run directory."""
    import hashlib

    return {
        str(path.relative_to(run_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((run_dir / "videos").rglob("*.mp4"))
    }


def _comparable(run_dir: Path) -> list[str]:
    """Every record but the timings, order-free."""
    records = [r for r in RunStore(run_dir).records() if r["kind"] != "latency"]
    return sorted(json.dumps(r, sort_keys=True) for r in records)


@pytest.mark.slow
def test_two_process_run_gives_the_same_records_as_one(tmp_path):
    """torchrun with 2 CPU processes (gloo): generation split by rank, merged by rank 0."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # torchrun's default per process; the same for both runs
    single = [sys.executable, "-m", "pare_bench", "run", str(SUITE), "--out", str(tmp_path / "one")]
    assert subprocess.run(single, env=env, capture_output=True).returncode == 0
    split = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531"]
    split += ["-m", "pare_bench", "run", str(SUITE), "--out", str(tmp_path / "two")]
    result = subprocess.run(split, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list((tmp_path / "two").glob("records.rank*.jsonl"))  # shards merged and removed
    assert _comparable(tmp_path / "two") == _comparable(tmp_path / "one")
    assert _mp4_digests(tmp_path / "two") == _mp4_digests(tmp_path / "one")  # byte-identical videos
    assert len([r for r in RunStore(tmp_path / "two").records() if r["kind"] == "video"]) == 8  # 4 prompts x 2


def test_lpips_without_local_weights_fails_before_generation(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    suite = _write_suite(tmp_path, "")
    suite.write_text(suite.read_text().split("metrics:")[0] + "metrics:\n  - {metric: lpips, reference: baseline}\n")
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--limit", "1"]) == 2
    assert "LPIPS needs its AlexNet weights at" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_bench_systems_times_routed_systems_against_the_baseline(tmp_path, monkeypatch):
    import pare_bench.tiny.recipes as recipes
    from pare_bench.system_bench import bench_systems

    monkeypatch.setenv(recipes.ARTIFACTS_ENV, str(tmp_path / "artifacts"))
    suite = _write_suite(
        tmp_path, "systems:\n  - {name: baseline}\n  - {name: r, recipe: {depth: {budget: 0.5, steps: 1, pool: 2}}}\n"
    )
    result = bench_systems(suite, ["r"], repeats=2, warmup=0)
    routed, base = result["systems"]["r"], result["systems"]["baseline"]
    assert base["flops_ratio"] == 1.0 and 0.4 < routed["flops_ratio"] < 0.6  # half the blocks, plus the rest
    assert len(routed["seconds"]) == 2 and routed["of_ideal"] > 0


@pytest.mark.integration
def test_manifest_records_threads_cpu_and_load(run_dir):
    hardware = json.loads((run_dir / "manifest.json").read_text())["hardware"]
    assert hardware["torch_threads"] == 1  # the tiny models' default
    assert hardware["cpu_model"] and len(hardware["load_average_start"]) == len(hardware["load_average_end"]) == 3


@pytest.mark.integration
def test_manifest_says_where_the_time_went(run_dir):
    phases = json.loads((run_dir / "manifest.json").read_text())["phase_seconds"]
    # the module's other tests rerun into this directory, and a resumed run's phases take ~0 s: no lower bound
    assert {"generate", "latency", "flops", "quality metrics", "distributions"} <= set(phases)
    assert all(isinstance(seconds, float) and seconds >= 0 for seconds in phases.values())


@pytest.mark.integration
def test_score_a_folder_agrees_with_the_run_that_made_it(run_dir, tmp_path):
    """The run's own mp4 files are lossless, so scoring them reproduces the run's paired and world numbers."""
    out = tmp_path / "scored"
    videos, reference = run_dir / "videos" / "fbcache", run_dir / "videos" / "baseline"
    arguments = ["score", str(videos), "--reference", str(reference), "--metrics", "world", "psnr", "--world"]
    assert main([*arguments, "--out", str(out)]) == 0
    scored = pd.read_csv(out / "leaderboard.csv", index_col="system")
    board = pd.read_csv(run_dir / "leaderboard.csv", index_col="system")
    assert scored.loc["fbcache", "psnr"] == pytest.approx(board.loc["fbcache", "psnr"], abs=1e-9)
    for column in ("presence", "colour_fidelity", "background_consistency"):
        assert scored.loc["fbcache", column] == pytest.approx(board.loc["fbcache", column], abs=1e-9)
        assert scored.loc["reference", column] == pytest.approx(board.loc["baseline", column], abs=1e-9)


def test_score_refuses_misnamed_files_and_a_missing_reference(tmp_path, capsys):
    (tmp_path / "clip.mp4").write_bytes(b"")
    assert main(["score", str(tmp_path), "--world"]) == 2
    assert "{prompt}-{index}.mp4" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "nowhere")]) == 2
    assert main(["score", str(SUITE.parent), "--metrics", "psnr"]) == 2


@pytest.mark.integration
def test_compare_warns_when_the_runs_differ_in_machine_and_threads(run_dir, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["hardware"].update(cpu_model="another CPU", torch_threads=4)
    (other / "manifest.json").write_text(json.dumps(manifest))
    main(["compare", str(run_dir), str(other)])
    out = capsys.readouterr().out
    assert "machine differs" in out and "thread count differs" in out
    assert "latency_p50" not in out and "speedup" in out  # across machines: ratios within each run, not seconds


def test_train_only_trains_the_students_and_writes_no_run(tmp_path, monkeypatch):
    import pare_bench.tiny.recipes as recipes

    monkeypatch.setenv(recipes.ARTIFACTS_ENV, str(tmp_path / "artifacts"))
    suite = _write_suite(
        tmp_path,
        "systems:\n  - {name: baseline}\n  - {name: d, recipe: {depth: {budget: 0.5, router: static, steps: 1}}}\n",
    )
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--train-only"]) == 0
    assert not (tmp_path / "out").exists()
    weights = list((tmp_path / "artifacts").rglob("diffusion_pytorch_model.safetensors"))
    (folder,) = {w.parts[-3] for w in weights}  # one trained system: its transformer and its router
    assert folder.startswith("depth-") and sorted(w.parts[-2] for w in weights) == ["router", "transformer"]
