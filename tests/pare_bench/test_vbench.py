"""The real vbench package, in its own environment: preflight, and the harness's numbers against vbench's own.

The end-to-end test needs the environment from `python -m pare_bench setup-vbench`. It is skipped where that
environment is absent, except when PARE_REQUIRE_VBENCH=1 (CI sets it), where its absence is a failure.
"""

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from pare_bench.__main__ import main
from pare_bench.metrics import vbench
from pare_bench.metrics.vbench import READY, VBenchError, default_env, env_ready, parse_results, vbench_problems
from pare_bench.store import RunStore

SUITE = Path(__file__).parents[1] / "data" / "suites" / "run_tiny.yaml"


def _suite(tmp_path: Path, metrics: str) -> Path:
    text = SUITE.read_text().replace("include: ../../../", f"include: {Path(__file__).parents[2]}/")
    path = tmp_path / "suite.yaml"
    path.write_text(text.split("metrics:")[0] + "metrics:\n" + metrics)
    return path


def test_missing_weights_fail_before_generation_and_name_each_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "empty-cache"))
    suite = _suite(
        tmp_path, "  - {metric: vbench, dimensions: [temporal_flickering, subject_consistency, dynamic_degree]}\n"
    )
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--limit", "1"]) == 2
    message = capsys.readouterr().err
    cache = tmp_path / "empty-cache"
    assert (
        f"{cache}/dino_model/dino_vitbase16_pretrain.pth (for subject_consistency; from https://dl.fbaipublicfiles"
        in message
    )
    assert f"{cache}/raft_model/models/raft-things.pth (for dynamic_degree" in message
    assert "temporal_flickering" not in message  # it needs no weights
    assert not (tmp_path / "out").exists()


def test_a_video_vbench_skipped_is_an_error(tmp_path):
    results = {"temporal_flickering": [0.9, [{"video_path": "/v/a-0.mp4", "video_results": 0.9}]]}
    (tmp_path / "r.json").write_text(json.dumps(results))
    assert (
        parse_results(tmp_path / "r.json", ["temporal_flickering"], {"a-0.mp4"})["temporal_flickering"]["score"] == 0.9
    )
    with pytest.raises(VBenchError, match="expected"):
        parse_results(tmp_path / "r.json", ["temporal_flickering"], {"a-0.mp4", "b-0.mp4"})


def test_a_half_made_environment_is_named_incomplete_and_setup_completes_it(tmp_path, monkeypatch):
    """A setup interrupted after the venv exists: preflight says so; the next setup runs pip in the existing
    environment (no delete), checks the import and only then marks it ready; a ready one is left alone."""
    env = tmp_path / "vbench-env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_text("")
    assert "incomplete" in vbench_problems(["temporal_flickering"], env)[0]
    calls = []
    monkeypatch.setattr(vbench.subprocess, "run", lambda command, check: calls.append(command[1:]))
    monkeypatch.setattr(vbench.venv, "create", lambda *a, **k: pytest.fail("an existing environment was remade"))
    vbench.setup_env(env)
    assert calls[0][:3] == ["-m", "pip", "install"] and f"vbench=={vbench.VBENCH_VERSION}" in calls[0]
    assert calls[1] == ["-c", "import vbench"] and env_ready(env) and (env / READY).is_file()
    assert vbench_problems(["temporal_flickering"], env) == []
    vbench.setup_env(env)
    assert len(calls) == 2  # ready: nothing rerun


def test_a_failed_install_leaves_the_environment_not_ready(tmp_path, monkeypatch):
    env = tmp_path / "vbench-env"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_text("")

    def fail(command, check):
        raise subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(vbench.subprocess, "run", fail)
    with pytest.raises(subprocess.CalledProcessError):
        vbench.setup_env(env)
    assert not env_ready(env)


def _require_env() -> Path:
    env = default_env()
    if not env_ready(env):
        if os.environ.get("PARE_REQUIRE_VBENCH") == "1":
            pytest.fail(f"PARE_REQUIRE_VBENCH=1 but no VBench environment at {env}")
        pytest.skip(f"no VBench environment at {env} (python -m pare_bench setup-vbench)")
    return env


@pytest.mark.integration
def test_harness_temporal_flickering_equals_vbench_own_numbers(tmp_path):
    env = _require_env()
    suite = _suite(tmp_path, "  - {metric: world}\n  - {metric: vbench, dimensions: [temporal_flickering]}\n")
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out), "--limit", "2"]) == 0
    board = pd.read_csv(out / "leaderboard.csv", index_col="system")
    per_video = {
        (r["system"], r["name"]): r["values"]["vbench_temporal_flickering"]
        for r in RunStore(out).records()
        if r["kind"] == "metric" and r["metric"] == "vbench"
    }
    for system in board.index:
        # 1. the leaderboard value is VBench's own aggregate in the JSON it wrote
        aggregate, videos = json.loads((out / "vbench" / system / "eval_results.json").read_text())[
            "temporal_flickering"
        ]
        assert board.loc[system, "vbench_temporal_flickering"] == aggregate
        assert {Path(v["video_path"]).stem: v["video_results"] for v in videos} == {
            name: value for (s, name), value in per_video.items() if s == system
        }
        # 2. vbench's scoring function called directly on the run's mp4 files, in a fresh process
        files = sorted((out / "videos" / system).glob("*.mp4"))
        script = (
            "import sys, json; from vbench.temporal_flickering import cal_score; "
            "print(json.dumps([cal_score(p) for p in sys.argv[1:]]))"
        )
        direct = subprocess.run(
            [str(env / "bin" / "python"), "-c", script, *map(str, files)], capture_output=True, text=True, check=True
        )
        assert json.loads(direct.stdout.strip().splitlines()[-1]) == [per_video[(system, f.stem)] for f in files]


def _write_mp4(path: Path, frames: int, seed: int = 0) -> None:
    import numpy as np

    from pare_bench.store import encode_mp4

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (1, 32, 32, 3), dtype=np.uint8)
    video = np.clip(base.astype(int) + rng.integers(-8, 8, (frames, 32, 32, 3)), 0, 255).astype(np.uint8)
    path.write_bytes(encode_mp4(video))


@pytest.mark.integration
def test_standard_mode_scores_vbench_prompts_with_vbench_itself(tmp_path):
    """Standard mode: files named after VBench's own prompts; each dimension scores only its prompts' videos."""
    from pare_bench.metrics.vbench import run_vbench, standard_prompts

    _require_env()
    flicker = standard_prompts("temporal_flickering")[:2]
    # 946 entries in VBench_full_info.json, 944 distinct prompts (videos are named by prompt)
    assert len(standard_prompts("standard")) == 944 and len(standard_prompts("temporal_flickering")) == 75
    folder = tmp_path / "videos"
    folder.mkdir()
    for seed, prompt in enumerate(flicker):
        _write_mp4(folder / f"{prompt}-0.mp4", 16, seed)
    prompts = {f"{p}-0.mp4": p for p in flicker}
    results = run_vbench(folder, prompts, ["temporal_flickering"], tmp_path / "out", mode="standard")
    scores = results["temporal_flickering"]["videos"]
    assert set(scores) == set(prompts) and all(0 < s <= 1 for s in scores.values())
    assert results["temporal_flickering"]["score"] == pytest.approx(sum(scores.values()) / 2)


def test_i2v_dimensions_name_their_weights_before_generation(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "empty-cache"))
    text = SUITE.read_text().replace("include: ../../../", f"include: {Path(__file__).parents[2]}/")
    text = text.split("metrics:")[0] + "metrics:\n  - {metric: vbench, dimensions: [i2v_subject, camera_motion]}\n"
    suite = tmp_path / "suite.yaml"
    suite.write_text(text.replace("include: ", "task: i2v\nmodel: tiny-wan-i2v\ninclude: ", 1))
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--limit", "1"]) == 2
    message = capsys.readouterr().err
    assert "dino_vitbase16_pretrain.pth (for i2v_subject" in message
    assert "co-tracker" in message and not (tmp_path / "out").exists()


@pytest.mark.integration
def test_five_second_videos_are_flagged_for_vbench_long_before_generation(tmp_path, capsys):
    """40 frames at 8 fps = 5 s: VBench-Long. Its module imports torchvision.io.write_video, which torchvision
    0.29 removed, so in today's environment the run refuses up front and says why."""
    env = _require_env()
    suite = _suite(tmp_path, "  - {metric: vbench, dimensions: [temporal_flickering]}\n")
    suite.write_text(suite.read_text() + "frames: 40\n")
    importable = subprocess.run([str(env / "bin" / "python"), "-c", "import vbench2_beta_long"]).returncode == 0
    code = main(["run", str(suite), "--out", str(tmp_path / "out"), "--limit", "1"])
    if importable:  # a VBench environment where VBench-Long works: the videos are flagged and scored
        assert code == 0
        videos = [r for r in RunStore(tmp_path / "out").records() if r["kind"] == "video"]
        assert all(v["vbench_long"] and v["seconds"] == 5.0 for v in videos)
    else:
        assert code == 2
        message = capsys.readouterr().err
        assert "scored by VBench-Long, which does not import" in message and not (tmp_path / "out").exists()
