"""The checks of a suite file beyond its schema: metrics and their options, the model, the frames and the
prompts, and the wording of pydantic's errors. Each returns (YAML path, message) pairs, so `load_suite` can
report every problem of a file at once."""

from __future__ import annotations

import typing
from pathlib import Path

from pydantic import BaseModel, ValidationError

from pare_bench import vbench_i2v
from pare_bench.metrics.registry import METRICS
from pare_bench.suite_schema import (
    Suite,
    _hint,
    _items,
)
from pare_bench.yaml_source import Loc

WORLD_PREFIX = "world:"
VBENCH_PREFIX = "vbench:"  # VBench's own prompt suite, read from the VBench environment
VBENCH_I2V_PREFIX, I2V_RATIOS = vbench_i2v.PREFIX, vbench_i2v.RATIOS  # VBench's I2V image suite, one crop ratio


def _known_metrics() -> set[str]:
    """Importing the package registers its metrics (each metric module decorates itself)."""
    import pare_bench.metrics  # noqa: F401

    return set(METRICS)


def _tiny_models() -> dict[str, str]:
    """Zoo name -> task. Imported lazily: the zoo pulls in torch and diffusers."""
    from pare_bench.tiny.zoo import TINY_MODELS

    return {name: spec.task for name, spec in TINY_MODELS.items()}


def _world_splits() -> set[str]:
    from pare_bench.tiny.world.prompts import SPLITS

    return set(SPLITS)


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
    from pare_bench.wan.zoo import WAN_MODELS

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
                "a Wan model cannot train recipes inside a run: build PARE on real data (encode-latents, then "
                "build; docs/BUILD.md) and name the saved transformer with `artifact:`"
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
    from pare_bench.tiny.zoo import TINY_MODELS

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
    from pare_bench.wan.zoo import WAN_MODELS

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


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model at YAML path `loc` under `root` (list indices skipped), by its fields' annotations."""
    model = root
    for part in (p for p in loc if isinstance(p, str)):
        field = model.model_fields.get(part)
        if field is None:
            return None
        candidates = [field.annotation, *typing.get_args(field.annotation)]
        candidates += [inner for c in candidates for inner in typing.get_args(c)]  # list[Model] | None
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def _allowed_keys(loc: Loc, root: type[BaseModel] = Suite) -> list[str]:
    """Keys the model at `loc` accepts, for "did you mean" on an unknown key."""
    model = _model_at(root, loc)
    keys = list(model.model_fields) if model else []
    return keys + ["include"] if model is root else keys


def _pydantic_problems(error: ValidationError, root: type[BaseModel] = Suite) -> list[tuple[Loc, str]]:
    """Pydantic errors as (YAML path, message), in this module's wording."""
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(part for part in item["loc"] if part != "[key]")
        kind, context = item["type"], item.get("ctx") or {}
        if kind == "missing":
            message = "required key is missing"
        elif kind == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}{_hint(str(loc[-1]), _allowed_keys(loc[:-1], root))}"
        elif kind == "unknown_key":
            loc, message = (*loc, context["key"]), item["msg"]
        else:
            value = item.get("input")
            got = f" (got {value!r})" if isinstance(value, (str, int, float, bool, type(None))) else ""
            message = f"{item['msg']}{got}"
        problems.append((loc, message))
    return problems
