"""The tiny world as a run backend: what `run` asks of the model a suite names, answered for a tiny teacher.

`pare_bench.backend.Backend` is the interface; `wan.run.WanRun` answers it for a real Wan2.1 pipeline. The
runner holds one and never checks which: systems (a teacher, a recipe's trained student, a cache hook), the
first frames of I2V videos (rendered by the world), FID (the world's own feature network against rendered
references), the FLOPs cross-check (three counters) and the head plans the report draws.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from functools import cached_property, partial
from pathlib import Path

import torch

from pare_bench.metrics import get_metric
from pare_bench.store import RunStore
from pare_bench.suite import MetricSpec, Suite, SystemSpec
from pare_bench.systems import BATCHED_CFG, CacheTarget, System, enable_cache
from pare_bench.tiny.evaluate import first_frames
from pare_bench.tiny.flops_check import flops_cross_check
from pare_bench.tiny.sample import SamplingConfig, sample
from pare_bench.tiny.world.render import render_prompt
from pare_bench.tiny.zoo import TinyWan

CALIBRATION_SEED = 40_000  # calibration videos (MagCache): a training-range seed no other stage draws


def _calibrate(model: TinyWan, sampling: SamplingConfig, videos: int) -> None:
    """`videos` videos of training-split prompts at `sampling`, for a cache's calibration pass."""
    from pare_bench.tiny.world.prompts import split_prompts

    prompts = split_prompts("train")[:videos]
    seeds = [CALIBRATION_SEED + i for i in range(len(prompts))]
    sample(model, prompts, seeds, sampling, first_frames(model, prompts, seeds))


@dataclass
class TinyBackend:
    teacher: TinyWan
    suite_dir: Path | None = None  # where `artifact:` paths start

    def build_system(
        self, spec: SystemSpec, sampling: SamplingConfig, artifacts: Path | None = None, retrain: bool = False
    ) -> System:
        """The teacher, a saved student (`artifact:`) or the student its recipe trains (cached under the recipe's
        hash), plus its cache hook."""
        model = self.teacher
        recipe = spec.recipe
        if spec.artifact is not None:  # a saved PARE transformer (`python -m pare_bench build`), routed or not
            from pare_bench.artifacts import load_pare_transformer

            student = load_pare_transformer(Path(self.suite_dir or ".") / spec.artifact)
            model = TinyWan(self.teacher.name, self.teacher.spec, student, self.teacher.text_encoder)
        if recipe is not None:
            from pare_bench.tiny.recipes import recipe_transformer

            student = recipe_transformer(self.teacher, recipe, artifacts, retrain)
            model = TinyWan(self.teacher.name, self.teacher.spec, student, self.teacher.text_encoder)
            if recipe.step_distill is not None:  # K single forwards: Euler, guidance folded in
                sd = recipe.step_distill
                sampling = replace(sampling, steps=sd.steps, guidance=1.0, scheduler="euler", shift=sd.shift)
        if spec.cache is None:
            return System(spec.name, model, sampling)
        model = copy.deepcopy(model)
        ((method, options),) = spec.cache.items()
        sampling = replace(sampling, batched_cfg=method in BATCHED_CFG)
        target = CacheTarget(lambda: model.current_timestep, sampling.steps, partial(_calibrate, model, sampling))
        enable_cache(model.transformer, method, options, target)
        return System(spec.name, model, sampling)

    def first_frames(self, prompts: list[str], seeds: list[int]) -> torch.Tensor | None:
        """I2V: each (prompt, seed)'s first frame as the world renders it; None for T2V."""
        return first_frames(self.teacher, prompts, seeds)

    @cached_property
    def _fid_network(self):
        from pare_bench.metrics.fid import load_world_features

        return load_world_features()

    def distribution(self, spec: MetricSpec, system: str, videos: list[dict], store: RunStore) -> float | None:
        """FID of `system`'s videos against the world's renders of the same prompts and seeds."""
        generated = [store.load_frames(system, v["name"]) for v in videos]
        references = [render_prompt(v["prompt"], v["seed"], self.teacher.spec.world).numpy() for v in videos]
        return get_metric(spec.metric).compute(self._fid_network, generated, references)

    def flops_cross_check(self, store: RunStore, system: System) -> None:
        flops_cross_check(store, system)

    def record_recipes(self, store: RunStore, suite: Suite) -> None:
        """What each trained system's recipe made: the kept heads of a width system beside the teacher's temporal
        scores (the report's head-role map), and every training stage as its log says (steps, plateau stop,
        validation curve, compute time)."""
        from pare_bench.artifacts import stage_summary
        from pare_bench.tiny.recipes import recipe_stages, width_plan
        from pare_core.heads import plan_heads, plan_overlap, temporal_kept

        records = store.records()
        heads = {r["system"] for r in records if r["kind"] == "heads"}
        trained = {(r["system"], r["stage"]) for r in records if r["kind"] == "training"}
        for spec in (s for s in suite.systems if s.recipe is not None):
            if spec.recipe.width is not None and spec.name not in heads:
                profile, plan = width_plan(self.teacher, spec.recipe.width)
                importance = plan_heads(profile, "importance", spec.recipe.width.ratio)
                store.append(
                    {
                        "kind": "heads",
                        "system": spec.name,
                        "temporal": profile.temporal,
                        "keep": plan.keep,
                        "overlap_importance": plan_overlap(plan, importance),
                        "temporal_kept": temporal_kept(profile, plan),
                    }
                )
            for stage, directory in recipe_stages(self.teacher, spec.recipe):
                summary = stage_summary(directory, stage)
                if summary is not None and (spec.name, stage) not in trained:
                    store.append({"kind": "training", "system": spec.name, **summary})
