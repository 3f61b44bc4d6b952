import pytest
import torch

from pare_bench.tiny.sample import SamplingConfig, make_scheduler, sample
from pare_bench.tiny.zoo import TINY_MODELS, build_tiny, load_tiny

FAST = SamplingConfig(steps=3)


def test_presets_leave_room_for_pruning_and_routing():
    for spec in TINY_MODELS.values():
        assert spec.transformer["num_layers"] >= 8 and spec.transformer["num_attention_heads"] >= 8
        assert spec.world.frames >= 4


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError, match="tiny-wan-t2v"):
        build_tiny("tiny-wan-t2x")


def test_missing_weights_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "transformer")):
        load_tiny("tiny-wan-t2v", tmp_path)


def test_save_load_round_trip(tmp_path, tiny_t2v):
    tiny_t2v.save(tmp_path)
    reloaded = load_tiny("tiny-wan-t2v", tmp_path)
    a = sample(tiny_t2v, ["a red circle moving left"], [3], FAST)
    b = sample(reloaded, ["a red circle moving left"], [3], FAST)
    assert torch.equal(a, b)


def test_same_seed_gives_bit_identical_video(tiny_t2v):
    a = sample(tiny_t2v, ["a green square moving up"], [7], FAST)
    b = sample(tiny_t2v, ["a green square moving up"], [7], FAST)
    c = sample(tiny_t2v, ["a green square moving up"], [8], FAST)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (1, 3, 8, 24, 24) and a.min() >= 0 and a.max() <= 1


def test_i2v_needs_and_uses_the_first_frame(tiny_i2v):
    with pytest.raises(ValueError, match="first_frames"):
        sample(tiny_i2v, ["a red circle moving left"], [1], FAST)
    frames = torch.zeros(2, 3, 24, 24)
    frames[1, 0, 4:12, 4:12] = 0.9
    video = sample(tiny_i2v, ["a red circle moving left"] * 2, [1, 1], FAST, first_frames=frames)
    assert not torch.equal(video[0], video[1])


def test_unknown_scheduler():
    with pytest.raises(ValueError, match="unipc"):
        make_scheduler(SamplingConfig(scheduler="ddim"))


@pytest.mark.parametrize("name", ["t2v", "i2v"])
def test_suite_frames_set_the_video_length(name, tiny_t2v, tiny_i2v):
    from pare_bench.tiny.evaluate import first_frames

    model = tiny_t2v if name == "t2v" else tiny_i2v
    image = first_frames(model, ["a red circle moving left"], [0])
    video = sample(model, ["a red circle moving left"], [0], SamplingConfig(steps=2, frames=5), image)
    assert video.shape == (1, 3, 5, 24, 24)
