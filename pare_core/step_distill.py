"""Step distillation: a K-step student (K = 4 by default) from a many-step teacher, guidance folded in.

Method: piecewise trajectory distillation. The teacher's probability-flow ODE, with classifier-free guidance,
is integrated from noise with `substeps` Euler steps inside each of the student's K segments; the student
learns to cross each whole segment in one Euler step from the teacher's state at its start:

    x[k+1] = x[k] + (sigma[k+1] - sigma[k]) * v_student(x[k], sigma[k], text)
    target  v*  = (x_teacher[k+1] - x_teacher[k]) / (sigma[k+1] - sigma[k])

so the loss is MSE(v_student, v*). The student sees the conditional text only and runs one forward per step:
the guidance is in its weights. This is Luhman & Luhman's knowledge distillation of the sampler ("Knowledge
Distillation in Iterative Generative Models for Improved Sampling Speed", 2021) applied per segment, as
piecewise rectified flow does (PeRFlow, Yan et al. 2024) and as InstaFlow distils a guided flow (Liu et al.
2023). Chosen over progressive distillation (log2(20/4) rounds of training) and DMD (a fake-score network
and adversarial-style updates) because one teacher pass gives all K targets, training is plain regression,
and on the tiny world it fits the CPU budget.

The student's schedule is diffusers' `FlowMatchEulerDiscreteScheduler(shift)` at K steps, the sampler the
harness runs it with, so training and sampling share one set of sigmas. Nothing here knows about worlds or
files: trajectories come from a caller-supplied velocity function and pairs from a caller-supplied function
(step -> batch), and checkpoints go out through `on_checkpoint` and come back as `state`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from diffusers import FlowMatchEulerDiscreteScheduler
from torch import nn

from pare_core.distill import to_device
from pare_core.plateau import Plateau, resume_plateau, validate_step, with_plateau
from pare_core.router import place


@dataclass
class StepDistillConfig:
    steps: int = 4  # K: student denoising steps (one forward each, no CFG pair)
    shift: float = 3.0  # the student's schedule: FlowMatchEulerDiscreteScheduler(shift) at K steps
    substeps: int = 6  # teacher Euler steps inside each student step
    guidance: float = 5.0  # the teacher's CFG scale, folded into the student
    train_steps: int = 400  # optimizer steps
    batch: int = 16  # (state, sigma) pairs per optimizer step
    lr: float = 5e-5
    warmup: int = 20
    grad_clip: float = 1.0
    checkpoint_every: int = 50


def student_sigmas(steps: int, shift: float) -> torch.Tensor:
    """The K+1 noise levels of the student's sampler, from 1 (noise) to 0 (data)."""
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    scheduler.set_timesteps(steps)
    return scheduler.sigmas.to(torch.float32)


@torch.no_grad()
def guided_velocity(model, context: dict, condition: dict, guidance: float):
    """v(x, sigma) of `model` with classifier-free guidance, as the samplers compute it (two forwards): `context`
    holds the `cond` and `uncond` text embeddings, `condition` an I2V model's `condition` and `image` (or nothing)."""

    def velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        hidden = x if "condition" not in condition else torch.cat([x, condition["condition"]], dim=1)
        extra = {"encoder_hidden_states_image": condition["image"]} if "image" in condition else {}
        timestep = (1000 * sigma).to(x.device)
        cond = model(hidden, timestep, context["cond"], return_dict=False, **extra)[0]
        if guidance == 1.0:
            return cond
        uncond = model(hidden, timestep, context["uncond"], return_dict=False, **extra)[0]
        return uncond + guidance * (cond - uncond)

    return velocity


def teacher_trajectory(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    substeps: int,
) -> torch.Tensor:
    """(K+1, *noise.shape): the teacher's states at the student's sigmas, integrating
    dx/dsigma = velocity(x, sigma) with `substeps` Euler steps per segment (sigma uniform inside it)."""
    states, x = [noise], noise
    for start, end in zip(sigmas[:-1], sigmas[1:]):
        grid = torch.linspace(float(start), float(end), substeps + 1)
        for here, there in zip(grid[:-1], grid[1:]):
            x = x + (there - here) * velocity(x, here.expand(x.shape[0]))
        states.append(x)
    return torch.stack(states)


def segment_targets(states: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """(K, B, ...) velocities that cross each segment in one Euler step."""
    widths = (sigmas[1:] - sigmas[:-1]).view(-1, *([1] * (states.dim() - 1)))
    return (states[1:] - states[:-1]) / widths


def distill_steps(
    student: nn.Module,
    pairs_at: Callable[[int], tuple[dict, torch.Tensor]],
    config: StepDistillConfig,
    state: dict | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
    accelerator: Accelerator | None = None,
    validate: Callable[[nn.Module], torch.Tensor] | None = None,
    plateau: Plateau | None = None,
) -> nn.Module:
    """Train `student` in place on `pairs_at(step)` = (forward kwargs, target velocity); `state` resumes.
    A routed student's router is attached through hooks, not as a submodule, so it stays as it is. With
    `validate` and `plateau`, stop early once the validation loss stops falling (`pare_core.distill.recover`)."""
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    student.requires_grad_(True)  # a copy of a frozen teacher comes frozen; a router is not a submodule
    parameters = list(student.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=0.0)
    step = 0
    if state is not None:
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        resume_plateau(plateau, state)
    place(student.train(), accelerator.device)
    model = student
    student, optimizer = accelerator.prepare(student, optimizer)  # DDP / FSDP under accelerate launch
    while step < config.train_steps and not (plateau is not None and plateau.stopped):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * min(1.0, (step + 1) / config.warmup)
        inputs, target = pairs_at(step)
        inputs = to_device(inputs, accelerator.device)
        prediction = student(**inputs, return_dict=False)[0]
        loss = nn.functional.mse_loss(prediction, target.to(accelerator.device))
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(student.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        record = {"step": step, "loss": loss.item()}
        stop = validate_step(record, plateau, validate, (model,))
        if on_step:
            on_step(record)
        if on_checkpoint and (step % config.checkpoint_every == 0 or step == config.train_steps or stop):
            checkpoint = {"student": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
            on_checkpoint(with_plateau(checkpoint, plateau))
    return model.eval()
