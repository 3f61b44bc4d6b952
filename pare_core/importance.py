"""What each block of a transformer is worth, and what the PARE router is anchored to.

A block's skip-one importance is the output's error when that block alone is skipped (its input passed
through), relative to the output's energy. `block_importance` averages it over inputs (it ranks blocks for the
static-depth ablation, whose fixed set `static_blocks` picks and `static_router` freezes); `importance_pool`
keeps it per sample with the router's own inputs, and `rank_loss`, `fit_router` and `calibrate_offset` fit a
`pare_core.router.BlockRouter` to that per-sample order before joint training (`pare_core.distill.train_joint`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from pare_core.router import BlockRouter, pooled_content


@torch.no_grad()
def skip_one_errors(model: nn.Module, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's ((B, blocks) mean squared output error when each block alone is skipped (its input passed
    through), (B,) mean squared dense output): what both importance measures below are made of."""
    dense = model(**kwargs, return_dict=False)[0]
    errors = []
    for block in model.blocks:
        skip = block.register_forward_hook(lambda module, args, output: args[0])
        try:
            errors.append((model(**kwargs, return_dict=False)[0] - dense).pow(2).flatten(1).mean(1))
        finally:
            skip.remove()
    return torch.stack(errors, dim=1), dense.pow(2).flatten(1).mean(1)


@torch.no_grad()
def block_importance(model: nn.Module, inputs: list[dict]) -> list[float]:
    """Per block: the output's error when that block alone is skipped, relative to the output's energy (per
    batch), averaged over `inputs` (forward kwargs). Ranks blocks for the static-depth ablation."""
    scores = []
    for kwargs in inputs:
        errors, energy = skip_one_errors(model, kwargs)
        scores.append(errors.mean(0) / energy.mean())
    return torch.stack(scores).mean(0).tolist()


@torch.no_grad()
def importance_pool(
    model: nn.Module, inputs: list[dict], progress: Callable[[], None] | None = None, features: str = "motion"
) -> dict[str, torch.Tensor]:
    """Router training targets: for every sample of `inputs` (forward kwargs), the router's two inputs as the
    model computes them (`temb` (N, dim) and `content` (N, content_dim), `features` as the router reads) and
    `target` (N, blocks), the log of each block's skip-one importance for that sample alone (output error when
    only that block is skipped, relative to the output's energy). `block_importance` is the same measure
    averaged over inputs; kept per sample here, it says which blocks this input can spare."""
    seen: dict[str, torch.Tensor] = {}
    handles = [
        model.patch_embedding.register_forward_hook(
            lambda m, a, out: seen.update(content=pooled_content(out, features))
        ),
        model.condition_embedder.register_forward_hook(lambda m, a, out: seen.update(temb=out[0])),
    ]
    temb, content, targets = [], [], []
    try:
        for kwargs in inputs:
            errors, energy = skip_one_errors(model, kwargs)  # each forward of it records the same router inputs
            temb.append(seen["temb"].float()), content.append(seen["content"].float())
            targets.append((errors / energy[:, None]).float().clamp_min(1e-12).log())
            if progress:
                progress()
    finally:
        for handle in handles:
            handle.remove()
    return {"temb": torch.cat(temb), "content": torch.cat(content), "target": torch.cat(targets)}


def rank_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between each sample's logits and its log importances, both centred over blocks. Centring leaves the
    common offset (how many blocks to keep) to the budget loss; what this fixes is the per-sample order of the
    blocks, which is all that top-k routing reads."""
    return nn.functional.mse_loss(logits - logits.mean(1, keepdim=True), target - target.mean(1, keepdim=True))


def fit_router(router: BlockRouter, pool: dict[str, torch.Tensor], steps: int = 300, lr: float = 1e-2) -> list[float]:
    """Warm start: fit `router` to `pool` (`importance_pool`) with `rank_loss` alone, full batch, AdamW.
    Returns the loss per step. The router's inputs are cached, so this costs no transformer forward."""
    optimizer = torch.optim.AdamW(router.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    router.train()
    for _ in range(steps):
        loss = rank_loss(router(pool["temb"], pool["content"]), pool["target"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def calibrate_offset(router: BlockRouter, pool: dict[str, torch.Tensor], budget: float) -> float:
    """Shift the router's output bias by one constant so that its keep probabilities on `pool` average `budget`
    (blocks counted alike; bisection). The order of each sample's blocks is untouched; the budget loss then
    starts near zero instead of dragging every logit down from keep-all, which scrambles the order it learned.
    Returns the shift."""
    logits = router(pool["temb"], pool["content"])
    low, high = -50.0, 50.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if torch.sigmoid(logits + middle).mean() < budget else (low, middle)
    router.out.bias += (low + high) / 2
    return (low + high) / 2


def static_blocks(importance: list[float], costs: list[float], budget: float, floor: float = 0.0) -> list[bool]:
    """The fixed block set of the static-depth ablation: the blocks whose summed `importance` is largest among
    the sets whose share of the summed `costs` lies in [`floor`, `budget`]. A 0/1 knapsack, solved exactly
    with scipy's mixed-integer solver. Picking blocks greedily by importance can stop a whole block short of
    the budget when the important blocks are the expensive ones (width-pruned blocks differ in cost), and a
    floor is the only way to put a fixed set at a learned router's measured FLOPs. Raises when no set fits."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    share = np.asarray(costs, dtype=np.float64) / float(np.sum(costs))
    slack = 1e-9  # the tolerance `decide` allows, so a set this picks is one top-k routing at `budget` keeps
    result = milp(
        -np.asarray(importance, dtype=np.float64),
        constraints=LinearConstraint(share[None], floor - slack, budget + slack),
        integrality=np.ones(len(share)),
        bounds=Bounds(0, 1),
    )
    if result.x is None:
        raise ValueError(
            f"no set of blocks costs between {floor} and {budget} of the block FLOPs (block shares "
            f"{np.round(share, 3).tolist()}); widen the window"
        )
    return [bool(round(x)) for x in result.x]


def static_router(dim: int, keep: list[bool], budget: float, hidden: int = 64) -> BlockRouter:
    """A router that sees nothing and keeps the same blocks for every input and step (its logits are +-20, so
    training samples are these decisions too). `budget`: the share of block FLOPs `keep` costs, so top-k at it
    keeps exactly `keep` and no other block fits. Freeze it: `JointConfig(train_router=False)`."""
    router = BlockRouter(dim, len(keep), hidden, use_timestep=False, use_content=False, budget=budget)
    nn.init.zeros_(router.out.weight)
    with torch.no_grad():
        router.out.bias.copy_(torch.tensor([20.0 if k else -20.0 for k in keep]))
    return router
