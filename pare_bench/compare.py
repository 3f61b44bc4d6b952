"""`python -m pare_bench compare BASE_DIR NEW_DIR [--tolerance FILE]`: the CI regression gate.

Reads the `leaderboard.csv` of two run directories and checks every system of BASE in NEW:

- a quality metric (higher is better) regresses when NEW < BASE - tolerance; tolerances are absolute,
  in the metric's own unit (dB for PSNR, a score in [0, 1] for SSIM, the world scores and VBench's raw
  dimensions);
- a lower-is-better quality metric (FID, LPIPS) regresses when NEW > BASE * tolerance (ratios: FID's scale
  depends on the feature network, so an absolute bound would mean nothing across suites);
- a cost metric (lower is better) regresses when NEW > BASE * tolerance; tolerances are ratios;
- `failures` regresses when it rises at all, and a BASE system missing from NEW regresses.

Default tolerances (`DEFAULT_TOLERANCES`) absorb CPU-to-CPU numeric differences in quality and FLOP
counts that differ by nothing but allow latency to move with the machine: 1.5x, since CI machines are
shared and latency there is noisy. A tolerance file (YAML) overrides any of them, e.g.

    quality: {psnr: 1.0}
    cost: {latency_p50: 3.0}

Exit codes: 0 no regression, 1 regression, 2 bad input (a missing leaderboard, a bad tolerance file).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.table import Table

from pare_bench.metrics import METRICS  # noqa: F401  (registers every metric before the defaults are read)
from pare_bench.metrics.registry import default_tolerances

DEFAULT_TOLERANCES = default_tolerances()  # owned by each metric's registry entry


class Tolerances(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quality: dict[str, float] = Field(default_factory=dict)  # metric -> largest allowed absolute drop
    lower: dict[str, float] = Field(default_factory=dict)  # lower-is-better quality -> largest ratio new / base
    cost: dict[str, float] = Field(default_factory=dict)  # metric -> largest allowed ratio new / base


class CompareError(ValueError):
    """Bad input to compare: names the file and what to fix."""


def load_tolerances(path: Path | None) -> dict[str, dict[str, float]]:
    """The defaults, overridden by `path`; unknown metrics and non-positive tolerances are refused."""
    merged = {kind: dict(values) for kind, values in DEFAULT_TOLERANCES.items()}
    if path is None:
        return merged
    try:
        tolerances = Tolerances.model_validate(yaml.safe_load(Path(path).read_text()) or {})
    except (OSError, yaml.YAMLError) as error:
        raise CompareError(f"cannot read tolerance file {path}: {error}") from None
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise CompareError(f"invalid tolerance file {path}: {problems}") from None
    for kind in ("quality", "lower", "cost"):
        for metric, value in getattr(tolerances, kind).items():
            if metric not in merged[kind]:
                raise CompareError(
                    f"invalid tolerance file {path}: unknown {kind} metric {metric!r} (known: {sorted(merged[kind])})"
                )
            if value < 0 or (kind != "quality" and value < 1):
                least = "a ratio >= 1" if kind != "quality" else ">= 0"
                raise CompareError(f"invalid tolerance file {path}: {kind}.{metric} must be {least}, got {value}")
            merged[kind][metric] = value
    return merged


def read_leaderboard(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / "leaderboard.csv"
    if not path.is_file():
        raise CompareError(f"no leaderboard at {path}: pass a finished run directory (or rebuild it with `report`)")
    return pd.read_csv(path, index_col="system")


TIMING = ("latency_p50", "latency_p90")


def read_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _machine(manifest: dict) -> tuple:
    hardware = manifest.get("hardware", {})
    return (
        hardware.get("cpu_model") or hardware.get("processor"),
        hardware.get("cpu_count"),
        hardware.get("cuda_device"),
    )


def context_warnings(base: dict, new: dict) -> tuple[list[str], bool]:
    """What differs between the two runs besides the code under test, and whether they ran on one machine."""
    warnings = []
    if base.get("suite_hash") != new.get("suite_hash"):
        warnings.append(f"suite hash differs ({base.get('suite_hash')} vs {new.get('suite_hash')}): not the same suite")
    base_sha, new_sha = base.get("git", {}).get("sha"), new.get("git", {}).get("sha")
    if base_sha != new_sha:
        warnings.append(f"git sha differs ({str(base_sha)[:10]} vs {str(new_sha)[:10]})")
    same_machine = _machine(base) == _machine(new)
    if not same_machine:
        warnings.append(
            f"machine differs ({_machine(base)} vs {_machine(new)}): latency in seconds is not compared; "
            "speedups (ratios within each run) are"
        )
    threads = [m.get("hardware", {}).get("torch_threads") for m in (base, new)]
    if threads[0] != threads[1]:
        warnings.append(f"torch thread count differs ({threads[0]} vs {threads[1]}): timings are not comparable")
    return warnings, same_machine


def compare_runs(base: pd.DataFrame, new: pd.DataFrame, tolerances: dict, same_machine: bool = True) -> pd.DataFrame:
    """One row per (system, metric) checked: base, new, allowed bound and whether it regressed.

    Across machines, seconds are replaced by the speedup against the run's own reference (a ratio measured
    within each run), with the latency tolerance as the largest allowed ratio. A timing the new run flags
    as too noisy (`timing_noisy`) is neither passed nor failed: its rows read NOT JUDGED.
    """
    tolerances = {kind: dict(values) for kind, values in tolerances.items()}
    speedup_tolerance = tolerances["cost"].get("latency_p50")
    if not same_machine:
        for metric in TIMING:
            tolerances["cost"].pop(metric, None)
    rows = []
    for system in base.index:
        if system not in new.index:
            rows.append({"system": system, "metric": "(system)", "status": "missing in new run", "regressed": True})
            continue
        if "failures" in base:
            before, after = base.loc[system, "failures"], new.loc[system].get("failures", 0)
            rows.append(_row(system, "failures", before, after, before, after > before))
        for kind, sign in (("quality", -1), ("lower", +1), ("cost", +1)):
            for metric, tolerance in tolerances[kind].items():
                before = base.loc[system].get(metric, math.nan)
                if pd.isna(before):
                    continue  # the base run does not measure it for this system
                after = new.loc[system].get(metric, math.nan)
                bound = before - tolerance if sign < 0 else before * tolerance
                worse = pd.isna(after) or (after < bound if sign < 0 else after > bound)
                rows.append(_judged(new, system, metric, _row(system, metric, before, after, bound, worse)))
        if not same_machine and speedup_tolerance and not pd.isna(base.loc[system].get("speedup", math.nan)):
            before, after = base.loc[system, "speedup"], new.loc[system].get("speedup", math.nan)
            bound = before / speedup_tolerance
            row = _row(system, "speedup", before, after, bound, pd.isna(after) or after < bound)
            rows.append(_judged(new, system, "speedup", row))
    return pd.DataFrame(rows)


def _judged(new: pd.DataFrame, system: str, metric: str, row: dict) -> dict:
    """A timing row of a system whose new timing is flagged noisy: NOT JUDGED, not counted as a regression."""
    noisy = str(new.loc[system].get("timing_noisy", False)) == "True"
    if metric in (*TIMING, "speedup") and noisy:
        return {**row, "status": "NOT JUDGED (timing spread too large)", "regressed": False}
    return row


def _row(system: str, metric: str, before: float, after: float, bound: float, regressed: bool) -> dict:
    status = "REGRESSED" if regressed else "ok"
    if pd.isna(after):
        status = "REGRESSED (not measured in new run)"
    return {
        "system": system,
        "metric": metric,
        "base": before,
        "new": after,
        "bound": bound,
        "status": status,
        "regressed": bool(regressed),
    }


def print_comparison(table: pd.DataFrame, console: Console) -> None:
    view = Table(title="compare: new run against base")
    for column in ("system", "metric", "base", "new", "bound", "status"):
        view.add_column(column, justify="left" if column in ("system", "metric", "status") else "right", no_wrap=True)
    for row in table.itertuples():
        cells = [
            f"{getattr(row, c):.5g}" if isinstance(getattr(row, c), float) else str(getattr(row, c))
            for c in ("base", "new", "bound")
        ]
        style = "red" if row.regressed else None
        view.add_row(row.system, row.metric, *cells, row.status, style=style)
    console.print(view)


def compare_cli(base_dir: Path, new_dir: Path, tolerance: Path | None, console: Console | None = None) -> int:
    console = console or Console(width=None if sys.stdout.isatty() else 160)  # logs: never cut the status column
    try:
        tolerances = load_tolerances(tolerance)
        warnings, same_machine = context_warnings(read_manifest(base_dir), read_manifest(new_dir))
        table = compare_runs(read_leaderboard(base_dir), read_leaderboard(new_dir), tolerances, same_machine)
    except CompareError as error:
        console.print(f"error: {error}", style="red", markup=False, highlight=False)
        return 2
    for warning in warnings:
        console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
    print_comparison(table, console)
    regressions = int(table["regressed"].sum()) if len(table) else 0
    console.print(
        f"{regressions} regression(s) in {len(table)} checks" if regressions else f"no regression ({len(table)} checks)"
    )
    return 1 if regressions else 0
