import pytest

from pare_bench.tiny.zoo import load_tiny


@pytest.fixture(scope="session")
def tiny_t2v():
    return load_tiny("tiny-wan-t2v")


@pytest.fixture(scope="session")
def tiny_i2v():
    return load_tiny("tiny-wan-i2v")
