"""Stage-1 recovery: the width-pruned student learns to match its frozen teacher.

Loss = MSE(student velocity, teacher velocity) + feature_weight x mean over blocks of the teacher-normalised
MSE between block outputs (captured with forward hooks, so neither model's `forward` is edited).
The teacher runs under `torch.no_grad()` with gradients off. Inputs come from a caller-supplied
function (step -> transformer forward kwargs), so this loop knows nothing of worlds or files; the
caller persists checkpoints through `on_checkpoint` and resumes by passing the saved `state` back.

The loop goes through `accelerate.Accelerator`, so the same code runs on this CPU and on GPUs
(`accelerate launch` for several).

Both stages take an optional `validate(model) -> loss` on held-out inputs and a `pare_core.plateau.Plateau`:
the stage then stops when the validation loss stops falling (`steps` is the most it runs), logs `val_loss`,
and keeps the plateau's state in its checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from torch import nn

from pare_core.plateau import Plateau, resume_plateau, validate_step, with_plateau


@dataclass
class RecoveryConfig:
    steps: int = 200  # optimizer steps
    lr: float = 3e-4  # AdamW learning rate (constant after a short warm-up)
    warmup: int = 20
    feature_weight: float = 0.1  # weight of block-feature matching next to output matching
    grad_clip: float = 1.0
    checkpoint_every: int = 50
    # Block features normalised per sample (True) or over the batch (False, as the tiny recipes were trained):
    # only the per-sample form gives the same loss on any number of data-parallel processes.
    per_sample_features: bool = False


class _BlockOutputs:
    """Forward hooks that keep each block's output of the latest forward."""

    def __init__(self, model: nn.Module):
        self.outputs: list[torch.Tensor | None] = [None] * len(model.blocks)
        self.handles = [block.register_forward_hook(self._keep(i)) for i, block in enumerate(model.blocks)]

    def _keep(self, index: int) -> Callable:
        def hook(module, args, output):
            self.outputs[index] = output

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def training_device() -> torch.device:
    """Where the training loops here run when not handed an Accelerator: the GPU if there is one, as
    `Accelerator()` picks. The no-grad passes around them (validation targets, importance pools, teacher
    trajectories) run there too; between stages every model is back on the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(inputs: dict, device: torch.device | str) -> dict:
    """Forward kwargs with every tensor on `device`."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def _relative_error(student: torch.Tensor, teacher: torch.Tensor, per_sample: bool) -> torch.Tensor:
    """||s - t||^2 / ||t||^2 over the batch, or per sample and then averaged: the per-sample form is a mean over
    samples, so equal shares of a batch on several processes average (DDP) to the whole batch's value."""
    if not per_sample:
        return nn.functional.mse_loss(student, teacher) / teacher.pow(2).mean().clamp_min(1e-8)
    error = (student - teacher).pow(2).flatten(1).mean(1)
    return (error / teacher.pow(2).flatten(1).mean(1).clamp_min(1e-8)).mean()


def recovery_loss(
    student_out, teacher_out, student_feats, teacher_feats, feature_weight: float, per_sample: bool = False
) -> tuple:
    output = nn.functional.mse_loss(student_out, teacher_out)
    features = torch.stack([_relative_error(s, t, per_sample) for s, t in zip(student_feats, teacher_feats)]).mean()
    return output + feature_weight * features, output, features


def recover(
    student: nn.Module,
    teacher: nn.Module,
    batch_at: Callable[[int], dict],
    config: RecoveryConfig,
    state: dict | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
    accelerator: Accelerator | None = None,
    validate: Callable[[nn.Module], torch.Tensor] | None = None,
    plateau: Plateau | None = None,
) -> nn.Module:
    """Train `student` in place to match `teacher`; `state` (from on_checkpoint) resumes. With `validate` and
    `plateau`, stop early once the validation loss of the student stops falling."""
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    teacher.requires_grad_(False).eval()
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=0.0)
    step = 0
    if state is not None:
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        resume_plateau(plateau, state)
    student.train()
    student, optimizer = accelerator.prepare(student, optimizer)
    teacher.to(accelerator.device)
    student_feats, teacher_feats = _BlockOutputs(accelerator.unwrap_model(student)), _BlockOutputs(teacher)
    try:
        while step < config.steps and not (plateau is not None and plateau.stopped):
            for group in optimizer.param_groups:
                group["lr"] = config.lr * min(1.0, (step + 1) / config.warmup)
            inputs = to_device(batch_at(step), accelerator.device)
            with torch.no_grad():
                target = teacher(**inputs, return_dict=False)[0]
            prediction = student(**inputs, return_dict=False)[0]
            loss, output, features = recovery_loss(
                prediction, target, student_feats.outputs, teacher_feats.outputs, config.feature_weight,
                config.per_sample_features,
            )  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(student.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            record = {"step": step, "loss": loss.item(), "output_mse": output.item(), "feature_nmse": features.item()}
            stop = validate_step(record, plateau, validate, (accelerator.unwrap_model(student),))
            if on_step:
                on_step(record)
            if on_checkpoint and (step % config.checkpoint_every == 0 or step == config.steps or stop):
                unwrapped = accelerator.unwrap_model(student)
                checkpoint = {"student": unwrapped.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
                on_checkpoint(with_plateau(checkpoint, plateau))
    finally:
        student_feats.remove()
        teacher_feats.remove()
    return accelerator.unwrap_model(student).eval()


# ------------------------------------------------------------------------------------------ stage 2


@dataclass
class JointConfig:
    """Stage 2: the student and its block router train together against the frozen teacher."""

    steps: int = 200
    budget: float = 0.5  # target share of block FLOPs executed
    budget_weight: float = 2.0  # weight of the budget loss in the router's objective
    student_lr: float = 1e-4
    router_lr: float = 1e-3
    warmup: int = 20
    temperature: tuple[float, float] = (1.0, 0.3)  # Gumbel-sigmoid temperature, annealed linearly
    # steps the anneal spans (None: all of `steps`); the temperature then holds at its end value, the objective is
    # stationary and a plateau rule may stop the stage (`steps` is its cap)
    anneal: int | None = None
    grad_clip: float = 1.0
    checkpoint_every: int = 50
    train_router: bool = True  # False: the router is fixed (static-depth) and only the student trains
    rank_weight: float = 1.0  # weight of the per-sample importance-ranking anchor (needs a pool; 0: off)
    rank_warmup: int = 300  # router-only steps fitting the pool before joint training starts
    # Seeds the gate noise of each step, drawn for the global batch and split over the processes as the batch
    # is: a resumed run, or one on another process count, draws what an uninterrupted one-process run did.
    # None: torch's global generator.
    noise_seed: int | None = None


def train_joint(
    student: nn.Module,
    router: nn.Module,
    teacher: nn.Module,
    batch_at: Callable[[int], dict],
    block_flops: torch.Tensor | None,
    config: JointConfig,
    state: dict | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
    on_step: Callable[[dict], None] | None = None,
    accelerator: Accelerator | None = None,
    pool: dict[str, torch.Tensor] | None = None,
    validate: Callable[[nn.Module], torch.Tensor] | None = None,
    plateau: Plateau | None = None,
) -> tuple[nn.Module, nn.Module]:
    """Train `student` and `router` in place; returns both with the router detached from the student.

    The two objectives are decoupled with separate optimizers: the student minimises only the output
    distillation loss (its job is fidelity under whatever blocks the router picks), and the router minimises
    the distillation loss plus `budget_weight` x the budget loss (its job is to spend the budget where it
    hurts least). One backward gives both gradients, since the budget loss depends on the router alone;
    separate optimizers let the tiny router learn at its own, larger rate. Alternating updates would do the
    same with half the updates for each. Block-feature matching is dropped here: a skipped block has no
    output to match. `block_flops` None: the block costs the router computes from each batch's shapes.

    `pool` (`pare_core.importance.importance_pool`: router inputs and per-sample block importances) anchors what
    the router learns from its inputs. Without it, distillation through straight-through gates plus a budget
    loss that pulls every input alike teaches the per-block biases first, and the unanchored routers all
    collapsed to one static block set. With it, the router is first fitted to rank each sample's blocks by
    their measured importance (`rank_warmup` steps, router only; then one shift of its bias puts the mean keep
    probability at the budget), and `rank_weight` x `rank_loss` on the whole
    pool joins its objective at every step, so distillation refines an input-dependent order instead of
    replacing it. The pool's router inputs come from the student as it was before stage 2.

    `validate(student)` runs with student and router in eval mode, so it scores the routed student as it will
    sample: top-k blocks at the budget.
    """
    from pare_core.importance import calibrate_offset, fit_router, rank_loss
    from pare_core.router import RouterConfig, apply_router, budget_loss, remove_router, router_state

    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    teacher.requires_grad_(False).eval()
    student.requires_grad_(True)  # a copy of the frozen teacher (depth without width) comes frozen too
    optimizers = {"student": torch.optim.AdamW(student.parameters(), lr=config.student_lr, weight_decay=0.0)}
    if config.train_router:
        optimizers["router"] = torch.optim.AdamW(router.parameters(), lr=config.router_lr, weight_decay=0.0)
    else:
        router.requires_grad_(False)
    step = 0
    if state is not None:
        student.load_state_dict(state["student"])
        router.load_state_dict(state["router"])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(state[f"{name}_optimizer"])
        step = state["step"]
        resume_plateau(plateau, state)
    anneal = config.steps if config.anneal is None else config.anneal
    if plateau is not None and config.temperature[0] != config.temperature[1]:
        plateau.start = max(plateau.start, anneal)  # not stationary before the anneal ends (Plateau.start)
    anchored = pool is not None and config.train_router and config.rank_weight > 0
    if anchored:
        pool = to_device(pool, accelerator.device)
        if state is None:
            router.to(accelerator.device)
            fit_router(router, pool, config.rank_warmup)
            calibrate_offset(router, pool, config.budget)
    routing = RouterConfig(budget=config.budget, temperature=config.temperature[0])
    apply_router(student, router, routing)  # on the bare model, before any wrapper: the hooks sit on its blocks
    student.train(), router.train()
    teacher.to(accelerator.device), router.to(accelerator.device)
    student.to(accelerator.device)  # as distill_steps does: on the H200, prepare alone left this student on the CPU
    model = student  # the bare student: hooks, state dicts and the return value
    student, optimizers["student"] = accelerator.prepare(student, optimizers["student"])  # DDP / FSDP when launched
    try:
        while step < config.steps and not (plateau is not None and plateau.stopped):
            progress = min(1.0, step / max(1, anneal - 1))
            routing.temperature = config.temperature[0] + progress * (config.temperature[1] - config.temperature[0])
            if config.noise_seed is not None:
                seed = config.noise_seed * 1_000_003 + step
                routing.generator = torch.Generator(accelerator.device).manual_seed(seed)
                routing.noise_split = (accelerator.process_index, accelerator.num_processes)
            for name, optimizer in optimizers.items():
                base = config.student_lr if name == "student" else config.router_lr
                for group in optimizer.param_groups:
                    group["lr"] = base * min(1.0, (step + 1) / config.warmup)
            inputs = to_device(batch_at(step), accelerator.device)
            with torch.no_grad():
                target = teacher(**inputs, return_dict=False)[0]
            prediction = student(**inputs, return_dict=False)[0]
            gates = router_state(model).gates
            costs = (router_state(model).costs if block_flops is None else block_flops).to(gates.device)
            distill = nn.functional.mse_loss(prediction, target)
            budget = budget_loss(gates, costs.to(gates.dtype), config.budget)
            if accelerator.num_processes > 1:
                # The loss squares the batch's mean share, which this process's rows alone do not give: take the
                # global mean's value and a surrogate whose gradient, averaged over processes, is the global one.
                share = ((gates * costs.to(gates.dtype)).sum(1) / costs.sum()).mean()
                overall = accelerator.reduce(share.detach(), reduction="mean")
                budget = (overall - config.budget) ** 2 + 2 * (overall - config.budget) * (share - share.detach())
            rank = rank_loss(router(pool["temb"], pool["content"]), pool["target"]) if anchored else distill * 0
            for optimizer in optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            accelerator.backward(distill + config.budget_weight * budget + config.rank_weight * rank)
            if config.train_router and accelerator.num_processes > 1:
                # the router runs inside the student's hooks, outside any DDP wrapper: average its gradients here
                for parameter in router.parameters():
                    parameter.grad = accelerator.reduce(parameter.grad, reduction="mean")
            for module in (student, router) if config.train_router else (student,):
                accelerator.clip_grad_norm_(module.parameters(), config.grad_clip)
            for optimizer in optimizers.values():
                optimizer.step()
            step += 1
            executed = float((gates.detach().double() * costs).sum(1).mean() / costs.sum())
            record = {"step": step, "distill": distill.item(), "budget_loss": budget.item(), "executed": executed}
            record["rank_loss"] = rank.item()
            stop = validate_step(record, plateau, validate, (model, router))  # eval: top-k routing at the budget
            if on_step:
                on_step(record)
            if on_checkpoint and (step % config.checkpoint_every == 0 or step == config.steps or stop):
                checkpoint = {
                    "student": accelerator.unwrap_model(student).state_dict(),
                    "router": router.state_dict(),
                    **{f"{n}_optimizer": o.state_dict() for n, o in optimizers.items()},
                    "step": step,
                }
                on_checkpoint(with_plateau(checkpoint, plateau))
    finally:
        router_state(model).history.clear()
        remove_router(model)
    return model.eval(), router.eval()
