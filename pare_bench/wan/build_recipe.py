"""Build recipes: the YAML file that says how `python -m pare_bench build` turns a Wan2.1 model into PARE.

A build recipe names the stages of the pipeline (`pare_bench.wan.build`) and their settings. It is validated like a
suite: every problem at once, each with its file, line and YAML path, before any GPU time is spent.

    model: wan2.1-t2v-1.3b           # the Wan2.1 model the recipe is written for (a pare_bench.wan.zoo name)
    profile: {inputs: 64, query_samples: 4096}
    width: {ratio: 0.5, score: temporal_quota, temporal_quota: 0.5}
    recovery: {steps: 2000, batch: 32, lr: 3.0e-4}
    joint: {steps: 2000, batch: 32, budget: 0.5, router: content}
    step_distill: {steps: 4, shift: 3.0, guidance: 5.0, trajectories: 1024, train_steps: 2000}

`width` is the suite's width recipe (`suite_schema.WidthRecipe`: ratio, score, quota, q/k norm correction);
its `recovery_steps` and `stop` are not used here, where `recovery:` says how stage 3 trains.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pare_bench.metrics.registry import did_you_mean
from pare_bench.suite_checks import _pydantic_problems
from pare_bench.suite_schema import StepDistillRecipe, WidthRecipe
from pare_bench.tiny.zoo import TINY_MODELS
from pare_bench.wan.zoo import WAN_MODELS
from pare_bench.yaml_source import FatalSuiteProblem, locate_problem, read_with_includes


class ProfileStage(BaseModel):
    """Stage 1: temporal role and importance of every self-attention head, on cached training latents."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: int = Field(64, ge=1)  # cached videos, each noised at every level of `timesteps`
    timesteps: tuple[float, ...] = (0.9, 0.7, 0.5, 0.3, 0.1)  # noise levels t in (0, 1)
    query_samples: int = Field(4096, ge=1)  # query rows per head for the temporal role (fits 75,600 tokens)
    seed: int = Field(0, ge=0)

    @field_validator("timesteps")
    @classmethod
    def _noise_levels(cls, timesteps: tuple[float, ...]) -> tuple[float, ...]:
        bad = [t for t in timesteps if not 0 < t < 1]
        if bad:
            raise ValueError(f"noise levels must lie in (0, 1); got {bad}")
        return timesteps


class RecoveryStage(BaseModel):
    """Stage 3: the pruned student distils from the teacher (`pare_core.distill.recover`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(2000, ge=0)
    batch: int = Field(32, ge=1)  # global batch: split over the processes, so any process count sees the same data
    lr: float = Field(3e-4, gt=0)
    warmup: int = Field(100, ge=1)
    feature_weight: float = Field(0.1, ge=0)
    checkpoint_every: int = Field(100, ge=1)
    seed: int = Field(0, ge=0)


class JointStage(BaseModel):
    """Stage 4: student and block router train together (`pare_core.distill.train_joint`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(2000, ge=0)
    batch: int = Field(32, ge=1)
    budget: float = Field(0.5, gt=0.0, le=1.0)  # share of the student's block FLOPs executed per forward
    router: Literal["content", "timestep"] = "content"
    content: Literal["mean", "motion"] = "motion"
    hidden: int = Field(64, ge=1)
    student_lr: float = Field(1e-4, gt=0)
    router_lr: float = Field(1e-3, gt=0)
    pool: int = Field(8, ge=0)  # batches whose per-sample block importances anchor the router (0: unanchored)
    rank_warmup: int = Field(300, ge=0)  # router-only steps fitting the pool before joint training
    warmup: int = Field(100, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    seed: int = Field(0, ge=0)


class StepDistillStage(StepDistillRecipe):
    """Stage 5: a `steps`-step student of the system the build has made so far (`pare_core.step_distill`),
    guidance folded in, trained on teacher trajectories from the cache's captions. `shift` must be the one the
    suite samples with (Wan2.1: 3.0 at 480p, 5.0 at 720p)."""

    lr: float = Field(5e-5, gt=0)
    warmup: int = Field(20, ge=1)
    checkpoint_every: int = Field(50, ge=1)


STAGES = ("profile", "width", "recovery", "joint", "step_distill")


class BuildRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: (
        str  # the model the recipe is written for: a pare_bench.wan.zoo name, or a tiny teacher (pare_bench.tiny.zoo)
    )
    profile: ProfileStage = ProfileStage()
    width: WidthRecipe
    recovery: RecoveryStage = RecoveryStage()
    joint: JointStage | None = None  # None: the build ends with the recovered width student
    step_distill: StepDistillStage | None = None  # None: no few-step student

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        known = sorted([*WAN_MODELS, *TINY_MODELS])
        if model not in known:
            raise ValueError(f"unknown model {model!r}{did_you_mean(model, known)}; known: {', '.join(known)}")
        return model

    @property
    def task(self) -> str:
        """t2v or i2v: what the model named by `model` generates."""
        return WAN_MODELS[self.model].task if self.model in WAN_MODELS else TINY_MODELS[self.model].task

    def stage_hash(self, stage: str) -> str:
        """A digest of everything that stage and the ones before it depend on: a finished stage is reused only
        when none of that changed."""
        parts = {name: getattr(self, name) for name in STAGES[: STAGES.index(stage) + 1]}
        canonical = json.dumps(
            {k: v.model_dump(mode="json") if v is not None else None for k, v in parts.items()}, sort_keys=True
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class BuildRecipeError(ValueError):
    def __init__(self, path: Path, problems: list[str]):
        self.problems = tuple(problems)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"invalid build recipe {path} ({count}):\n" + "\n".join(f"  {p}" for p in problems))


RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"


def load_build_recipe(path: Path) -> BuildRecipe:
    """Read and validate; raise one BuildRecipeError listing every problem with its line."""
    path = Path(path)
    if not path.is_file():
        shipped = sorted(p.name for p in RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.is_dir() else []
        raise BuildRecipeError(path, [f"{path}: no such recipe file; shipped recipes: {', '.join(shipped) or 'none'}"])
    try:
        data, index, problems = read_with_includes(path)
    except FatalSuiteProblem as fatal:
        raise BuildRecipeError(path, [str(fatal)]) from None
    recipe = None
    try:
        recipe = BuildRecipe.model_validate(data)
    except ValidationError as error:
        problems = [*problems, *_pydantic_problems(error, BuildRecipe)]
    if problems:
        formatted = sorted(locate_problem(index, loc, message) for loc, message in problems)
        raise BuildRecipeError(path, [line for _, line in formatted])
    return recipe
