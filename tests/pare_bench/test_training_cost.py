"""The training-cost model (`pare_bench.wan.training_cost`) against torch's FLOP counter and known model sizes."""

import pytest
import torch

from pare_bench.wan.flops_cli import Variant, analytic
from pare_bench.wan.training_cost import backward_flops, cost_markdown, stage_costs


def test_a_recovery_step_costs_what_the_cost_model_says():
    """torch's FLOP counter around one real stage-1 step (teacher forward, student forward and backward) agrees
    with teacher + student forward + `backward_flops` within 1%. The rule "backward = 2 forwards" alone is 8.7%
    short here: the fused attention backward recomputes Q K^T."""
    from accelerate import Accelerator
    from diffusers import WanTransformer3DModel

    from pare_bench.wan.bench_gpu import _random_inputs
    from pare_bench.wan.pipeline import tiny_transformer_config
    from pare_bench.wan.zoo import latent_grid
    from pare_core.distill import RecoveryConfig, recover
    from pare_core.flops import RuntimeFlopCounter
    from pare_core.prune import HeadPlan, prune_heads

    config = tiny_transformer_config()
    grid = latent_grid(17, 128, 128)
    torch.manual_seed(0)
    teacher = WanTransformer3DModel(**config).eval()
    student = prune_heads(teacher, HeadPlan(tuple((0, 1) for _ in range(config["num_layers"]))))
    with RuntimeFlopCounter() as counter:
        recover(
            student,
            teacher,
            lambda step: _random_inputs(config, grid, torch.float32, step),
            RecoveryConfig(steps=1, warmup=1),
            accelerator=Accelerator(cpu=True),
        )
    pruned = Variant("student", [2] * config["num_layers"], [config["num_attention_heads"]] * config["num_layers"])
    forward = analytic(config, grid, Variant("teacher"), False).total + analytic(config, grid, pruned, False).total
    predicted = forward + backward_flops(config, grid, pruned, False)
    assert counter.total == pytest.approx(predicted, rel=0.01)
    assert counter.total > 1.05 * (forward + 2 * analytic(config, grid, pruned, False).total)


@pytest.mark.slow
def test_stage_costs_of_wan_1_3b_count_its_known_size():
    """Wan2.1-T2V-1.3B on the meta device has 1.3-1.5B parameters; half its heads pruned keeps ~90% of them
    (the FFN and cross-attention stay whole); the two forward counters agree; every stage has a cost."""
    row = stage_costs("wan2.1-t2v-1.3b", "480p")
    assert 1.3e9 < row["parameters"]["teacher"] < 1.5e9
    assert 0.85 < row["parameters"]["student"] / row["parameters"]["teacher"] < 0.95
    assert row["counter_agreement"] < 0.01 and row["tokens"] == 32_760
    forward = row["forward_flops"]
    assert forward["pare"] < forward["student"] < forward["teacher"]
    assert all(stage["flops"] > 0 and stage["gpu_hours"]["H100"] > 0 for stage in row["stages"])
    table = cost_markdown([row])
    assert table.count("wan2.1-t2v-1.3b | 480p") == 1 + len(row["stages"])


def test_the_table_prices_the_shipped_build_recipe(tmp_path):
    """Stage sizes come from `recipes/<model>.yaml`: the build the project runs is the build it prices."""
    from pare_bench.wan.build_recipe import RECIPES_DIR, load_build_recipe
    from pare_bench.wan.training_cost import Assumptions, shipped_assumptions

    recipe = load_build_recipe(RECIPES_DIR / "wan2.1-t2v-14b.yaml")
    sizes = shipped_assumptions("wan2.1-t2v-14b")
    assert sizes.recovery_videos == recipe.recovery.steps * recipe.recovery.batch
    assert sizes.sd_pairs == recipe.step_distill.train_steps * recipe.step_distill.batch
    assert sizes.calibration_inputs == recipe.profile.inputs * len(recipe.profile.timesteps)
    assert sizes.budget == recipe.joint.budget and sizes.width_ratio == recipe.width.ratio
    assert shipped_assumptions("wan2.1-i2v-14b-480p") == Assumptions()  # no recipe shipped: the defaults
