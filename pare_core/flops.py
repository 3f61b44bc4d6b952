"""FLOP counting for one forward of a diffusers ``WanTransformer3DModel``.

Three independent counters, so each can keep the others honest:

1. :func:`analytic_flops` -- closed form from the model config. This is the number
   we report (it is exact, cheap, and works for configs too big to instantiate),
   and the only one that can describe pruned heads / routed blocks without
   building the modified model.
2. :func:`count_runtime_flops` / :class:`RuntimeFlopCounter` -- what
   ``torch.utils.flop_counter.FlopCounterMode`` sees at dispatch time while the
   model actually runs (catches any matmul the formula forgot).
3. :func:`fvcore_flops` -- fvcore's jit-trace based count, an outside reference
   that shares no code with torch's counter.

Convention (same as ``torch.utils.flop_counter``): one multiply-add = 2 FLOPs, and
only matmul-like work is counted: linears, the patch-embedding conv and the two
attention matmuls (Q K^T and P V). Biases, norms, activations, softmax, RoPE,
modulation (shift/scale/gate) and other elementwise ops are ignored; at Wan
sizes they are well under 1% of the total.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.flop_counter import (
    FlopCounterMode,
    sdpa_backward_flop_count,
    sdpa_flop_count,
)

# Wan's text encoder (umT5) context length. WanAttnProcessor hard-codes it: when
# the block has image K/V projections, the *last* 512 context tokens are text and
# everything before them is image tokens.
WAN_TEXT_CONTEXT_LEN = 512


# -----------------------------------------------------------------------------
# 1. Analytic count


@dataclass
class FlopBreakdown:
    """FLOPs of one transformer forward, split by where they are spent."""

    self_attention: float = 0  # all blocks: q/k/v/out projections + QK^T + PV
    cross_attention: float = 0  # all blocks: text (and image) cross-attention
    ffn: float = 0  # all blocks: the two FFN linears
    embedding: float = 0  # patch conv + time/text/image condition embedders
    output: float = 0  # final proj_out
    router: float = 0  # routing overhead of routed variants (0 for plain Wan)

    @property
    def total(self) -> float:
        return self.self_attention + self.cross_attention + self.ffn + self.embedding + self.output + self.router

    def as_dict(self) -> dict[str, float]:
        d = asdict(self)
        d["total"] = self.total
        return d


def _linear(rows: int, d_in: int, d_out: int) -> int:
    """FLOPs of ``rows`` vectors through a d_in -> d_out linear (bias ignored)."""
    return 2 * rows * d_in * d_out


def _attention(batch: int, heads: int, len_q: int, len_k: int, head_dim: int) -> int:
    """FLOPs of softmax(Q K^T) V: two batched matmuls of equal size."""
    return 2 * 2 * batch * heads * len_q * len_k * head_dim


def _get(config: Mapping[str, Any], key: str, default: Any = None) -> Any:
    # transformer.config is a FrozenDict (a dict), so plain .get works for both.
    value = config.get(key, default)
    return default if value is None else value


def _embedding_flops(config: Mapping[str, Any], batch: int, tokens: int, text_len: int, image_len: int) -> int:
    """Patch conv + WanTimeTextImageEmbedding (time MLP, time_proj, text MLP, image MLP)."""
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    patch_volume = math.prod(config["patch_size"])
    freq_dim = config["freq_dim"]
    image_dim = _get(config, "image_dim")

    # Conv3d with kernel == stride == patch: a linear over each flattened patch.
    flops = _linear(batch * tokens, config["in_channels"] * patch_volume, dim)
    # TimestepEmbedding: freq_dim -> dim -> dim, then time_proj: dim -> 6*dim (one row per sample).
    flops += _linear(batch, freq_dim, dim) + _linear(batch, dim, dim) + _linear(batch, dim, 6 * dim)
    # PixArtAlphaTextProjection: text_dim -> dim -> dim, per text token.
    text_rows = batch * text_len
    flops += _linear(text_rows, config["text_dim"], dim) + _linear(text_rows, dim, dim)
    # WanImageEmbedding: FeedForward(image_dim, dim, mult=1) = image_dim -> image_dim -> dim.
    if image_dim is not None and image_len > 0:
        image_rows = batch * image_len
        flops += _linear(image_rows, image_dim, image_dim)
        flops += _linear(image_rows, image_dim, dim)
    return flops


def _self_attention_flops(batch: int, tokens: int, dim: int, heads: int, head_dim: int) -> int:
    """One block's attn1 with ``heads`` kept heads: projections are dim -> heads*head_dim."""
    inner, rows = heads * head_dim, batch * tokens
    qkv = 3 * _linear(rows, dim, inner)
    out = _linear(rows, inner, dim)
    return qkv + out + _attention(batch, heads, tokens, tokens, head_dim)


def _per_block(config: Mapping[str, Any], key: str, counts: list[int] | None) -> list[int]:
    """Head counts per block: the argument, else the config's (a pruned model), else every head."""
    counts = counts if counts is not None else _get(config, key)
    num_layers = config["num_layers"]
    counts = counts if counts is not None else [config["num_attention_heads"]] * num_layers
    if len(counts) != num_layers:
        raise ValueError(f"{key} has {len(counts)} entries, model has {num_layers} blocks")
    return list(counts)


def _cross_attention_flops(
    config: Mapping[str, Any], batch: int, tokens: int, text_len: int, image_len: int, heads: int
) -> int:
    """One block's attn2 with ``heads`` kept heads, mirroring WanAttnProcessor's context split."""
    head_dim = config["attention_head_dim"]
    dim, inner = config["num_attention_heads"] * head_dim, heads * head_dim
    added_kv_dim = _get(config, "added_kv_proj_dim")

    context_len = text_len + image_len
    text_ctx, image_ctx = context_len, 0
    if added_kv_dim is not None:
        # The processor slices the last 512 context tokens as text, the rest as image.
        if context_len < WAN_TEXT_CONTEXT_LEN:
            raise ValueError(
                f"added_kv_proj_dim is set, so WanAttnProcessor expects >= {WAN_TEXT_CONTEXT_LEN} context tokens "
                f"(text padded to {WAN_TEXT_CONTEXT_LEN}); got text_len + image_len = {context_len}"
            )
        text_ctx, image_ctx = WAN_TEXT_CONTEXT_LEN, context_len - WAN_TEXT_CONTEXT_LEN

    flops = _linear(batch * tokens, dim, inner) + _linear(batch * tokens, inner, dim)  # to_q, to_out
    flops += 2 * _linear(batch * text_ctx, dim, inner)  # to_k, to_v over text tokens
    flops += _attention(batch, heads, tokens, text_ctx, head_dim)
    if image_ctx > 0:
        # add_k_proj, add_v_proj over image tokens, then a second attention over them
        flops += 2 * _linear(batch * image_ctx, added_kv_dim, inner)
        flops += _attention(batch, heads, tokens, image_ctx, head_dim)
    return flops


def block_flops(
    config: Mapping[str, Any],
    tokens: int,
    text_len: int,
    image_len: int = 0,
    heads_per_block: list[int] | None = None,
    cross_heads_per_block: list[int] | None = None,
) -> list[int]:
    """FLOPs of each block at batch 1 and ``tokens`` patch tokens: self-attention + cross-attention + FFN.

    A router spends its budget in these units, since pruned blocks differ in cost. Head counts default as in
    ``analytic_flops``; the list sums to its self_attention + cross_attention + ffn.
    """
    head_dim = config["attention_head_dim"]
    dim = config["num_attention_heads"] * head_dim
    heads = _per_block(config, "heads_per_block", heads_per_block)
    cross = _per_block(config, "cross_heads_per_block", cross_heads_per_block)
    ffn = 2 * _linear(tokens, dim, config["ffn_dim"])
    return [
        _self_attention_flops(1, tokens, dim, h, head_dim)
        + _cross_attention_flops(config, 1, tokens, text_len, image_len, c)
        + ffn
        for h, c in zip(heads, cross)
    ]


def analytic_flops(
    config: Mapping[str, Any],
    frames: int,
    height: int,
    width: int,
    text_len: int,
    image_len: int = 0,
    heads_per_block: list[int] | None = None,
    blocks_executed: float | None = None,
    batch: int = 1,
    cross_heads_per_block: list[int] | None = None,
) -> FlopBreakdown:
    """Closed-form FLOPs of one ``WanTransformer3DModel`` forward.

    Args:
        config: ``transformer.config`` or a dict with the ``WanTransformer3DModel.__init__`` keys.
        frames, height, width: input grid to the transformer (latent, *before* patching).
        text_len: text tokens fed as ``encoder_hidden_states`` (512 for real Wan prompts).
        image_len: image tokens in ``encoder_hidden_states_image`` (I2V; 257 for CLIP ViT-H).
        heads_per_block: kept self-attention heads per block (head pruning). Defaults to the
            config's ``heads_per_block`` (a pruned model's config), else ``num_attention_heads`` everywhere.
        blocks_executed: average number of blocks run per forward (routed / layer-skipping
            models). Per-block terms are scaled by ``blocks_executed / num_layers``, i.e. we
            assume the executed blocks cost the mean block.
        batch: batch size; everything scales linearly.
        cross_heads_per_block: kept cross-attention heads per block, defaulting like ``heads_per_block``.

    Counts multiply-add as 2 FLOPs and only matmul-like ops (see module docstring):
    norms, softmax, RoPE, activations and modulation are ignored, as in
    ``torch.utils.flop_counter``.
    """
    heads, head_dim = config["num_attention_heads"], config["attention_head_dim"]
    num_layers = config["num_layers"]
    dim = heads * head_dim
    p_t, p_h, p_w = config["patch_size"]
    # Same fallback as the model: out_channels = out_channels or in_channels.
    out_channels = _get(config, "out_channels") or config["in_channels"]
    tokens = (frames // p_t) * (height // p_h) * (width // p_w)

    heads_per_block = _per_block(config, "heads_per_block", heads_per_block)
    cross_heads_per_block = _per_block(config, "cross_heads_per_block", cross_heads_per_block)

    self_attn = sum(_self_attention_flops(batch, tokens, dim, h, head_dim) for h in heads_per_block)
    cross_attn = sum(
        _cross_attention_flops(config, batch, tokens, text_len, image_len, h) for h in cross_heads_per_block
    )
    ffn = num_layers * 2 * _linear(batch * tokens, dim, config["ffn_dim"])  # up + down

    if blocks_executed is not None and blocks_executed != num_layers:
        scale = blocks_executed / num_layers
        self_attn, cross_attn, ffn = self_attn * scale, cross_attn * scale, ffn * scale

    return FlopBreakdown(
        self_attention=self_attn,
        cross_attention=cross_attn,
        ffn=ffn,
        embedding=_embedding_flops(config, batch, tokens, text_len, image_len),
        output=_linear(batch * tokens, dim, out_channels * p_t * p_h * p_w),
    )


def attention_core_flops(
    config: Mapping[str, Any],
    frames: int,
    height: int,
    width: int,
    text_len: int,
    image_len: int = 0,
    heads_per_block: list[int] | None = None,
    cross_heads_per_block: list[int] | None = None,
    blocks_executed: float | None = None,
) -> float:
    """FLOPs of the attention matmuls alone (Q K^T and P V of attn1 and attn2) in one forward at batch 1.

    They are part of ``analytic_flops``; training needs them apart, because a fused attention backward
    recomputes Q K^T and so costs 2.5 forwards (torch's ``sdpa_backward_flop_count``) where a linear's costs 2.
    Arguments as in ``analytic_flops``.
    """
    head_dim, num_layers = config["attention_head_dim"], config["num_layers"]
    p_t, p_h, p_w = config["patch_size"]
    tokens = (frames // p_t) * (height // p_h) * (width // p_w)
    text_ctx, image_ctx = text_len, image_len
    if _get(config, "added_kv_proj_dim") is not None:
        text_ctx, image_ctx = WAN_TEXT_CONTEXT_LEN, text_len + image_len - WAN_TEXT_CONTEXT_LEN
    heads = _per_block(config, "heads_per_block", heads_per_block)
    cross = _per_block(config, "cross_heads_per_block", cross_heads_per_block)
    total = sum(_attention(1, h, tokens, tokens, head_dim) for h in heads)
    total += sum(_attention(1, c, tokens, text_ctx + image_ctx, head_dim) for c in cross)
    return total * (blocks_executed / num_layers if blocks_executed is not None else 1)


# -----------------------------------------------------------------------------
# 2. Runtime count (torch.utils.flop_counter)


# FlopCounterMode has formulas for the CUDA SDPA kernels (flash / efficient / cudnn)
# but not for the CPU fused kernel that F.scaled_dot_product_attention dispatches to
# on CPU, so attention would silently count as 0 there. Map it to the same formula.
def _cpu_sdpa_flop(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(q_shape, k_shape, v_shape)


def _cpu_sdpa_backward_flop(grad_shape, q_shape, k_shape, v_shape, *args, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_shape, q_shape, k_shape, v_shape)


_aten = torch.ops.aten
_EXTRA_FLOP_FORMULAS: dict[Any, Callable[..., int]] = {}
if hasattr(_aten, "_scaled_dot_product_flash_attention_for_cpu"):
    _EXTRA_FLOP_FORMULAS[_aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_flop
if hasattr(_aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
    _cpu_bwd = _aten._scaled_dot_product_flash_attention_for_cpu_backward
    _EXTRA_FLOP_FORMULAS[_cpu_bwd] = _cpu_sdpa_backward_flop


class RuntimeFlopCounter:
    """Context manager counting FLOPs of everything run inside it.

    Wrap a whole sampling loop to get FLOPs per video::

        with RuntimeFlopCounter() as counter:
            pipe(prompt, num_inference_steps=50)
        counter.total
    """

    def __init__(self) -> None:
        self._mode = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)

    def __enter__(self) -> RuntimeFlopCounter:
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)

    @property
    def total(self) -> int:
        return self._mode.get_total_flops()

    def by_module(self) -> dict[str, dict[Any, int]]:
        """Per-module, per-op counts (module names as FlopCounterMode reports them)."""
        return self._mode.get_flop_counts()


def count_runtime_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """Run ``fn(*args, **kwargs)`` and return ``(result, flops)`` as seen by FlopCounterMode."""
    with RuntimeFlopCounter() as counter:
        result = fn(*args, **kwargs)
    return result, counter.total


# -----------------------------------------------------------------------------
# 3. fvcore count (jit trace)


class _WanForFvcore(torch.nn.Module):
    """Adapter so jit.trace sees ``tensors -> tensor`` (no return_dict / dataclass output)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        hidden_states: torch.Tensor,  # (B, C, F, H, W)
        timestep: torch.Tensor,  # (B,)
        encoder_hidden_states: torch.Tensor,  # (B, L_text, text_dim)
        # (B, L_img, image_dim), I2V only
        encoder_hidden_states_image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.model(
            hidden_states,
            timestep,
            encoder_hidden_states,
            encoder_hidden_states_image,
            return_dict=False,
        )[0]


def _fvcore_sdpa_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore has no handle for aten::scaled_dot_product_attention: count Q K^T and P V.

    Returns multiply-adds (fvcore's unit), i.e. half of :func:`_attention`.
    """
    from fvcore.nn.jit_handles import get_shape

    *batch_q, len_q, head_dim = get_shape(inputs[0])  # (B, H, Lq, D)
    len_k = get_shape(inputs[1])[-2]  # (B, H, Lk, D)
    value_dim = get_shape(inputs[2])[-1]  # (B, H, Lk, Dv)
    return math.prod(batch_q) * len_q * len_k * (head_dim + value_dim)


def _zero_handle(inputs: list[Any], outputs: list[Any]) -> int:
    return 0


# fvcore's default table also counts some non-matmul ops (norms, upsampling,
# pooling); for Wan that is aten::layer_norm (~0.3% extra on the tiny test model).
# Zero them so all three counters follow the same matmul-only convention.
# NB: set_op_handle(name, None) does NOT work for these: it only adds the name to
# the ignore set, and fvcore checks its handle table first. Hence a 0-handle.
# aten::linear, addmm, bmm, matmul, mm, einsum and _convolution (the patch conv)
# are all handled natively, so no other matmul handle is needed for Wan.
_FVCORE_IGNORED = (
    "aten::batch_norm",
    "aten::group_norm",
    "aten::layer_norm",
    "aten::instance_norm",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
    "aten::adaptive_avg_pool2d",
    "aten::grid_sampler",
)


def fvcore_flops(model: torch.nn.Module, inputs: tuple) -> int:
    """FLOPs of ``model(*inputs)`` per fvcore, in the 2-FLOPs-per-multiply-add convention.

    ``inputs`` = ``(hidden_states, timestep, encoder_hidden_states[, encoder_hidden_states_image])``.
    fvcore counts one multiply-add as one "flop", so its total is multiplied by 2 to
    be comparable with the other two counters.
    """
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(_WanForFvcore(model), tuple(inputs))
    analysis.set_op_handle("aten::scaled_dot_product_attention", _fvcore_sdpa_handle)
    analysis.set_op_handle(**{name: _zero_handle for name in _FVCORE_IGNORED})
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with torch.no_grad():
        return 2 * int(analysis.total())
