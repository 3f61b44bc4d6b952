"""Where trained students live and how a recipe finds its own: one folder per (teacher, recipe) under
`artifacts_root()`, named by a hash of the teacher's weights and the recipe, with a resumable training stage
inside (checkpoint, loss log, progress bar) and the recipe written beside the weights. A joint stage whose cap
was raised starts from the shorter run of the same recipe (`continue_shorter_run`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel
from pydantic import ValidationError
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

from pare_bench.checkpoint import atomic_write_bytes, load_state, save_state
from pare_bench.progress import progress
from pare_bench.suite import Recipe, WidthRecipe
from pare_bench.tiny.zoo import TinyWan, owned
from pare_core.prune import PrunedWanTransformer3DModel
from pare_core.router import BlockRouter, apply_router

ARTIFACTS_ENV = "PARE_BENCH_ARTIFACTS"


def artifacts_root() -> Path:
    """Where trained students live: `$PARE_BENCH_ARTIFACTS`, else `artifacts/` in the working directory.

    Never inside the importable package: a wheel carries no students, and a retrain never grows the code.
    The repository commits only the students its committed suites and results use (tests/test_budget.py).
    """
    return Path(os.environ.get(ARTIFACTS_ENV, "artifacts"))


def artifact_hash(teacher: str, parts: dict) -> str:
    """The one hash of every artifact folder: `teacher` (`teacher_key`) and the recipe parts that decide it."""
    canonical = json.dumps({"teacher": teacher, **parts}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def recipe_hash(teacher: str, recipe: WidthRecipe) -> str:
    return artifact_hash(teacher, {"width": _without_unset(recipe.model_dump(mode="json"))})


def _without_unset(part: dict) -> dict:
    """A recipe part without the fields added later (`stop`, `static_floor`, `anneal`) left unset, so recipes
    written before those fields keep their hashes."""
    return {k: v for k, v in part.items() if not (k in ("stop", "static_floor", "anneal") and v is None)}


def depth_hash(teacher: str, recipe: Recipe) -> str:
    """The width and depth parts only: a step-distilled system reuses its depth artifact."""
    parts = recipe.model_dump(mode="json", include={"width", "depth"})
    parts = {k: v if v is None else _without_unset(v) for k, v in parts.items()}
    if recipe.depth.router == "static":  # a fixed router learns nothing: its training settings change nothing
        for unused in ("rank_weight", "pool"):
            parts["depth"].pop(unused)
    if recipe.depth.router != "content":  # only a content router reads content features
        parts["depth"].pop("content")
    return artifact_hash(teacher, parts)


def step_hash(teacher: str, recipe: Recipe) -> str:
    return artifact_hash(teacher, recipe.model_dump(mode="json", exclude_none=True))


def teacher_key(teacher: TinyWan) -> str:
    """`name@digest`: the teacher's name and a digest of its weights, the teacher part of every recipe hash.

    With the name alone, a retrained teacher silently loaded the students distilled from the old one.
    """
    digest = hashlib.sha256()
    for module in (teacher.transformer, teacher.text_encoder):
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return f"{teacher.name}@{digest.hexdigest()[:12]}"


def bar_columns(label: str) -> tuple:
    return (TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())


@contextmanager
def training_stage(directory: Path, stage: str, total: int, writer: bool = True):
    """A resumable training stage in `directory`: (saved state or None, on_step, on_checkpoint), with a
    progress bar on stderr and each step's record appended to `<stage>_log.jsonl`. `writer` False (every
    process but rank 0 of a distributed run): the saved state is read, nothing is written or shown."""
    checkpoint = directory / f"{stage}.pt"
    if not writer:
        yield (load_state(checkpoint) if checkpoint.exists() else None), (lambda record: None), (lambda state: None)
        return
    directory.mkdir(parents=True, exist_ok=True)
    columns = bar_columns(f"{stage} {directory.name}")
    # A resume appends to the log; a start from scratch replaces any log left without its checkpoint (a shipped
    # log, a deleted checkpoint), which would otherwise mix two trainings' curves.
    mode = "a" if checkpoint.exists() else "w"
    with (directory / f"{stage}_log.jsonl").open(mode) as log, progress(None, *columns) as bar:
        task = bar.add_task(stage, total=total)

        def on_step(record: dict) -> None:
            log.write(json.dumps({**record, "time": round(time.time(), 2)}) + "\n")  # wall clock: stage_summary
            bar.update(task, completed=record["step"])

        def on_checkpoint(state: dict) -> None:
            log.flush()
            save_state(checkpoint, state)

        yield (load_state(checkpoint) if checkpoint.exists() else None), on_step, on_checkpoint


RESUME_GAP = 120.0  # seconds between two logged steps beyond which the stage was stopped and resumed


def stage_summary(directory: Path, stage: str) -> dict | None:
    """What a finished (or running) training stage logged: steps, whether it stopped on a plateau, its
    validation curve and its compute time (the sum of the gaps between logged steps, a resume's gap left out;
    None for a log written before steps carried their time). None when the stage has no log."""
    path = directory / f"{stage}_log.jsonl"
    if not path.is_file():
        return None
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        return None
    times = [line["time"] for line in lines if "time" in line]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    seconds = sum(gap for gap in gaps if gap < RESUME_GAP) if len(times) == len(lines) and times else None
    curve = [[line["step"], line["val_loss"]] for line in lines if "val_loss" in line]
    return {
        "stage": stage,
        "directory": directory.name,
        "steps": lines[-1]["step"],
        "stopped": lines[-1].get("stopped"),
        "seconds": seconds,
        "curve": curve,
    }


def write_recipe(directory: Path, record: dict) -> None:
    atomic_write_bytes(directory / "recipe.json", json.dumps(record, indent=2).encode())


def forget_training(directory: Path, stage: str) -> None:
    for stale in (f"{stage}.pt", f"{stage}.pt.sha256", f"{stage}_log.jsonl"):
        (directory / stale).unlink(missing_ok=True)


def load_transformer(directory: Path) -> torch.nn.Module:
    """`directory/transformer`, pruned (its config has heads_per_block) or not, in eval mode."""
    config = json.loads((directory / "transformer" / "config.json").read_text())
    cls = PrunedWanTransformer3DModel if config.get("heads_per_block") else WanTransformer3DModel
    return owned(cls.from_pretrained(directory / "transformer").eval())


def save_depth_artifact(directory: Path, student: torch.nn.Module, router: BlockRouter, record: dict) -> None:
    """`transformer/` and `router/` (diffusers folders: config and weights) and `recipe.json` (`record`, with a
    `depth` entry): what `load_depth_artifact` and `load_pare_transformer` read."""
    student.save_pretrained(directory / "transformer")
    router.save_pretrained(directory / "router")
    write_recipe(directory, record)


def load_depth_artifact(directory: Path) -> tuple[torch.nn.Module, BlockRouter]:
    """(student, router in eval mode, detached) from a `depth-<hash>` directory."""
    return load_transformer(directory), BlockRouter.from_pretrained(directory / "router").eval()


def load_pare_transformer(directory: Path) -> torch.nn.Module:
    """A saved PARE student (`transformer/`, and `router/` for a depth artifact) with its router
    attached at the recipe's budget. Names the missing file when the directory is incomplete."""
    directory = Path(directory)
    weights = directory / "transformer" / "diffusion_pytorch_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"no PARE transformer at {directory}: {weights} is missing")
    if not (directory / "router" / "config.json").is_file():
        return load_transformer(directory)
    transformer, router = load_depth_artifact(directory)
    apply_router(transformer, router)  # at the budget it was trained for (its config)
    return transformer


# The stages a higher cap can continue: (recipe part, cap field, what the run leaves besides checkpoint and log)
CONTINUABLE = {
    "joint": ("depth", "steps", ("pool.pt", "pool.pt.sha256")),
    "step_distill": ("step_distill", "train_steps", ("trajectories", "validation")),
}


def _at_cap(recipe: Recipe, stage: str, cap: int, patience: int | None) -> Recipe:
    """`recipe` with `stage`'s cap set to `cap` and its stop rule's patience to `patience`; a joint stage's anneal
    made explicit, as unset it spans the cap."""
    part, field, _ = CONTINUABLE[stage]
    section = getattr(recipe, part)
    update = {field: cap, **({"anneal": section.anneal or section.steps} if stage == "joint" else {})}
    if section.stop is not None and patience is not None:
        update["stop"] = section.stop.model_copy(update={"patience": patience})
    return recipe.model_copy(update={part: section.model_copy(update=update)})


def continue_shorter_run(directory: Path, teacher: str, recipe: Recipe, stage: str = "joint") -> dict | None:
    """Start `stage` of `recipe` on `teacher` (a `teacher_key`) from a finished run of the same recipe with a lower
    cap: copy that run's final checkpoint, log and data (the joint stage's importance pool; step distillation's
    teacher trajectories) into `directory`, so the stage resumes where it ended instead of from step 0.

    A sibling artifact of the same kind qualifies when its teacher and recipe agree with `recipe`'s except for a
    lower or equal cap (`depth.steps`, `step_distill.train_steps`) and a stop rule of lower or equal patience
    (same interval and least gain), and, for a joint stage, its gate-temperature anneal spans the same steps.
    Nothing else in either stage's schedule depends on the cap, and a stop rule only ends a run, so the
    continuation is the shorter run resumed: a plateau that stopped it stops this one too unless this one is
    more patient, and then the plateau's count carries on from where it was. Like any resume of a tiny
    recipe, it is exact up to the joint stage's gate noise, which these recipes draw from torch's global
    generator. The longest qualifying run wins. Returns {"continued_from": name, "continued_at": step} for the
    artifact's record, or None (nothing to continue, or `directory` holds its own checkpoint already)."""
    part, field, extras = CONTINUABLE[stage]
    if (directory / f"{stage}.pt").exists():
        return None
    parts = ("width", "depth") if stage == "joint" else ("width", "depth", "step_distill")
    recipe = Recipe(**{name: getattr(recipe, name) for name in parts})  # what the artifact's hash covers
    cap, stop = getattr(getattr(recipe, part), field), getattr(recipe, part).stop
    patience = None if stop is None else stop.patience
    found = None
    for other in sorted(directory.parent.glob(f"{directory.name.partition('-')[0]}-*")):
        if other == directory or not (other / f"{stage}.pt").is_file() or not (other / "recipe.json").is_file():
            continue
        record = json.loads((other / "recipe.json").read_text())
        try:
            before = Recipe(**{name: record[name] for name in parts if record.get(name) is not None})
        except ValidationError:
            continue  # a record of another schema: never a prefix of this recipe
        if record.get("teacher") != teacher or getattr(before, part) is None:
            continue
        steps, rule = getattr(getattr(before, part), field), getattr(before, part).stop
        patient = patience is None or rule is None or rule.patience <= patience
        if steps <= cap and patient and _at_cap(before, stage, cap, patience) == _at_cap(recipe, stage, cap, patience):
            if found is None or steps > found[1]:
                found = (other, steps)
    if found is None:
        return None
    source, steps = found
    directory.mkdir(parents=True, exist_ok=True)
    # each file or folder whole or not at all, the checkpoint last: a copy cut short leaves no checkpoint, so the
    # next try copies again instead of resuming from half a run
    for name in (*extras, f"{stage}_log.jsonl", f"{stage}.pt.sha256", f"{stage}.pt"):
        origin, part_copy, target = source / name, directory / f"{name}.part", directory / name
        if origin.is_dir():
            shutil.rmtree(part_copy, ignore_errors=True)
            shutil.copytree(origin, part_copy)
            shutil.rmtree(target, ignore_errors=True)
            part_copy.rename(target)
        elif origin.is_file():
            shutil.copyfile(origin, part_copy)
            part_copy.replace(target)
    return {"continued_from": source.name, "continued_at": steps}
