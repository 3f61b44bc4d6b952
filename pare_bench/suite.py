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
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pare_bench.metrics.registry import METRICS, did_you_mean

KNOWN_CACHE_METHODS = ("first_block", "pyramid_attention_broadcast", "taylorseer")  # systems.CACHE_METHODS
WORLD_PREFIX = "world:"
_LOADING = "pare_bench.suite.loading"  # validation context flag: load_suite does the cross-field checks itself

Loc = tuple  # a YAML path: str keys and int list indices, as pydantic's `loc`


# --------------------------------------------------------------------------------------------- models


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(20, gt=0)
    guidance: float = Field(5.0, ge=1.0)
    shift: float = Field(3.0, gt=0)
    scheduler: Literal["unipc", "euler"] = "unipc"


class SamplingOverride(BaseModel):
    """A system's partial `sampling:` override; unset fields keep the suite's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int | None = Field(None, gt=0)
    guidance: float | None = Field(None, ge=1.0)
    shift: float | None = Field(None, gt=0)
    scheduler: Literal["unipc", "euler"] | None = None


class Seed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base: int = Field(0, ge=0)  # sample i of a prompt uses seed base + i


class SystemSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    cache: dict[str, dict[str, Any]] | None = None  # {method: options}, exactly one method
    recipe: dict[str, Any] | None = None
    sampling: SamplingOverride | None = None

    @field_validator("cache")
    @classmethod
    def _one_known_cache_method(cls, cache: dict | None) -> dict | None:
        """One method per system, so a leaderboard row measures exactly one cache."""
        if cache is None:
            return cache
        if len(cache) != 1:
            raise PydanticCustomError(
                "cache_methods",
                "cache must name exactly one method, got {count}: {methods}",
                {"count": len(cache), "methods": sorted(cache)},
            )
        (method,) = cache
        if method not in KNOWN_CACHE_METHODS:
            raise PydanticCustomError(
                "unknown_key",
                "unknown cache method {quoted}{hint}",
                {"key": method, "quoted": repr(method), "hint": _hint(method, KNOWN_CACHE_METHODS)},
            )
        return cache


class MetricSpec(BaseModel):
    """One metric; options other than `metric` and `reference` go to the metric itself."""

    model_config = ConfigDict(extra="allow", frozen=True)

    metric: str
    reference: str | None = None  # paired metrics: the system the others are compared with

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    task: Literal["t2v", "i2v"]
    model: str = Field(min_length=1)
    prompts: str = Field(min_length=1)
    samples_per_prompt: int = Field(1, gt=0)
    seed: Seed = Field(default_factory=Seed)
    sampling: Sampling = Field(default_factory=Sampling)
    frames: int | None = Field(None, gt=0)
    systems: list[SystemSpec] = Field(min_length=1)
    metrics: list[MetricSpec]

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Suite:
        """Suites built in code get the same cross-field checks as loaded ones (load_suite runs them on the
        raw data instead, so they are reported even when some other field fails)."""
        if info.context and info.context.get(_LOADING):
            return self
        problems = _cross_problems(self.model_dump())
        if problems:
            raise ValueError("; ".join(f"{_format_loc(loc)}: {message}" for loc, message in problems))
        return self

    def system(self, name: str) -> SystemSpec:
        for system in self.systems:
            if system.name == name:
                return system
        raise KeyError(f"no system {name!r} in suite {self.suite!r}; systems: {[s.name for s in self.systems]}")

    def sampling_for(self, system: SystemSpec) -> Sampling:
        """The suite's sampling with the system's override applied."""
        if system.sampling is None:
            return self.sampling
        return self.sampling.model_copy(update=system.sampling.model_dump(exclude_none=True))


# --------------------------------------------------------------------------------------------- errors


class SuiteError(ValueError):
    """Every problem of a suite file, one per line, so they can all be fixed in one go."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = tuple(problems)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"invalid suite {path} ({count}):\n" + "\n".join(f"  {p}" for p in problems))


class _Fatal(Exception):
    """A problem after which nothing else can be checked (unreadable file, bad YAML, include cycle)."""


@dataclass(frozen=True)
class _Where:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    kind: str  # "map", "seq" or "scalar": the kind of the value, used when merging includes


def _hint(name: str, known) -> str:
    """The "; did you mean 'x'? (known: [...])" suffix of every unknown-name message, so all read alike."""
    return f"{did_you_mean(name, known)} (known: {sorted(known)})"


def _format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _problem(index: dict[Loc, _Where], loc: Loc, message: str) -> tuple[tuple, str]:
    """A formatted problem and its sort key. Missing keys have no line; their nearest ancestor does."""
    anchor = loc
    while anchor and anchor not in index:
        anchor = anchor[:-1]
    where = index.get(anchor)
    prefix = f"{where.file}:{where.line}: " if where else ""
    path = f"{_format_loc(loc)}: " if loc else ""
    key = (where.file if where else "", where.line if where else 0, _format_loc(loc))
    return key, f"{prefix}{path}{message}"


# --------------------------------------------------------------------------------------------- reading


def _where(node: yaml.Node, file: str, kind_node: yaml.Node) -> _Where:
    kind = {yaml.MappingNode: "map", yaml.SequenceNode: "seq"}.get(type(kind_node), "scalar")
    return _Where(file, node.start_mark.line + 1, node.start_mark.column + 1, kind)


def _yaml_problem(path: Path, error: yaml.YAMLError) -> str:
    """Where the parser gave up; that is usually at, or just after, the mistake."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and context_mark:
        context += f" started at line {context_mark.line + 1}, column {context_mark.column + 1}"
    detail = f"{problem} ({context})" if context else problem
    if mark is None:
        return f"{path}: malformed YAML: {detail}"
    line, column = mark.line + 1, mark.column + 1
    return f"{path}:{line}:{column}: malformed YAML at line {line}, column {column}: {detail}"


def _index_node(node: yaml.Node, file: str, loc: Loc, index: dict[Loc, _Where], problems: list) -> None:
    """Record where every key and list item starts, so a pydantic `loc` can be turned into a line."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            child = (*loc, key_node.value)
            if child in index and index[child].file == file:
                problems.append((child, f"duplicate key {key_node.value!r} (also on line {index[child].line})"))
            index[child] = _where(key_node, file, value_node)
            _index_node(value_node, file, child, index, problems)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            index[(*loc, position)] = _where(item, file, item)
            _index_node(item, file, (*loc, position), index, problems)


def _parse(path: Path) -> tuple[Any, dict[Loc, _Where], list]:
    """One file's data, its location index and its duplicate-key problems; YAML errors are fatal."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _Fatal(f"{path}: cannot read suite file: {error}") from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise _Fatal(_yaml_problem(path, error)) from None
    index: dict[Loc, _Where] = {}
    problems: list = []
    if root is not None:
        index[()] = _where(root, str(path), root)
        _index_node(root, str(path), (), index, problems)
    return data, index, problems


def _deep_merge(base: dict, over: dict) -> dict:
    """`over` wins; mappings merge key by key, lists and scalars are replaced whole."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _merge_index(base: dict[Loc, _Where], over: dict[Loc, _Where]) -> dict[Loc, _Where]:
    """Locations after `_deep_merge`: a replaced value takes its whole subtree's lines with it."""
    replaced = [loc for loc, w in over.items() if w.kind != "map" or base.get(loc, w).kind != "map"]
    merged = {
        loc: where for loc, where in base.items() if not any(len(loc) > len(r) and loc[: len(r)] == r for r in replaced)
    }
    merged.update(over)
    return merged


def _read(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict, dict[Loc, _Where], list]:
    """A suite file with its includes resolved; cycles and missing includes are fatal."""
    data, index, problems = _parse(path)
    if data is None:
        raise _Fatal(f"{path}: the suite file is empty; expected a mapping of suite keys")
    if not isinstance(data, dict):
        where = index[()]
        raise _Fatal(
            f"{where.file}:{where.line}: the top level must be a mapping of suite keys, got a {type(data).__name__}"
        )
    if "include" not in data:
        return data, index, problems
    include = data.pop("include")
    where = index[("include",)]
    if not isinstance(include, str) or not include:
        raise _Fatal(f"{where.file}:{where.line}: include: expected a file path, got {include!r}")
    target = path.parent / include
    chain = (*chain, path)
    if target.resolve() in {p.resolve() for p in chain}:
        cycle = " -> ".join(str(p) for p in (*chain, target))
        raise _Fatal(f"{where.file}:{where.line}: include: include cycle: {cycle}")
    if not target.is_file():
        raise _Fatal(f"{where.file}:{where.line}: include: included file not found: {target}")
    base, base_index, base_problems = _read(target, chain)
    return _deep_merge(base, data), _merge_index(base_index, index), base_problems + problems


# --------------------------------------------------------------------------------------------- checks


def _known_metrics() -> set[str]:
    """Importing the package registers its metrics (each metric module decorates itself)."""
    import pare_bench.metrics  # noqa: F401

    return set(METRICS)


def _tiny_models() -> dict[str, str]:
    """Zoo name -> task. Imported lazily: the zoo pulls in torch and diffusers."""
    from pare_bench.zoo import TINY_MODELS

    return {name: spec.task for name, spec in TINY_MODELS.items()}


def _world_splits() -> set[str]:
    from pare_bench.world.prompts import SPLITS

    return set(SPLITS)


def _items(data: dict, key: str) -> list[tuple[int, dict]]:
    """The mapping items of a list field, tolerating any malformed shape (pydantic reports those)."""
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [(position, item) for position, item in enumerate(value) if isinstance(item, dict)]


def _cross_problems(data: dict) -> list[tuple[Loc, str]]:
    """Checks that span fields: unique system names, references to systems. Raw data, best effort."""
    problems: list[tuple[Loc, str]] = []
    first: dict[str, int] = {}
    for position, system in _items(data, "systems"):
        name = system.get("name")
        if not isinstance(name, str):
            continue
        if name in first:
            message = f"duplicate system name {name!r} (also systems[{first[name]}])"
            problems.append((("systems", position, "name"), message))
        first.setdefault(name, position)
    for position, metric in _items(data, "metrics"):
        reference = metric.get("reference")
        if isinstance(reference, str) and reference not in first:
            message = f"reference {reference!r} is not a system of this suite{_hint(reference, first)}"
            problems.append((("metrics", position, "reference"), message))
    return problems


def _metric_problems(data: dict, known: set[str]) -> list[tuple[Loc, str]]:
    problems = []
    for position, spec in _items(data, "metrics"):
        name = spec.get("metric")
        if not isinstance(name, str):
            continue
        if name not in known:
            empty = "; no metric is registered (does pare_bench.metrics import its modules?)" if not known else ""
            problems.append((("metrics", position, "metric"), f"unknown metric {name!r}{_hint(name, known)}{empty}"))
        elif name in METRICS and METRICS[name].kind == "paired" and spec.get("reference") is None:
            problems.append((("metrics", position), f"paired metric {name!r} needs a `reference:` system"))
    return problems


def _model_problems(data: dict, base_dir: Path) -> list[tuple[Loc, str]]:
    model, task = data.get("model"), data.get("task")
    if not isinstance(model, str) or not model:
        return []
    zoo = _tiny_models()
    if model in zoo:
        if task in ("t2v", "i2v") and zoo[model] != task:
            return [(("task",), f"task {task!r} does not match model {model!r}, whose task is {zoo[model]!r}")]
        return []
    if (base_dir / model).is_dir():
        return []
    local = "or name a local model directory (relative to the suite file)"
    return [(("model",), f"unknown model {model!r}{_hint(model, zoo)}; {local}")]


def _prompt_problems(data: dict, base_dir: Path) -> list[tuple[Loc, str]]:
    prompts = data.get("prompts")
    if not isinstance(prompts, str) or not prompts:
        return []
    if prompts.startswith(WORLD_PREFIX):
        split, splits = prompts[len(WORLD_PREFIX) :], _world_splits()
        if split not in splits:
            return [(("prompts",), f"unknown world split {split!r}{_hint(split, splits)}")]
        return []
    path = base_dir / prompts
    if not path.is_file():
        expected = "expected world:<split> or a text file relative to the suite file"
        return [(("prompts",), f"prompt file not found: {path} ({expected})")]
    try:
        lines = _prompt_lines(path)
    except (OSError, UnicodeDecodeError) as error:
        return [(("prompts",), f"cannot read prompt file {path}: {error}")]
    if not lines:
        return [(("prompts",), f"prompt file {path} has no prompts (every line is empty)")]
    return []


def _prompt_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _allowed_keys(loc: Loc) -> list[str]:
    """Keys the model at `loc` accepts, for "did you mean" on an unknown key."""
    models = {
        (): Suite,
        ("seed",): Seed,
        ("sampling",): Sampling,
        ("systems",): SystemSpec,
        ("systems", "sampling"): SamplingOverride,
    }
    model = models.get(tuple(part for part in loc if isinstance(part, str)))
    keys = list(model.model_fields) if model else []
    return keys + ["include"] if model is Suite else keys


def _pydantic_problems(error: ValidationError) -> list[tuple[Loc, str]]:
    """Pydantic errors as (YAML path, message), in this module's wording."""
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(part for part in item["loc"] if part != "[key]")
        kind, context = item["type"], item.get("ctx") or {}
        if kind == "missing":
            message = "required key is missing"
        elif kind == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}{_hint(str(loc[-1]), _allowed_keys(loc[:-1]))}"
        elif kind == "unknown_key":
            loc, message = (*loc, context["key"]), item["msg"]
        else:
            value = item.get("input")
            got = f" (got {value!r})" if isinstance(value, (str, int, float, bool, type(None))) else ""
            message = f"{item['msg']}{got}"
        problems.append((loc, message))
    return problems


# --------------------------------------------------------------------------------------------- API


def load_suite(path: Path, known_metrics: set[str] | None = None) -> Suite:
    """Read, merge includes, validate; raise one SuiteError listing every problem. Writes nothing.

    `known_metrics` defaults to the metric registry; tests pass their own names.
    """
    path = Path(path)
    try:
        data, index, raw = _read(path)
    except _Fatal as fatal:
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
    if problems:
        formatted = sorted(_problem(index, loc, message) for loc, message in problems)
        raise SuiteError(path, [line for _, line in formatted])
    return suite


def suite_hash(suite: Suite) -> str:
    """A short, stable id of what a suite asks for (key order and formatting of the file do not matter)."""
    canonical = json.dumps(suite.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def resolve_prompts(suite: Suite, suite_path: Path) -> list[str]:
    """The suite's prompt texts: a world split, or the non-empty lines of a file next to the suite."""
    if suite.prompts.startswith(WORLD_PREFIX):
        from pare_bench.world.prompts import split_prompts

        return split_prompts(suite.prompts[len(WORLD_PREFIX) :])
    return _prompt_lines(Path(suite_path).parent / suite.prompts)


def model_directory(suite: Suite, suite_path: Path) -> Path | None:
    """The local model directory a suite names (relative to its file), or None for a zoo model."""
    if suite.model in _tiny_models():
        return None
    return Path(suite_path).parent / suite.model
