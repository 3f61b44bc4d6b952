"""Routed execution on a tiny random Wan: exactness at budget 1.0, per-sample skipping, hooks that come off."""

import pytest
import torch
from diffusers import WanTransformer3DModel
from wan_tiny import CONFIG, inputs
from wan_tiny import run as _run

from pare_core.flops import RuntimeFlopCounter, analytic_flops
from pare_core.prune import HeadPlan, prune_heads
from pare_core.router import (
    BlockRouter,
    RouterConfig,
    apply_router,
    budget_loss,
    place,
    remove_router,
    router_size,
    router_state,
)

DIM = 128


@pytest.fixture
def model():
    torch.manual_seed(0)
    return WanTransformer3DModel(**CONFIG).eval()


def _inputs(batch=3, seed=0):
    return inputs(batch, seed, timesteps=[900.0, 500.0, 100.0])


def _random_router(seed=1, **options):
    torch.manual_seed(seed)
    router = BlockRouter(DIM, CONFIG["num_layers"], **options).eval()
    torch.nn.init.normal_(router.inp.weight, std=1.0)  # decisions that differ across inputs
    torch.nn.init.normal_(router.out.weight, std=2.0)
    torch.nn.init.zeros_(router.out.bias)
    return router


def test_budget_one_reproduces_the_dense_model_exactly(model):
    inputs = _inputs()
    dense = _run(model, inputs)
    apply_router(model, _random_router(), RouterConfig(budget=1.0))
    assert torch.equal(_run(model, inputs), dense)


def test_applying_twice_raises_and_remove_restores(model):
    inputs = _inputs()
    dense = _run(model, inputs)
    apply_router(model, _random_router(), RouterConfig(budget=0.5))
    routed = _run(model, inputs)
    assert not torch.allclose(routed, dense)
    with pytest.raises(RuntimeError, match="already applied"):
        apply_router(model, _random_router(), RouterConfig(budget=0.5))
    remove_router(model)
    assert torch.equal(_run(model, inputs), dense)
    block = model.blocks[0]
    assert block.forward.__func__ is type(block).forward and not hasattr(model, "_pare_router")
    with pytest.raises(RuntimeError, match="no router"):
        remove_router(model)


@pytest.mark.parametrize("config", [RouterConfig(budget=0.5), RouterConfig(mode="threshold", threshold=0.5)])
def test_per_sample_skipping_in_a_batch_equals_each_sample_alone(model, config):
    apply_router(model, _random_router(), config)
    inputs = _inputs()
    batched = _run(model, inputs)
    decisions = router_state(model).gates.clone()
    assert len({tuple(row.tolist()) for row in decisions}) > 1, "the test needs samples that route differently"
    for i in range(3):
        alone = _run(model, {k: v[i : i + 1] for k, v in inputs.items()})
        assert torch.equal(router_state(model).gates[0], decisions[i])
        torch.testing.assert_close(alone[0], batched[i], rtol=0, atol=1e-5)


def test_place_moves_the_attached_router_with_the_model(model):
    # The router hangs on hooks, outside the module tree: `model.to` alone leaves it where it was, and a routed
    # student on the GPU then fails in its first forward. ("meta" stands in for another device on a CPU machine.)
    router = _random_router()
    apply_router(model, router, RouterConfig(budget=0.5))
    model.to("meta")
    assert {p.device.type for p in router.parameters()} == {"cpu"}
    place(model, "meta")
    assert {p.device.type for p in router.parameters()} == {"meta"}
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_skipped_blocks_do_not_run(model):
    """Executed FLOPs at top-k 2 of 4 blocks: half the block FLOPs, plus the router's own."""
    router = _random_router()
    apply_router(model, router, RouterConfig(budget=0.5))
    with RuntimeFlopCounter() as counter:
        _run(model, _inputs(batch=1))
    dense = analytic_flops(CONFIG, 8, 24, 24, 16).total
    half = analytic_flops(CONFIG, 8, 24, 24, 16, blocks_executed=2).total
    assert half < 0.75 * dense
    assert counter.total == pytest.approx(half + router_size(router)["flops_per_sample"], rel=0.01)


def test_routes_a_head_pruned_student(model):
    student = prune_heads(model, HeadPlan(((0, 1), (2, 3, 4), (5,), (0, 7))))
    inputs = _inputs()
    dense = _run(student, inputs)
    apply_router(student, _random_router(), RouterConfig(budget=1.0))
    assert torch.equal(_run(student, inputs), dense)
    router_state(student).gates = None
    student._pare_router[1].budget = 0.25
    assert not torch.allclose(_run(student, inputs), dense)


def test_training_mode_gets_gradients_through_the_gates(model):
    torch.manual_seed(2)
    router = BlockRouter(DIM, CONFIG["num_layers"]).train()  # the training init: keep-all bias, zero weights
    apply_router(model, router, RouterConfig(budget=0.5, temperature=1.0))
    out = model(**_inputs(), return_dict=False)[0]
    gates = router_state(model).gates
    loss = out.pow(2).mean() + budget_loss(gates, torch.ones(CONFIG["num_layers"]), 0.5)
    loss.backward()
    assert router.out.weight.grad is not None and router.out.weight.grad.abs().sum() > 0
    assert router.out.bias.grad.abs().sum() > 0
    assert set(gates.detach().unique().tolist()) <= {0.0, 1.0}  # hard decisions forward


def _train_joint(student, router, teacher, config, **options):
    """Stage 2 on tiny random batches of 2, blocks costed alike."""
    from pare_core.distill import train_joint

    def batches(step):
        return _inputs(batch=2, seed=step)

    return train_joint(student, router, teacher, batches, torch.ones(CONFIG["num_layers"]), config, **options)


def test_router_is_tiny_against_one_step():
    size = router_size(BlockRouter(DIM, CONFIG["num_layers"]))
    assert size["flops_per_sample"] < 0.01 * analytic_flops(CONFIG, 8, 24, 24, 16).total


def test_joint_training_pulls_executed_flops_to_the_budget_and_detaches(model):
    import copy

    from pare_core.distill import JointConfig

    teacher, student = model, copy.deepcopy(model)
    torch.manual_seed(3)
    router = BlockRouter(DIM, CONFIG["num_layers"])
    log, saved = [], []
    config = JointConfig(steps=40, budget=0.5, warmup=1, router_lr=2e-2, checkpoint_every=20)
    student, router = _train_joint(student, router, teacher, config, on_step=log.append, on_checkpoint=saved.append)
    early = sum(r["executed"] for r in log[:5]) / 5
    late = sum(r["executed"] for r in log[-10:]) / 10
    assert late < early and abs(late - 0.5) < 0.2, (early, late)  # starts near keep-all (bias 3)
    assert [s["step"] for s in saved] == [20, 40] and not hasattr(student, "_pare_router")
    # resuming from the step-20 checkpoint continues at step 21
    resumed = []
    config = JointConfig(steps=22, budget=0.5, warmup=1)
    _train_joint(copy.deepcopy(model), BlockRouter(DIM, CONFIG["num_layers"]), teacher, config, state=saved[0],
                 on_step=resumed.append)  # fmt: skip
    assert [r["step"] for r in resumed] == [21, 22]


def test_importance_pool_is_block_importance_per_sample(model):
    from pare_core.importance import block_importance, importance_pool

    batch = _inputs(batch=3)
    pool = importance_pool(model, [batch])
    assert pool["temb"].shape == (3, DIM) and pool["content"].shape == (3, 3 * DIM) and pool["target"].shape == (3, 4)
    for sample in range(3):
        alone = {k: v[sample : sample + 1] for k, v in batch.items()}
        expected = torch.tensor(block_importance(model, [alone]))
        torch.testing.assert_close(pool["target"][sample].exp(), expected, rtol=1e-4, atol=1e-9)
    # the router reads the same two inputs the pool recorded
    router = _random_router()
    apply_router(model, router, RouterConfig(budget=1.0))
    model(**batch)
    torch.testing.assert_close(router_state(model).logits, router(pool["temb"], pool["content"]))


def test_anchored_router_ranks_blocks_per_input():
    """A pool whose block order flips with the timestep: the fitted router routes the two kinds of input to
    different block sets, each the one its own importances ask for."""
    from pare_core.importance import fit_router, rank_loss
    from pare_core.router import decide

    torch.manual_seed(0)
    temb, content = torch.randn(64, DIM), torch.randn(64, DIM)
    early = temb[:, 0] > 0
    order = torch.tensor([0.0, -1.0, -2.0, -3.0])
    target = torch.where(early[:, None], order, order.flip(0))
    pool = {"temb": temb, "content": content, "target": target}
    router = BlockRouter(DIM, 4, content="mean")
    losses = fit_router(router, pool, steps=300)
    assert losses[-1] < 0.05 * losses[0]
    gates = decide(router.eval()(temb, content), RouterConfig(budget=0.5))
    assert gates[early].eq(torch.tensor([1.0, 1.0, 0.0, 0.0])).all()
    assert gates[~early].eq(torch.tensor([0.0, 0.0, 1.0, 1.0])).all()
    assert rank_loss(target + 5.0, target) == 0  # the common offset is the budget's business


def test_joint_training_with_a_pool_keeps_the_anchor(model):
    import copy

    from pare_core.distill import JointConfig
    from pare_core.importance import importance_pool, rank_loss

    pool = importance_pool(model, [_inputs(batch=3, seed=s) for s in range(4)])
    log = []
    torch.manual_seed(3)
    router = BlockRouter(DIM, CONFIG["num_layers"])
    config = JointConfig(steps=20, budget=0.5, warmup=1, router_lr=2e-2, rank_warmup=300)
    _, router = _train_joint(copy.deepcopy(model), router, model, config, on_step=log.append, pool=pool)
    assert all("rank_loss" in r for r in log)
    unanchored = rank_loss(torch.zeros_like(pool["target"]), pool["target"])
    logits = router(pool["temb"], pool["content"])
    assert rank_loss(logits, pool["target"]) < 0.5 * unanchored  # the anchor survives distillation


def test_motion_features_see_what_the_mean_token_cannot():
    from pare_core.router import pooled_content

    torch.manual_seed(0)
    frame = torch.randn(2, 8, 1, 6, 6)  # (B, dim, F, H, W) patch-embedded tokens
    still = frame.expand(2, 8, 4, 6, 6)
    moving = torch.cat([frame.roll(shift, dims=-1) for shift in range(4)], dim=2)  # the same content, shifted
    torch.testing.assert_close(pooled_content(still, "mean"), pooled_content(moving, "mean"))
    seen_still, seen_moving = pooled_content(still), pooled_content(moving)
    assert seen_still.shape == (2, 3 * 8)
    assert (seen_still[:, 16:] == 0).all() and (seen_moving[:, 16:] > 0.1).all()  # the frame-to-frame change


def test_router_saves_and_loads_with_its_config(tmp_path):
    router = _random_router(content="motion", budget=0.4)
    router.save_pretrained(tmp_path / "router")
    loaded = BlockRouter.from_pretrained(tmp_path / "router").eval()
    assert loaded.config.budget == 0.4 and loaded.config.content == "motion" and loaded.config.dim == DIM
    temb, content = torch.randn(3, DIM), torch.randn(3, 3 * DIM)
    torch.testing.assert_close(loaded(temb, content), router(temb, content), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown content features 'pixels'"):
        BlockRouter(DIM, 4, content="pixels")


def test_joint_training_is_not_stopped_by_a_plateau_while_its_temperature_anneals(model):
    """The stop rule waits for the anneal's end: the cap without `anneal`, else `anneal`."""
    import copy

    from pare_core.distill import JointConfig
    from pare_core.plateau import Plateau

    held_out = _inputs(batch=2, seed=999)

    def validate(student):
        return torch.nn.functional.mse_loss(student(**held_out, return_dict=False)[0], held_out["hidden_states"])

    def run(temperature, anneal=None):
        torch.manual_seed(3)
        log = []
        config = JointConfig(steps=12, budget=0.5, warmup=1, temperature=temperature, anneal=anneal)
        plateau = Plateau(every=2, patience=1, min_delta=0.9)  # no validation can improve by 90%: stop at once
        _train_joint(copy.deepcopy(model), BlockRouter(DIM, CONFIG["num_layers"]), model, config,
                     on_step=log.append, validate=validate, plateau=plateau)  # fmt: skip
        return log

    fixed, annealed = run((0.5, 0.5)), run((1.0, 0.3))
    assert fixed[-1]["step"] == 4 and fixed[-1]["stopped"] == "plateau"
    assert annealed[-1]["step"] == 12 and [r["step"] for r in annealed if "val_loss" in r] == [2, 4, 6, 8, 10, 12]
    assert all("stopped" not in r for r in annealed[:-1])
    # an anneal shorter than the cap: the temperature holds after it, and the stop rule acts from its end
    short = run((1.0, 0.3), anneal=6)
    assert short[-1]["step"] == 6 and short[-1]["stopped"] == "plateau"
    assert short[0] == annealed[0] and short[1] != annealed[1]  # both start at 1.0; then the short one cools faster
    assert run((1.0, 0.3), anneal=12) == annealed  # an anneal as long as the cap is the default


def _best_set_by_enumeration(importance, costs, budget, floor):
    import itertools

    total, best = sum(costs), None
    for keep in itertools.product([False, True], repeat=len(costs)):
        share = sum(c for c, k in zip(costs, keep) if k) / total
        score = sum(s for s, k in zip(importance, keep) if k)
        if floor - 1e-9 <= share <= budget + 1e-9 and (best is None or score > best[0]):
            best = (score, list(keep))
    return best


def test_static_blocks_is_the_most_important_set_in_the_window():
    from pare_core.importance import static_blocks

    # the important blocks are the expensive ones (width-pruned blocks differ in cost): importance order keeps
    # four and then nothing fits, while a floor puts the set at the budget with the cheap blocks
    importance = [0.019, 0.017, 0.007, 0.009, 0.009, 0.038, 0.024, 0.028]
    costs = [0.143, 0.116, 0.107, 0.107, 0.107, 0.134, 0.143, 0.143]  # the block shares of the tiny student
    assert static_blocks(importance, costs, 0.64) == [True, False, False, False, False, True, True, True]
    assert static_blocks(importance, costs, 0.60, floor=0.58) == [False, False, True, True, True, True, False, True]
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        importance = torch.rand(7, generator=generator).tolist()
        costs = (1 + torch.rand(7, generator=generator)).tolist()
        floor = float(torch.rand(1, generator=generator)) * 0.6
        score, best = _best_set_by_enumeration(importance, costs, floor + 0.15, floor)
        keep = static_blocks(importance, costs, floor + 0.15, floor)
        assert sum(s for s, k in zip(importance, keep) if k) == pytest.approx(score)


def test_static_blocks_names_an_empty_window():
    from pare_core.importance import static_blocks

    with pytest.raises(ValueError, match="no set of blocks costs between 0.3 and 0.31"):
        static_blocks([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], 0.31, floor=0.3)
