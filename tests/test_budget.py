"""The repository's binary weight: every retrain stays in git history forever, so tracked binaries keep within a
budget, and inside the importable packages only the package data (teachers, world-features net) is binary."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUDGET_BYTES = 60_000_000


def _tracked() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name.decode() for name in listing.split(b"\0") if name]


def _binary(path: Path) -> bool:
    """git's own test: a NUL byte in the first 8,000 bytes."""
    with path.open("rb") as handle:
        return b"\0" in handle.read(8000)


def test_tracked_binary_files_stay_within_the_budget():
    binaries = {path: path.stat().st_size for path in _tracked() if path.is_file() and _binary(path)}
    total = sum(binaries.values())
    largest = sorted(binaries.items(), key=lambda item: -item[1])[:5]
    assert total <= BUDGET_BYTES, f"{total / 1e6:.1f} MB of tracked binaries; largest: {largest}"


def test_the_packages_hold_no_binary_but_their_package_data():
    allowed = ROOT / "pare_bench" / "weights"
    stray = [
        path
        for path in _tracked()
        if path.is_file()
        and path.is_relative_to(ROOT / "pare_bench") | path.is_relative_to(ROOT / "pare_core")
        and not path.is_relative_to(allowed)
        and _binary(path)
    ]
    assert not stray, f"binary files inside the importable packages (trained students go to artifacts/): {stray}"
