"""Trained systems built from suite recipes, cached on disk under their recipe hash.

A width recipe: profile the teacher's heads (cached per teacher), plan which heads go, prune
(`pare_core.prune`), then recover with stage-1 distillation (`pare_core.distill`) on tiny-world data.
The student lands in `artifacts_root()/<teacher>/width-<hash>/transformer` with the recipe and its loss
log beside it; a later run loads it instead of training. Recovery checkpoints resume.

A depth recipe starts from its width student (or the teacher when there is no width part), builds a block
router (`pare_core.router`) and trains both with stage 2 (`pare_core.distill.train_joint`); student and router
land in `artifacts_root()/<teacher>/depth-<hash>/`. The static-depth router is fixed before training: it keeps
the most important blocks (skip-one-block error on the calibration inputs) whose cost fits the recipe's window.
"""

from __future__ import annotations

import copy
import random
from dataclasses import replace
from pathlib import Path

import torch

from pare_bench.artifacts import (  # noqa: F401  ARTIFACTS_ENV, artifacts_root: part of this module's API
    ARTIFACTS_ENV,
    artifacts_root,
    bar_columns,
    continue_shorter_run,
    depth_hash,
    forget_training,
    load_depth_artifact,
    load_transformer,
    recipe_hash,
    save_depth_artifact,
    step_hash,
    teacher_key,
    training_stage,
    write_recipe,
)
from pare_bench.checkpoint import load_state, save_state
from pare_bench.progress import progress
from pare_bench.suite import DepthRecipe, Recipe, WidthRecipe
from pare_bench.tiny.step_data import segment_pairs, teacher_trajectories, validation_loss
from pare_bench.tiny.train_teacher import TeacherRecipe, noised_inputs, shifted_timesteps, training_batch
from pare_bench.tiny.width import calibration_inputs, profile_model
from pare_bench.tiny.zoo import TinyWan, owned
from pare_core.distill import JointConfig, RecoveryConfig, recover, to_device, train_joint, training_device
from pare_core.flops import block_flops
from pare_core.heads import HeadProfile, measure_norm_shift, plan_cross_heads, plan_heads
from pare_core.importance import block_importance, importance_pool, static_blocks, static_router
from pare_core.plateau import Plateau
from pare_core.prune import HeadPlan, PrunedWanTransformer3DModel, prune_heads
from pare_core.router import BlockRouter, apply_router, place

RECOVERY_BATCH = 8


def profile_path(teacher: TinyWan, root: Path) -> Path:
    """The cached head profile of this teacher (its weights' digest in the name)."""
    return root / teacher.name / f"heads-{teacher_key(teacher).partition('@')[2]}.json"


def teacher_profile(teacher: TinyWan, root: Path) -> HeadProfile:
    path = profile_path(teacher, root)
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


VALIDATION_DATA_SEED = 30_000  # held-out scenes for the stop rule: no training stage draws these
VALIDATION_BATCHES = 4


def plateau_stop(teacher: TinyWan, stop, seed: int) -> dict:
    """`recover` / `train_joint` keyword arguments for a recipe's stop rule (none without one): a Plateau, and
    `validate(model)`, the output MSE against the teacher on fixed held-out batches (teacher outputs cached)."""
    if stop is None:
        return {}
    batch_at = recovery_batches(teacher, VALIDATION_DATA_SEED + seed)
    held_out = []
    with torch.no_grad():
        for index in range(VALIDATION_BATCHES):
            inputs = batch_at(index)
            held_out.append(
                (
                    inputs,
                    teacher.transformer(**to_device(inputs, teacher.transformer.device), return_dict=False)[0].cpu(),
                )
            )

    def validate(model) -> torch.Tensor:
        errors = [
            torch.nn.functional.mse_loss(
                model(**to_device(x, model.device), return_dict=False)[0], target.to(model.device)
            )
            for x, target in held_out
        ]
        return torch.stack(errors).mean()

    return {"validate": validate, "plateau": Plateau(**stop.model_dump())}


def width_plan(teacher: TinyWan, recipe: WidthRecipe, root: Path | None = None) -> tuple[HeadProfile, HeadPlan]:
    """The teacher's head profile and the heads `recipe` keeps (deterministic: the plan is never stored twice)."""
    root = artifacts_root() if root is None else root
    profile = teacher_profile(teacher, root)
    plan = plan_heads(profile, recipe.score, recipe.ratio, recipe.temporal_weight, recipe.seed, recipe.temporal_quota)
    if recipe.cross_ratio > 0:
        plan = replace(plan, cross_keep=plan_cross_heads(teacher.transformer, recipe.cross_ratio))
    return profile, plan


def pruned_teacher(
    teacher: TinyWan, recipe: WidthRecipe, root: Path | None = None
) -> tuple[HeadPlan, PrunedWanTransformer3DModel]:
    """`recipe`'s plan and the teacher pruned to it, q/k norms corrected if the recipe asks; not yet recovered."""
    root = artifacts_root() if root is None else root
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
    config = RecoveryConfig(steps=recipe.recovery_steps)
    with training_stage(directory, "recovery", config.steps) as (state, on_step, on_checkpoint):
        batches = recovery_batches(teacher, recipe.seed)
        stop = plateau_stop(teacher, recipe.stop, recipe.seed)
        student = recover(student, teacher.transformer, batches, config, state, on_checkpoint, on_step, **stop)
    student.cpu()  # trained where `training_device` says; kept on the CPU between stages
    teacher.transformer.cpu()
    student.save_pretrained(directory / "transformer")
    write_recipe(
        directory,
        {
            "teacher": teacher_key(teacher),
            "width": recipe.model_dump(mode="json"),
            "heads_per_block": plan.heads_per_block,
            "cross_heads_per_block": plan.cross_heads_per_block,
        },
    )
    return student


def width_student(teacher: TinyWan, recipe: WidthRecipe, root: Path | None = None, retrain: bool = False):
    """The recovered student of `recipe`, from the artifact cache or trained now."""
    root = artifacts_root() if root is None else root
    directory = width_directory(teacher, recipe, root)
    weights = directory / "transformer" / "diffusion_pytorch_model.safetensors"
    if weights.is_file() and not retrain:
        return owned(PrunedWanTransformer3DModel.from_pretrained(directory / "transformer").eval())
    if retrain:
        forget_training(directory, "recovery")
    return train_width_student(teacher, recipe, directory, root).eval()


# ------------------------------------------------------------------------------------------ depth

DEPTH_DATA_SEED = 10_000  # stage 2 draws other scenes than stage 1 of the same seed
POOL_DATA_SEED = 20_000  # and the router's importance pool others again


def world_block_flops(teacher: TinyWan, model) -> torch.Tensor:
    """FLOPs of each of `model`'s blocks on one world video (the router's unit of budget)."""
    world = teacher.spec.world
    p_t, p_h, p_w = model.config.patch_size
    tokens = (world.frames // p_t) * (world.height // p_h) * (world.width // p_w)
    return torch.tensor(block_flops(dict(model.config), tokens, teacher.spec.text_context), dtype=torch.float64)


def static_keep(teacher: TinyWan, student, depth: DepthRecipe) -> tuple[list[float], list[bool], float]:
    """Block importances of `student`, the static-depth block set (`pare_core.importance.static_blocks`: the most
    important set whose share of the block FLOPs lies in [`depth.static_floor`, `depth.budget`]) and its share."""
    scores = block_importance(student, calibration_inputs(teacher))
    costs = world_block_flops(teacher, student)
    keep = static_blocks(scores, costs.tolist(), depth.budget, depth.static_floor or 0.0)
    share = float(costs[torch.tensor(keep)].sum() / costs.sum())
    return scores, keep, share


def _depth_base(teacher: TinyWan, recipe: Recipe, root: Path):
    """The width student (cached or trained now; `--retrain` retrains it where its own system is listed)."""
    if recipe.width is not None:
        return width_student(teacher, recipe.width, root)
    return copy.deepcopy(teacher.transformer)


def train_depth_student(teacher: TinyWan, recipe: Recipe, directory: Path, root: Path):
    depth = recipe.depth
    student = _depth_base(teacher, recipe, root)
    dim, blocks = student.config.num_attention_heads * student.config.attention_head_dim, len(student.blocks)
    torch.manual_seed(depth.seed)
    importance = keep = None
    if depth.router == "static":
        importance, keep, share = static_keep(teacher, student, depth)
        router = static_router(dim, keep, share, depth.hidden)  # routes at the set's own share: adds no block
    else:
        router = depth_router(depth, dim, blocks)
    config = JointConfig(
        steps=depth.steps,
        budget=depth.budget,
        anneal=depth.anneal,
        train_router=depth.router != "static",
        rank_weight=depth.rank_weight,
    )
    continued = continue_shorter_run(directory, teacher_key(teacher), recipe)
    pool = None
    if config.train_router and depth.rank_weight > 0 and depth.pool > 0:
        pool = depth_pool(teacher, student, depth, directory)
    with training_stage(directory, "joint", config.steps) as (state, on_step, on_checkpoint):
        batches = recovery_batches(teacher, DEPTH_DATA_SEED + depth.seed)
        stop = plateau_stop(teacher, depth.stop, DEPTH_DATA_SEED + depth.seed)
        student, router = train_joint(
            student,
            router,
            teacher.transformer,
            batches,
            None,
            config,
            state,
            on_checkpoint,
            on_step,
            pool=pool,
            **stop,
        )
    student.cpu()
    router.cpu()
    teacher.transformer.cpu()
    record = {"teacher": teacher_key(teacher), **recipe.model_dump(mode="json", include={"width", "depth"})}
    record = {**record, "block_importance": importance, "static_keep": keep}
    save_depth_artifact(directory, student, router, record if continued is None else {**record, **continued})
    return student, router


def depth_pool(teacher: TinyWan, student, depth, directory: Path) -> dict:
    """The router's anchor: per-sample block importances of `student` on `depth.pool` batches of stage-2 data
    (scenes the joint loop does not draw), measured once and kept in `directory/pool.pt` (checksummed) so a
    resumed run reuses them."""
    path = directory / "pool.pt"
    if path.is_file():
        return load_state(path)
    batches = recovery_batches(teacher, POOL_DATA_SEED + depth.seed)
    directory.mkdir(parents=True, exist_ok=True)
    device = training_device()
    with progress(None, *bar_columns(f"importance pool {directory.name}")) as bar:
        task = bar.add_task("pool", total=depth.pool)
        inputs = [to_device(batches(i), device) for i in range(depth.pool)]
        pool = importance_pool(student.to(device), inputs, lambda: bar.advance(task), depth.content)
    student.cpu()
    pool = to_device(pool, "cpu")
    save_state(path, pool)
    return pool


def depth_router(depth: DepthRecipe, dim: int, blocks: int) -> BlockRouter:
    """The untrained router `depth` asks for: which inputs it sees (content, timestep or none), its content
    features and the budget it is trained for."""
    return BlockRouter(
        dim,
        blocks,
        depth.hidden,
        use_timestep=depth.router != "static",
        use_content=depth.router == "content",
        content=depth.content,
        budget=depth.budget,
    )


def depth_student(teacher: TinyWan, recipe: Recipe, root: Path | None = None, retrain: bool = False):
    """(student, router) of a recipe with a depth part, from the artifact cache or trained now. The router is
    returned detached, in eval mode; attach it with `pare_core.router.apply_router`."""
    root = artifacts_root() if root is None else root
    directory = depth_directory(teacher, recipe, root)
    if (directory / "router" / "config.json").is_file() and not retrain:
        return load_depth_artifact(directory)
    if retrain:
        forget_training(directory, "joint")
        for stale in ("pool.pt", "pool.pt.sha256"):
            (directory / stale).unlink(missing_ok=True)
    student, router = train_depth_student(teacher, recipe, directory, root)
    return student.eval(), router.eval()


# ------------------------------------------------------------------------------------------ step distillation


def recipe_transformer(
    teacher: TinyWan, recipe: Recipe, root: Path | None = None, retrain: bool = False
) -> torch.nn.Module:
    """The transformer `recipe` describes, cached or trained now: step-distilled, or its base."""
    root = artifacts_root() if root is None else root
    if recipe.step_distill is not None:
        return sd_student(teacher, recipe, root, retrain)
    return base_transformer(teacher, recipe, root, retrain)


def base_transformer(
    teacher: TinyWan, recipe: Recipe, root: Path | None = None, retrain: bool = False
) -> torch.nn.Module:
    """The system `recipe` describes without its step distillation: the teacher (a copy), the width student, or
    the width/depth student with its router attached."""
    root = artifacts_root() if root is None else root
    if recipe.depth is not None:
        student, router = depth_student(teacher, recipe, root, retrain)
        apply_router(student, router)  # at the budget it was trained for
        return student
    if recipe.width is not None:
        return width_student(teacher, recipe.width, root, retrain)
    return copy.deepcopy(teacher.transformer)


def sd_student(teacher: TinyWan, recipe: Recipe, root: Path | None = None, retrain: bool = False):
    """The step-distilled student of `recipe` (routed when the recipe has depth), cached or trained now."""
    root = artifacts_root() if root is None else root
    from pare_core.step_distill import StepDistillConfig, distill_steps

    sd = recipe.step_distill
    directory = sd_directory(teacher, recipe, root)
    weights = directory / "transformer" / "diffusion_pytorch_model.safetensors"
    student = base_transformer(teacher, recipe, root)  # routed and pruned as the recipe says; weights replaced below
    if weights.is_file() and not retrain:
        trained = type(student).from_pretrained(directory / "transformer")
        student.load_state_dict(owned(trained).state_dict())
        return student.eval()
    if retrain:
        forget_training(directory, "step_distill")
    continued = continue_shorter_run(directory, teacher_key(teacher), recipe, "step_distill")
    system = base_transformer(teacher, recipe, root).eval()  # the system the student learns to follow
    place(system, training_device())  # its trajectories are made there; they are kept on the CPU
    data = teacher_trajectories(teacher, system, sd, directory)
    config = StepDistillConfig(
        steps=sd.steps,
        shift=sd.shift,
        substeps=sd.substeps,
        guidance=sd.guidance,
        train_steps=sd.train_steps,
        batch=sd.batch,
    )
    stop = {}
    if sd.stop is not None:
        stop = {"validate": validation_loss(teacher, system, sd, directory), "plateau": Plateau(**sd.stop.model_dump())}
    with training_stage(directory, "step_distill", config.train_steps) as (state, on_step, on_checkpoint):
        pairs = segment_pairs(teacher, data, sd, config.batch)
        student = distill_steps(student, pairs, config, state, on_checkpoint, on_step, **stop)
    place(student, "cpu")
    place(system, "cpu")
    student.save_pretrained(directory / "transformer")
    record = {"teacher": teacher_key(teacher), **recipe.model_dump(mode="json", exclude_none=True)}
    write_recipe(directory, record if continued is None else {**record, **continued})
    return student.eval()


def width_directory(teacher: TinyWan, width: WidthRecipe, root: Path) -> Path:
    return root / teacher.name / f"width-{recipe_hash(teacher_key(teacher), width)}"


def depth_directory(teacher: TinyWan, recipe: Recipe, root: Path) -> Path:
    return root / teacher.name / f"depth-{depth_hash(teacher_key(teacher), recipe)}"


def sd_directory(teacher: TinyWan, recipe: Recipe, root: Path) -> Path:
    return root / teacher.name / f"sd-{step_hash(teacher_key(teacher), recipe)}"


def recipe_stages(teacher: TinyWan, recipe: Recipe, root: Path | None = None) -> list[tuple[str, Path]]:
    """(training stage, artifact folder) of every stage `recipe` trains, in order: recovery of its width part,
    joint training of its depth part, step distillation."""
    root = artifacts_root() if root is None else root
    stages = []
    if recipe.width is not None:
        stages.append(("recovery", width_directory(teacher, recipe.width, root)))
    if recipe.depth is not None:
        stages.append(("joint", depth_directory(teacher, recipe, root)))
    if recipe.step_distill is not None:
        stages.append(("step_distill", sd_directory(teacher, recipe, root)))
    return stages
