"""The suite schema: the pydantic models of a suite file and the checks that span their fields.

`pare_bench.suite` loads and validates suite files against these models; see its docstring for the format.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pare_bench.metrics.registry import did_you_mean
from pare_bench.yaml_source import Loc, format_loc

KNOWN_CACHE_METHODS = (
    "first_block",
    "pyramid_attention_broadcast",
    "taylorseer",
    "mag",
    "faster",
)  # systems.CACHE_METHODS

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


class StopRule(BaseModel):
    """Stop a training stage when its held-out validation loss plateaus (`pare_core.plateau.Plateau`): validate
    every `every` steps and stop after `patience` validations that do not beat the best by `min_delta`
    (relative). The stage's step count is then a cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every: int = Field(ge=1)
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.01, ge=0.0, lt=1.0)


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
    recovery_steps: int = Field(200, ge=0)  # stage-1 distillation steps (0: prune only; the cap with `stop`)
    stop: StopRule | None = None  # stop recovery when the held-out validation loss plateaus
    norm_correction: bool = True  # fold the calibrated q/k RMS shift into the kept norm weights
    seed: int = Field(0, ge=0)  # seeds the random score and the recovery data


class DepthRecipe(BaseModel):
    """PARE depth: a block router trained jointly with the (width-pruned) student against the teacher.

    `router: content` sees the timestep and the content tokens (PARE); `timestep` sees only the timestep
    (the route-timestep-only ablation, as Learning-to-Cache); `static` removes the same blocks at every step
    for every input: it keeps the set of blocks with the largest summed importance (skip-one-block error on
    calibration inputs) whose share of the block FLOPs lies in [`static_floor`, `budget`]. A floor puts it at
    the FLOPs a learned router measures: whole blocks come in coarse steps, and the most important set under
    the budget alone can fall a whole block short of it.

    A learned router is anchored to each training sample's own block importances (`pool` batches of 8 samples,
    `rank_weight`; see `pare_core.distill.train_joint`); `rank_weight: 0` is the unanchored router, which
    collapses to one static block set. Neither field applies to `static`, nor enters its artifact's hash.

    `content: motion` (the default) gives the content router the mean, spread and frame-to-frame change of the
    content tokens; `content: mean` is the mean token alone, which carries almost no layout or motion.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: float = Field(gt=0.0, le=1.0)  # share of the student's block FLOPs executed per forward
    router: Literal["content", "timestep", "static"] = "content"
    steps: int = Field(200, ge=0)  # stage-2 joint training steps (the cap with `stop`)
    # steps the gate-temperature anneal spans (unset: all of `steps`); after it the temperature holds
    anneal: int | None = Field(None, ge=1)
    # the held-out validation curve; it may stop the stage only after the anneal (pare_core.plateau: the loss is
    # not stationary before), so without `anneal` the joint stage runs to `steps`
    stop: StopRule | None = None
    hidden: int = Field(64, ge=1)  # router hidden width
    seed: int = Field(0, ge=0)  # seeds the router's init and the training data
    rank_weight: float = Field(1.0, ge=0.0)  # weight of the per-sample importance-ranking anchor
    pool: int = Field(32, ge=0)  # batches of 8 samples whose per-sample block importances anchor the router
    content: Literal["mean", "motion"] = "motion"  # what `router: content` reads (pare_core.router.pooled_content)
    static_floor: float | None = Field(None, ge=0.0, lt=1.0)  # `router: static`: least share of block FLOPs kept

    @model_validator(mode="after")
    def _fields_agree(self) -> DepthRecipe:
        if self.static_floor is not None and self.router != "static":
            raise ValueError("static_floor bounds the fixed block set of `router: static`; this router learns")
        if self.static_floor is not None and self.static_floor > self.budget:
            raise ValueError(f"static_floor {self.static_floor} is above the budget {self.budget}")
        if self.anneal is not None and self.anneal > self.steps:
            raise ValueError(f"anneal {self.anneal} is longer than the stage's {self.steps} steps")
        return self


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
    stop: StopRule | None = None  # stop when the loss on held-out teacher trajectories plateaus (train_steps: cap)
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
    # Cache systems: options swept together (equal-length lists, zipped), one system per position
    # (`fbcache-0.05`, `fbcache-0.1`, ...), drawn as one quality-vs-speedup curve.
    sweep: dict[str, list[Any]] | None = None
    sweep_of: str | None = None  # set by sweep expansion: the swept system this point belongs to
    artifact: str | None = None  # a saved PARE transformer directory (`build`'s output), relative to the suite file
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

    @field_validator("sweep")
    @classmethod
    def _sweep_lists(cls, sweep: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if sweep is None:
            return sweep
        lengths = {len(values) for values in sweep.values()}
        if not sweep or len(lengths) != 1 or lengths == {0}:
            raise PydanticCustomError(
                "sweep",
                "sweep needs one or more options, each a non-empty list of the same length, got {sweep}",
                {"sweep": sweep},
            )
        return sweep

    @model_validator(mode="after")
    def _seeds_need_recipe(self) -> SystemSpec:
        if self.seeds is not None and (self.recipe is None or self.recipe == Recipe()):
            raise ValueError("seeds replicate a trained recipe; this system has no recipe")
        if self.cache is not None and self.recipe is not None and self.recipe.depth is not None:
            raise ValueError("a cache and a depth router both skip blocks; give this system one of them")
        if self.artifact is not None and self.recipe is not None:
            raise ValueError("a system is a saved transformer (`artifact:`) or a recipe trained in the run, not both")
        if self.sweep is not None and self.cache is None:
            raise ValueError("sweep varies a cache method's options; this system has no cache")
        if self.sweep is not None and self.cache is not None:
            ((method, options),) = self.cache.items()
            clash = sorted(set(self.sweep) & set(options))
            if clash:
                raise ValueError(f"{clash} set both in cache.{method} and in sweep; give each option one place")
        return self

    def replicas(self) -> list[SystemSpec]:
        """`name` with `seeds: [0, 1]` -> systems `name-s0`, `name-s1`, each with its recipe's seed set; `name`
        with `sweep: {threshold: [0.05, 0.1]}` -> `name-0.05`, `name-0.1`, each with its cache option set."""
        if self.sweep is not None:
            ((method, options),) = self.cache.items()
            return [
                self.model_copy(
                    update={
                        "name": name,
                        "sweep": None,
                        "sweep_of": self.name,
                        "cache": {method: {**options, **{key: values[i] for key, values in self.sweep.items()}}},
                    }
                )
                for i, name in enumerate(sweep_names(self.name, self.sweep))
            ]
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


# --------------------------------------------------------------------------------------------- cross-field checks


def sweep_names(name: str, sweep: dict[str, list[Any]]) -> list[str]:
    """`name-<value>` for a sweep whose first option takes scalar values, `name-<position>` otherwise."""
    first = next(iter(sweep.values()))
    if all(isinstance(value, (int, float, str)) for value in first) and len(set(map(str, first))) == len(first):
        return [f"{name}-{value}" for value in first]
    return [f"{name}-{position}" for position in range(len(first))]


def _expanded_names(system: dict) -> list[str]:
    name, seeds, sweep = system.get("name"), system.get("seeds"), system.get("sweep")
    if isinstance(sweep, dict) and sweep and all(isinstance(v, list) and v for v in sweep.values()):
        return sweep_names(name, sweep)
    return [f"{name}-s{seed}" for seed in seeds] if isinstance(seeds, list) else [name]


def _hint(name: str, known) -> str:
    """The "; did you mean 'x'? (known: [...])" suffix of every unknown-name message, so all read alike."""
    return f"{did_you_mean(name, known)} (known: {sorted(known)})"


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
        for each in _expanded_names(system):
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
