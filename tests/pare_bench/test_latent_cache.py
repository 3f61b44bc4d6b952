"""The real-data path on tiny random pipeline components: mp4 + captions -> latent cache -> a recovery step."""

import json

import numpy as np
import pytest
import torch
from diffusers import WanPipeline

from pare_bench.store import encode_mp4
from pare_bench.wan.latent_cache import encode_dataset, latent_batches, read_captions
from pare_bench.wan.pipeline import tiny_components
from pare_core.distill import RecoveryConfig, recover
from pare_core.prune import HeadPlan, prune_heads

SIZE = dict(frames=9, height=32, width=32, max_text=16)


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "videos"
    folder.mkdir()
    captions = []
    for index, caption in enumerate(["a red circle moving left", "a blue square moving up", "a green circle"]):
        (folder / f"clip{index}.mp4").write_bytes(encode_mp4(rng.integers(0, 255, (12, 48, 48, 3), dtype=np.uint8)))
        captions.append(json.dumps({"file": f"clip{index}.mp4", "caption": caption}))
    (tmp_path / "captions.jsonl").write_text("\n".join(captions) + "\n")
    return folder, tmp_path / "captions.jsonl"


def test_mp4s_encode_once_and_a_recovery_step_trains_on_them(dataset, tmp_path):
    folder, captions = dataset
    pipe = WanPipeline(**tiny_components())
    cache = tmp_path / "cache"
    assert encode_dataset(pipe, folder, captions, cache, **SIZE) == 3
    assert encode_dataset(pipe, folder, captions, cache, **SIZE) == 0  # the second run reuses the cache
    item = torch.load(cache / "000000.pt", weights_only=True)
    assert item["latents"].shape == (16, 3, 4, 4) and item["text"].shape == (16, 32)
    assert item["caption"] == "a red circle moving left"
    teacher = pipe.transformer
    student = prune_heads(teacher, HeadPlan(((0, 1), (1, 2, 3), (0,), (2, 3))))
    before = [p.detach().clone() for p in student.parameters()]
    log = []
    recover(student, teacher, latent_batches(cache, batch=2), RecoveryConfig(steps=1, warmup=1), on_step=log.append)
    assert len(log) == 1 and np.isfinite(log[0]["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))


def test_bad_inputs_are_named(dataset, tmp_path):
    folder, captions = dataset
    (tmp_path / "bad.jsonl").write_text('{"file": "clip0.mp4", "caption": "x"}\n{"file": "nope.mp4", "caption": "y"}\n')
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_captions(folder, tmp_path / "bad.jsonl")
    pipe = WanPipeline(**tiny_components())
    encode_dataset(pipe, folder, captions, tmp_path / "cache", **SIZE)
    with pytest.raises(ValueError, match="was encoded with"):
        encode_dataset(pipe, folder, captions, tmp_path / "cache", **{**SIZE, "height": 48})
    with pytest.raises(ValueError, match="has 12 frames; the model takes 17"):
        encode_dataset(pipe, folder, captions, tmp_path / "other", **{**SIZE, "frames": 17})
