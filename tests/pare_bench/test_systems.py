import pytest
import torch

from pare_bench.suite import KNOWN_CACHE_METHODS, Suite
from pare_bench.systems import CACHE_METHODS, build_system
from pare_bench.tiny.backend import TinyBackend
from pare_bench.tiny.sample import SamplingConfig, sample
from pare_core.flops import RuntimeFlopCounter

SUITE = dict(
    suite="t",
    task="t2v",
    model="tiny-wan-t2v",
    prompts="world:smoke",
    metrics=[],
    sampling={"steps": 6},
    systems=[{"name": "baseline"}],
)
CACHES = {
    "first_block": {"threshold": 0.3},
    "pyramid_attention_broadcast": {"spatial_attention_timestep_skip_range": [0, 1000]},
    "taylorseer": {"cache_interval": 2, "disable_cache_before_step": 1},
    "mag": {"threshold": 0.5, "retention_ratio": 0.0, "calibration_videos": 1},
    "faster": {
        "spatial_attention_timestep_skip_range": [-1, 1000],
        "unconditional_batch_timestep_skip_range": [-1, 1000],
    },
}


def test_suite_and_systems_agree_on_cache_methods():
    assert tuple(CACHE_METHODS) == KNOWN_CACHE_METHODS == tuple(CACHES)


@pytest.mark.parametrize("method", sorted(CACHES))
def test_cache_systems_change_the_output_and_leave_the_teacher_alone(method, tiny_t2v):
    suite = Suite(**{**SUITE, "systems": [{"name": "baseline"}, {"name": "c", "cache": {method: CACHES[method]}}]})
    baseline, cached = (build_system(spec, suite, TinyBackend(tiny_t2v)) for spec in suite.systems)
    prompt, seed = ["a red circle moving left"], [3]
    with RuntimeFlopCounter() as dense_flops:
        dense = baseline.generate(prompt, seed)
    assert cached.dense is False and baseline.dense is True
    with RuntimeFlopCounter() as cached_flops:
        assert not torch.equal(cached.generate(prompt, seed), dense)
    assert cached_flops.total < dense_flops.total  # the hook really skipped work
    assert torch.equal(baseline.generate(prompt, seed), dense)  # no hook leaked into the teacher
    assert not tiny_t2v.transformer.is_cache_enabled


@pytest.mark.slow
def test_width_recipe_builds_caches_and_reloads_a_pruned_student(tiny_t2v, tmp_path, monkeypatch):
    import pare_bench.tiny.recipes as recipes
    from pare_core.heads import HeadProfile

    # a stand-in profile keeps the test fast; profile_heads itself is tested in tests/pare_core
    profile = HeadProfile(*([[float(h + b) for h in range(8)] for b in range(8)] for _ in range(4)), frames=8)
    monkeypatch.setattr(recipes, "profile_model", lambda teacher: profile)
    width = {"ratio": 0.5, "cross_ratio": 0.25, "score": "magnitude", "recovery_steps": 2}
    suite = Suite(**{**SUITE, "systems": [{"name": "pare-width", "recipe": {"width": width}}]})
    system = build_system(suite.systems[0], suite, TinyBackend(tiny_t2v), artifacts=tmp_path)
    assert sum(system.model.transformer.config.heads_per_block) == 32
    assert sum(system.model.transformer.config.cross_heads_per_block) == 48
    (directory,) = (tmp_path / "tiny-wan-t2v").glob("width-*")
    assert len((directory / "recovery_log.jsonl").read_text().splitlines()) == 2
    again = build_system(suite.systems[0], suite, TinyBackend(tiny_t2v), artifacts=tmp_path)  # cached: no training
    prompt, seed = ["a red circle moving left"], [3]
    assert torch.equal(again.generate(prompt, seed), system.generate(prompt, seed))


@pytest.mark.slow
@pytest.mark.parametrize("router", ["content", "timestep", "static"])
def test_depth_recipe_trains_caches_and_routes_within_its_budget(router, tiny_t2v, tmp_path):
    import json

    from pare_bench.tiny.recipes import world_block_flops

    depth = {"budget": 0.5, "router": router, "steps": 2, "pool": 2}
    suite = Suite(**{**SUITE, "systems": [{"name": "d", "recipe": {"depth": depth}}]})
    system = build_system(suite.systems[0], suite, TinyBackend(tiny_t2v), artifacts=tmp_path)
    assert system.routed and not system.dense
    prompt, seed = ["a red circle moving left"], [3]
    video = system.generate(prompt, seed)
    routing = system.step_routing()
    assert len(routing) == 6 and all(len(step) == 8 for step in routing)
    costs = world_block_flops(tiny_t2v, system.model.transformer)
    for step in routing:
        kept = torch.tensor([c == "1" for c in step], dtype=torch.float64)
        assert 0 < float((kept * costs).sum() / costs.sum()) <= 0.5
    (directory,) = (tmp_path / "tiny-wan-t2v").glob("depth-*")
    info = json.loads((directory / "recipe.json").read_text())
    assert len((directory / "joint_log.jsonl").read_text().splitlines()) == 2
    assert (directory / "pool.pt").is_file() == (router != "static")  # learned routers are anchored to a pool
    if router == "static":  # the same blocks at every step: the most important ones that fit
        assert set(routing) == {"".join("1" if k else "0" for k in info["static_keep"])}
        kept = [s for s, k in zip(info["block_importance"], info["static_keep"]) if k]
        assert min(kept) >= max(s for s, k in zip(info["block_importance"], info["static_keep"]) if not k)
    again = build_system(suite.systems[0], suite, TinyBackend(tiny_t2v), artifacts=tmp_path)  # cached: no training
    assert torch.equal(again.generate(prompt, seed), video)
    assert not hasattr(tiny_t2v.transformer, "_pare_router")  # the teacher stays unrouted


@pytest.mark.slow
@pytest.mark.parametrize("base", [{}, {"depth": {"budget": 0.5, "steps": 1, "pool": 2}}], ids=["sd", "routed+sd"])
def test_step_distilled_system_samples_in_k_single_forwards_and_reloads(base, tiny_t2v, tmp_path):
    from pare_core.flops import analytic_flops

    recipe = {**base, "step_distill": {"steps": 2, "substeps": 1, "trajectories": 8, "train_steps": 2}}
    suite = Suite(**{**SUITE, "systems": [{"name": "sd", "recipe": recipe}]})
    system = build_system(suite.systems[0], suite, TinyBackend(tiny_t2v), artifacts=tmp_path)
    assert (system.sampling.steps, system.sampling.guidance, system.sampling.scheduler) == (2, 1.0, "euler")
    prompt, seed = ["a red circle moving left"], [3]
    with RuntimeFlopCounter() as counter:
        video = system.generate(prompt, seed)
    world = tiny_t2v.spec.world
    dense = analytic_flops(
        dict(tiny_t2v.transformer.config), world.frames, world.height, world.width, tiny_t2v.spec.text_context
    ).total
    assert counter.total <= 2 * dense * 1.01  # two forwards, no CFG pair (fewer blocks when routed)
    if "depth" in base:
        assert system.routed and len(system.step_routing()) == 2
    (directory,) = (tmp_path / "tiny-wan-t2v").glob("sd-*")
    assert len(list((directory / "trajectories").glob("*.pt"))) == 1
    again = build_system(suite.systems[0], suite, TinyBackend(tiny_t2v), artifacts=tmp_path)  # cached: no training
    assert torch.equal(again.generate(prompt, seed), video)


def test_magcache_calibrates_its_ratios_with_diffusers_calibration_mode(tiny_t2v):
    suite = Suite(**{**SUITE, "systems": [{"name": "m", "cache": {"mag": {"calibration_videos": 1}}}]})
    (system,) = (build_system(spec, suite, TinyBackend(tiny_t2v)) for spec in suite.systems)
    ratios = system.model.transformer._cache_config.mag_ratios
    assert len(ratios) == 6 and ratios[0] == 1.0  # one per step; diffusers logs 1.0 for the first
    assert not torch.allclose(ratios, torch.ones(6))  # measured, not the neutral default


def test_given_mag_ratios_skip_the_calibration(tiny_t2v):
    ratios = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9]
    suite = Suite(**{**SUITE, "systems": [{"name": "m", "cache": {"mag": {"mag_ratios": ratios}}}]})
    (system,) = (build_system(spec, suite, TinyBackend(tiny_t2v)) for spec in suite.systems)
    assert system.model.transformer._cache_config.mag_ratios.tolist() == pytest.approx(ratios)


def test_batched_cfg_matches_two_forwards(tiny_t2v):
    prompt, seed = ["a red circle moving left"], [3]
    two = sample(tiny_t2v, prompt, seed, SamplingConfig(steps=4))
    one = sample(tiny_t2v, prompt, seed, SamplingConfig(steps=4, batched_cfg=True))
    torch.testing.assert_close(one, two, rtol=0, atol=1e-4)


def test_a_sweep_expands_into_one_cache_system_per_value():
    systems = [{"name": "fb", "cache": {"first_block": {}}, "sweep": {"threshold": [0.05, 0.2]}}]
    suite = Suite(**{**SUITE, "systems": systems}).expanded()
    assert [(s.name, s.cache, s.sweep_of) for s in suite.systems] == [
        ("fb-0.05", {"first_block": {"threshold": 0.05}}, "fb"),
        ("fb-0.2", {"first_block": {"threshold": 0.2}}, "fb"),
    ]


@pytest.mark.parametrize(
    "system, message",
    [
        ({"name": "x", "sweep": {"threshold": [0.1]}}, "has no cache"),
        ({"name": "x", "cache": {"first_block": {"threshold": 0.1}}, "sweep": {"threshold": [0.2]}}, "one place"),
        ({"name": "x", "cache": {"first_block": {}}, "sweep": {"a": [1, 2], "b": [1]}}, "same length"),
    ],
)
def test_bad_sweeps_are_refused(system, message):
    with pytest.raises(ValueError, match=message):
        Suite(**{**SUITE, "systems": [system]})
