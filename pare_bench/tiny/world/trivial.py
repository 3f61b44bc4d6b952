"""Reference scores of the world metrics: trivial generators, and the first-frame leak classifier.

A score means something only beside what no-skill generators get. Each generator below makes a
video for a (prompt, seed) without any model:

- `ground_truth`: the renderer's video (the ceiling: the detector's own error).
- `frozen`: the ground truth's first frame, repeated (right colours and shapes, no motion).
- `random_directions`: the same scene with every object moving in a uniformly drawn one of the four
  directions (motion at the right speed, direction at chance).
- `shuffled`: the ground truth of another prompt from the same list (right world, wrong prompt).

`first_frame_leak` fits a simple classifier (multinomial logistic regression on the pixels) from one
frame of ground truth to the motion word and scores it on held-out seeds: on a world with no shortcut
it stays at the 4-way chance of 0.25.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch

from pare_bench.linear_probe import probe_accuracy
from pare_bench.tiny.world.detect import score_video
from pare_bench.tiny.world.prompts import EVAL_SEED_BASE, MOTIONS, Prompt, WorldObject, parse_prompt, train_objects
from pare_bench.tiny.world.render import WorldConfig, render, render_prompt, sample_scene, to_uint8

DIRECTIONS = MOTIONS[:4]


def _with_motions(prompt: Prompt, motions: list[str]) -> Prompt:
    return Prompt(tuple(WorldObject(o.colour, o.shape, m) for o, m in zip(prompt.objects, motions)))


def trivial_video(kind: str, prompt: str, seed: int, others: list[str], config: WorldConfig) -> np.ndarray:
    """One (F, H, W, 3) uint8 video of the trivial generator `kind` for (prompt, seed)."""
    rng = random.Random(seed)
    if kind == "ground_truth":
        return render_prompt(prompt, seed, config).numpy()
    if kind == "frozen":
        first = render_prompt(prompt, seed, config).numpy()[:1]
        return np.repeat(first, config.frames, axis=0)
    if kind == "random_directions":
        parsed = parse_prompt(prompt)
        moved = _with_motions(parsed, [rng.choice(DIRECTIONS) for _ in parsed.objects])
        scene = sample_scene(moved, seed, config)  # same starts: they depend on the seed only
        return to_uint8(render([scene], config))[0].numpy()
    if kind == "shuffled":
        return render_prompt(rng.choice([p for p in others if p != prompt]), seed, config).numpy()
    raise ValueError(f"unknown trivial generator {kind!r}; known: {TRIVIAL_GENERATORS}")


TRIVIAL_GENERATORS = ("ground_truth", "frozen", "random_directions", "shuffled")


def trivial_scores(prompts: list[str], seeds: int, config: WorldConfig = WorldConfig()) -> dict[str, dict[str, float]]:
    """Mean world scores of every trivial generator over `prompts` x `seeds` evaluation seeds."""
    table = {}
    for kind in TRIVIAL_GENERATORS:
        scores = [
            score_video(trivial_video(kind, p, EVAL_SEED_BASE + s, prompts, config), p, config)
            for p in prompts
            for s in range(seeds)
        ]
        table[kind] = {name: float(np.nanmean([s[name] for s in scores])) for name in scores[0]}
    return table


def _direction_frames(seeds: range, place: Callable, config: WorldConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """First-frame pixels (N, H*W*3) of one-object moving prompts, and their direction labels (N,)."""
    objects = [obj for obj in train_objects() if obj.motion in DIRECTIONS]
    rng = random.Random(seeds.start)
    prompts = [Prompt((rng.choice(objects),)) for _ in seeds]
    scenes = [place(p, seed, config) for p, seed in zip(prompts, seeds)]
    video = to_uint8(render(scenes, config))[:, 0].float() / 255.0  # (N, H, W, 3)
    labels = torch.tensor([DIRECTIONS.index(p.objects[0].motion) for p in prompts])
    return video.flatten(1), labels


def first_frame_leak(
    train: int = 2000, test: int = 1000, config: WorldConfig = WorldConfig(), place: Callable = sample_scene
) -> float:
    """Held-out accuracy of a logistic regression (`linear_probe.probe_accuracy`) from the first ground-truth
    frame to the direction.

    `place(prompt, seed, config) -> Scene` draws the scenes (the renderer's own by default; a test
    passes a leaky one to show the classifier finds a leak where there is one).
    """
    x_train, y_train = _direction_frames(range(0, train), place, config)
    x_test, y_test = _direction_frames(range(EVAL_SEED_BASE, EVAL_SEED_BASE + test), place, config)
    return probe_accuracy(x_train, y_train, x_test, y_test, len(DIRECTIONS))
