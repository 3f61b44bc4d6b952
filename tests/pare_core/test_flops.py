"""Cross-checks of the three FLOP counters in pare_core.flops on tiny Wan models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pare_core.flops import (
    FlopBreakdown,
    RuntimeFlopCounter,
    analytic_flops,
    count_runtime_flops,
    fvcore_flops,
)

diffusers = pytest.importorskip("diffusers")

REL_TOL = 0.01

T2V_CFG = {
    "patch_size": (1, 4, 4),
    "num_attention_heads": 8,
    "attention_head_dim": 16,
    "in_channels": 3,
    "out_channels": 3,
    "text_dim": 64,
    "freq_dim": 64,
    "ffn_dim": 512,
    "num_layers": 8,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 64,
}
I2V_CFG = dict(T2V_CFG, in_channels=7, image_dim=48, added_kv_proj_dim=128)

FRAMES, HEIGHT, WIDTH = 8, 24, 24  # -> 8 * 6 * 6 = 288 tokens
T2V_TEXT_LEN, I2V_TEXT_LEN, IMAGE_LEN = 16, 512, 36


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def _build(cfg: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    return diffusers.WanTransformer3DModel(**cfg).eval()


@pytest.fixture(scope="module")
def t2v_model():
    return _build(T2V_CFG)


@pytest.fixture(scope="module")
def i2v_model():
    return _build(I2V_CFG)


def _t2v_inputs(batch: int = 1) -> tuple:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, FRAMES, HEIGHT, WIDTH, generator=g)  # (B, C, F, H, W)
    t = torch.full((batch,), 500.0)  # (B,)
    text = torch.randn(batch, T2V_TEXT_LEN, 64, generator=g)  # (B, L, text_dim)
    return (x, t, text)


def _i2v_inputs(batch: int = 1) -> tuple:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(batch, 7, FRAMES, HEIGHT, WIDTH, generator=g)
    t = torch.full((batch,), 500.0)
    text = torch.randn(batch, I2V_TEXT_LEN, 64, generator=g)  # exactly 512: WanAttnProcessor hard-codes it
    image = torch.randn(batch, IMAGE_LEN, 48, generator=g)  # (B, L_img, image_dim)
    return (x, t, text, image)


def _runtime(model, inputs) -> int:
    with torch.no_grad():
        _, flops = count_runtime_flops(model, *inputs, return_dict=False)
    return flops


# ----------------------------------------------------------------------------- counters agree


@pytest.mark.parametrize("batch", [1, 2])
def test_runtime_matches_analytic_t2v(t2v_model, batch):
    runtime = _runtime(t2v_model, _t2v_inputs(batch))
    analytic = analytic_flops(t2v_model.config, FRAMES, HEIGHT, WIDTH, T2V_TEXT_LEN, batch=batch).total
    assert _rel(runtime, analytic) < REL_TOL, (runtime, analytic)


@pytest.mark.parametrize("batch", [1, 2])
def test_runtime_matches_analytic_i2v(i2v_model, batch):
    runtime = _runtime(i2v_model, _i2v_inputs(batch))
    analytic = analytic_flops(
        i2v_model.config,
        FRAMES,
        HEIGHT,
        WIDTH,
        I2V_TEXT_LEN,
        image_len=IMAGE_LEN,
        batch=batch,
    ).total
    assert _rel(runtime, analytic) < REL_TOL, (runtime, analytic)


def test_fvcore_matches_analytic_t2v(t2v_model):
    fv = fvcore_flops(t2v_model, _t2v_inputs())
    analytic = analytic_flops(t2v_model.config, FRAMES, HEIGHT, WIDTH, T2V_TEXT_LEN).total
    assert _rel(fv, analytic) < REL_TOL, (fv, analytic)


def test_fvcore_matches_analytic_i2v(i2v_model):
    fv = fvcore_flops(i2v_model, _i2v_inputs())
    analytic = analytic_flops(i2v_model.config, FRAMES, HEIGHT, WIDTH, I2V_TEXT_LEN, image_len=IMAGE_LEN).total
    assert _rel(fv, analytic) < REL_TOL, (fv, analytic)


def test_runtime_counter_sees_cpu_sdpa():
    """FlopCounterMode has no formula for the CPU SDPA kernel; ours must add it."""
    q = torch.randn(2, 3, 5, 4)  # (B, H, Lq, D)
    k = v = torch.randn(2, 3, 7, 4)  # (B, H, Lk, D)
    with RuntimeFlopCounter() as counter:
        F.scaled_dot_product_attention(q, k, v)
    assert counter.total == 2 * 2 * 2 * 3 * 5 * 7 * 4


def test_context_manager_accumulates_over_calls(t2v_model):
    """Wrapping a 'sampling loop' of 3 forwards counts 3x one forward."""
    inputs = _t2v_inputs()
    with torch.no_grad(), RuntimeFlopCounter() as counter:
        for _ in range(3):
            t2v_model(*inputs, return_dict=False)
    assert counter.total == 3 * _runtime(t2v_model, inputs)


# ----------------------------------------------------------------------------- analytic knobs


def test_pruned_heads_shrink_self_attention_exactly():
    full = analytic_flops(T2V_CFG, FRAMES, HEIGHT, WIDTH, T2V_TEXT_LEN)
    pruned = analytic_flops(T2V_CFG, FRAMES, HEIGHT, WIDTH, T2V_TEXT_LEN, heads_per_block=[4] * 8)
    assert pruned.total < full.total
    # Every self-attention term (q/k/v/out projections and both attention matmuls) is linear in heads.
    assert pruned.self_attention * 8 == full.self_attention * 4
    for field in ("cross_attention", "ffn", "embedding", "output", "router"):
        assert getattr(pruned, field) == getattr(full, field)


def test_blocks_executed_halves_per_block_terms():
    full = analytic_flops(T2V_CFG, FRAMES, HEIGHT, WIDTH, T2V_TEXT_LEN)
    routed = analytic_flops(T2V_CFG, FRAMES, HEIGHT, WIDTH, T2V_TEXT_LEN, blocks_executed=4)
    for field in ("self_attention", "cross_attention", "ffn"):
        assert getattr(routed, field) == pytest.approx(getattr(full, field) / 2, rel=1e-12)
    for field in ("embedding", "output"):
        assert getattr(routed, field) == getattr(full, field)


def test_breakdown_total_and_dict():
    b = FlopBreakdown(self_attention=1, cross_attention=2, ffn=3, embedding=4, output=5)
    assert b.router == 0 and b.total == 15
    assert b.as_dict() == {
        "self_attention": 1,
        "cross_attention": 2,
        "ffn": 3,
        "embedding": 4,
        "output": 5,
        "router": 0,
        "total": 15,
    }


def test_i2v_requires_512_context():
    with pytest.raises(ValueError):
        analytic_flops(I2V_CFG, FRAMES, HEIGHT, WIDTH, text_len=16, image_len=IMAGE_LEN)


# ----------------------------------------------------------------------------- real Wan2.1-1.3B


def test_wan21_1p3b_480p_by_hand():
    """Wan2.1-T2V-1.3B, 81 frames 480x832 -> latent 21x60x104, patch (1,2,2), 512 text tokens."""
    cfg = {
        "patch_size": (1, 2, 2),
        "num_attention_heads": 12,
        "attention_head_dim": 128,
        "in_channels": 16,
        "out_channels": 16,
        "text_dim": 4096,
        "freq_dim": 256,
        "ffn_dim": 8960,
        "num_layers": 30,
        "image_dim": None,
        "added_kv_proj_dim": None,
    }
    got = analytic_flops(cfg, frames=21, height=60, width=104, text_len=512)

    # Independent hand count: FLOPs of a linear = 2 * rows * (weight count).
    n = 21 * 30 * 52  # video tokens after (1,2,2) patching
    assert n == 32_760
    d = 12 * 128  # 1536
    s = 512  # text tokens
    # q,k,v,o projections + QK^T and PV over all 12 heads (12 * 128 = d)
    self_attn = 2 * n * (4 * d * d) + 4 * n * n * d
    # q,o on video tokens; k,v on text tokens; QK^T and PV against 512 keys
    cross_attn = 2 * n * (2 * d * d) + 2 * s * (2 * d * d) + 4 * n * s * d
    ffn = 2 * n * (2 * d * 8960)
    patch = 2 * n * (16 * 1 * 2 * 2) * d
    # time MLP (256 -> d -> d) + time_proj (d -> 6d), one row per sample
    time = 2 * (256 * d + d * d + d * 6 * d)
    text = 2 * s * (4096 * d + d * d)
    out = 2 * n * d * (16 * 4)
    expected = 30 * (self_attn + cross_attn + ffn) + patch + time + text + out

    assert got.self_attention == 30 * self_attn
    assert got.cross_attention == 30 * cross_attn
    assert got.ffn == 30 * ffn
    assert got.embedding == patch + time + text
    assert got.output == out
    assert got.total == expected
    # Magnitude: ~283 TFLOPs per forward, ~70% of it the 32,760^2 attention matmuls.
    assert 2.8e14 < expected < 2.9e14
    assert 0.69 < 30 * 4 * n * n * d / expected < 0.71
