"""What the depth router's content input carries: a linear probe from the pooled content features to facts
about the scene, at the noise levels the sampler visits.

The router decides from the patch-embedded noisy input (`pare_core.router.pooled_content`). A content signal
worth its name tells scenes apart; this measures how well each feature set does, on balanced held-out scenes of
the tiny world:

- `moving`: one object, standing still or moving (50/50; chance 0.5);
- `objects`: one object or two (50/50; chance 0.5), a coarse fact of layout;
- `direction`: one moving object, which of the four ways (chance 0.25).

Each probe is `linear_probe.probe_accuracy` (logistic regression), trained on `scenes` scenes and scored on as
many others; the chance column is the majority label's share of the test scenes.
"""

from __future__ import annotations

import random

import torch

from pare_bench.linear_probe import majority_share, probe_accuracy
from pare_bench.tiny.world.conditioning import image_condition
from pare_bench.tiny.world.prompts import COLOURS, EVAL_SEED_BASE, SHAPES, Prompt, WorldObject
from pare_bench.tiny.world.render import render, sample_scene
from pare_bench.tiny.zoo import TinyWan
from pare_core.router import CONTENT_FEATURES, pooled_content

DIRECTIONS = ("left", "right", "up", "down")
TARGETS = ("moving", "objects", "direction")
PROBE_TIMES = (0.25, 0.5, 0.75, 0.9)


def _object(rng: random.Random, motion: str, avoid: str | None = None) -> WorldObject:
    colour = rng.choice([c for c in COLOURS if c != avoid])
    return WorldObject(colour, rng.choice(SHAPES), motion)


def probe_scenes(target: str, count: int, seed: int) -> tuple[list[Prompt], torch.Tensor]:
    """`count` prompts balanced over `target`'s labels, and the labels (count,)."""
    rng = random.Random(seed)
    prompts, labels = [], []
    for i in range(count):
        if target == "moving":
            label = i % 2
            prompts.append(Prompt((_object(rng, rng.choice(DIRECTIONS) if label else "still"),)))
        elif target == "objects":
            label = i % 2
            first = _object(rng, rng.choice(DIRECTIONS + ("still",)))
            others = (_object(rng, rng.choice(DIRECTIONS + ("still",)), avoid=first.colour),) if label else ()
            prompts.append(Prompt((first, *others)))
        elif target == "direction":
            label = i % len(DIRECTIONS)
            prompts.append(Prompt((_object(rng, DIRECTIONS[label]),)))
        else:
            raise ValueError(f"unknown probe target {target!r}; known: {TARGETS}")
        labels.append(label)
    return prompts, torch.tensor(labels)


@torch.no_grad()
def content_features(model: TinyWan, prompts: list[Prompt], seeds: list[int], t: float, noise_seed: int) -> dict:
    """{features: (N, content_dim)} of each feature set, from the patch-embedded noisy videos at noise level t."""
    world = model.spec.world
    video = render([sample_scene(p, s, world) for p, s in zip(prompts, seeds)], world) * 2 - 1
    noise = torch.randn(video.shape, generator=torch.Generator().manual_seed(noise_seed))
    hidden = (1 - t) * video + t * noise
    if model.spec.task == "i2v":
        hidden = torch.cat([hidden, image_condition(video[:, :, 0], world.frames)], dim=1)
    tokens = model.transformer.patch_embedding(hidden)
    return {features: pooled_content(tokens, features) for features in CONTENT_FEATURES}


def probe_content(model: TinyWan, scenes: int = 400, times: tuple[float, ...] = PROBE_TIMES) -> list[dict]:
    """One row per (t, target): chance and each feature set's held-out accuracy."""
    rows = []
    for index, target in enumerate(TARGETS):
        train_prompts, y_train = probe_scenes(target, scenes, seed=100 + index)
        test_prompts, y_test = probe_scenes(target, scenes, seed=200 + index)
        train_seeds = [EVAL_SEED_BASE + 10_000 * index + i for i in range(scenes)]
        test_seeds = [EVAL_SEED_BASE + 10_000 * index + scenes + i for i in range(scenes)]
        classes = int(y_train.max()) + 1
        for t in times:
            x_train = content_features(model, train_prompts, train_seeds, t, noise_seed=1)
            x_test = content_features(model, test_prompts, test_seeds, t, noise_seed=2)
            row = {"t": t, "target": target, "chance": majority_share(y_train, y_test)}
            for features in CONTENT_FEATURES:
                row[features] = probe_accuracy(x_train[features], y_train, x_test[features], y_test, classes)
            rows.append(row)
    return rows
