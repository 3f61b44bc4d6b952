"""Structural head pruning of Wan attention: weights really shrink, and the result is a diffusers model.

`prune_heads(model, plan)` returns a new `PrunedWanTransformer3DModel`; the input is never modified.
For every block, the kept heads' rows of `to_q`, `to_k`, `to_v` and of the q/k RMSNorm weights, and the
matching input columns of `to_out[0]`, are copied; everything else is copied whole. Self-attention
(`attn1`) follows `plan.keep`; cross-attention (`attn2`, including I2V's image `add_k_proj`/`add_v_proj`
and `norm_added_k`) follows `plan.cross_keep` when it is set. The config records the head counts of each
block (`heads_per_block`, `cross_heads_per_block`), so `save_pretrained` / `from_pretrained` round-trip.

Wan's q/k norm is an RMSNorm over all heads of a block (`qk_norm="rms_norm_across_heads"`): each
head's query is divided by the RMS over *every* head's query. Removing heads changes that statistic, so
a pruned block would rescale its remaining heads even with the exact original weights. `norm_scales`
(from `pare_core.heads.measure_norm_shift`) folds the calibrated ratio RMS(kept)/RMS(all) into the
kept norm weights, which undoes the change on average; what is left is input-dependent and is what
stage-1 distillation recovers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import WanTransformer3DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor


@dataclass(frozen=True)
class HeadPlan:
    """Which heads each block keeps: keep[block] (self-attention) and cross_keep[block] (cross-attention,
    None keeps them all) are sorted head indices."""

    keep: tuple[tuple[int, ...], ...]
    cross_keep: tuple[tuple[int, ...], ...] | None = None

    @property
    def heads_per_block(self) -> list[int]:
        return [len(heads) for heads in self.keep]

    @property
    def cross_heads_per_block(self) -> list[int] | None:
        return None if self.cross_keep is None else [len(heads) for heads in self.cross_keep]

    @classmethod
    def keep_all(cls, model: WanTransformer3DModel) -> HeadPlan:
        return cls(tuple(tuple(range(block.attn1.heads)) for block in model.blocks))


class PrunedWanTransformer3DModel(WanTransformer3DModel):
    """A WanTransformer3DModel whose self-attention keeps `heads_per_block[i]` heads in block i."""

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 40,
        attention_head_dim: int = 128,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 13824,
        num_layers: int = 40,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = None,
        added_kv_proj_dim: int | None = None,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
        heads_per_block: list[int] | None = None,  # self-attention heads kept in each block
        cross_heads_per_block: list[int] | None = None,  # cross-attention heads kept in each block
    ) -> None:
        # The parent's arguments, spelled out: register_to_config records exactly these in config.json.
        super().__init__(
            patch_size,
            num_attention_heads,
            attention_head_dim,
            in_channels,
            out_channels,
            text_dim,
            freq_dim,
            ffn_dim,
            num_layers,
            cross_attn_norm,
            qk_norm,
            eps,
            image_dim,
            added_kv_proj_dim,
            rope_max_seq_len,
            pos_embed_seq_len,
        )
        for key, counts in (("heads_per_block", heads_per_block), ("cross_heads_per_block", cross_heads_per_block)):
            if counts is not None and (len(counts) != len(self.blocks) or min(counts) < 1):
                raise ValueError(f"{key} needs one count >= 1 per block ({len(self.blocks)}), got {counts}")
        dim, head_dim = num_attention_heads * attention_head_dim, attention_head_dim
        for index, block in enumerate(self.blocks):
            # The same constructions as WanTransformerBlock's attn1 and attn2, with fewer heads of the same size.
            if heads_per_block is not None:
                block.attn1 = WanAttention(
                    dim=dim, heads=heads_per_block[index], dim_head=head_dim, eps=eps, processor=WanAttnProcessor()
                )
            if cross_heads_per_block is not None:
                block.attn2 = WanAttention(
                    dim=dim,
                    heads=cross_heads_per_block[index],
                    dim_head=head_dim,
                    eps=eps,
                    added_kv_proj_dim=added_kv_proj_dim,
                    cross_attention_dim_head=head_dim,
                    processor=WanAttnProcessor(),
                )


def _head_rows(heads: tuple[int, ...], head_dim: int) -> torch.Tensor:
    return torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])


def _pruned_attention_state(attn: WanAttention, heads: tuple[int, ...], scales: tuple[float, ...]) -> dict:
    """State dict of a pruned attention: kept rows of the q/k/v projections (and of I2V's image k/v) and of
    their norms, kept columns of the output projection. `scales` = (q, k[, image k]) norm weight factors."""
    rows = _head_rows(heads, attn.inner_dim // attn.heads)
    projections = ["to_q", "to_k", "to_v"] + (["add_k_proj", "add_v_proj"] if attn.add_k_proj is not None else [])
    state = {}
    for name in projections:
        layer = getattr(attn, name)
        state[f"{name}.weight"] = layer.weight[rows].clone()
        state[f"{name}.bias"] = layer.bias[rows].clone()
    norms = ["norm_q", "norm_k"] + (["norm_added_k"] if attn.add_k_proj is not None else [])
    for name, scale in zip(norms, (*scales, 1.0, 1.0, 1.0)):
        state[f"{name}.weight"] = getattr(attn, name).weight[rows] * scale
    state["to_out.0.weight"] = attn.to_out[0].weight[:, rows].clone()
    state["to_out.0.bias"] = attn.to_out[0].bias.clone()
    return state


def _check_keep(model: WanTransformer3DModel, keep: tuple[tuple[int, ...], ...], attention: str) -> None:
    if len(keep) != len(model.blocks):
        raise ValueError(f"{attention} plan has {len(keep)} blocks, model has {len(model.blocks)}")
    for index, (block, heads) in enumerate(zip(model.blocks, keep)):
        count = getattr(block, attention).heads
        if not heads or len(set(heads)) != len(heads) or not all(0 <= h < count for h in heads):
            raise ValueError(
                f"block {index} {attention}: keep {heads} is not a non-empty set of heads in 0..{count - 1}"
            )


@torch.no_grad()
def prune_heads(
    model: WanTransformer3DModel,
    plan: HeadPlan,
    norm_scales: list[tuple[float, ...]] | None = None,
    cross_norm_scales: list[tuple[float, ...]] | None = None,
) -> PrunedWanTransformer3DModel:
    """A new model keeping only `plan`'s heads. `model` is left bit-identical.

    `norm_scales[i] = (q_scale, k_scale)` multiplies block i's kept self-attention q/k norm weights, and
    `cross_norm_scales[i] = (q_scale, k_scale[, image_k_scale])` its cross-attention ones (default 1.0).
    """
    if isinstance(model, PrunedWanTransformer3DModel) and (
        model.config.heads_per_block is not None or model.config.cross_heads_per_block is not None
    ):
        raise ValueError("model is already head-pruned; prune the original model with a combined plan")
    _check_keep(model, plan.keep, "attn1")
    pruned_attentions = {"attn1": (plan.keep, norm_scales)}
    if plan.cross_keep is not None:
        _check_keep(model, plan.cross_keep, "attn2")
        pruned_attentions["attn2"] = (plan.cross_keep, cross_norm_scales)
    drop = ("_", "heads_per_block", "cross_heads_per_block")
    config = {k: v for k, v in model.config.items() if not k.startswith(drop)}
    pruned = PrunedWanTransformer3DModel(
        **config, heads_per_block=plan.heads_per_block, cross_heads_per_block=plan.cross_heads_per_block
    )
    state = {k: v.clone() for k, v in model.state_dict().items() if not any(f".{a}." in k for a in pruned_attentions)}
    for attention, (keep, scales) in pruned_attentions.items():
        scales = scales or [(1.0, 1.0)] * len(keep)
        for index, (block, heads) in enumerate(zip(model.blocks, keep)):
            attn = getattr(block, attention)
            for key, value in _pruned_attention_state(attn, tuple(sorted(heads)), scales[index]).items():
                state[f"blocks.{index}.{attention}.{key}"] = value
    pruned.load_state_dict(state, strict=True)
    reference = next(model.parameters())
    if reference.dtype != torch.float32:  # built in fp32; only a low-precision teacher needs the cast
        pruned.to(dtype=reference.dtype)
    return pruned.to(device=reference.device).eval()
