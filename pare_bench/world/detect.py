"""A plain, deterministic detector for videos of the tiny world, and the world metrics built on it.

Every pixel is assigned to the nearest palette colour (or the background) when it is within
`COLOUR_RADIUS` of it; pixels farther from all of them are "unknown". An object of a colour is
present in a frame when at least `MIN_AREA` pixels carry that colour. Its track is the centroid per
frame, and its motion is the least-squares slope of that track. No learning, no tuning on model
outputs: the thresholds below are fixed from the renderer's geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pare_bench.world.prompts import MOTION_VECTORS, Prompt, parse_prompt
from pare_bench.world.render import BACKGROUND, PALETTE, WorldConfig

COLOUR_RADIUS = 0.30  # max RGB distance (in [0, 1] units) to call a pixel a palette colour
MIN_AREA = 8  # pixels; a rendered object covers ~50 (circle) to 64 (square)
PRESENT_FRACTION = 0.75  # an object must be seen in this share of frames to count as present
STILL_FRACTION = 0.35  # a track shorter than this share of the asked travel reads as "still"
SQUARE_FILL = 0.89  # area / bounding-box area: squares fill ~1.0, circles ~0.79

WORLD_METRICS = (
    "colour_fidelity",
    "motion_direction",
    "dynamic_degree",
    "subject_consistency",
    "background_consistency",
)


@dataclass(frozen=True)
class Track:
    colour: str
    areas: np.ndarray  # (F,) pixels per frame
    centroids: np.ndarray  # (F, 2) x, y; NaN where absent
    fill: float  # mean area / bounding-box area over frames where present

    @property
    def present(self) -> bool:
        return bool(np.mean(self.areas >= MIN_AREA) >= PRESENT_FRACTION)

    def displacement(self) -> np.ndarray:
        """Fitted (dx, dy) from the first to the last frame, from a least-squares line per axis."""
        seen = ~np.isnan(self.centroids[:, 0])
        frames = np.flatnonzero(seen).astype(np.float64)
        if len(frames) < 2:
            return np.zeros(2)
        slope = np.polyfit(frames, self.centroids[seen], deg=1)[0]  # (2,)
        return slope * (len(self.areas) - 1)

    def motion(self, travel: float) -> str:
        dx, dy = self.displacement()
        if max(abs(dx), abs(dy)) < STILL_FRACTION * travel:
            return "still"
        if abs(dx) >= abs(dy):
            return "right" if dx > 0 else "left"
        return "down" if dy > 0 else "up"

    @property
    def shape(self) -> str:
        return "square" if self.fill >= SQUARE_FILL else "circle"


def classify_pixels(video: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 -> (F, H, W) int labels: 0 background, 1..5 palette order, -1 unknown."""
    colours = np.array([BACKGROUND, *PALETTE.values()], dtype=np.float32)  # (6, 3)
    pixels = video.astype(np.float32) / 255.0
    dist = np.linalg.norm(pixels[..., None, :] - colours, axis=-1)  # (F, H, W, 6)
    labels = dist.argmin(-1)
    return np.where(dist.min(-1) <= COLOUR_RADIUS, labels, -1)


def _fill(mask: np.ndarray) -> float:
    fills = []
    for frame in mask:
        ys, xs = np.nonzero(frame)
        if len(xs) >= MIN_AREA:
            fills.append(len(xs) / ((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)))
    return float(np.mean(fills)) if fills else 0.0


def detect(video: np.ndarray) -> dict[str, Track]:
    """Track of every palette colour in a (F, H, W, 3) uint8 video."""
    return _tracks(classify_pixels(video))


def _tracks(labels: np.ndarray) -> dict[str, Track]:
    height, width = labels.shape[1:]
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    tracks = {}
    for index, colour in enumerate(PALETTE, start=1):
        mask = labels == index  # (F, H, W)
        areas = mask.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            cx = (mask * xs).sum(axis=(1, 2)) / areas
            cy = (mask * ys).sum(axis=(1, 2)) / areas
        centroids = np.stack([cx, cy], axis=1)
        centroids[areas < MIN_AREA] = np.nan
        tracks[colour] = Track(colour, areas, centroids, _fill(mask))
    return tracks


def _dynamic(track: Track, motion: str, travel: float) -> float:
    """1 when the object moves as far as asked along the asked direction (or stays put when still)."""
    shift = track.displacement()
    if motion == "still":
        return float(np.clip(1.0 - np.abs(shift).max() / travel, 0.0, 1.0))
    along = float(np.dot(shift, MOTION_VECTORS[motion]))
    return float(np.clip(along / travel, 0.0, 1.0))


def _consistency(track: Track) -> float:
    """Stable size: 1 - coefficient of variation of the area, times the share of frames it is seen."""
    areas = track.areas.astype(np.float64)
    seen = areas >= MIN_AREA
    if not seen.any():
        return 0.0
    variation = areas[seen].std() / areas[seen].mean()
    return float(np.clip(1.0 - variation, 0.0, 1.0) * seen.mean())


def _background(labels: np.ndarray, asked: list[int]) -> float:
    """Share of pixels away from the asked objects' tracks that read as background in every frame.

    Only the prompted colours are masked out (grown by one pixel for anti-aliased edges), so
    spurious blobs, flicker or unknown colours anywhere else count against the score.
    """
    objects = np.isin(labels, asked).any(axis=0)  # (H, W) ever covered by an asked object
    grown = objects.copy()
    grown[1:] |= objects[:-1]
    grown[:-1] |= objects[1:]
    grown[:, 1:] |= objects[:, :-1]
    grown[:, :-1] |= objects[:, 1:]
    away = ~grown
    if not away.any():
        return 0.0
    return float((labels[:, away] == 0).all(axis=0).mean())


def score_video(video: np.ndarray, prompt: Prompt | str, config: WorldConfig = WorldConfig()) -> dict[str, float]:
    """The five world metrics (plus shape accuracy) of one (F, H, W, 3) uint8 video, each in [0, 1]."""
    prompt = parse_prompt(prompt) if isinstance(prompt, str) else prompt
    labels = classify_pixels(video)
    tracks = _tracks(labels)
    asked = {obj.colour for obj in prompt.objects}
    found = {colour for colour, track in tracks.items() if track.present}
    n = len(prompt.objects)
    scores = {"colour_fidelity": max(len(found & asked) - len(found - asked), 0) / n}
    per_object = {"motion_direction": [], "dynamic_degree": [], "subject_consistency": [], "shape_accuracy": []}
    for obj in prompt.objects:
        track = tracks[obj.colour]
        present = track.present
        per_object["motion_direction"].append(float(present and track.motion(config.travel) == obj.motion))
        per_object["dynamic_degree"].append(_dynamic(track, obj.motion, config.travel) if present else 0.0)
        per_object["subject_consistency"].append(_consistency(track))
        per_object["shape_accuracy"].append(float(present and track.shape == obj.shape))
    scores.update({name: float(np.mean(values)) for name, values in per_object.items()})
    asked_labels = [list(PALETTE).index(colour) + 1 for colour in asked]
    scores["background_consistency"] = _background(labels, asked_labels)
    return scores
