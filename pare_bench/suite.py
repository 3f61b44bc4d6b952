"""Benchmark suites: YAML files validated at the boundary so a typo fails before any GPU time is spent.

`load_suite` reports every problem of a suite at once, each with its YAML path and line, because a
suite is usually written by hand and fixing one error per run is slow. A suite may `include:` another
suite file and override some of its keys (mappings merge key by key, everything else is replaced).
Relative `model` and `prompts` paths are relative to the suite file passed to `load_suite`, even when
they come from an included file.

    suite: tiny_t2v
    task: t2v
    model: tiny-wan-t2v            # a zoo name, or a local directory (relative to the suite file)
    prompts: world:eval            # world:<split>, or a text file (relative to the suite file)
    systems: [{name: baseline}, {name: fbcache, cache: {first_block: {threshold: 0.05}}}]
    metrics: [{metric: psnr, reference: baseline}, {metric: latency, warmup: 1, repeats: 3}]

A system with `seeds: [0, 1, 2]` trains its recipe once per seed (`name-s0`, ...; compared as one group), and a
cache system with `sweep: {threshold: [0.05, 0.1]}` runs once per value (`name-0.05`, ...; drawn as one curve).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pydantic import ValidationError

from pare_bench import vbench_i2v
from pare_bench.suite_checks import (
    VBENCH_I2V_PREFIX,
    VBENCH_PREFIX,
    WORLD_PREFIX,
    _frames_problems,
    _known_metrics,
    _metric_problems,
    _model_problems,
    _prompt_lines,
    _prompt_problems,
    _pydantic_problems,
    _tiny_models,
)
from pare_bench.suite_schema import (  # noqa: F401  the schema is part of this module's API
    _LOADING,
    KNOWN_CACHE_METHODS,
    WIDTH_SCORES,
    DepthRecipe,
    MetricSpec,
    Recipe,
    Sampling,
    SamplingOverride,
    Seed,
    StepDistillRecipe,
    StopRule,
    Suite,
    SystemSpec,
    WidthRecipe,
    _cross_problems,
)
from pare_bench.yaml_source import FatalSuiteProblem, locate_problem, read_with_includes


class SuiteError(ValueError):
    """Every problem of a suite file, one per line, so they can all be fixed in one go."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = tuple(problems)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"invalid suite {path} ({count}):\n" + "\n".join(f"  {p}" for p in problems))


# --------------------------------------------------------------------------------------------- API


def load_suite(path: Path, known_metrics: set[str] | None = None) -> Suite:
    """Read, merge includes, validate; raise one SuiteError listing every problem. Writes nothing.

    `known_metrics` defaults to the metric registry; tests pass their own names.
    """
    path = Path(path)
    if not path.is_file():
        raise SuiteError(path, [f"{path}: no such suite file; {_known_suites_hint()}"])
    try:
        data, index, raw = read_with_includes(path)
    except FatalSuiteProblem as fatal:
        raise SuiteError(path, [str(fatal)]) from None
    known = _known_metrics() if known_metrics is None else set(known_metrics)
    problems = list(raw)
    suite = None
    try:
        suite = Suite.model_validate(data, strict=True, context={_LOADING: True})
    except ValidationError as error:
        problems += _pydantic_problems(error)
    problems += _cross_problems(data)
    problems += _metric_problems(data, known)
    problems += _model_problems(data, path.parent)
    problems += _prompt_problems(data, path.parent)
    problems += _frames_problems(data, path.parent)
    if problems:
        formatted = sorted(locate_problem(index, loc, message) for loc, message in problems)
        raise SuiteError(path, [line for _, line in formatted])
    return suite.expanded()


SUITES_DIR = Path(__file__).resolve().parents[1] / "suites"


def known_suites() -> list[Path]:
    """The suite files in ./suites and in the checkout's suites/ folder (absent in a wheel install)."""
    folders = {Path("suites").resolve(), SUITES_DIR}
    return sorted({p.resolve() for folder in folders if folder.is_dir() for p in folder.glob("*.yaml")})


def _known_suites_hint() -> str:
    suites = known_suites()
    if not suites:
        return "no suites/ folder here either"
    names = ", ".join(os.path.relpath(p) for p in suites)
    return f"suites that exist: {names}"


def suite_hash(suite: Suite) -> str:
    """A short, stable id of what a suite asks for (key order and formatting of the file do not matter, and
    neither do unset optional fields, so a new optional suite field leaves earlier runs resumable)."""
    canonical = json.dumps(suite.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def resolve_prompts(suite: Suite, suite_path: Path) -> list[str]:
    """The suite's prompt texts: a world split, VBench's prompt suite or I2V image suite, or the lines of a file
    next to the suite."""
    if suite.prompts.startswith(WORLD_PREFIX):
        from pare_bench.tiny.world.prompts import split_prompts

        return split_prompts(suite.prompts[len(WORLD_PREFIX) :])
    if suite.prompts.startswith(VBENCH_I2V_PREFIX):
        directory, ratio = vbench_i2v.locate(suite, suite_path)
        problems = vbench_i2v.problems(directory, ratio)
        if problems:
            raise FileNotFoundError(problems[0])
        return vbench_i2v.prompts(directory)
    if suite.prompts.startswith(VBENCH_PREFIX):
        from pare_bench.metrics.vbench import standard_prompts

        return standard_prompts(suite.prompts[len(VBENCH_PREFIX) :])
    return _prompt_lines(Path(suite_path).parent / suite.prompts)


def model_directory(suite: Suite, suite_path: Path) -> Path | None:
    """The local model directory a suite names (relative to its file), or None for a zoo model."""
    if suite.model in _tiny_models():
        return None
    return Path(suite_path).parent / suite.model
