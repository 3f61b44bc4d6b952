"""Systems under comparison: the teacher as is, a PARE student (width-pruned, routed or both), or the
teacher with one of diffusers' training-free cache hooks.

A system owns its own copy of the model, so hooks attached for one system never leak into another
and the teacher that the baseline runs stays untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import FirstBlockCacheConfig, PyramidAttentionBroadcastConfig, TaylorSeerCacheConfig

from pare_bench.sample import SamplingConfig, sample
from pare_bench.suite import Suite, SystemSpec
from pare_bench.zoo import TinyWan
from pare_core.router import attached_router, router_state


def _first_block(model: TinyWan, options: dict) -> FirstBlockCacheConfig:
    return FirstBlockCacheConfig(**options)


def _pyramid_attention_broadcast(model: TinyWan, options: dict) -> PyramidAttentionBroadcastConfig:
    # Wan's self-attention is joint spatio-temporal, so PAB's "spatial" range is the one that applies.
    options = {"spatial_attention_block_skip_range": 2, **options}
    for key in [k for k in options if k.endswith("timestep_skip_range")]:
        options[key] = tuple(options[key])
    return PyramidAttentionBroadcastConfig(current_timestep_callback=lambda: model.current_timestep, **options)


# diffusers' default TaylorSeer patterns ("^blocks.*attn", fullmatch) match no Wan module ("blocks.0.attn1"),
# so on Wan the default config is a silent no-op; name Wan's attention and FFN modules explicitly.
_WAN_TAYLORSEER_MODULES = [r"^blocks\.\d+\.(attn1|attn2|ffn)$"]


def _taylorseer(model: TinyWan, options: dict) -> TaylorSeerCacheConfig:
    # fp32 factors: the default bf16 is a GPU memory saving that only adds error on CPU.
    defaults = {"taylor_factors_dtype": torch.float32, "cache_identifiers": _WAN_TAYLORSEER_MODULES}
    return TaylorSeerCacheConfig(**{**defaults, **options})


CACHE_METHODS = {
    "first_block": _first_block,
    "pyramid_attention_broadcast": _pyramid_attention_broadcast,
    "taylorseer": _taylorseer,
}


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
