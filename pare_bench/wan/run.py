"""Suites on the real Wan2.1 models: the pipeline from local files, and systems that sample through it.

`load_wan_run(suite, suite_path)` checks for the weights (a local diffusers directory, `weights:` in the suite, or
the local Hugging Face cache) before anything is written and loads the pipeline: bf16 on CUDA, fp32 on a CPU. An
I2V suite conditions each video on its prompt's image from VBench's I2V image suite (`prompts:
vbench-i2v:<ratio>`, `pare_bench.vbench_i2v`), resized to the suite's size. A Wan system is the baseline (the
pipeline as loaded), a saved PARE transformer (`artifact:`, pruned and/or routed, swapped into the pipeline) or a
diffusers cache hook on a copy of the transformer. Each video goes through the pipeline's own call: its prompt
encoding, CFG, UniPC scheduler (at the suite's flow shift) and VAE.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import torch
from diffusers import UniPCMultistepScheduler
from torchvision.transforms.functional import to_pil_image

from pare_bench.artifacts import load_pare_transformer
from pare_bench.store import RunStore
from pare_bench.suite import MetricSpec, Suite, SystemSpec
from pare_bench.systems import BATCHED_CFG, CacheTarget, System, enable_cache
from pare_bench.tiny.sample import SamplingConfig
from pare_bench.wan.pipeline import with_transformer
from pare_bench.wan.zoo import WAN_FPS, WanModel, latent_grid, wan_model


@dataclass
class WanRun:
    """What a Wan suite runs on: the model's spec, the loaded pipeline and the video size."""

    name: str
    spec: WanModel
    pipe: object
    height: int
    width: int
    frames: int
    suite_dir: Path
    images: dict[str, Path] | None = None  # I2V: prompt -> conditioning image

    @property
    def transformer(self) -> torch.nn.Module:
        return self.pipe.transformer

    def build_system(
        self, spec: SystemSpec, sampling: SamplingConfig, artifacts: Path | None = None, retrain: bool = False
    ) -> WanSystem:
        """The suite system `spec` on this run's pipeline; a Wan suite names its trained systems by `artifact:`
        (nothing is trained here), so `artifacts` and `retrain` do not apply."""
        return build_wan_system(spec, self, sampling)

    def first_frames(self, prompts: list[str], seeds: list[int] | None = None) -> torch.Tensor | None:
        """I2V: (B, 3, H, W) in [0, 1], each prompt's image from the image suite at the run's size (the same for
        every seed); None for T2V."""
        from pare_bench.vbench_i2v import load_image

        if self.spec.task != "i2v":
            return None
        return torch.stack([load_image(self.images[p], self.height, self.width) for p in prompts])

    @cached_property
    def _fid_network(self):
        from pare_bench.metrics.fid import InceptionFeatures

        return InceptionFeatures()

    def distribution(self, spec: MetricSpec, system: str, videos: list[dict], store: RunStore) -> float | None:
        """FID on Inception features against the reference system's videos of the same prompts and seeds (real
        video has no renderer to give references); None for the reference itself."""
        from pare_bench.metrics.fid import inception_fid

        if system == spec.reference:
            return None
        generated = [store.load_frames(system, v["name"]) for v in videos]
        references = [store.load_frames(spec.reference, v["name"]) for v in videos]
        return inception_fid(self._fid_network, generated, references)

    def flops_cross_check(self, store: RunStore, system: System) -> None:
        """Nothing per run: `python -m pare_bench flops` cross-checks the formula at real scale on the meta device."""

    def record_recipes(self, store: RunStore, suite: Suite) -> None:
        """Nothing: a Wan suite's systems are saved artifacts, built before the run (their stages: `stage.json`)."""


def wan_problems(suite: Suite, suite_path: Path) -> list[str]:
    """Every file a Wan suite needs and lacks: the model's weights and each system's saved transformer."""
    from pare_bench import vbench_i2v
    from pare_bench.wan.zoo import locate_weights

    problems = []
    if wan_model(suite.model).task == "i2v":
        located = vbench_i2v.locate(suite, suite_path)
        if located is None:
            problems.append(f"{suite.model} needs an image per prompt: use `prompts: vbench-i2v:<crop ratio>`")
        else:
            problems += vbench_i2v.problems(*located)
    for system in suite.systems:
        method = next(iter(system.cache or {}), None)
        if method in BATCHED_CFG:
            problems.append(
                f"system {system.name}: cache {method!r} splits one forward's batch into the two CFG branches, and "
                "WanPipeline runs them as two forwards; it runs on the tiny models only"
            )
    weights = None if suite.weights is None else Path(suite_path).parent / suite.weights
    try:
        locate_weights(suite.model, weights)
    except FileNotFoundError as error:
        problems.append(str(error))
    return problems


def load_wan_run(suite: Suite, suite_path: Path) -> WanRun:
    """The pipeline from local files: bf16 on CUDA, fp32 on a CPU. Call `wan_problems` first."""
    from pare_bench.wan.zoo import load_wan

    spec = wan_model(suite.model)
    height, width, frames = suite.height or spec.height, suite.width or spec.width, suite.frames or spec.frames
    latent_grid(frames, height, width)
    weights = None if suite.weights is None else Path(suite_path).parent / suite.weights
    cuda = torch.cuda.is_available()
    pipe = load_wan(suite.model, weights, dtype=torch.bfloat16 if cuda else torch.float32)
    pipe.to("cuda" if cuda else "cpu")
    pipe.set_progress_bar_config(disable=True)
    images = None
    if spec.task == "i2v":
        from pare_bench import vbench_i2v

        images = vbench_i2v.images(*vbench_i2v.locate(suite, suite_path))
    return WanRun(suite.model, spec, pipe, height, width, frames, Path(suite_path).parent, images)


@dataclass
class _WanModelView:
    """What the runner reads from `system.model`: the transformer and the task."""

    transformer: torch.nn.Module
    spec: WanModel


@dataclass
class WanSystem(System):
    run: WanRun | None = None
    pipe: object | None = None

    def _sample(self, prompts, seeds, first_frames) -> torch.Tensor:
        i2v = self.run.spec.task == "i2v"
        if i2v and first_frames is None:
            raise ValueError(f"{self.run.name} is an image-to-video model: pass first_frames")
        self.pipe.scheduler = UniPCMultistepScheduler.from_config(
            self.pipe.scheduler.config, flow_shift=self.sampling.shift
        )
        videos = []
        for index, (prompt, seed) in enumerate(zip(prompts, seeds)):
            image = {"image": to_pil_image(first_frames[index])} if i2v else {}
            output = self.pipe(
                **image,
                prompt=prompt,
                height=self.run.height,
                width=self.run.width,
                num_frames=self.sampling.frames or self.run.frames,
                num_inference_steps=self.sampling.steps,
                guidance_scale=self.sampling.guidance,
                generator=torch.Generator().manual_seed(seed),
                output_type="pt",
            )
            videos.append(output.frames[0].permute(1, 0, 2, 3).float().cpu())  # (F, 3, H, W) -> (3, F, H, W)
        return torch.stack(videos)


def build_wan_system(spec: SystemSpec, run: WanRun, sampling: SamplingConfig) -> WanSystem:
    sampling = replace(sampling, frames=sampling.frames or run.frames)
    pipe = run.pipe
    if spec.artifact is not None:
        transformer = load_pare_transformer(run.suite_dir / spec.artifact).to(
            run.transformer.device, run.transformer.dtype
        )
        pipe = with_transformer(run.pipe, transformer)
    if spec.cache is not None:
        pipe = with_transformer(pipe, copy.deepcopy(pipe.transformer))  # the hook must not leak into other systems
    pipe.set_progress_bar_config(disable=True)
    view = _WanModelView(pipe.transformer, run.spec)
    system = WanSystem(spec.name, view, sampling, fps=WAN_FPS, lossless_video=False, run=run, pipe=pipe)
    if spec.cache is not None:
        ((method, options),) = spec.cache.items()
        target = CacheTarget(lambda: pipe.current_timestep, sampling.steps, lambda videos: _calibrate(system, videos))
        enable_cache(pipe.transformer, method, options, target)
    return system


# MagCache's calibration videos on Wan: prompts of no benchmark suite, at seeds no suite uses.
CALIBRATION_PROMPTS = (
    "A cat walks slowly across a sunlit wooden floor, its tail swaying.",
    "Waves roll onto a rocky shore at dusk while seagulls circle overhead.",
)
CALIBRATION_SEED = 40_000


def _calibrate(system: WanSystem, videos: int) -> None:
    prompts = [CALIBRATION_PROMPTS[i % len(CALIBRATION_PROMPTS)] for i in range(videos)]
    first = None
    if system.run.spec.task == "i2v":  # the suite's first image for every calibration video
        image = next(iter(system.run.images))
        first = system.run.first_frames([image] * videos)
    system.generate(prompts, [CALIBRATION_SEED + i for i in range(videos)], first)
