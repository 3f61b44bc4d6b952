"""FID: clean-fid's Frechet distance on features of sampled frames, against the world's reference videos.

Inception features mean nothing on 24x24 renders of coloured shapes, so the tiny world uses its own feature
network: `WorldFeatures`, an attribute classifier (which colours are present, and each one's shape) trained on
rendered train-split frames (`train_world_features`, shipped in pare_bench/weights/world-features). Its
penultimate activations (`FEATURE_DIM` wide) are the features.

Frames are sampled from each video by a fixed rule: `FRAMES_PER_VIDEO` frames, evenly spaced from the
first to the last (`sampled_frames`). The reference set is the world renderer's ground truth for the same
prompts and seeds as the generated videos.

The Frechet distance itself is clean-fid's (`cleanfid.fid.frechet_distance`), on the mean and covariance of
the features. torchmetrics' FrechetInceptionDistance, given `WorldFeatures` as its feature extractor, is the
cross-check (`torchmetrics_fid`, tested to agree within 1%).

Real video (the Wan path) uses clean-fid's Inception (`InceptionFeatures`: the torchscript
inception-2015-12-05.pt that clean-fid's "clean" mode loads, frames resized to 299 with clean-fid's PIL bicubic
resize). Its file is looked up in $PARE_INCEPTION_DIR (default ~/.cache/pare-bench/inception) and never
downloaded: `inception_problems` names it, with its source, before a run starts.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from cleanfid.fid import frechet_distance
from torch import nn

from pare_bench.metrics.registry import register_metric
from pare_bench.progress import progress
from pare_bench.tiny.world.prompts import COLOURS, sample_prompt, train_objects
from pare_bench.tiny.world.render import WorldConfig, render, sample_scene

FEATURE_DIM = 32
FRAMES_PER_VIDEO = 3
WEIGHTS = Path(__file__).parents[1] / "weights" / "world-features" / "world_features.pt"


class WorldFeatures(nn.Module):
    """(N, 3, H, W) uint8-range or [0, 1] frames -> (N, FEATURE_DIM) features; `logits` for training."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, 2 * len(COLOURS))  # per colour: present, and square (vs circle)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        frames = frames.float()
        if frames.max() > 1.0:  # torchmetrics hands over uint8 values
            frames = frames / 255.0
        return self.body(frames * 2 - 1)

    def logits(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward(frames))


def _labels(prompt) -> list[float]:
    present = [0.0] * len(COLOURS)
    square = [0.0] * len(COLOURS)
    for obj in prompt.objects:
        present[COLOURS.index(obj.colour)] = 1.0
        square[COLOURS.index(obj.colour)] = float(obj.shape == "square")
    return present + square


def train_world_features(steps: int = 600, batch: int = 64, seed: int = 0) -> WorldFeatures:
    """Train the attribute classifier on rendered train-split frames (a few minutes on CPU)."""
    torch.manual_seed(seed)
    rng, config, objects = random.Random(seed), WorldConfig(), train_objects()
    model = WorldFeatures()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    with progress() as bar:
        task = bar.add_task("train world features", total=steps)
        for _ in range(steps):
            prompts = [sample_prompt(rng, objects, two_object_prob=0.5) for _ in range(batch)]
            scenes = [sample_scene(p, rng.randrange(1_000_000), config) for p in prompts]
            videos = render(scenes, config)  # (B, 3, F, H, W)
            frame = torch.randint(config.frames, (batch,))
            frames = videos[torch.arange(batch), :, frame]
            frames = (frames + 0.05 * torch.randn_like(frames)).clamp(0, 1)  # robust to generation noise
            labels = torch.tensor([_labels(p) for p in prompts])
            mask = torch.cat([torch.ones(batch, len(COLOURS)), labels[:, : len(COLOURS)]], dim=1)  # shape if present
            loss = nn.functional.binary_cross_entropy_with_logits(model.logits(frames), labels, reduction="none") * mask
            loss = loss.sum() / mask.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.update(task, advance=1, description=f"train world features (loss {loss.item():.4f})")
    return model.eval()


@torch.no_grad()
def attribute_accuracy(model: WorldFeatures, videos: int = 256, seed: int = 12345) -> float:
    """Share of attribute bits (colour present, its shape) right on fresh renders of every world object."""
    from pare_bench.tiny.world.prompts import all_objects

    rng, config = random.Random(seed), WorldConfig()
    prompts = [sample_prompt(rng, all_objects(), two_object_prob=0.5) for _ in range(videos)]
    frames = render([sample_scene(p, rng.randrange(1_000_000), config) for p in prompts], config)[:, :, 0]
    labels = torch.tensor([_labels(p) for p in prompts])
    predicted = (model.logits(frames) > 0).float()
    present = labels[:, : len(COLOURS)]
    mask = torch.cat([torch.ones_like(present), present], dim=1)
    return float(((predicted == labels).float() * mask).sum() / mask.sum())


def load_world_features(path: Path = WEIGHTS) -> WorldFeatures:
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"world feature network not found: {path}; train it with `python -m pare_bench train-world-features`"
        )
    model = WorldFeatures()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def sampled_frames(video: np.ndarray, count: int = FRAMES_PER_VIDEO) -> np.ndarray:
    """`count` frames evenly spaced from the first to the last: (F, H, W, 3) -> (count, H, W, 3)."""
    index = np.linspace(0, len(video) - 1, count).round().astype(int)
    return video[index]


def _as_batch(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # (N, 3, H, W) uint8


@torch.no_grad()
def features(model: WorldFeatures, videos: list[np.ndarray]) -> np.ndarray:
    frames = np.concatenate([sampled_frames(v) for v in videos])
    return model(_as_batch(frames)).double().numpy()


def clean_fid(generated: np.ndarray, reference: np.ndarray) -> float:
    """clean-fid's Frechet distance between two feature sets (rows are samples)."""
    stats = [(f.mean(axis=0), np.cov(f, rowvar=False)) for f in (generated, reference)]
    return float(frechet_distance(stats[0][0], stats[0][1], stats[1][0], stats[1][1]))


def torchmetrics_fid(model: WorldFeatures, videos: list[np.ndarray], references: list[np.ndarray]) -> float:
    """The same distance through torchmetrics, with `model` as its feature extractor (the cross-check)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    model.num_features = FEATURE_DIM  # torchmetrics reads the feature width from here
    metric = FrechetInceptionDistance(feature=model, normalize=False)
    metric.update(_as_batch(np.concatenate([sampled_frames(v) for v in references])), real=True)
    metric.update(_as_batch(np.concatenate([sampled_frames(v) for v in videos])), real=False)
    return float(metric.compute())


INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"


def inception_dir() -> Path:
    return Path(os.environ.get("PARE_INCEPTION_DIR") or Path.home() / ".cache" / "pare-bench" / "inception")


def inception_problems() -> list[str]:
    path = inception_dir() / INCEPTION_FILE
    return [] if path.is_file() else [f"FID on real video needs Inception weights at {path} (from {INCEPTION_URL})"]


class InceptionFeatures:
    """clean-fid's Inception features (2048 wide) of sampled frames, the standard FID features for real video."""

    def __init__(self) -> None:
        from cleanfid.inception_torchscript import InceptionV3W
        from cleanfid.resize import make_resizer

        problems = inception_problems()
        if problems:
            raise FileNotFoundError(problems[0])
        self.model = InceptionV3W(str(inception_dir()), download=False, resize_inside=False).eval()
        self.resize = make_resizer("PIL", False, "bicubic", (299, 299))

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        resized = np.stack([self.resize(frame) for frame in frames])  # (N, 299, 299, 3) float in [0, 255]
        return self.model(torch.from_numpy(resized).permute(0, 3, 1, 2).float()).double().numpy()


def inception_fid(network: InceptionFeatures, videos: list[np.ndarray], references: list[np.ndarray]) -> float:
    """FID of real videos against reference videos on clean-fid's Inception features (same frame rule)."""
    generated, reference = (
        np.concatenate([network(sampled_frames(v)) for v in group]) for group in (videos, references)
    )
    return clean_fid(generated, reference)


def _suite_problems(suite) -> list[str]:
    """Real video needs Inception's weights; the tiny world has its own feature network."""
    from pare_bench.tiny.zoo import TINY_MODELS

    return [] if suite.model in TINY_MODELS else inception_problems()


@register_metric("fid", kind="distribution", higher_is_better=False, tolerance=1.10, problems=_suite_problems)
def fid(model: WorldFeatures, videos: list[np.ndarray], references: list[np.ndarray]) -> float:
    return clean_fid(features(model, videos), features(model, references))
