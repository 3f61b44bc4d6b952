"""Systems under comparison: the teacher as is, a PARE student (width-pruned, routed or both), or the
teacher with one of diffusers' training-free cache hooks.

A system owns its own copy of the model, so hooks attached for one system never leak into another
and the teacher that the baseline runs stays untouched.
"""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    FasterCacheConfig,
    FirstBlockCacheConfig,
    MagCacheConfig,
    PyramidAttentionBroadcastConfig,
    TaylorSeerCacheConfig,
)

from pare_bench.suite import Suite, SystemSpec
from pare_bench.tiny.sample import SamplingConfig, sample
from pare_bench.tiny.zoo import TinyWan
from pare_core.router import attached_router, router_state


@dataclass(frozen=True)
class CacheTarget:
    """What a cache config needs from the system it is built for."""

    current_timestep: Callable[[], int]  # the denoising loop's timestep (PAB and FasterCache read it)
    steps: int  # denoising steps per video at the suite's sampling
    calibrate: Callable[[int], None]  # generate that many calibration videos with the system as it is now


def _first_block(target: CacheTarget, options: dict) -> FirstBlockCacheConfig:
    return FirstBlockCacheConfig(**options)


def _pyramid_attention_broadcast(target: CacheTarget, options: dict) -> PyramidAttentionBroadcastConfig:
    # Wan's self-attention is joint spatio-temporal, so PAB's "spatial" range is the one that applies.
    options = {"spatial_attention_block_skip_range": 2, **options}
    for key in [k for k in options if k.endswith("timestep_skip_range")]:
        options[key] = tuple(options[key])
    return PyramidAttentionBroadcastConfig(current_timestep_callback=target.current_timestep, **options)


# diffusers' default TaylorSeer patterns ("^blocks.*attn", fullmatch) match no Wan module ("blocks.0.attn1"),
# so on Wan the default config is a silent no-op; name Wan's attention and FFN modules explicitly.
_WAN_TAYLORSEER_MODULES = [r"^blocks\.\d+\.(attn1|attn2|ffn)$"]


def _taylorseer(target: CacheTarget, options: dict) -> TaylorSeerCacheConfig:
    # fp32 factors: the default bf16 is a GPU memory saving that only adds error on CPU.
    defaults = {"taylor_factors_dtype": torch.float32, "cache_identifiers": _WAN_TAYLORSEER_MODULES}
    return TaylorSeerCacheConfig(**{**defaults, **options})


# The kwargs FasterCache splits into unconditional and conditional halves: its defaults plus Wan I2V's image tokens.
_FASTER_CFG_KWARGS = ("hidden_states", "encoder_hidden_states", "encoder_hidden_states_image", "timestep")


def _faster(target: CacheTarget, options: dict) -> FasterCacheConfig:
    """FasterCache: attention outputs extrapolated from the last two computed ones, and the unconditional branch
    approximated from the conditional one in frequency space. Its hooks split one forward's batch into the two
    CFG halves, so the system samples with batched CFG (`BATCHED_CFG`)."""
    options = {"tensor_format": "BCFHW", **options}
    for key in [k for k in options if k.endswith("_range") and isinstance(options[k], list)]:
        options[key] = tuple(options[key])
    return FasterCacheConfig(
        current_timestep_callback=target.current_timestep,
        _unconditional_conditional_input_kwargs_identifiers=list(_FASTER_CFG_KWARGS),
        **options,
    )


def _mag(target: CacheTarget, options: dict) -> MagCacheConfig:
    """MagCache at the suite's step count; `enable_cache` fills in `mag_ratios` by its calibration pass."""
    options = {k: v for k, v in options.items() if k != "calibration_videos"}
    return MagCacheConfig(num_inference_steps=target.steps, **options)


def magcache_calibration(target: CacheTarget, videos: int) -> list[float]:
    """MagCache's ratios from diffusers' calibration mode. That mode reports its ratios only by printing them at
    the end of each denoising loop (the documented way is to copy them from the output), so the print is read
    back here; one list per branch (cond, uncond) per call, averaged step by step."""
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        target.calibrate(videos)
    printed = re.findall(r"^\[(.*)\]$", buffer.getvalue(), flags=re.MULTILINE)
    runs = [ast.literal_eval(f"[{line}]") for line in printed]
    if not runs or any(len(run) != target.steps for run in runs):
        raise RuntimeError(f"MagCache calibration printed no ratios of {target.steps} steps: {buffer.getvalue()!r}")
    return [float(sum(values) / len(values)) for values in zip(*runs)]


CACHE_METHODS = {
    "first_block": _first_block,
    "pyramid_attention_broadcast": _pyramid_attention_broadcast,
    "taylorseer": _taylorseer,
    "mag": _mag,
    "faster": _faster,
}
BATCHED_CFG = frozenset({"faster"})  # methods whose hooks need both CFG branches in one forward's batch


def enable_cache(transformer, method: str, options: dict, target: CacheTarget) -> None:
    """Attach `method`'s hooks to `transformer`. MagCache without `mag_ratios` first runs its calibration pass:
    diffusers' calibration mode over `calibration_videos` (default 2) videos of training-split prompts."""
    options = dict(options)
    if method == "mag" and "mag_ratios" not in options:
        transformer.enable_cache(MagCacheConfig(calibrate=True, num_inference_steps=target.steps))
        try:
            options["mag_ratios"] = magcache_calibration(target, options.get("calibration_videos", 2))
        finally:
            transformer.disable_cache()
    transformer.enable_cache(CACHE_METHODS[method](target, options))


@dataclass
class System:
    name: str
    model: TinyWan
    sampling: SamplingConfig
    routing: list[torch.Tensor] | None = None  # routed systems: (videos, blocks) decisions per forward of the last call
    fps: int = 8  # the mp4 files' frame rate
    lossless_video: bool = True  # tiny world: mp4 files decode to exactly the frames (store.encode_mp4)

    def generate(self, prompts: list[str], seeds: list[int], first_frames: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, F, H, W) in [0, 1], one video per (prompt, seed); a routed system keeps its decisions."""
        if not self.routed:
            return self._sample(prompts, seeds, first_frames)
        history = router_state(self.model.transformer).history
        history.clear()
        try:
            return self._sample(prompts, seeds, first_frames)
        finally:
            self.routing = list(history)
            history.clear()

    def _sample(self, prompts: list[str], seeds: list[int], first_frames: torch.Tensor | None) -> torch.Tensor:
        return sample(self.model, prompts, seeds, self.sampling, first_frames)

    @property
    def routed(self) -> bool:
        return attached_router(self.model.transformer) is not None

    @property
    def dense(self) -> bool:
        """True when every forward runs the whole model, so analytic FLOPs apply exactly."""
        return not self.model.transformer.is_cache_enabled and not self.routed

    def step_routing(self) -> list[str]:
        """The last single-video call's decisions, one '1'/'0' string over the blocks per denoising step.

        With CFG each step runs two forwards; the router sees only the latents and the timestep, which the
        two share, so both make the same decisions (checked) and one string stands for the step."""
        per_step = 2 if self.sampling.guidance != 1.0 else 1
        steps = [self.routing[i : i + per_step] for i in range(0, len(self.routing), per_step)]
        for pair in steps:
            if not all(torch.equal(pair[0], other) for other in pair[1:]):
                raise RuntimeError(f"{self.name}: the two CFG branches routed differently")
        return ["".join(str(int(g)) for g in pair[0][0].tolist()) for pair in steps]


def artifact_problems(suite: Suite, suite_path: Path) -> list[str]:
    """Each `artifact:` system whose saved transformer is missing, named with the path looked at."""
    problems = []
    for system in suite.systems:
        if system.artifact is not None:
            path = Path(suite_path).parent / system.artifact / "transformer" / "diffusion_pytorch_model.safetensors"
            if not path.is_file():
                problems.append(f"system {system.name}: no PARE transformer at {path} (make it with `build` first)")
    return problems


def build_system(spec: SystemSpec, suite: Suite, backend, artifacts: Path | None = None, retrain: bool = False):
    """The suite system `spec` on `backend` (`pare_bench.backend.Backend`), at the suite's sampling for it."""
    sampling = SamplingConfig(**suite.sampling_for(spec).model_dump(), frames=suite.frames)
    return backend.build_system(spec, sampling, artifacts, retrain)
