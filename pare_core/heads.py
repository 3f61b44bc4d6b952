"""Head profiling for Wan self-attention: what each head attends to (role) and what removing it costs.

- **Role.** For every self-attention head, its attention mass m on keys in *other* frames, and the
  temporal score t = (m / (F - 1)) / (m / (F - 1) + (1 - m)) in [0, 1]: the mass per other frame against
  the mass on the query's own frame, so uniform attention scores 0.5 rather than (F - 1) / F, a purely
  spatial (same-frame) head 0 and a purely temporal head 1. Query rows are sampled, and
  heads are processed `head_chunk` at a time, so memory per block is O(batch x sampled queries x tokens x
  head_chunk): a Wan2.1-14B layer at 75,600 tokens never builds a 75,600 x 75,600 map.
- **Importance.** The damage when the head is removed: the relative squared error of the model's
  output with that head's contribution zeroed (a pre-hook on `to_out[0]`), against the intact model.
- **Magnitude.** The norm of the head's q/k/v rows and `to_out` columns (a data-free baseline).

Inputs are plain forward kwargs of the transformer (`hidden_states`, `timestep`, `encoder_hidden_states`,
...), so this module knows nothing of worlds, prompts or suites.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from pare_core.flops import WAN_TEXT_CONTEXT_LEN
from pare_core.prune import HeadPlan


@dataclass
class HeadProfile:
    temporal: list[
        list[float]
    ]  # [block][head] temporal score: 0 same-frame only, 0.5 no preference, 1 other frames only
    other_frame_mass: list[list[float]]  # [block][head] raw attention mass on other-frame keys
    importance: list[list[float]]  # [block][head] relative output error when the head is removed
    magnitude: list[list[float]]  # [block][head] weight norm of the head's projections
    frames: int  # latent frames of the calibration inputs (for reading `temporal` against (F - 1) / F)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> HeadProfile:
        return cls(**json.loads(Path(path).read_text()))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's rotary embedding on (B, N, H, D), the arithmetic of diffusers' WanAttnProcessor (a closure there)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out


def temporal_mass(
    attn: nn.Module,
    hidden: torch.Tensor,
    rotary: tuple[torch.Tensor, torch.Tensor],
    tokens_per_frame: int,
    query_samples: int,
    generator: torch.Generator,
    head_chunk: int = 1,
) -> torch.Tensor:
    """Mean attention mass on other-frame keys per head, from `query_samples` random query rows: (H,)."""
    batch, tokens, _ = hidden.shape
    heads = attn.heads
    rows = torch.randperm(tokens, generator=generator)[: min(query_samples, tokens)].to(hidden.device)
    cos, sin = rotary
    # q/k norms are per token (across the heads of one token), so normalising only sampled rows is exact.
    query = rotate(attn.norm_q(attn.to_q(hidden[:, rows])).unflatten(2, (heads, -1)), cos[:, rows], sin[:, rows])
    key = rotate(attn.norm_k(attn.to_k(hidden)).unflatten(2, (heads, -1)), cos, sin)  # (B, N, H, D)
    other = (rows[:, None] // tokens_per_frame) != (torch.arange(tokens, device=hidden.device) // tokens_per_frame)
    scale = 1.0 / math.sqrt(query.shape[-1])
    masses = []
    for start in range(0, heads, head_chunk):
        chunk = slice(start, start + head_chunk)
        scores = torch.einsum("bshd,bnhd->bhsn", query[:, :, chunk], key[:, :, chunk]) * scale  # (B, h, S, N)
        masses.append((scores.softmax(-1) * other).sum(-1).mean(dim=(0, 2)))
    return torch.cat(masses)


def _forward(model: nn.Module, inputs: dict) -> torch.Tensor:
    return model(**inputs, return_dict=False)[0]


@torch.no_grad()
def profile_roles(
    model: nn.Module, inputs: Iterable[dict], query_samples: int = 256, head_chunk: int = 1, seed: int = 0
) -> tuple[list[list[float]], int]:
    """Temporal score of every self-attention head, averaged over the calibration inputs."""
    generator = torch.Generator().manual_seed(seed)
    totals = [torch.zeros(block.attn1.heads) for block in model.blocks]
    state = {}

    def capture(index: int) -> Callable:
        def hook(attn, args):  # attn1(norm_hidden_states, None, None, rotary_emb)
            mass = temporal_mass(attn, args[0], args[3], state["per_frame"], query_samples, generator, head_chunk)
            totals[index] += mass.float().cpu()

        return hook

    handles = [block.attn1.register_forward_pre_hook(capture(i)) for i, block in enumerate(model.blocks)]
    count = 0
    try:
        for batch in inputs:
            frames, height, width = batch["hidden_states"].shape[2:]
            p_t, p_h, p_w = model.config.patch_size
            state["per_frame"] = (height // p_h) * (width // p_w)
            _forward(model, batch)
            count += 1
    finally:
        for handle in handles:
            handle.remove()
    return [(total / count).tolist() for total in totals], frames // p_t


def _mask_head(head: int, head_dim: int) -> Callable:
    def hook(linear, args):
        hidden = args[0].clone()
        hidden[..., head * head_dim : (head + 1) * head_dim] = 0
        return (hidden,)

    return hook


@torch.no_grad()
def head_errors(
    model: nn.Module, inputs: list[dict], heads: Iterable[tuple[int, int]], progress: Callable | None = None
) -> list[float]:
    """Relative output error E||y_h - y||^2 / E||y||^2 with head h of a block zeroed, for each (block, head) in
    `heads`: one forward per input and head, so the heads can be split across processes."""
    reference = [_forward(model, batch) for batch in inputs]
    energy = sum(float((y**2).sum()) for y in reference)
    errors = []
    for block, head in heads:
        attn = model.blocks[block].attn1
        handle = attn.to_out[0].register_forward_pre_hook(_mask_head(head, attn.inner_dim // attn.heads))
        try:
            error = sum(float(((_forward(model, b) - y) ** 2).sum()) for b, y in zip(inputs, reference))
        finally:
            handle.remove()
        errors.append(error / energy)
        if progress:
            progress()
    return errors


def all_heads(model: nn.Module) -> list[tuple[int, int]]:
    """(block, head) of every self-attention head, block-major."""
    return [(b, h) for b, block in enumerate(model.blocks) for h in range(block.attn1.heads)]


def profile_importance(model: nn.Module, inputs: list[dict], progress: Callable | None = None) -> list[list[float]]:
    """[block][head] relative output error with that head zeroed (`head_errors` of every head)."""
    errors = iter(head_errors(model, inputs, all_heads(model), progress))
    return [[next(errors) for _ in range(block.attn1.heads)] for block in model.blocks]


@torch.no_grad()
def head_magnitude(model: nn.Module, attention: str = "attn1") -> list[list[float]]:
    """[block][head] Frobenius norm of the head's slices of every projection of `attention` (attn1 or attn2)."""
    scores = []
    for block in model.blocks:
        attn = getattr(block, attention)
        head_dim = attn.inner_dim // attn.heads
        projections = [attn.to_q, attn.to_k, attn.to_v] + (
            [attn.add_k_proj, attn.add_v_proj] if attn.add_k_proj is not None else []
        )
        row = []
        for head in range(attn.heads):
            rows = slice(head * head_dim, (head + 1) * head_dim)
            parts = [p.weight[rows] for p in projections] + [attn.to_out[0].weight[:, rows]]
            row.append(float(torch.sqrt(sum((p.float() ** 2).sum() for p in parts))))
        scores.append(row)
    return scores


def temporal_score(other_frame_mass: torch.Tensor, frames: int) -> torch.Tensor:
    per_other_frame = other_frame_mass / max(frames - 1, 1)
    return per_other_frame / (per_other_frame + (1 - other_frame_mass)).clamp_min(1e-12)


def profile_heads(
    model: nn.Module, inputs: list[dict], query_samples: int = 256, progress: Callable | None = None
) -> HeadProfile:
    mass, frames = profile_roles(model, inputs, query_samples)
    temporal = temporal_score(torch.tensor(mass), frames).tolist()
    return HeadProfile(temporal, mass, profile_importance(model, inputs, progress), head_magnitude(model), frames)


# ------------------------------------------------------------------------------------------- scores


def _normalised(values: torch.Tensor) -> torch.Tensor:
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else torch.zeros_like(values)


def head_scores(profile: HeadProfile, method: str, temporal_weight: float = 1.0, seed: int = 0) -> torch.Tensor:
    """(L, H) keep-priority of every head; higher is kept first.

    temporal_aware: importance x (1 + w * temporal), temporal min-max normalised over the model, so the
    most temporal head's importance counts (1 + w) times; w = 0 is plain importance.
    """
    if method in ("temporal_aware", "uniform"):
        return torch.tensor(profile.importance) * (1 + temporal_weight * _normalised(torch.tensor(profile.temporal)))
    if method == "importance":
        return torch.tensor(profile.importance)
    if method == "magnitude":
        return torch.tensor(profile.magnitude)
    if method == "random":
        return torch.rand(torch.tensor(profile.importance).shape, generator=torch.Generator().manual_seed(seed))
    raise ValueError(f"unknown head score {method!r}; known: {SCORES}")


SCORES = ("temporal_aware", "temporal_quota", "importance", "magnitude", "random", "uniform")


def temporal_half(profile: HeadProfile) -> torch.Tensor:
    """(L, H) bool: the heads whose temporal score is at or above the model's median."""
    temporal = torch.tensor(profile.temporal)
    return temporal >= temporal.median()


def select_with_temporal_quota(profile: HeadProfile, ratio: float, quota: float) -> HeadPlan:
    """Keep `quota` of the kept heads from the temporal half, the rest by importance.

    A weighted score (temporal_aware) only changes the plan where importances are close: on the tiny
    teacher the temporal term left the plan equal to plain importance up to a weight of about 4.25. Here
    the temporal heads (temporal score at or above the median) get `quota` of the budget outright, taken
    by importance within them; the other slots go to the most important remaining heads of any role.
    """
    importance = torch.tensor(profile.importance)
    blocks, heads = importance.shape
    budget = max(blocks, round((1 - ratio) * blocks * heads))
    is_temporal = temporal_half(profile)
    ranked = importance.flatten().argsort(descending=True).tolist()
    chosen = {(b, int(importance[b].argmax())) for b in range(blocks)}  # every block keeps its best head
    reserved = round(quota * budget)
    for flat in ranked:
        if sum(bool(is_temporal[b, h]) for b, h in chosen) >= reserved or len(chosen) >= budget:
            break
        if is_temporal.flatten()[flat]:
            chosen.add(divmod(flat, heads))
    for flat in ranked:
        if len(chosen) >= budget:
            break
        chosen.add(divmod(flat, heads))
    return HeadPlan(tuple(tuple(sorted(h for b, h in chosen if b == block)) for block in range(blocks)))


def plan_overlap(a: HeadPlan, b: HeadPlan) -> float:
    """Jaccard overlap of the kept (block, head) sets of two plans: 1.0 when they keep the same heads."""
    kept_a = {(block, head) for block, keep in enumerate(a.keep) for head in keep}
    kept_b = {(block, head) for block, keep in enumerate(b.keep) for head in keep}
    return len(kept_a & kept_b) / len(kept_a | kept_b)


def temporal_kept(profile: HeadProfile, plan: HeadPlan) -> float:
    """Share of `plan`'s kept heads from the temporal half, the half `select_with_temporal_quota` reserves its
    quota in."""
    half = temporal_half(profile)
    kept = [bool(half[block, head]) for block, keep in enumerate(plan.keep) for head in keep]
    return sum(kept) / len(kept)


def select_heads(scores: torch.Tensor, ratio: float, per_block_equal: bool = False) -> HeadPlan:
    """Remove `ratio` of all heads, keeping the highest-scoring ones and at least one per block.

    Global selection lets blocks keep different head counts; `per_block_equal` keeps the same number in
    every block (the `uniform` baseline).
    """
    if not 0 <= ratio < 1:
        raise ValueError(f"prune ratio must be in [0, 1), got {ratio}")
    blocks, heads = scores.shape
    if per_block_equal:
        keep = max(1, round((1 - ratio) * heads))
        return HeadPlan(tuple(tuple(sorted(row.argsort(descending=True)[:keep].tolist())) for row in scores))
    budget = max(blocks, round((1 - ratio) * blocks * heads))
    chosen = {(b, int(scores[b].argmax())) for b in range(blocks)}  # every block keeps its best head
    for flat in scores.flatten().argsort(descending=True).tolist():
        if len(chosen) >= budget:
            break
        chosen.add(divmod(flat, heads))
    return HeadPlan(tuple(tuple(sorted(h for b, h in chosen if b == block)) for block in range(blocks)))


def plan_heads(
    profile: HeadProfile,
    method: str,
    ratio: float,
    temporal_weight: float = 1.0,
    seed: int = 0,
    temporal_quota: float = 0.5,
) -> HeadPlan:
    if method == "temporal_quota":
        return select_with_temporal_quota(profile, ratio, temporal_quota)
    scores = head_scores(profile, method, temporal_weight, seed)
    return select_heads(scores, ratio, per_block_equal=method == "uniform")


def plan_cross_heads(model: nn.Module, ratio: float) -> tuple[tuple[int, ...], ...]:
    """Cross-attention heads to keep (`HeadPlan.cross_keep`), removing `ratio` of them by weight magnitude.

    Magnitude, not measured damage: the temporal score does not apply to cross-attention (its keys are
    text and image tokens, not frames), and the profile stays one pass over self-attention.
    """
    return select_heads(torch.tensor(head_magnitude(model, "attn2")), ratio).keep


# ------------------------------------------------------------------------------------- q/k norm shift


def _normed_projections(attn: nn.Module, args: tuple, attention: str) -> list[tuple[nn.Module, torch.Tensor]]:
    """(projection, its input) for each projection that an across-heads RMSNorm follows: q, k[, image k].

    attn2 mirrors WanAttnProcessor: with image k/v projections the last 512 context tokens are text and
    the ones before them are image tokens.
    """
    hidden = args[0]
    if attention == "attn1":
        return [(attn.to_q, hidden), (attn.to_k, hidden)]
    context = args[1]
    if attn.add_k_proj is None:
        return [(attn.to_q, hidden), (attn.to_k, context)]
    split = context.shape[1] - WAN_TEXT_CONTEXT_LEN
    return [(attn.to_q, hidden), (attn.to_k, context[:, split:]), (attn.add_k_proj, context[:, :split])]


@torch.no_grad()
def measure_norm_shift(
    model: nn.Module, plan: HeadPlan, inputs: Iterable[dict], attention: str = "attn1"
) -> list[tuple[float, ...]]:
    """Per block, the mean ratio RMS(kept heads) / RMS(all heads) of the q and k projections (and of I2V's
    image k in attn2), for the heads `plan` keeps in `attention` (attn1: plan.keep, attn2: plan.cross_keep).

    Wan's RMSNorm spans all heads of a block, so after pruning each kept head is divided by the RMS of the
    kept heads only. Multiplying the kept norm weights by this ratio restores the original scale on average.
    """
    keep = plan.keep if attention == "attn1" else plan.cross_keep
    sums: list[list[float]] = [[] for _ in model.blocks]
    counts = [0 for _ in model.blocks]

    def capture(index: int) -> Callable:
        def hook(attn, args):
            head_dim = attn.inner_dim // attn.heads
            rows = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in keep[index]])
            pairs = _normed_projections(attn, args, attention)
            sums[index] = sums[index] or [0.0] * len(pairs)
            for slot, (projection, source) in enumerate(pairs):
                x = projection(source).float()  # (B, N, inner)
                ratio = (
                    x[..., rows].pow(2).mean(-1).add(attn.norm_q.eps).sqrt()
                    / x.pow(2).mean(-1).add(attn.norm_q.eps).sqrt()
                )
                sums[index][slot] += float(ratio.mean())
            counts[index] += 1

        return hook

    handles = [getattr(block, attention).register_forward_pre_hook(capture(i)) for i, block in enumerate(model.blocks)]
    try:
        for batch in inputs:
            _forward(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    return [tuple(total / n for total in slots) for slots, n in zip(sums, counts)]
