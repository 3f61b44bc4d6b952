import random

import numpy as np
import pytest

from pare_bench.world.detect import WORLD_METRICS, score_video
from pare_bench.world.prompts import (
    COLOURS,
    EVAL_SEED_BASE,
    HELD_OUT_TRIPLES,
    MOTIONS,
    SHAPES,
    parse_prompt,
    split_prompts,
    tokenize,
    train_objects,
)
from pare_bench.world.render import WorldConfig, render_prompt, sample_scene

EVAL_PROMPTS = split_prompts("eval") + split_prompts("heldout")


def _mean_scores(pairs) -> dict[str, float]:
    scores = [score_video(render_prompt(p, s).numpy(), q) for p, s, q in pairs]
    return {name: float(np.mean([s[name] for s in scores])) for name in scores[0]}


def test_renderer_is_deterministic_per_seed():
    prompt = "a blue square moving up and a yellow circle standing still"
    assert render_prompt(prompt, 5).numpy().tobytes() == render_prompt(prompt, 5).numpy().tobytes()
    assert render_prompt(prompt, 5).numpy().tobytes() != render_prompt(prompt, 6).numpy().tobytes()


def test_objects_stay_in_frame_and_apart():
    config = WorldConfig()
    for seed in range(50):
        scene = sample_scene("a red square moving right and a green circle moving down", seed)
        for (x, y), (vx, vy) in zip(scene.starts, scene.velocities):
            for frame in (0, config.frames - 1):
                assert config.object_size / 2 <= x + frame * vx <= config.width - config.object_size / 2
                assert config.object_size / 2 <= y + frame * vy <= config.height - config.object_size / 2


def test_detector_scores_ground_truth_near_one():
    scores = _mean_scores([(p, EVAL_SEED_BASE + s, p) for p in EVAL_PROMPTS for s in range(3)])
    for name in ("colour_fidelity", "motion_direction", "shape_accuracy", "background_consistency", "dynamic_degree"):
        assert scores[name] >= 0.98, (name, scores)
    assert scores["subject_consistency"] >= 0.95, scores


def test_detector_scores_shuffled_prompts_near_chance():
    rng = random.Random(0)
    pairs = [(p, EVAL_SEED_BASE + s, rng.choice(EVAL_PROMPTS)) for p in EVAL_PROMPTS for s in range(3)]
    pairs = [(p, s, q) for p, s, q in pairs if q != p]
    scores = _mean_scores(pairs)
    # Chance: 1 of 5 colours, 1 of 5 motions (and both must match for the direction to count).
    assert scores["colour_fidelity"] < 0.4, scores
    assert scores["motion_direction"] < 0.3, scores


def test_held_out_compositions_never_in_training():
    trained = {obj.triple for obj in train_objects()}
    assert not trained & HELD_OUT_TRIPLES
    assert all(parse_prompt(p).held_out for p in split_prompts("heldout"))
    assert not any(parse_prompt(p).held_out for p in split_prompts("eval") + split_prompts("train"))
    # Every word is still seen in training: only the combinations are new.
    assert {c for c, _, _ in trained} == set(COLOURS)
    assert {s for _, s, _ in trained} == set(SHAPES)
    assert {m for _, _, m in trained} == set(MOTIONS)


def test_prompt_grammar_round_trips_and_rejects_bad_prompts():
    for text in EVAL_PROMPTS:
        assert parse_prompt(text).text == text
    for bad in (
        "a purple circle moving left",
        "a red circle moving sideways",
        "a red circle moving left and a red square standing still",
    ):
        with pytest.raises(ValueError):
            parse_prompt(bad)
    with pytest.raises(ValueError, match="vocabulary"):
        tokenize("a red banana")
    assert set(WORLD_METRICS) <= set(score_video(render_prompt(EVAL_PROMPTS[0], 1).numpy(), EVAL_PROMPTS[0]))


def test_unknown_split_lists_known_ones():
    with pytest.raises(ValueError, match="known splits"):
        split_prompts("evl")
