import pytest
import torch

from pare_bench.suite import KNOWN_CACHE_METHODS, Suite
from pare_bench.systems import CACHE_METHODS, build_system
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
}


def test_suite_and_systems_agree_on_cache_methods():
    assert tuple(CACHE_METHODS) == KNOWN_CACHE_METHODS == tuple(CACHES)


@pytest.mark.parametrize("method", sorted(CACHES))
def test_cache_systems_change_the_output_and_leave_the_teacher_alone(method, tiny_t2v):
    suite = Suite(**{**SUITE, "systems": [{"name": "baseline"}, {"name": "c", "cache": {method: CACHES[method]}}]})
    baseline, cached = (build_system(spec, suite, tiny_t2v) for spec in suite.systems)
    prompt, seed = ["a red circle moving left"], [3]
    with RuntimeFlopCounter() as dense_flops:
        dense = baseline.generate(prompt, seed)
    assert cached.dense is False and baseline.dense is True
    with RuntimeFlopCounter() as cached_flops:
        assert not torch.equal(cached.generate(prompt, seed), dense)
    assert cached_flops.total < dense_flops.total  # the hook really skipped work
    assert torch.equal(baseline.generate(prompt, seed), dense)  # no hook leaked into the teacher
    assert not tiny_t2v.transformer.is_cache_enabled


def test_recipe_systems_are_refused_clearly(tiny_t2v):
    suite = Suite(**{**SUITE, "systems": [{"name": "pare", "recipe": {"width": {"ratio": 0.5}}}]})
    with pytest.raises(NotImplementedError, match="recipe"):
        build_system(suite.systems[0], suite, tiny_t2v)
