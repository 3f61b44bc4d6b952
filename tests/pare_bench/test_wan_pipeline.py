"""PARE students inside diffusers' WanPipeline call path, on tiny random components built from config."""

from pathlib import Path

import pytest
import torch
from diffusers import WanPipeline

from pare_bench.artifacts import load_pare_transformer, save_depth_artifact
from pare_bench.wan.pipeline import tiny_components, with_transformer
from pare_core.prune import HeadPlan, prune_heads
from pare_core.router import BlockRouter, RouterConfig, apply_router, remove_router, router_state

CALL = dict(
    prompt="a red circle moving left",
    negative_prompt="",
    height=32,
    width=32,
    num_frames=9,
    num_inference_steps=3,
    guidance_scale=5.0,
    max_sequence_length=16,
    output_type="pt",
)


PLAN = HeadPlan(((0, 1), (1, 2, 3), (0,), (2, 3)))


@pytest.fixture(scope="module")
def pipe():
    return WanPipeline(**tiny_components())


def _call(pipe):
    return pipe(**CALL, generator=torch.Generator().manual_seed(0)).frames


def _router(dim=32, blocks=4, budget=1.0):
    torch.manual_seed(1)
    router = BlockRouter(dim, blocks, budget=budget).eval()
    torch.nn.init.normal_(router.inp.weight, std=1.0)
    torch.nn.init.normal_(router.out.weight, std=2.0)
    return router


def test_pruned_and_routed_student_runs_in_the_pipeline(pipe):
    dense = _call(pipe)
    assert dense.shape == (1, 9, 3, 32, 32)
    student = prune_heads(pipe.transformer, PLAN)
    plain = _call(with_transformer(pipe, prune_heads(pipe.transformer, PLAN)))
    apply_router(student, _router(), RouterConfig(budget=1.0))
    assert torch.equal(_call(with_transformer(pipe, student)), plain)  # budget 1.0: the dense student exactly
    student._pare_router[1].budget = 0.5
    history = router_state(student).history
    history.clear()
    routed = _call(with_transformer(pipe, student))
    assert routed.shape == dense.shape and torch.isfinite(routed).all()
    assert len(history) == 2 * CALL["num_inference_steps"]  # CFG: conditional and unconditional forward per step
    assert all(0 < int(g.sum()) < 4 for g in history)  # blocks really skipped, never all
    remove_router(student)


def test_saved_routed_artifact_loads_into_the_pipeline_with_the_same_output(pipe, tmp_path):
    student = prune_heads(pipe.transformer, PLAN)
    router = _router(budget=0.5)
    save_depth_artifact(tmp_path, student, router, {"depth": {"budget": 0.5, "router": "content", "hidden": 64}})
    apply_router(student, router, RouterConfig(budget=0.5))
    expected = _call(with_transformer(pipe, student))
    loaded = load_pare_transformer(tmp_path)
    assert loaded.config.heads_per_block == [2, 3, 1, 2]
    torch.testing.assert_close(_call(with_transformer(pipe, loaded)), expected, rtol=0, atol=1e-6)


def test_missing_artifact_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="diffusion_pytorch_model.safetensors is missing"):
        load_pare_transformer(tmp_path / "nowhere")


def test_wan_loads_offline_from_a_local_directory_and_names_what_is_missing(pipe, tmp_path, monkeypatch):
    from pare_bench.wan.zoo import load_wan

    pipe.save_pretrained(tmp_path / "wan")
    loaded = load_wan("wan2.1-t2v-1.3b", tmp_path / "wan")
    assert isinstance(loaded, WanPipeline)
    torch.testing.assert_close(_call(loaded), _call(pipe), rtol=0, atol=1e-6)
    with pytest.raises(FileNotFoundError, match=r"missing .*transformer/config\.json.*huggingface-cli download"):
        load_wan("wan2.1-t2v-14b", tmp_path / "empty")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="Wan-AI/Wan2.1-T2V-14B-Diffusers is not in the local cache"):
        load_wan("wan2.1-t2v-14b")


def _weights_and_pare(pipe, root: Path) -> None:
    """The pipeline as a local diffusers directory `root/weights`, and a pruned, routed PARE transformer of it
    saved as `root/pare`."""
    pipe.save_pretrained(root / "weights")
    student = prune_heads(pipe.transformer, PLAN)
    save_depth_artifact(
        root / "pare", student, _router(budget=0.5), {"depth": {"budget": 0.5, "router": "content", "hidden": 64}}
    )


def _run(root: Path, suite: str) -> tuple:
    """`run` on the suite text (written to root/suite.yaml): the run's store and its video records."""
    from pare_bench.__main__ import main
    from pare_bench.store import RunStore

    (root / "suite.yaml").write_text(suite)
    assert main(["run", str(root / "suite.yaml"), "--out", str(root / "run")]) == 0
    store = RunStore(root / "run")
    return store, [r for r in store.records() if r["kind"] == "video"]


def test_a_wan_suite_runs_through_the_pipeline_with_a_saved_pare_transformer(pipe, tmp_path):
    """A Wan suite end to end on local tiny random weights: baseline, a cache system and a saved PARE
    transformer (pruned and routed) swapped into WanPipeline; videos at 16 fps, paired metrics, FLOPs."""
    _weights_and_pare(pipe, tmp_path)
    (tmp_path / "prompts.txt").write_text("a red circle moving left\na blue square moving up\n")
    store, videos = _run(
        tmp_path,
        "suite: wan_tiny\ntask: t2v\nmodel: wan2.1-t2v-1.3b\nweights: weights\nprompts: prompts.txt\n"
        "height: 32\nwidth: 32\nframes: 9\nsampling: {steps: 2, guidance: 5.0, shift: 3.0, scheduler: unipc}\n"
        "systems:\n  - {name: baseline}\n  - {name: pare, artifact: pare}\n"
        "  - {name: fbcache, cache: {first_block: {threshold: 0.2}}}\n"
        "  - {name: mag, cache: {mag: {calibration_videos: 1, retention_ratio: 0.0}}}\n"
        "metrics:\n  - {metric: psnr, reference: baseline}\n  - {metric: flops, videos: 1}\n"
        "  - {metric: latency, warmup: 0, repeats: 1}\n",
    )
    assert len(videos) == 8 and all(v["seconds"] == 9 / 16 for v in videos)
    assert store.load_frames("pare", videos[0]["name"]).shape == (9, 32, 32, 3)
    routed = [v for v in videos if v["system"] == "pare"]
    assert all(len(v["routing"]) == 2 for v in routed)  # one decision string per step
    flops = {v["system"]: v["flops"] for v in videos if "flops" in v}
    assert flops["pare"] < flops["baseline"]
    board = (tmp_path / "run" / "leaderboard.csv").read_text()
    assert "pare" in board and "fbcache" in board and "mag" in board


def test_a_cache_that_needs_batched_cfg_is_refused_on_wan(tmp_path):
    from pare_bench.suite import load_suite
    from pare_bench.wan.run import wan_problems

    (tmp_path / "prompts.txt").write_text("a red circle moving left\n")
    (tmp_path / "s.yaml").write_text(
        "suite: w\ntask: t2v\nmodel: wan2.1-t2v-1.3b\nprompts: prompts.txt\n"
        "systems:\n  - {name: baseline}\n  - {name: fc, cache: {faster: {}}}\nmetrics: []\n"
    )
    problems = wan_problems(load_suite(tmp_path / "s.yaml"), tmp_path / "s.yaml")
    assert any("system fc: cache 'faster'" in p and "two forwards" in p for p in problems)


def test_the_vbench_t2v_suite_without_weights_names_them_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    from pare_bench.__main__ import main

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    suite = Path(__file__).parents[2] / "suites" / "vbench_t2v.yaml"
    assert main(["run", str(suite), "--out", str(tmp_path / "run")]) == 2
    message = capsys.readouterr().err
    assert "Wan-AI/Wan2.1-T2V-14B-Diffusers is not in the local cache" in message
    assert "system pare: no PARE transformer at" in message
    assert not (tmp_path / "run").exists()


def _image_suite(root: Path, ratio: str = "1-1") -> Path:
    """A two-image stand-in for VBench's I2V image suite: its info file and crops, in VBench's layout."""
    import json

    from PIL import Image

    crop = root / "data" / "crop" / ratio
    crop.mkdir(parents=True)
    info = [
        {"prompt_en": "a red circle moving left", "image_name": "red.jpg",
         "dimension": ["i2v_subject", "temporal_flickering"]},
        {"prompt_en": "a blue square moving up", "image_name": "blue.jpg", "dimension": ["i2v_background"]},
    ]  # fmt: skip
    for entry, colour in zip(info, ((200, 30, 30), (30, 30, 200))):
        Image.new("RGB", (48, 40), colour).save(crop / entry["image_name"])
    (root / "vbench2_i2v_full_info.json").write_text(json.dumps(info))
    return root


def test_image_suite_problems_name_the_missing_files(tmp_path):
    from pare_bench import vbench_i2v

    assert "VBENCH_I2V_DIR is not set" in vbench_i2v.problems(None, "16-9")[0]
    assert "vbench2_i2v_full_info.json is missing" in vbench_i2v.problems(tmp_path, "16-9")[0]
    root = _image_suite(tmp_path / "suite")
    assert vbench_i2v.problems(root, "1-1") == []
    (root / "data" / "crop" / "1-1" / "blue.jpg").unlink()
    assert (
        "1 of 2 images missing" in vbench_i2v.problems(root, "1-1")[0]
        and "blue.jpg" in vbench_i2v.problems(root, "1-1")[0]
    )
    assert "2 of 2 images missing" in vbench_i2v.problems(root, "16-9")[0]
    image = vbench_i2v.load_image(root / "data" / "crop" / "1-1" / "red.jpg", 32, 48)
    assert image.shape == (3, 32, 48) and image[0].mean() > 0.7 > 0.2 > image[2].mean()


def test_a_wan_i2v_suite_runs_on_the_vbench_image_suite(tmp_path):
    """Wan I2V end to end on tiny random weights: each video is conditioned on its prompt's image from the image
    suite, a saved PARE transformer runs inside WanImageToVideoPipeline, and the real vbench scores each video
    against that image on the dimensions the suite assigns it (temporal_flickering: one image only)."""
    from diffusers import WanImageToVideoPipeline

    _weights_and_pare(WanImageToVideoPipeline(**tiny_components(task="i2v")), tmp_path)
    _image_suite(tmp_path / "images")
    store, videos = _run(
        tmp_path,
        "suite: wan_tiny_i2v\ntask: i2v\nmodel: wan2.1-i2v-14b-480p\nweights: weights\nprompts: vbench-i2v:1-1\n"
        "image_suite: images\nheight: 32\nwidth: 32\nframes: 9\n"
        "sampling: {steps: 2, guidance: 5.0, shift: 3.0, scheduler: unipc}\n"
        "systems:\n  - {name: baseline}\n  - {name: pare, artifact: pare}\n"
        "metrics:\n  - {metric: psnr, reference: baseline}\n  - {metric: flops, videos: 1}\n"
        "  - {metric: vbench, dimensions: [temporal_flickering]}\n",
    )
    assert sorted({v["prompt"] for v in videos}) == ["a blue square moving up", "a red circle moving left"]
    assert len(videos) == 4 and store.load_frames("pare", videos[0]["name"]).shape == (9, 32, 32, 3)
    flops = {v["system"]: v["flops"] for v in videos if "flops" in v}
    assert flops["pare"] < flops["baseline"]
    scored = [r for r in store.records() if r["kind"] == "metric" and r["metric"] == "vbench"]
    assert {r["name"] for r in scored} == {v["name"] for v in videos if v["prompt"] == "a red circle moving left"}
    assert all(0 <= r["values"]["vbench_temporal_flickering"] <= 1 for r in scored)


def test_the_vbench_i2v_suite_without_files_names_them_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    from pare_bench.__main__ import main

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("VBENCH_I2V_DIR", raising=False)
    suite = Path(__file__).parents[2] / "suites" / "vbench_i2v.yaml"
    assert main(["run", str(suite), "--out", str(tmp_path / "run")]) == 2
    message = capsys.readouterr().err
    assert "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers is not in the local cache" in message
    assert "VBench I2V image suite" in message and "vbench2_i2v_full_info.json is missing" in message
    assert "system pare: no PARE transformer at" in message
    assert not (tmp_path / "run").exists()
