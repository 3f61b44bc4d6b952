"""PARE students inside diffusers' WanPipeline call path, on tiny random components built from config."""

import pytest
import torch
from diffusers import WanPipeline

from pare_bench.recipes import save_depth_artifact
from pare_bench.wan_pipeline import load_pare_transformer, tiny_components, with_transformer
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


def _router(dim=32, blocks=4):
    torch.manual_seed(1)
    router = BlockRouter(dim, blocks).eval()
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
    router = _router()
    record = {"depth": {"budget": 0.5, "router": "content", "hidden": 64}}
    save_depth_artifact(tmp_path, student, router, record)
    apply_router(student, router, RouterConfig(budget=0.5))
    expected = _call(with_transformer(pipe, student))
    loaded = load_pare_transformer(tmp_path)
    assert loaded.config.heads_per_block == [2, 3, 1, 2]
    torch.testing.assert_close(_call(with_transformer(pipe, loaded)), expected, rtol=0, atol=1e-6)


def test_missing_artifact_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="diffusion_pytorch_model.safetensors is missing"):
        load_pare_transformer(tmp_path / "nowhere")


def test_wan_loads_offline_from_a_local_directory_and_names_what_is_missing(pipe, tmp_path, monkeypatch):
    from pare_bench.wan_zoo import load_wan

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
