"""Structural head pruning on a tiny random Wan: exact invariants (STYLE.md principle 2)."""

import pytest
import torch
from diffusers import WanTransformer3DModel
from torch.utils._python_dispatch import TorchDispatchMode
from wan_tiny import CONFIG, I2V_CONFIG, inputs
from wan_tiny import run as _run

from pare_core.flops import RuntimeFlopCounter, analytic_flops
from pare_core.heads import measure_norm_shift, plan_heads, profile_heads, select_heads, temporal_mass
from pare_core.prune import HeadPlan, PrunedWanTransformer3DModel, prune_heads


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return WanTransformer3DModel(**CONFIG).eval()


def _inputs(batch=2, seed=0):
    return inputs(batch, seed)


HALF = HeadPlan(((0, 2, 4, 6), (1, 3), (0, 1, 2, 3, 4, 5), (7, 5, 3, 1)))


def test_teacher_is_bit_identical_after_pruning(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prune_heads(model, HALF)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_keep_all_gives_identical_outputs(model):
    inputs = _inputs()
    assert (_run(prune_heads(model, HeadPlan.keep_all(model)), inputs) - _run(model, inputs)).abs().max() <= 1e-6


def test_weights_really_shrink_and_config_records_heads(model):
    pruned = prune_heads(model, HALF)
    assert pruned.config.heads_per_block == [4, 2, 6, 4]
    attn = pruned.blocks[1].attn1
    assert attn.to_q.weight.shape == (32, 128) and attn.to_out[0].weight.shape == (128, 32)
    assert attn.norm_q.weight.shape == (32,)
    # the kept rows are the teacher's rows of heads 1 and 3
    assert torch.equal(
        attn.to_k.weight,
        torch.cat([model.blocks[1].attn1.to_k.weight[16:32], model.blocks[1].attn1.to_k.weight[48:64]]),
    )


def test_save_load_round_trips_exactly(model, tmp_path):
    pruned = prune_heads(model, HALF)
    pruned.save_pretrained(tmp_path)
    loaded = PrunedWanTransformer3DModel.from_pretrained(tmp_path).eval()
    assert loaded.config.heads_per_block == [4, 2, 6, 4]
    assert torch.equal(_run(loaded, _inputs()), _run(pruned, _inputs()))


def _counted_flops(models, kwargs) -> list[int]:
    """Run-time FLOPs of one forward of each model on the same inputs."""
    counts = []
    for m in models:
        with RuntimeFlopCounter() as counter:
            _run(m, kwargs)
        counts.append(counter.total)
    return counts


def test_runtime_flops_follow_the_analytic_prediction(model):
    pruned = prune_heads(model, HALF)
    counts = _counted_flops((model, pruned), _inputs(batch=1))
    predicted = [analytic_flops(CONFIG, 8, 24, 24, 16, heads_per_block=h).total for h in (None, HALF.heads_per_block)]
    assert counts[0] - counts[1] == pytest.approx(predicted[0] - predicted[1], rel=0.01)


def test_bad_plans_are_refused(model):
    with pytest.raises(ValueError, match="block 1"):
        prune_heads(model, HeadPlan(((0,), (), (0,), (0,))))
    with pytest.raises(ValueError, match="plan has 2 blocks"):
        prune_heads(model, HeadPlan(((0,), (1,))))


def test_norm_shift_correction_reduces_the_error(model):
    inputs = [_inputs(seed=s) for s in range(2)]
    scales = measure_norm_shift(model, HALF, inputs)
    assert all(q != 1.0 and k != 1.0 for q, k in scales)
    reference = _run(model, _inputs(seed=5))
    plain = (_run(prune_heads(model, HALF), _inputs(seed=5)) - reference).pow(2).mean()
    corrected = (_run(prune_heads(model, HALF, norm_scales=scales), _inputs(seed=5)) - reference).pow(2).mean()
    assert corrected < plain


def test_selection_keeps_budget_and_one_head_per_block():
    scores = torch.zeros(4, 8)
    scores[0] = torch.arange(8) + 10.0  # block 0 holds all the best heads
    plan = select_heads(scores, ratio=0.75)
    assert sum(plan.heads_per_block) == 8 and min(plan.heads_per_block) >= 1
    assert plan.keep[0] == (3, 4, 5, 6, 7)
    assert select_heads(scores, ratio=0.5, per_block_equal=True).heads_per_block == [4, 4, 4, 4]


def test_profile_scores_and_plans(model):
    profile = profile_heads(model, [_inputs()], query_samples=32)
    assert len(profile.temporal) == 4 and all(0 <= t <= 1 for row in profile.temporal for t in row)
    assert all(i >= 0 for row in profile.importance for i in row)
    assert all(0 <= t <= 1 for row in profile.other_frame_mass for t in row)
    for method in ("temporal_aware", "magnitude", "random", "uniform"):
        assert sum(plan_heads(profile, method, 0.5).heads_per_block) == 16
    # with a large temporal weight the most temporal heads are kept first
    flat = torch.tensor(profile.temporal).flatten()
    plan = plan_heads(profile, "temporal_aware", 0.9, temporal_weight=1e6)
    kept = {b * 8 + h for b, heads in enumerate(plan.keep) for h in heads}
    assert int(flat.argmax()) in kept


class _LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel())
        return out


def test_role_profiling_never_builds_a_full_attention_map():
    """Wan2.1-14B at 720p has 75,600 tokens; a full map per head would be 5.7e9 floats (23 GB)."""
    tokens, heads, head_dim, samples = 75_600, 4, 16, 64
    torch.manual_seed(0)
    from diffusers.models.transformers.transformer_wan import WanAttention

    attn = WanAttention(dim=heads * head_dim, heads=heads, dim_head=head_dim, eps=1e-6)
    hidden = torch.randn(1, tokens, heads * head_dim)
    rotary = (torch.ones(1, tokens, 1, head_dim), torch.zeros(1, tokens, 1, head_dim))
    with torch.no_grad(), _LargestTensor() as tracker:
        mass = temporal_mass(
            attn,
            hidden,
            rotary,
            tokens_per_frame=3600,
            query_samples=samples,
            generator=torch.Generator().manual_seed(0),
        )
    bound = max(samples * tokens, tokens * heads * head_dim)  # (S x N) per head chunk, or the keys (N x inner)
    assert tracker.largest <= bound, (tracker.largest, bound)
    assert tracker.largest < tokens * tokens / 1000
    assert mass.shape == (heads,) and ((0 <= mass) & (mass <= 1)).all()


# ------------------------------------------------------------------------------------------- cross-attention

CROSS = HeadPlan(HeadPlan.keep_all(WanTransformer3DModel(**CONFIG)).keep, ((0, 1), (2, 5, 7), (3,), (0, 4, 6, 7)))


@pytest.fixture(scope="module")
def i2v_model():
    torch.manual_seed(1)
    return WanTransformer3DModel(**I2V_CONFIG).eval()


def _i2v_inputs(batch=2, seed=0):
    return inputs(batch, seed, text=512, image=9)


@pytest.mark.parametrize("which", ["t2v", "i2v"])
def test_cross_keep_all_gives_identical_outputs(which, model, i2v_model):
    net, inputs = (model, _inputs()) if which == "t2v" else (i2v_model, _i2v_inputs())
    everything = HeadPlan.keep_all(net)
    plan = HeadPlan(everything.keep, everything.keep)
    assert (_run(prune_heads(net, plan), inputs) - _run(net, inputs)).abs().max() <= 1e-6


def test_cross_pruning_shrinks_image_projections_and_round_trips(i2v_model, tmp_path):
    before = {k: v.clone() for k, v in i2v_model.state_dict().items()}
    pruned = prune_heads(i2v_model, CROSS)
    assert all(torch.equal(before[k], v) for k, v in i2v_model.state_dict().items())
    assert pruned.config.cross_heads_per_block == [2, 3, 1, 4]
    attn = pruned.blocks[1].attn2
    for name in ("to_q", "to_k", "to_v", "add_k_proj", "add_v_proj"):
        assert getattr(attn, name).weight.shape[0] == 48
    assert attn.norm_added_k.weight.shape == (48,) and attn.to_out[0].weight.shape == (128, 48)
    assert torch.equal(attn.add_v_proj.weight[16:32], i2v_model.blocks[1].attn2.add_v_proj.weight[80:96])  # head 5
    pruned.save_pretrained(tmp_path)
    loaded = PrunedWanTransformer3DModel.from_pretrained(tmp_path).eval()
    assert loaded.config.cross_heads_per_block == [2, 3, 1, 4]
    assert torch.equal(_run(loaded, _i2v_inputs()), _run(pruned, _i2v_inputs()))


def test_cross_pruning_flops_follow_the_analytic_prediction(i2v_model):
    plan = HeadPlan(HALF.keep, CROSS.cross_keep)
    pruned = prune_heads(i2v_model, plan)
    counts = _counted_flops((i2v_model, pruned), _i2v_inputs(batch=1))
    teacher = analytic_flops(I2V_CONFIG, 8, 24, 24, 512, 9).total
    student = analytic_flops(dict(pruned.config), 8, 24, 24, 512, 9).total  # head counts read from the config
    assert student < teacher
    assert counts[0] - counts[1] == pytest.approx(teacher - student, rel=0.01)


def test_cross_norm_shift_covers_text_and_image_keys(i2v_model):
    inputs = [_i2v_inputs(seed=s) for s in range(2)]
    scales = measure_norm_shift(i2v_model, CROSS, inputs, attention="attn2")
    assert all(len(s) == 3 and all(v != 1.0 for v in s) for s in scales[:2])
    reference = _run(i2v_model, _i2v_inputs(seed=5))
    plain = (_run(prune_heads(i2v_model, CROSS), _i2v_inputs(seed=5)) - reference).pow(2).mean()
    fixed = prune_heads(i2v_model, CROSS, cross_norm_scales=scales)
    assert (_run(fixed, _i2v_inputs(seed=5)) - reference).pow(2).mean() < plain


def test_a_pruned_model_is_not_pruned_again(model):
    with pytest.raises(ValueError, match="already head-pruned"):
        prune_heads(prune_heads(model, HALF), HALF)


def test_temporal_quota_changes_the_plan_where_a_weighted_score_does_not():
    """Importance favours spatial heads here; a weighted temporal score at weight 1 keeps the same plan as
    importance, the quota reserves half the budget for temporal heads (overlap reported as Jaccard)."""
    from pare_core.heads import HeadProfile, plan_heads, plan_overlap, temporal_kept

    generator = torch.Generator().manual_seed(0)
    temporal = torch.rand(4, 8, generator=generator)
    importance = 1.0 + 10 * (1 - temporal)  # the most temporal heads are the least important
    zeros = torch.zeros(4, 8).tolist()
    profile = HeadProfile(temporal.tolist(), zeros, importance.tolist(), zeros, frames=8)
    by_importance = plan_heads(profile, "importance", 0.5)
    weighted = plan_heads(profile, "temporal_aware", 0.5, temporal_weight=1.0)
    quota = plan_heads(profile, "temporal_quota", 0.5, temporal_quota=0.5)
    assert plan_overlap(by_importance, weighted) == 1.0
    assert sum(quota.heads_per_block) == sum(by_importance.heads_per_block) == 16
    is_temporal = temporal >= temporal.median()
    kept_temporal = sum(bool(is_temporal[b, h]) for b, keep in enumerate(quota.keep) for h in keep)
    assert kept_temporal >= 8 and plan_overlap(by_importance, quota) < 0.7
    assert plan_overlap(quota, quota) == 1.0
    assert temporal_kept(profile, quota) == kept_temporal / 16 >= 0.5
    assert temporal_kept(profile, by_importance) < 0.5  # importance favours the spatial heads here
