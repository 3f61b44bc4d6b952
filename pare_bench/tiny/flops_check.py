"""The FLOPs cross-check of a tiny-world `run` (`TinyBackend.flops_cross_check`): each system's run-time FLOP
count against the analytic formula and, for dense systems, fvcore; a routed system's formula follows the block
decisions recorded for the same video."""

from __future__ import annotations

import torch

from pare_bench.store import RunStore
from pare_bench.systems import System
from pare_bench.tiny.zoo import IMAGE_PATCH
from pare_core.flops import analytic_flops, block_flops, fvcore_flops
from pare_core.router import attached_router, router_size


def _routed_analytic(system: System, config: dict, frames: int, text_len: int, image_len: int, routing: list[str]):
    """Analytic FLOPs of one routed video: per forward the non-block terms, the blocks its decisions kept
    (`block_flops`) and the router's two linears."""
    world = system.model.spec.world
    dense = analytic_flops(config, frames, world.height, world.width, text_len, image_len)
    p_t, p_h, p_w = config["patch_size"]
    tokens = (frames // p_t) * (world.height // p_h) * (world.width // p_w)
    costs = block_flops(config, tokens, text_len, image_len)
    router, _ = attached_router(system.model.transformer)
    overhead = dense.embedding + dense.output + router_size(router)["flops_per_sample"]
    per_step = [overhead + sum(c for c, keep in zip(costs, step) if keep == "1") for step in routing]
    return sum(per_step) / len(per_step)


def flops_cross_check(store: RunStore, system: System) -> None:
    """A system's FLOPs counted independently: analytic formula and run-time counter, and for a dense system
    (teacher or pruned student) fvcore (x2, MACs) too. A routed system's analytic count follows the decisions
    recorded for the same video; fvcore's trace cannot follow data-dependent routing, so it is left out there."""
    if any(r["kind"] == "flops_check" and r["system"] == system.name for r in store.records()):
        return
    model, world = system.model, system.model.spec.world
    config = dict(model.transformer.config)
    text_len = model.spec.text_context
    image_len = (world.height // IMAGE_PATCH) * (world.width // IMAGE_PATCH) if model.spec.task == "i2v" else 0
    frames = system.sampling.frames or world.frames
    forwards = system.sampling.steps * (2 if system.sampling.guidance != 1.0 else 1)
    counted = next(r for r in store.records() if r["system"] == system.name and "flops" in r)
    if system.routed:
        per_forward, fvcore = _routed_analytic(system, config, frames, text_len, image_len, counted["routing"]), None
    else:
        per_forward = analytic_flops(config, frames, world.height, world.width, text_len, image_len).total
        inputs = (
            torch.randn(1, config["in_channels"], frames, world.height, world.width),
            torch.tensor([500.0]),
            torch.randn(1, text_len, config["text_dim"]),
        )
        if image_len:
            inputs += (torch.randn(1, image_len, config["image_dim"]),)
        fvcore = fvcore_flops(model.transformer, inputs)
    store.append(
        {
            "kind": "flops_check",
            "system": system.name,
            "forwards_per_video": forwards,
            "analytic_per_forward": per_forward,
            "analytic_per_video": per_forward * forwards,
            "runtime_per_video": counted["flops"],
            "fvcore_x2_per_forward": fvcore,
        }
    )
