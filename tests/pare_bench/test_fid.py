"""FID on the tiny world's feature network: clean-fid against torchmetrics, the frame rule, teacher vs random."""

import numpy as np
import pytest
import torch

from pare_bench.metrics.fid import clean_fid, features, load_world_features, sampled_frames, torchmetrics_fid
from pare_bench.tiny.world.prompts import split_prompts
from pare_bench.tiny.world.render import render_prompt


@pytest.fixture(scope="module")
def network():
    return load_world_features()


def _references(count: int, seed_base: int = 0) -> list[np.ndarray]:
    prompts = split_prompts("eval")
    return [render_prompt(prompts[i % len(prompts)], seed_base + i).numpy() for i in range(count)]


def test_frames_are_evenly_spaced_first_to_last():
    video = np.arange(8)[:, None, None, None] * np.ones((8, 2, 2, 3), dtype=np.uint8)
    assert sampled_frames(video)[:, 0, 0, 0].tolist() == [0, 4, 7]


def test_clean_fid_and_torchmetrics_agree_on_the_same_features(network):
    references = _references(48)
    rng = np.random.default_rng(0)
    noisy = [np.clip(v.astype(int) + rng.normal(0, 25, v.shape), 0, 255).astype(np.uint8) for v in _references(48, 500)]
    ours = clean_fid(features(network, noisy), features(network, references))
    theirs = torchmetrics_fid(network, noisy, references)
    print(f"FID on the same features: clean-fid {ours:.6g}, torchmetrics {theirs:.6g}")  # shown with -s
    assert ours > 0.1  # a real distance, not two copies of one set
    assert ours == pytest.approx(theirs, rel=0.01)


def test_same_distribution_scores_far_lower_than_a_perturbed_one(network):
    references = _references(48)
    same = clean_fid(features(network, _references(48, 1000)), features(network, references))
    shifted = [np.roll(v, 1, axis=-1) for v in _references(48, 2000)]  # colour channels permuted
    other = clean_fid(features(network, shifted), features(network, references))
    assert other > 5 * same


@pytest.mark.integration
def test_teacher_is_far_closer_to_the_world_than_a_random_init_model(network, tiny_t2v):
    from pare_bench.tiny.sample import SamplingConfig, sample
    from pare_bench.tiny.zoo import build_tiny

    prompts = split_prompts("eval")[:12]
    seeds = [1_000_000 + i for i in range(len(prompts))]
    references = [render_prompt(p, s).numpy() for p, s in zip(prompts, seeds)] * 2
    torch.manual_seed(0)
    random_init = build_tiny("tiny-wan-t2v")
    scores = {}
    for label, model in (("teacher", tiny_t2v), ("random-init", random_init)):
        videos = []
        for offset in (0, 1):  # two seeds per prompt
            batch = sample(model, prompts, [s + offset * 100 for s in seeds], SamplingConfig(steps=10))
            videos += list((batch.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1).numpy())
        scores[label] = clean_fid(features(network, videos), features(network, references))
    print(f"FID vs world reference: {scores}")  # shown with -s
    assert scores["teacher"] * 5 < scores["random-init"]


def test_inception_weights_are_named_when_missing(tmp_path, monkeypatch):
    from pare_bench.metrics.fid import INCEPTION_URL, InceptionFeatures, inception_problems

    monkeypatch.setenv("PARE_INCEPTION_DIR", str(tmp_path))
    (problem,) = inception_problems()
    assert str(tmp_path / "inception-2015-12-05.pt") in problem and INCEPTION_URL in problem
    with pytest.raises(FileNotFoundError, match="needs Inception weights"):
        InceptionFeatures()
