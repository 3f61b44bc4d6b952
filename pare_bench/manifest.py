"""The run manifest: what was asked (suite and hash) and where and with what it ran."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from pare_bench.metrics.paired import CONVENTIONS
from pare_bench.suite import Suite

PACKAGES = ("pare-bench", "torch", "diffusers", "numpy", "torchmetrics", "scikit-image", "fvcore", "pydantic", "av")


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def git_state() -> dict:
    """HEAD and whether the tree has uncommitted changes; None outside a git checkout."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    return {"sha": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages (None where the OS has none): other work competing for the CPU."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def hardware() -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_start": load_average(),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def build_manifest(suite: Suite, suite_path: Path, digest: str, prompts: list[str]) -> dict:
    return {
        "suite": suite.model_dump(mode="json"),
        "suite_path": str(suite_path),
        "suite_hash": digest,
        "prompts": prompts,
        "git": git_state(),
        "versions": {package: _version(package) for package in PACKAGES},
        "hardware": hardware(),
        "conventions": {
            **CONVENTIONS,
            "flops": "multiply-add = 2 FLOPs; per step counts both CFG branches",
            "latency": "whole video, batch 1, after warm-up, seconds",
        },
    }
