"""Where trained students live and how a recipe finds its own: one folder per (teacher, recipe) under
`artifacts_root()`, named by a hash of the teacher's weights and the recipe, with a resumable training stage
inside (checkpoint, loss log, progress bar) and the recipe written beside the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

from pare_bench.checkpoint import atomic_write_bytes, load_state, save_state
from pare_bench.progress import progress
from pare_bench.zoo import TinyWan, owned
from pare_core.prune import PrunedWanTransformer3DModel

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
    with (directory / f"{stage}_log.jsonl").open("a") as log, progress(None, *columns) as bar:
        task = bar.add_task(stage, total=total)

        def on_step(record: dict) -> None:
            log.write(json.dumps(record) + "\n")
            bar.update(task, completed=record["step"])

        def on_checkpoint(state: dict) -> None:
            log.flush()
            save_state(checkpoint, state)

        yield (load_state(checkpoint) if checkpoint.exists() else None), on_step, on_checkpoint


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
