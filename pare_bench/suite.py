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
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pare_bench import vbench_i2v
from pare_bench.metrics.registry import METRICS, did_you_mean
from pare_bench.yaml_source import FatalSuiteProblem, Loc, format_loc, locate_problem, read_with_includes

KNOWN_CACHE_METHODS = ("first_block", "pyramid_attention_broadcast", "taylorseer")  # systems.CACHE_METHODS
WORLD_PREFIX = "world:"
VBENCH_PREFIX = "vbench:"  # VBench's own prompt suite, read from the VBench environment
VBENCH_I2V_PREFIX, I2V_RATIOS = vbench_i2v.PREFIX, vbench_i2v.RATIOS  # VBench's I2V image suite, one crop ratio
_LOADING = "pare_bench.suite.loading"  # validation context flag: load_suite does the cross-field checks itself


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


WIDTH_SCORES = ("temporal_aware", "temporal_quota", "importance", "magnitude", "random", "uniform")  # heads.SCORES


class WidthRecipe(BaseModel):
    """PARE width: remove `ratio` of the teacher's self-attention heads, then recover by distillation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ratio: float = Field(ge=0.0, lt=1.0)  # share of self-attention heads removed
    cross_ratio: float = Field(0.0, ge=0.0, lt=1.0)  # share of cross-attention heads removed (magnitude-ranked)
    score: Literal["temporal_aware", "temporal_quota", "importance", "magnitude", "random", "uniform"] = (
        "temporal_aware"
    )
    temporal_weight: float = Field(1.0, ge=0.0)  # temporal_aware: weight of the temporal score
    temporal_quota: float = Field(0.5, ge=0.0, le=1.0)  # temporal_quota: share of kept heads from the temporal half
    recovery_steps: int = Field(200, ge=0)  # stage-1 distillation steps (0: prune only)
    norm_correction: bool = True  # fold the calibrated q/k RMS shift into the kept norm weights
    seed: int = Field(0, ge=0)  # seeds the random score and the recovery data


class DepthRecipe(BaseModel):
    """PARE depth: a block router trained jointly with the (width-pruned) student against the teacher.

    `router: content` sees the timestep and the content tokens (PARE); `timestep` sees only the timestep
    (the route-timestep-only ablation, as Learning-to-Cache); `static` removes the same blocks at every step
    for every input, the least important ones (skip-one-block error on calibration inputs) under the budget.

    A learned router is anchored to each training sample's own block importances (`pool` batches of 8 samples,
    `rank_weight`; see `pare_core.distill.train_joint`); `rank_weight: 0` is the unanchored router, which
    collapses to one static block set. Neither field applies to `static`, nor enters its artifact's hash.

    `content: motion` (the default) gives the content router the mean, spread and frame-to-frame change of the
    content tokens; `content: mean` is the mean token alone, which carries almost no layout or motion.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: float = Field(gt=0.0, le=1.0)  # share of the student's block FLOPs executed per forward
    router: Literal["content", "timestep", "static"] = "content"
    steps: int = Field(200, ge=0)  # stage-2 joint training steps
    hidden: int = Field(64, ge=1)  # router hidden width
    seed: int = Field(0, ge=0)  # seeds the router's init and the training data
    rank_weight: float = Field(1.0, ge=0.0)  # weight of the per-sample importance-ranking anchor
    pool: int = Field(32, ge=0)  # batches of 8 samples whose per-sample block importances anchor the router
    content: Literal["mean", "motion"] = "motion"  # what `router: content` reads (pare_core.router.pooled_content)


class StepDistillRecipe(BaseModel):
    """Step distillation (`pare_core.step_distill`): a `steps`-step student of the system the rest of the recipe
    describes (the teacher alone: `sd`; width and depth: `pare+sd`), guidance folded in. It samples with Euler at
    `steps` steps, guidance 1 (one forward per step) and `shift`, whatever the suite's sampling says."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(4, ge=1, le=50)
    shift: float = Field(3.0, gt=0.0)
    substeps: int = Field(6, ge=1)  # teacher Euler steps per student step
    guidance: float = Field(5.0, ge=1.0)  # the teacher's CFG scale
    trajectories: int = Field(128, ge=1)  # teacher trajectories from training-split prompts
    train_steps: int = Field(300, ge=0)
    batch: int = Field(8, ge=1)  # (state, segment) pairs per optimizer step
    seed: int = Field(0, ge=0)


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    width: WidthRecipe | None = None
    depth: DepthRecipe | None = None
    step_distill: StepDistillRecipe | None = None

    def with_seed(self, seed: int) -> Recipe:
        return self.model_copy(
            update={
                part: getattr(self, part).model_copy(update={"seed": seed})
                for part in ("width", "depth", "step_distill")
                if getattr(self, part) is not None
            }
        )


class SystemSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    cache: dict[str, dict[str, Any]] | None = None  # {method: options}, exactly one method
    recipe: Recipe | None = None
    sampling: SamplingOverride | None = None
    seeds: list[int] | None = Field(None, min_length=1)  # train the recipe once per seed: one system each
    replica_of: str | None = None  # set by seed expansion: the system this one is a seed replica of
    artifact: str | None = None  # Wan models: a saved PARE transformer directory (relative to the suite file)
    # Systems (by name; a seeded system as one group) this one is also compared with in hypotheses.csv, besides
    # the suite's reference: e.g. `pare` against `route-timestep-only` at equal FLOPs.
    compare_to: list[str] | None = Field(None, min_length=1)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and (len(set(seeds)) != len(seeds) or min(seeds) < 0):
            raise PydanticCustomError(
                "seeds", "seeds must be distinct non-negative integers, got {seeds}", {"seeds": seeds}
            )
        return seeds

    @model_validator(mode="after")
    def _seeds_need_recipe(self) -> SystemSpec:
        if self.seeds is not None and (self.recipe is None or self.recipe == Recipe()):
            raise ValueError("seeds replicate a trained recipe; this system has no recipe")
        if self.cache is not None and self.recipe is not None and self.recipe.depth is not None:
            raise ValueError("a cache and a depth router both skip blocks; give this system one of them")
        return self

    def replicas(self) -> list[SystemSpec]:
        """`name` with `seeds: [0, 1]` -> systems `name-s0`, `name-s1`, each with its recipe's seed set."""
        if self.seeds is None:
            return [self]
        return [
            self.model_copy(
                update={
                    "name": f"{self.name}-s{seed}",
                    "seeds": None,
                    "replica_of": self.name,
                    "recipe": self.recipe.with_seed(seed),
                }
            )
            for seed in self.seeds
        ]

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
    frames: int | None = Field(None, gt=0)  # video length; None: the model's native length
    height: int | None = Field(None, gt=0)  # Wan models: video size (default the model's, e.g. 720x1280 for 14B)
    width: int | None = Field(None, gt=0)
    weights: str | None = None  # Wan models: local diffusers directory (relative to the suite); None: the HF cache
    image_suite: str | None = None  # `prompts: vbench-i2v:...`: VBench's vbench2_beta_i2v folder; None: VBENCH_I2V_DIR
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
            raise ValueError("; ".join(f"{format_loc(loc)}: {message}" for loc, message in problems))
        return self

    def expanded(self) -> Suite:
        """The suite with every seeded system replaced by its per-seed replicas (what a run executes)."""
        systems = [replica for system in self.systems for replica in system.replicas()]
        return self.model_copy(update={"systems": systems})

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


def _hint(name: str, known) -> str:
    """The "; did you mean 'x'? (known: [...])" suffix of every unknown-name message, so all read alike."""
    return f"{did_you_mean(name, known)} (known: {sorted(known)})"


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
        seeds = system.get("seeds")
        names = [f"{name}-s{seed}" for seed in seeds] if isinstance(seeds, list) else [name]
        for each in names:
            if each in first:
                message = f"duplicate system name {each!r} (also systems[{first[each]}])"
                problems.append((("systems", position, "name"), message))
            first.setdefault(each, position)
    for position, system in _items(data, "systems"):
        others = system.get("compare_to")
        groups = {s.get("name") for _, s in _items(data, "systems")}
        for index, other in enumerate(others if isinstance(others, list) else []):
            if isinstance(other, str) and other not in groups:
                message = f"compare_to {other!r} is not a system of this suite{_hint(other, groups - {None})}"
                problems.append((("systems", position, "compare_to", index), message))
            elif other == system.get("name"):
                problems.append((("systems", position, "compare_to", index), "a system cannot be compared to itself"))
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
        if name not in known:  # an unknown metric: its options cannot be checked
            empty = "; no metric is registered (does pare_bench.metrics import its modules?)" if not known else ""
            problems.append((("metrics", position, "metric"), f"unknown metric {name!r}{_hint(name, known)}{empty}"))
        for key in spec:
            allowed = ["metric", "reference", *(METRICS[name].options if name in METRICS else ())]
            if name in METRICS and key not in allowed:
                message = f"unknown key {key!r} for metric {name!r}{_hint(str(key), allowed)}"
                problems.append((("metrics", position, key), message))
        if name in METRICS and METRICS[name].kind == "paired" and spec.get("reference") is None:
            problems.append((("metrics", position), f"paired metric {name!r} needs a `reference:` system"))
        elif name == "vbench":
            problems += [(("metrics", position, "dimensions"), message) for message in _vbench_problems(spec, data)]
    return problems


def _vbench_problems(spec: dict, data: dict) -> list[str]:
    """VBench dimensions must be named and known, and fit the mode: custom_input (the suite's own prompts) runs
    the dimensions VBench supports there; `mode: standard` needs VBench's prompts (`prompts: vbench:...`); the
    I2V dimensions need an I2V suite."""
    from pare_bench.metrics.vbench import CUSTOM_INPUT, I2V_DIMENSIONS, STANDARD_ONLY

    dimensions, mode = spec.get("dimensions"), spec.get("mode", "custom_input")
    known = (*CUSTOM_INPUT, *STANDARD_ONLY, *I2V_DIMENSIONS)
    if not isinstance(dimensions, list) or not dimensions or not all(isinstance(d, str) for d in dimensions):
        return [f"vbench needs `dimensions:`, a non-empty list of names from {list(known)}"]
    if mode not in ("custom_input", "standard"):
        return [f"vbench mode must be custom_input or standard, got {mode!r}"]
    problems = []
    prompts = data.get("prompts")
    if mode == "standard" and not (isinstance(prompts, str) and prompts.startswith(VBENCH_PREFIX)):
        problems.append("vbench `mode: standard` scores VBench's own prompt suite: set `prompts: vbench:standard`")
    for dimension in dimensions:
        if dimension in STANDARD_ONLY and mode != "standard":
            problems.append(
                f"VBench dimension {dimension!r} needs VBench's own prompt suite: add `mode: standard` and "
                f"`prompts: vbench:standard`; custom_input supports {list(CUSTOM_INPUT)}"
            )
        elif dimension in I2V_DIMENSIONS and data.get("task") != "i2v":
            problems.append(f"VBench dimension {dimension!r} scores image-to-video; this suite's task is not i2v")
        elif dimension not in known:
            problems.append(f"unknown VBench dimension {dimension!r}{_hint(dimension, known)}")
    return problems


def _model_problems(data: dict, base_dir: Path) -> list[tuple[Loc, str]]:
    model, task = data.get("model"), data.get("task")
    if not isinstance(model, str) or not model:
        return []
    from pare_bench.wan_zoo import WAN_MODELS

    zoo = {**_tiny_models(), **{name: spec.task for name, spec in WAN_MODELS.items()}}
    if model in zoo:
        if task in ("t2v", "i2v") and zoo[model] != task:
            return [(("task",), f"task {task!r} does not match model {model!r}, whose task is {zoo[model]!r}")]
        if model in WAN_MODELS:
            return _wan_problems(data)
        return []
    if (base_dir / model).is_dir():
        return []
    local = "or name a local model directory (relative to the suite file)"
    return [(("model",), f"unknown model {model!r}{_hint(model, zoo)}; {local}")]


def _wan_problems(data: dict) -> list[tuple[Loc, str]]:
    """A Wan suite runs baseline, cache and saved-artifact systems; it cannot train recipes or use world metrics."""
    problems = []
    for position, system in _items(data, "systems"):
        if system.get("recipe") is not None:
            message = (
                "a Wan model cannot train recipes inside a run: train PARE on real data (encode-latents, then the "
                "distillation loops) and name the saved transformer with `artifact:`"
            )
            problems.append((("systems", position, "recipe"), message))
    for position, metric in _items(data, "metrics"):
        if metric.get("metric") == "world":
            problems.append((("metrics", position, "metric"), "world metrics score the tiny world only"))
        if metric.get("metric") == "fid" and metric.get("reference") is None:
            message = "FID on a Wan model compares with a reference system's videos: add `reference:`"
            problems.append((("metrics", position), message))
    return problems


def _tiny_max_frames() -> int:
    """The most frames a tiny model takes: its rotary embedding has `rope_max_seq_len` positions per axis."""
    from pare_bench.zoo import TINY_MODELS

    return min(
        spec.transformer["rope_max_seq_len"] // spec.transformer["patch_size"][0] for spec in TINY_MODELS.values()
    )


def _frames_problems(data: dict, base_dir: Path) -> list[tuple[Loc, str]]:
    frames, model = data.get("frames"), data.get("model")
    if not isinstance(frames, int) or isinstance(frames, bool) or frames <= 0 or not isinstance(model, str):
        return []
    if model in _tiny_models():
        most = _tiny_max_frames()
        if frames > most:
            return [
                (
                    ("frames",),
                    f"{model} takes at most {most} frames (its rotary embedding covers {most} positions); got {frames}",
                )
            ]
        return []
    from pare_bench.wan_zoo import WAN_MODELS

    if (model in WAN_MODELS or (base_dir / model / "vae").is_dir()) and frames % 4 != 1:
        lower, upper = frames - (frames - 1) % 4, frames - (frames - 1) % 4 + 4
        return [
            (("frames",), f"Wan needs 4k+1 frames (its VAE compresses time 4x); got {frames}, use {lower} or {upper}")
        ]
    return []


def _prompt_problems(data: dict, base_dir: Path) -> list[tuple[Loc, str]]:
    prompts = data.get("prompts")
    if not isinstance(prompts, str) or not prompts:
        return []
    if prompts.startswith(VBENCH_PREFIX):
        from pare_bench.metrics.vbench_scoring import DIMENSIONS

        selection = prompts[len(VBENCH_PREFIX) :]
        if selection != "standard" and selection not in DIMENSIONS:
            choices = ["standard", *DIMENSIONS]
            return [(("prompts",), f"unknown VBench prompt selection {selection!r}{_hint(selection, choices)}")]
        return []
    if prompts.startswith(VBENCH_I2V_PREFIX):  # the folder itself is checked before a run, with the weights
        ratio = prompts[len(VBENCH_I2V_PREFIX) :]
        if ratio not in I2V_RATIOS:
            return [(("prompts",), f"unknown VBench I2V crop {ratio!r}; the image suite has {list(I2V_RATIOS)}")]
        if data.get("task") != "i2v":
            return [(("prompts",), "VBench's I2V image suite conditions image-to-video models: set `task: i2v`")]
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
        ("systems", "recipe"): Recipe,
        ("systems", "recipe", "width"): WidthRecipe,
        ("systems", "recipe", "depth"): DepthRecipe,
        ("systems", "recipe", "step_distill"): StepDistillRecipe,
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
        from pare_bench.world.prompts import split_prompts

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
