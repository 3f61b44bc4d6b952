"""Deterministic renderer of the tiny world: anti-aliased coloured shapes on a plain background.

The frame is a torus: an object that leaves one edge enters at the opposite one, and start positions
are drawn uniformly over the whole frame whatever the motion word. So nothing in one frame tells
the direction (a renderer that kept trajectories inside the frame made "move toward the middle" a
shortcut: the first frame predicted the direction 65% of the time). `tests/.../test_world.py`
measures the leak with a classifier from the first frame.

Scene parameters come from `random.Random(seed)` (platform-independent), and the rendering is
plain float arithmetic in torch, batched over videos, so the same (prompt, seed) gives the same
bytes on any machine, and training can render batches on the fly on CPU or GPU.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from pare_bench.tiny.world.prompts import MOTION_VECTORS, Prompt, parse_prompt

# Palette in [0, 1] RGB. Colours are far apart so the detector's nearest-colour rule is unambiguous.
PALETTE = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.80, 0.10),
    "blue": (0.15, 0.30, 1.00),
    "yellow": (0.95, 0.90, 0.10),
    "magenta": (0.90, 0.10, 0.90),
}
BACKGROUND = (0.10, 0.10, 0.10)


@dataclass(frozen=True)
class WorldConfig:
    frames: int = 8  # video length; several frames so temporal attention matters
    height: int = 24  # pixels
    width: int = 24  # pixels
    object_size: float = 8.0  # circle diameter / square side, pixels
    # Pixels per frame for a moving object: one 4-px transformer patch, so a moving object's patch
    # tokens are its previous frame's tokens shifted by one position, whatever its sub-patch offset.
    speed: float = 4.0

    @property
    def travel(self) -> float:
        """Displacement of a moving object from the first to the last frame, pixels."""
        return self.speed * (self.frames - 1)


@dataclass(frozen=True)
class Scene:
    """One video's parameters: for each object, its start centre (x, y) and velocity (px/frame)."""

    prompt: Prompt
    starts: tuple[tuple[float, float], ...]
    velocities: tuple[tuple[float, float], ...]


def wrapped(delta, extent: float):
    """Signed offset on a circle of length `extent`, in [-extent/2, extent/2): works on floats and tensors."""
    return (delta + extent / 2) % extent - extent / 2


def _apart(start_a: tuple[float, float], start_b: tuple[float, float], config: WorldConfig) -> bool:
    dx = wrapped(start_a[0] - start_b[0], config.width)
    dy = wrapped(start_a[1] - start_b[1], config.height)
    return max(abs(dx), abs(dy)) >= config.object_size + 1.0


def sample_scene(prompt: Prompt | str, seed: int, config: WorldConfig = WorldConfig()) -> Scene:
    """Draw each object's start uniformly over the torus, apart from the other object in the first frame.

    The rejection looks at the starts only, never at the velocities, so the start distribution is the
    same for every motion word (objects may cross later; the one named last is drawn on top).
    """
    prompt = parse_prompt(prompt) if isinstance(prompt, str) else prompt
    rng = random.Random(seed)
    for _ in range(10_000):
        starts = [(rng.uniform(0, config.width), rng.uniform(0, config.height)) for _ in prompt.objects]
        if len(starts) < 2 or _apart(starts[0], starts[1], config):
            break
    else:
        raise ValueError(f"{prompt.text!r} does not fit apart in a {config.width}x{config.height} frame")
    velocities = tuple(
        (MOTION_VECTORS[obj.motion][0] * config.speed, MOTION_VECTORS[obj.motion][1] * config.speed)
        for obj in prompt.objects
    )
    return Scene(prompt, tuple(starts), velocities)


def _coverage(scenes: list[Scene], config: WorldConfig, slot: int, device: torch.device | str) -> torch.Tensor:
    """Anti-aliased coverage of object `slot` in every scene: (B, F, H, W) in [0, 1]."""
    starts = torch.tensor([s.starts[slot] if slot < len(s.starts) else (0.0, 0.0) for s in scenes], device=device)
    has_slot = torch.tensor([slot < len(s.starts) for s in scenes], device=device)
    velocity = torch.tensor(
        [s.velocities[slot] if slot < len(s.velocities) else (0.0, 0.0) for s in scenes], device=device
    )
    is_square = torch.tensor(
        [slot < len(s.prompt.objects) and s.prompt.objects[slot].shape == "square" for s in scenes], device=device
    )
    frame = torch.arange(config.frames, dtype=torch.float32, device=device)
    centre = starts[:, None, :] + frame[None, :, None] * velocity[:, None, :]  # (B, F, 2)
    xs = torch.arange(config.width, dtype=torch.float32, device=device) + 0.5
    ys = torch.arange(config.height, dtype=torch.float32, device=device) + 0.5
    dx = wrapped(xs[None, None, None, :] - centre[..., 0, None, None], config.width)  # (B, F, 1, W)
    dy = wrapped(ys[None, None, :, None] - centre[..., 1, None, None], config.height)  # (B, F, H, 1)
    radius = config.object_size / 2
    round_dist = torch.sqrt(dx**2 + dy**2) - radius
    square_dist = torch.maximum(dx.abs(), dy.abs()) - radius
    dist = torch.where(is_square[:, None, None, None], square_dist, round_dist)
    # A scene without this slot covers nothing (on a torus, no start is off-frame).
    return (0.5 - dist).clamp(0.0, 1.0) * has_slot[:, None, None, None]


def render(
    scenes: list[Scene], config: WorldConfig = WorldConfig(), device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Render scenes to float videos (B, 3, F, H, W) in [0, 1], on `device`."""
    video = (
        torch.tensor(BACKGROUND, device=device)
        .view(1, 3, 1, 1, 1)
        .expand(len(scenes), 3, config.frames, config.height, config.width)
    )
    for slot in range(max(len(s.prompt.objects) for s in scenes)):
        alpha = _coverage(scenes, config, slot, device)[:, None]  # (B, 1, F, H, W)
        colour = torch.tensor(
            [PALETTE[s.prompt.objects[slot].colour] if slot < len(s.prompt.objects) else BACKGROUND for s in scenes],
            device=device,
        ).view(-1, 3, 1, 1, 1)
        video = video * (1 - alpha) + colour * alpha
    return video.contiguous()


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, F, H, W) floats in [0, 1] -> (B, F, H, W, 3) uint8, the storage and metric format."""
    return (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1).contiguous()


def render_prompt(prompt: str, seed: int, config: WorldConfig = WorldConfig()) -> torch.Tensor:
    """One reference video as uint8 (F, H, W, 3)."""
    return to_uint8(render([sample_scene(prompt, seed, config)], config))[0]
