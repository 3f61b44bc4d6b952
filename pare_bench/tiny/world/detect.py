"""A plain, deterministic detector for videos of the tiny world, and the world metrics built on it.

Every pixel is assigned to the nearest palette colour (or the background) when it is within
`COLOUR_RADIUS` of it; pixels farther from all of them are "unknown". An object of a colour is
present in a frame when at least `MIN_AREA` pixels carry that colour. The frame is a torus (see
render.py), so its track is the circular mean of its pixels per frame, unwrapped frame to frame by the
shortest step (a moving object steps 4 px, far below half the frame), and its motion is the
least-squares slope of that track. No learning, no tuning on model outputs: the thresholds below are
fixed from the renderer's geometry.

What each score rewards (chance levels and trivial generators: docs/WORLD.md):
- presence: an object of each named colour is there (per named object).
- colour_fidelity: the named colours are there and no other palette colour is (per video).
- motion_direction: 4-way direction of each present object asked to move (still objects and absent
  objects are not counted: presence and still_accuracy score those).
- still_accuracy: each present object asked to stand still does.
- dynamic_degree: how far each present object moves along the asked direction, as a share of the asked travel.
- subject_consistency: stable size of each named object over frames.
- background_consistency: the pixels away from the named objects stay background in every frame.
- shape_accuracy: circle versus square of each present object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pare_bench.tiny.world.prompts import MOTION_VECTORS, Prompt, parse_prompt
from pare_bench.tiny.world.render import BACKGROUND, PALETTE, WorldConfig, wrapped

COLOUR_RADIUS = 0.30  # max RGB distance (in [0, 1] units) to call a pixel a palette colour
MIN_AREA = 8  # pixels; a rendered object covers ~50 (circle) to 64 (square)
PRESENT_FRACTION = 0.75  # an object must be seen in this share of frames to count as present
STILL_FRACTION = 0.35  # a track shorter than this share of the asked travel reads as "still"
SQUARE_FILL = 0.96  # area / bounding-box area: squares fill 1.0, circles 0.70-0.92 by sub-pixel phase (300 renders)

WORLD_METRICS = (
    "presence",
    "colour_fidelity",
    "motion_direction",
    "still_accuracy",
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
    contact: np.ndarray  # (F,) bool: the object touches another palette colour (objects cross on a torus)

    @property
    def present(self) -> bool:
        return bool(np.mean(self.areas >= MIN_AREA) >= PRESENT_FRACTION)

    def displacement(self, frame_size: tuple[int, int]) -> np.ndarray:
        """Fitted (dx, dy) from the first to the last frame, from a least-squares line per axis.

        The centroids are unwrapped first: each step between seen frames is taken the short way round
        the torus of `frame_size` (width, height).
        """
        seen = ~np.isnan(self.centroids[:, 0])
        frames = np.flatnonzero(seen).astype(np.float64)
        if len(frames) < 2:
            return np.zeros(2)
        steps = wrapped(np.diff(self.centroids[seen], axis=0), np.array(frame_size, dtype=np.float64))
        track = np.concatenate([self.centroids[seen][:1], self.centroids[seen][:1] + np.cumsum(steps, axis=0)])
        slope = np.polyfit(frames, track, deg=1)[0]  # (2,)
        return slope * (len(self.areas) - 1)

    def motion(self, travel: float, frame_size: tuple[int, int]) -> str:
        dx, dy = self.displacement(frame_size)
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


def _fill(mask: np.ndarray, centroids: np.ndarray) -> float:
    """Mean area / bounding-box area over frames, each frame rolled so its object sits mid-frame.

    Only frames where the object shows at least 95% of its largest area count: objects on a torus can
    cross, and the one drawn on top cuts the other's outline.
    """
    fills = []
    height, width = mask.shape[1:]
    areas = mask.sum(axis=(1, 2))
    for frame, (cx, cy), area in zip(mask, centroids, areas):
        if np.isnan(cx) or area < 0.95 * areas.max():
            continue
        centred = np.roll(frame, (height // 2 - int(cy), width // 2 - int(cx)), axis=(0, 1))
        ys, xs = np.nonzero(centred)
        fills.append(len(xs) / ((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)))
    return float(np.mean(fills)) if fills else 0.0


def _circular_mean(mask: np.ndarray, positions: np.ndarray, extent: int, areas: np.ndarray) -> np.ndarray:
    """Per-frame centroid along one axis of a torus: the angle of the mean unit vector of the pixels."""
    angle = 2 * np.pi * positions / extent
    with np.errstate(invalid="ignore", divide="ignore"):
        sin = (mask * np.sin(angle)).sum(axis=(1, 2)) / areas
        cos = (mask * np.cos(angle)).sum(axis=(1, 2)) / areas
    return (np.arctan2(sin, cos) * extent / (2 * np.pi)) % extent


def detect(video: np.ndarray) -> dict[str, Track]:
    """Track of every palette colour in a (F, H, W, 3) uint8 video."""
    return _tracks(classify_pixels(video))


def _tracks(labels: np.ndarray) -> dict[str, Track]:
    height, width = labels.shape[1:]
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    tracks = {}
    others = labels > 0  # (F, H, W) any palette colour
    for index, colour in enumerate(PALETTE, start=1):
        mask = labels == index  # (F, H, W)
        grown = mask | np.roll(mask, 1, 1) | np.roll(mask, -1, 1) | np.roll(mask, 1, 2) | np.roll(mask, -1, 2)
        contact = (grown & others & ~mask).any(axis=(1, 2))
        areas = mask.sum(axis=(1, 2))
        cx = _circular_mean(mask, xs, width, areas)
        cy = _circular_mean(mask, ys, height, areas)
        centroids = np.stack([cx, cy], axis=1)
        centroids[areas < MIN_AREA] = np.nan
        tracks[colour] = Track(colour, areas, centroids, _fill(mask, centroids), contact)
    return tracks


def _dynamic(track: Track, motion: str, config: WorldConfig) -> float:
    """1 when the object moves as far as asked along the asked direction (or stays put when still)."""
    travel = config.travel
    shift = track.displacement((config.width, config.height))
    if motion == "still":
        return float(np.clip(1.0 - np.abs(shift).max() / travel, 0.0, 1.0))
    along = float(np.dot(shift, MOTION_VECTORS[motion]))
    return float(np.clip(along / travel, 0.0, 1.0))


def _consistency(track: Track) -> float:
    """Stable size: 1 - coefficient of variation of the area, times the share of frames it is seen.

    Frames where the object touches another palette colour are left out: there one object may be
    drawn over the other, and the visible area says nothing about the object's own size.
    """
    areas = track.areas.astype(np.float64)[~track.contact]
    if len(areas) == 0:
        return 1.0  # touching in every frame: nothing to judge (two still objects side by side)
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
    per_object = {name: [] for name in ("presence", "motion_direction", "still_accuracy", "dynamic_degree")}
    per_object.update(subject_consistency=[], shape_accuracy=[])
    frame_size = (config.width, config.height)
    for obj in prompt.objects:
        track = tracks[obj.colour]
        present = track.present
        per_object["presence"].append(float(present))
        per_object["subject_consistency"].append(_consistency(track))
        if not present:
            continue  # an absent object counts against presence and colour, not against motion or shape
        motion_score = "still_accuracy" if obj.motion == "still" else "motion_direction"
        per_object[motion_score].append(float(track.motion(config.travel, frame_size) == obj.motion))
        per_object["dynamic_degree"].append(_dynamic(track, obj.motion, config))
        per_object["shape_accuracy"].append(float(track.shape == obj.shape))
    # NaN where a video has no object the score counts (no moving object, say); summaries skip NaN.
    scores.update({name: float(np.mean(values)) if values else float("nan") for name, values in per_object.items()})
    asked_labels = [list(PALETTE).index(colour) + 1 for colour in asked]
    scores["background_consistency"] = _background(labels, asked_labels)
    return scores
