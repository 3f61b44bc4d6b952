"""Structural head pruning of Wan self-attention: weights really shrink, and the result is a diffusers model.

`prune_heads(model, plan)` returns a new `PrunedWanTransformer3DModel`; the input is never modified.
For every block, the kept heads' rows of `to_q`, `to_k`, `to_v` and of the q/k RMSNorm weights, and the
matching input columns of `to_out[0]`, are copied; everything else is copied whole. The config records
the head count of each block (`heads_per_block`), so `save_pretrained` / `from_pretrained` round-trip.

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
    """Which self-attention heads each block keeps: keep[block] is a sorted list of head indices."""

    keep: tuple[tuple[int, ...], ...]

    @property
    def heads_per_block(self) -> list[int]:
        return [len(heads) for heads in self.keep]

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
        if heads_per_block is None:
            return
        if len(heads_per_block) != len(self.blocks) or min(heads_per_block) < 1:
            raise ValueError(
                f"heads_per_block needs one count >= 1 per block ({len(self.blocks)}), got {heads_per_block}"
            )
        dim, head_dim = self.config.num_attention_heads * self.config.attention_head_dim, self.config.attention_head_dim
        for block, heads in zip(self.blocks, heads_per_block):
            # The same construction as WanTransformerBlock's attn1, with fewer heads of the same size.
            block.attn1 = WanAttention(
                dim=dim, heads=heads, dim_head=head_dim, eps=self.config.eps, processor=WanAttnProcessor()
            )


def _head_rows(heads: tuple[int, ...], head_dim: int) -> torch.Tensor:
    return torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])


def _pruned_attention_state(attn: WanAttention, heads: tuple[int, ...], scales: tuple[float, float]) -> dict:
    """State dict of a pruned attn1: kept rows of q/k/v and norms, kept columns of the output projection."""
    rows = _head_rows(heads, attn.inner_dim // attn.heads)
    state = {}
    for name in ("to_q", "to_k", "to_v"):
        layer = getattr(attn, name)
        state[f"{name}.weight"] = layer.weight[rows].clone()
        state[f"{name}.bias"] = layer.bias[rows].clone()
    state["norm_q.weight"] = attn.norm_q.weight[rows] * scales[0]
    state["norm_k.weight"] = attn.norm_k.weight[rows] * scales[1]
    state["to_out.0.weight"] = attn.to_out[0].weight[:, rows].clone()
    state["to_out.0.bias"] = attn.to_out[0].bias.clone()
    return state


@torch.no_grad()
def prune_heads(
    model: WanTransformer3DModel, plan: HeadPlan, norm_scales: list[tuple[float, float]] | None = None
) -> PrunedWanTransformer3DModel:
    """A new model keeping only `plan`'s self-attention heads. `model` is left bit-identical.

    `norm_scales[i] = (q_scale, k_scale)` multiplies block i's kept q/k norm weights (default 1.0).
    """
    if len(plan.keep) != len(model.blocks):
        raise ValueError(f"plan has {len(plan.keep)} blocks, model has {len(model.blocks)}")
    for index, (block, heads) in enumerate(zip(model.blocks, plan.keep)):
        if not heads or len(set(heads)) != len(heads) or not all(0 <= h < block.attn1.heads for h in heads):
            raise ValueError(
                f"block {index}: keep {heads} is not a non-empty set of heads in 0..{block.attn1.heads - 1}"
            )
    config = {k: v for k, v in model.config.items() if not k.startswith("_") and k != "heads_per_block"}
    pruned = PrunedWanTransformer3DModel(**config, heads_per_block=plan.heads_per_block)
    state = {k: v.clone() for k, v in model.state_dict().items() if ".attn1." not in k}
    scales = norm_scales or [(1.0, 1.0)] * len(plan.keep)
    for index, (block, heads) in enumerate(zip(model.blocks, plan.keep)):
        for key, value in _pruned_attention_state(block.attn1, tuple(sorted(heads)), scales[index]).items():
            state[f"blocks.{index}.attn1.{key}"] = value
    pruned.load_state_dict(state, strict=True)
    reference = next(model.parameters())
    if reference.dtype != torch.float32:  # built in fp32; only a low-precision teacher needs the cast
        pruned.to(dtype=reference.dtype)
    return pruned.to(device=reference.device).eval()
