"""pytest-benchmark: whole-video sampling latency of the tiny teacher, dense and with FirstBlockCache.

Run with `tox -e bench` (or `python -m pytest benchmarks --benchmark-only`); compare the two
medians from the same run, never against numbers from another machine.
"""

import copy

import pytest
from diffusers import FirstBlockCacheConfig

from pare_bench.tiny.sample import SamplingConfig, sample
from pare_bench.tiny.zoo import load_tiny

CONFIG = SamplingConfig(steps=20)
PROMPT, SEED = ["a red circle moving left"], [1_000_000]


@pytest.fixture(scope="module")
def teacher():
    return load_tiny("tiny-wan-t2v")


def test_bench_baseline(benchmark, teacher):
    benchmark.pedantic(sample, args=(teacher, PROMPT, SEED, CONFIG), rounds=5, warmup_rounds=1)


def test_bench_first_block_cache(benchmark, teacher):
    cached = copy.deepcopy(teacher)
    cached.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.1))
    benchmark.pedantic(sample, args=(cached, PROMPT, SEED, CONFIG), rounds=5, warmup_rounds=1)
