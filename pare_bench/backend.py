"""What `run` asks of the model a suite names, in one interface: the tiny world (`tiny.backend.TinyBackend`) and a
real Wan2.1 pipeline (`wan.run.WanRun`) answer it, and the runner holds one without checking which."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from pare_bench.store import RunStore
from pare_bench.suite import MetricSpec, Suite, SystemSpec
from pare_bench.systems import System
from pare_bench.tiny.sample import SamplingConfig


class Backend(Protocol):
    def build_system(
        self, spec: SystemSpec, sampling: SamplingConfig, artifacts: Path | None = None, retrain: bool = False
    ) -> System:
        """The suite system `spec`, sampling with `sampling` (a recipe may change it)."""

    def first_frames(self, prompts: list[str], seeds: list[int]) -> torch.Tensor | None:
        """(B, 3, H, W) in [0, 1]: the image each I2V video starts from; None for T2V."""

    def distribution(self, spec: MetricSpec, system: str, videos: list[dict], store: RunStore) -> float | None:
        """The distribution metric `spec` (FID) of `system`'s `videos` (records), or None where it does not apply."""

    def flops_cross_check(self, store: RunStore, system: System) -> None:
        """Record the system's FLOPs counted independently of the run-time counter, where the backend can."""

    def record_recipes(self, store: RunStore, suite: Suite) -> None:
        """Record what each trained system's recipe made (kept heads, training stages), where the backend trains."""
