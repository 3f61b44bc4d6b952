"""The build path from a Wan2.1 folder and captioned videos to PARE artifacts, on tiny random Wan components:
recipe validation, every stage, resumption after an interruption, 1 against 2 processes, and the artifacts in a
suite through WanPipeline. The commands are the ones docs/BUILD.md gives."""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pare_bench.__main__ import main
from pare_bench.wan.build_recipe import BuildRecipeError, load_build_recipe

ROOT = Path(__file__).parents[2]
TINY = ROOT / "tests" / "data" / "build_tiny.yaml"
ARTIFACTS = ("recovery/transformer", "pare/transformer", "pare/router", "pare-sd/transformer")


def test_shipped_recipes_validate():
    paths = sorted((ROOT / "recipes").glob("*.yaml"))
    assert {p.stem for p in paths} >= {"wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "wan2.1-i2v-14b-720p", "tiny-wan-t2v"}
    for path in paths:
        recipe = load_build_recipe(path)
        assert recipe.joint is not None and recipe.step_distill is not None, path


def test_recipe_problems_name_their_lines_and_suggest(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "model: wan2.1-t2v-1.3\n"
        "profile: {timesteps: [0.5, 1.5]}\n"
        "width: {ratio: 0.5}\n"
        "recovery:\n  stepz: 4\n"
        "joint: {budget: 2.0}\n"
    )
    with pytest.raises(BuildRecipeError) as caught:
        load_build_recipe(path)
    problems = "\n".join(caught.value.problems)
    assert "bad.yaml:1" in problems and "did you mean 'wan2.1-t2v-1.3b'" in problems
    assert "bad.yaml:2" in problems and "[1.5]" in problems
    assert "bad.yaml:5" in problems and "stepz" in problems
    assert "bad.yaml:6" in problems and "budget" in problems
    assert len(caught.value.problems) == 4


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Tiny random weights, four captioned mp4 files and their latent cache, made with the documented commands."""
    return _tiny_inputs(tmp_path_factory.mktemp("tiny_wan"), "t2v", "wan2.1-t2v-1.3b")


def _tiny_inputs(root: Path, task: str, model: str) -> Path:
    """`tiny-wan` then `encode-latents` into `root`, as docs/BUILD.md gives them."""
    assert main(["tiny-wan", str(root), "--task", task]) == 0
    encode = ["encode-latents", "--model", model, "--weights", str(root / "weights"), "--videos", str(root / "videos")]
    encode += ["--captions", str(root / "captions.jsonl"), "--out", str(root / "cache"), "--frames", "9"]
    assert main([*encode, "--height", "32", "--width", "32"]) == 0
    return root


def _build(inputs: Path, out: Path, recipe: Path = TINY) -> int:
    return main(
        ["build", str(recipe), "--model", str(inputs / "weights"), "--cache", str(inputs / "cache"), "--out", str(out)]
    )


@pytest.fixture(scope="module")
def reference(inputs):
    """One uninterrupted 1-process build."""
    assert _build(inputs, inputs / "reference") == 0
    return inputs / "reference"


def _weights(build: Path, part: str) -> dict:
    return load_file(build / part / "diffusion_pytorch_model.safetensors")


def _relative_difference(a: Path, b: Path, part: str, start: str | None) -> float:
    """|a - b| over how far `part` moved from `start` in build a (over |a| when `start` is None)."""
    x, y = _weights(a, part), _weights(b, part)
    origin = _weights(a, start) if start else {k: torch.zeros_like(v) for k, v in x.items()}
    gap = sum(float(((x[k] - y[k]).double() ** 2).sum()) for k in x) ** 0.5
    moved = sum(float(((x[k] - origin[k]).double() ** 2).sum()) for k in x) ** 0.5
    return gap / moved


class Interrupted(Exception):
    pass


def test_every_stage_writes_its_artifact_and_a_rerun_skips_them(reference, inputs, capsys):
    for folder in ("profile", "width", "recovery", "pare", "pare-sd"):
        assert json.loads((reference / folder / "stage.json").read_text())["processes"] == 1
    assert (reference / "pare-sd" / "router" / "config.json").is_file()
    plan = json.loads((reference / "width" / "plan.json").read_text())
    assert sum(map(len, plan["keep"])) == sum(plan["heads_per_block"]) < 4 * 4  # half the 16 heads kept
    for part in ARTIFACTS:  # training moved every trained part away from where it started
        start = {"recovery/transformer": "width/transformer", "pare/transformer": "recovery/transformer"}
        start["pare-sd/transformer"] = "pare/transformer"
        assert _relative_difference(reference, reference, part, start.get(part)) == 0
    before = {p: p.stat().st_mtime_ns for p in reference.rglob("*.safetensors")}
    capsys.readouterr()
    assert _build(inputs, reference) == 0
    assert {p: p.stat().st_mtime_ns for p in reference.rglob("*.safetensors")} == before


def test_a_build_from_another_recipe_is_refused_with_the_folder_named(reference, inputs, tmp_path, capsys):
    other = tmp_path / "other.yaml"
    other.write_text(
        TINY.read_text()
        .replace("include: ../../", f"include: {ROOT}/")
        .replace("steps: 4, batch: 2", "steps: 6, batch: 2", 1)
    )
    assert _build(inputs, reference, other) == 2
    assert "built from another recipe" in capsys.readouterr().err


@contextmanager
def _interrupt_at(stage: str, step: int, monkeypatch):
    """The build raises after `step` steps of `stage`, as a killed process stops: the stage's last checkpoint
    is on disk, the steps after it are lost."""
    import pare_bench.wan.build as build_module

    real = build_module.training_stage

    @contextmanager
    def interrupting(directory, name, total, writer=True):
        with real(directory, name, total, writer) as (state, on_step, on_checkpoint):

            def stop_after(record):
                on_step(record)
                if name == stage and record["step"] == step:
                    raise Interrupted(name)

            yield state, stop_after, on_checkpoint

    monkeypatch.setattr(build_module, "training_stage", interrupting)
    with pytest.raises(Interrupted):
        yield
    monkeypatch.setattr(build_module, "training_stage", real)


def test_a_build_interrupted_in_each_training_stage_resumes_to_the_same_artifacts(
    reference, inputs, tmp_path, monkeypatch
):
    out = tmp_path / "resumed"
    for stage in ("recovery", "joint", "step_distill"):  # checkpoints every 2 steps: step 3 is lost each time
        with _interrupt_at(stage, 3, monkeypatch):
            _build(inputs, out)
    assert _build(inputs, out) == 0
    for part in ARTIFACTS:
        x, y = _weights(reference, part), _weights(out, part)
        assert all(torch.equal(x[k], y[k]) for k in x), part


@pytest.mark.slow
def test_two_processes_build_what_one_builds(reference, inputs, tmp_path):
    """The documented `accelerate launch` command on 2 CPU processes (gloo). Data, noise and the router's
    budget are global-batch quantities, so the builds differ only by float summation order."""
    out = tmp_path / "two"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "pare_bench", "build"]
    launch += [str(TINY), "--model", str(inputs / "weights"), "--cache", str(inputs / "cache"), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "pare" / "stage.json").read_text())["processes"] == 2
    assert (out / "profile" / "heads.json").read_text() == (reference / "profile" / "heads.json").read_text()
    assert (out / "width" / "plan.json").read_text() == (reference / "width" / "plan.json").read_text()
    starts = {"recovery/transformer": "width/transformer", "pare/transformer": "recovery/transformer",
              "pare/router": None, "pare-sd/transformer": "pare/transformer"}  # fmt: skip
    for part, start in starts.items():  # measured: 0.000, 0.001, 0.000, 0.002 of the update
        assert _relative_difference(reference, out, part, start) < 0.01, part


@pytest.mark.slow
def test_the_built_artifacts_run_in_a_suite_through_the_pipeline(reference, inputs, tmp_path):
    """The suite `tiny-wan` writes (baseline, pare and pare+sd rows; the build's folders as `artifact:`) through
    WanPipeline, here pointed at the reference build."""
    suite = inputs / "suite.yaml"
    (inputs / "build").symlink_to(reference, target_is_directory=True)
    assert main(["run", str(suite), "--out", str(tmp_path / "run")]) == 0
    import pandas as pd

    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv").set_index("system")
    assert set(board.index) == {"baseline", "pare", "pare+sd"}
    flops = board["flops_per_video"]  # the whole sampling call: text encoder, transformer, VAE decode
    assert flops["pare+sd"] < flops["pare"] < flops["baseline"]
    assert board.loc["pare", "blocks_per_step"] < 4 and board.loc["pare+sd", "psnr"] > 0


def test_missing_inputs_and_a_mismatched_model_are_named(inputs, tmp_path, capsys):
    assert (
        main(
            [
                "build",
                str(TINY),
                "--model",
                str(tmp_path),
                "--cache",
                str(inputs / "cache"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "transformer/config.json is missing" in capsys.readouterr().err
    empty = tmp_path / "empty_cache"
    empty.mkdir()
    assert (
        main(
            [
                "build",
                str(TINY),
                "--model",
                str(inputs / "weights"),
                "--cache",
                str(empty),
                "--out",
                str(tmp_path / "o3"),
            ]
        )
        == 2
    )
    assert "no encoded items" in capsys.readouterr().err
    i2v = tmp_path / "i2v.yaml"
    i2v.write_text(f"include: {ROOT}/recipes/wan2.1-i2v-14b-720p.yaml\n")
    assert (
        main(
            [
                "build",
                str(i2v),
                "--model",
                str(inputs / "weights"),
                "--cache",
                str(inputs / "cache"),
                "--out",
                str(tmp_path / "o4"),
            ]
        )
        == 2
    )
    assert "holds a T2V transformer" in capsys.readouterr().err


@pytest.mark.slow
def test_an_i2v_build_conditions_on_the_first_frame_and_runs_in_the_pipeline(tmp_path):
    """I2V: the cache holds each video's first-frame condition and CLIP embedding, every stage trains on them,
    and the artifacts run inside WanImageToVideoPipeline."""
    from diffusers import WanImageToVideoPipeline
    from PIL import Image

    from pare_bench.artifacts import load_pare_transformer
    from pare_bench.wan.pipeline import with_transformer

    root = _tiny_inputs(tmp_path / "tw", "i2v", "wan2.1-i2v-14b-480p")
    item = torch.load(root / "cache" / "000000.pt", weights_only=True)
    assert item["condition"].shape == (20, 3, 4, 4) and item["image"].dim() == 2  # mask (4) + latents (16)
    recipe = ROOT / "tests" / "data" / "build_tiny_i2v.yaml"
    assert _build(root, root / "build", recipe) == 0
    pipe = WanImageToVideoPipeline.from_pretrained(root / "weights")
    call = dict(prompt="a red square moving right", image=Image.new("RGB", (32, 32), (200, 30, 30)), height=32,
                width=32, num_frames=9, output_type="pt")  # fmt: skip
    for artifact, sampling in (("pare", {"num_inference_steps": 3}), ("pare-sd", {"num_inference_steps": 2})):
        student = load_pare_transformer(root / "build" / artifact)
        frames = with_transformer(pipe, student)(**call, **sampling, generator=torch.Generator().manual_seed(0)).frames
        assert frames.shape == (1, 9, 3, 32, 32) and torch.isfinite(frames).all(), artifact


@pytest.mark.slow
def test_the_tiny_world_builds_like_a_wan_model_and_its_artifacts_run_in_a_tiny_suite(tmp_path):
    """The tiny world as a data source (`encode-world`) and the shipped tiny teacher as the model: the same
    `build`, then a tiny suite whose pare and pare+sd rows load the build's folders as `artifact:`."""
    cache, out = tmp_path / "cache", tmp_path / "build"
    assert main(["encode-world", "tiny-wan-t2v", "--videos", "4", "--out", str(cache)]) == 0
    item = torch.load(cache / "000002.pt", weights_only=True)
    assert item["latents"].shape == (3, 8, 24, 24) and item["text"].shape[-1] == 64
    teacher = ROOT / "pare_bench" / "weights" / "tiny-wan-t2v"
    recipe = ROOT / "tests" / "data" / "build_world.yaml"
    assert main(["build", str(recipe), "--model", str(teacher), "--cache", str(cache), "--out", str(out)]) == 0
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "suite: tiny_build\ntask: t2v\nmodel: tiny-wan-t2v\nprompts: world:smoke\nsamples_per_prompt: 1\n"
        "sampling: {steps: 4, guidance: 5.0, shift: 3.0, scheduler: unipc}\n"
        "systems:\n  - {name: baseline}\n  - {name: pare, artifact: build/pare}\n"
        "  - {name: pare+sd, artifact: build/pare-sd, sampling: {steps: 2, guidance: 1.0, scheduler: euler}}\n"
        "metrics:\n  - {metric: psnr, reference: baseline}\n  - {metric: world}\n  - {metric: flops, videos: 1}\n"
    )
    assert main(["run", str(suite), "--out", str(tmp_path / "run"), "--limit", "2"]) == 0
    import pandas as pd

    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv").set_index("system")
    assert board.loc["pare", "blocks_per_step"] < 8  # routed: blocks skipped
    assert (
        board.loc["pare+sd", "flops_per_video"]
        < board.loc["pare", "flops_per_video"]
        < board.loc["baseline", "flops_per_video"]
    )
    (tmp_path / "build" / "pare" / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    assert main(["run", str(suite), "--out", str(tmp_path / "run2")]) == 2  # named before anything is written
    assert not (tmp_path / "run2").exists()


def test_a_system_is_an_artifact_or_a_recipe_not_both(tmp_path):
    from pare_bench.suite import SuiteError, load_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "suite: s\ntask: t2v\nmodel: tiny-wan-t2v\nprompts: world:smoke\n"
        "systems:\n  - {name: baseline}\n  - {name: p, artifact: build/pare, recipe: {width: {ratio: 0.5}}}\n"
        "metrics:\n  - {metric: world}\n"
    )
    with pytest.raises(SuiteError, match="suite.yaml:7.*artifact.*not both"):
        load_suite(suite)
