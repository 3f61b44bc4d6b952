"""Step-distillation data on the tiny world: teacher trajectories at the student's sigmas (kept in checksummed
chunks, so an interrupted run keeps what it made) and the (student input, target velocity) pairs drawn from them.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from pare_bench.artifacts import bar_columns
from pare_bench.checkpoint import load_state, save_state
from pare_bench.progress import progress
from pare_bench.tiny.train_teacher import TeacherRecipe, training_batch
from pare_bench.tiny.zoo import TinyWan
from pare_core.distill import to_device
from pare_core.step_distill import guided_velocity

TRAJECTORY_BATCH = 8


@torch.no_grad()
def teacher_trajectories(teacher: TinyWan, model, recipe, directory: Path, name: str = "trajectories") -> dict:
    """`recipe.trajectories` teacher trajectories from training-split prompts, states at the student's sigmas;
    saved in chunks under `directory/<name>/`, so an interrupted run keeps what it made."""
    from pare_core.step_distill import student_sigmas, teacher_trajectory

    sigmas = student_sigmas(recipe.steps, recipe.shift)
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    chunks = -(-recipe.trajectories // TRAJECTORY_BATCH)
    device = model.device  # made where the model is (the GPU if `sd_student` put it there)
    with progress(None, *bar_columns(f"teacher {name} {directory.name}")) as bar:
        task = bar.add_task("trajectories", total=chunks)
        for chunk in range(chunks):
            path = folder / f"{chunk:05d}.pt"
            if not path.exists():
                rng = random.Random(recipe.seed * 1_000_003 + chunk)
                batch = training_batch(teacher, TeacherRecipe(batch=TRAJECTORY_BATCH, prompt_dropout=0.0), rng, "cpu")
                empty = torch.zeros_like(batch["tokens"])
                context = {"cond": teacher.text_encoder(batch["tokens"]), "uncond": teacher.text_encoder(empty)}
                condition = {k: batch[k] for k in ("condition", "image") if k in batch}
                generator = torch.Generator().manual_seed(recipe.seed * 1_000_003 + chunk)
                noise = torch.randn(batch["video"].shape, generator=generator)
                velocity = guided_velocity(
                    model, to_device(context, device), to_device(condition, device), recipe.guidance
                )
                states = teacher_trajectory(velocity, noise.to(device), sigmas, recipe.substeps).cpu()
                save_state(path, {"states": states, "tokens": batch["tokens"], **condition})
            bar.advance(task)
    parts = [load_state(folder / f"{chunk:05d}.pt") for chunk in range(chunks)]  # checksummed, as checkpoints
    return {key: torch.cat([p[key] for p in parts], dim=1 if key == "states" else 0) for key in parts[0]}


def segment_inputs(teacher: TinyWan, data: dict, sigmas: torch.Tensor, k: torch.Tensor, n: torch.Tensor) -> dict:
    """The student's forward kwargs for segments `k` of trajectories `n` (index tensors of one length): the state
    at the segment's start, its timestep, the caption's embedding and, for I2V, the image inputs."""
    x = data["states"][k, n]
    hidden = x if "condition" not in data else torch.cat([x, data["condition"][n]], dim=1)
    inputs = {
        "hidden_states": hidden,
        "timestep": 1000 * sigmas[k],
        "encoder_hidden_states": teacher.text_encoder(data["tokens"][n]),
    }
    if "image" in data:
        inputs["encoder_hidden_states_image"] = data["image"][n]
    return inputs


def segment_pairs(teacher: TinyWan, data: dict, recipe, batch: int):
    """step -> (student forward kwargs, target velocity) for `batch` random (trajectory, segment) pairs."""
    from pare_core.step_distill import segment_targets, student_sigmas

    sigmas = student_sigmas(recipe.steps, recipe.shift)
    targets = segment_targets(data["states"], sigmas)  # (K, N, ...)

    @torch.no_grad()
    def pairs_at(step: int) -> tuple[dict, torch.Tensor]:
        generator = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
        n = torch.randint(data["states"].shape[1], (batch,), generator=generator)
        k = torch.randint(recipe.steps, (batch,), generator=generator)
        return segment_inputs(teacher, data, sigmas, k, n), targets[k, n]

    return pairs_at


VALIDATION_TRAJECTORIES = 16
VALIDATION_SEED = 30_000  # other scenes and noise than any training chunk of the same recipe


def validation_loss(teacher: TinyWan, model, recipe, directory: Path):
    """`validate(student)` for the step-distillation stop rule: the mean segment loss over every (trajectory,
    segment) pair of `VALIDATION_TRAJECTORIES` held-out teacher trajectories (saved under `validation/`)."""
    from pare_core.step_distill import segment_targets, student_sigmas

    held_out = recipe.model_copy(
        update={"trajectories": VALIDATION_TRAJECTORIES, "seed": VALIDATION_SEED + recipe.seed}
    )
    data = teacher_trajectories(teacher, model, held_out, directory, "validation")
    sigmas = student_sigmas(recipe.steps, recipe.shift)
    targets = segment_targets(data["states"], sigmas)
    every = torch.arange(data["states"].shape[1])
    with torch.no_grad():  # the inputs of every (segment, trajectory) pair, made once
        segments = [
            segment_inputs(teacher, data, sigmas, torch.full_like(every, k), every) for k in range(recipe.steps)
        ]

    def validate(student) -> torch.Tensor:
        losses = [
            torch.nn.functional.mse_loss(
                student(**to_device(inputs, student.device), return_dict=False)[0], targets[k].to(student.device)
            )
            for k, inputs in enumerate(segments)
        ]
        return torch.stack(losses).mean()

    return validate
