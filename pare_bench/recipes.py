"""Trained systems built from suite recipes, cached on disk under their recipe hash.

A width recipe: profile the teacher's heads (cached per teacher), plan which heads go, prune
(`pare_core.prune`), then recover with stage-1 distillation (`pare_core.distill`) on tiny-world data.
The student lands in `ARTIFACTS_DIR/<teacher>/width-<hash>/transformer` with the recipe and its loss
log beside it; a later run loads it instead of training. Recovery checkpoints resume.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pare_bench.checkpoint import atomic_write_bytes, load_state, save_state
from pare_bench.suite import WidthRecipe
from pare_bench.train_teacher import TeacherRecipe, noised_inputs, shifted_timesteps, training_batch
from pare_bench.width import calibration_inputs, profile_model
from pare_bench.zoo import TinyWan, owned
from pare_core.distill import RecoveryConfig, recover
from pare_core.heads import HeadProfile, measure_norm_shift, plan_cross_heads, plan_heads
from pare_core.prune import HeadPlan, PrunedWanTransformer3DModel, prune_heads

ARTIFACTS_DIR = Path(__file__).parent / "artifacts"
RECOVERY_BATCH = 8


def recipe_hash(teacher: str, recipe: WidthRecipe) -> str:
    canonical = json.dumps({"teacher": teacher, "width": recipe.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def teacher_profile(teacher: TinyWan, root: Path) -> HeadProfile:
    path = root / teacher.name / "heads.json"
    if path.is_file():
        return HeadProfile.load(path)
    profile = profile_model(teacher)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile.save(path)
    return profile


def recovery_batches(teacher: TinyWan, seed: int):
    """step -> forward kwargs: fresh training-split scenes at shifted random noise levels, seeded by step."""
    recipe = TeacherRecipe(batch=RECOVERY_BATCH, prompt_dropout=0.1)

    @torch.no_grad()
    def batch_at(step: int) -> dict:
        rng = random.Random(seed * 1_000_003 + step)
        batch = training_batch(teacher, recipe, rng, "cpu")
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        t = shifted_timesteps(RECOVERY_BATCH, recipe.time_shift, generator)
        noise = torch.randn(batch["video"].shape, generator=generator)
        return noised_inputs(batch, t, noise, teacher.text_encoder(batch["tokens"]))

    return batch_at


def width_plan(teacher: TinyWan, recipe: WidthRecipe, root: Path = ARTIFACTS_DIR) -> tuple[HeadProfile, HeadPlan]:
    """The teacher's head profile and the heads `recipe` keeps (deterministic: the plan is never stored twice)."""
    profile = teacher_profile(teacher, root)
    plan = plan_heads(profile, recipe.score, recipe.ratio, recipe.temporal_weight, recipe.seed)
    if recipe.cross_ratio > 0:
        plan = replace(plan, cross_keep=plan_cross_heads(teacher.transformer, recipe.cross_ratio))
    return profile, plan


def pruned_teacher(
    teacher: TinyWan, recipe: WidthRecipe, root: Path = ARTIFACTS_DIR
) -> tuple[HeadPlan, PrunedWanTransformer3DModel]:
    """`recipe`'s plan and the teacher pruned to it, q/k norms corrected if the recipe asks; not yet recovered."""
    _, plan = width_plan(teacher, recipe, root)
    scales = cross_scales = None
    if recipe.norm_correction:
        inputs = calibration_inputs(teacher)
        scales = measure_norm_shift(teacher.transformer, plan, inputs)
        if plan.cross_keep is not None:
            cross_scales = measure_norm_shift(teacher.transformer, plan, inputs, attention="attn2")
    return plan, prune_heads(teacher.transformer, plan, norm_scales=scales, cross_norm_scales=cross_scales)


def train_width_student(
    teacher: TinyWan, recipe: WidthRecipe, directory: Path, root: Path
) -> PrunedWanTransformer3DModel:
    plan, student = pruned_teacher(teacher, recipe, root)
    directory.mkdir(parents=True, exist_ok=True)
    log = (directory / "recovery_log.jsonl").open("a")
    checkpoint = directory / "recovery.pt"
    config = RecoveryConfig(steps=recipe.recovery_steps)
    columns = (
        TextColumn(f"recover {directory.name}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("recover", total=config.steps)
        state = load_state(checkpoint) if checkpoint.exists() else None

        def on_step(record: dict) -> None:
            log.write(json.dumps(record) + "\n")
            bar.update(task, completed=record["step"])

        student = recover(
            student,
            teacher.transformer,
            recovery_batches(teacher, recipe.seed),
            config,
            state=state,
            on_checkpoint=lambda s: (log.flush(), save_state(checkpoint, s)),
            on_step=on_step,
        )
    log.close()
    student.save_pretrained(directory / "transformer")
    atomic_write_bytes(
        directory / "recipe.json",
        json.dumps(
            {
                "teacher": teacher.name,
                "width": recipe.model_dump(mode="json"),
                "heads_per_block": plan.heads_per_block,
                "cross_heads_per_block": plan.cross_heads_per_block,
            },
            indent=2,
        ).encode(),
    )
    return student


def width_student(teacher: TinyWan, recipe: WidthRecipe, root: Path = ARTIFACTS_DIR, retrain: bool = False):
    """The recovered student of `recipe`, from the artifact cache or trained now."""
    directory = root / teacher.name / f"width-{recipe_hash(teacher.name, recipe)}"
    weights = directory / "transformer" / "diffusion_pytorch_model.safetensors"
    if weights.is_file() and not retrain:
        return owned(PrunedWanTransformer3DModel.from_pretrained(directory / "transformer").eval())
    if retrain:
        for stale in ("recovery.pt", "recovery.pt.sha256", "recovery_log.jsonl"):
            (directory / stale).unlink(missing_ok=True)
    return train_width_student(teacher, recipe, directory, root).eval()
