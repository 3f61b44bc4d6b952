"""Metric families; importing this package registers every metric (see registry.py)."""

from pare_bench.metrics import cost, fid, paired, vbench, world  # noqa: F401  (registration side effect)
from pare_bench.metrics.registry import METRICS, get_metric, register_metric

__all__ = ["METRICS", "get_metric", "register_metric"]
