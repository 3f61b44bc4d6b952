"""`python -m pare_bench build RECIPE --model DIR --cache CACHE --out OUT`: a Wan2.1 transformer to PARE.

The stages of a build recipe (`pare_bench.wan.build_recipe`), each in its own folder under OUT:

1. `profile/heads.json`: temporal role (sampled query rows) and importance (output error with the head zeroed)
   of every self-attention head, on `profile.inputs` cached videos at each noise level of `profile.timesteps`;
2. `width/`: the head plan (`plan.json`) and the pruned transformer (q/k norms corrected as the recipe says);
3. `recovery/`: the pruned student distilled from the teacher on the cached latents and text embeddings;
4. `pare/` (when the recipe has `joint:`): student and block router trained together, saved as a suite's
   `artifact:` loads them (`transformer/`, `router/`, `recipe.json`);
5. `pare-sd/` (when the recipe has `step_distill:`): a few-step student of the system stage 4 (or 3) made,
   guidance folded in, trained on that system's own guided trajectories from the cached captions and the
   empty prompt; the router is stage 4's, unchanged. A suite samples it with Euler at `steps` steps, guidance 1.

Each finished stage writes `stage.json` (the digest of the recipe up to that stage, its wall time and process
count); a rerun skips a finished stage with the same digest and refuses one built from another recipe. The
training stages checkpoint every `checkpoint_every` steps and resume from there, on any number of processes:
the checkpoint holds the whole student and optimizer state, and each step's global batch is drawn from the
step number alone and split across the processes, so the data do not depend on the process count.

Under `accelerate launch` (DDP; FSDP with `configs/accelerate_fsdp_wan14b.yaml`) the head-importance profile
splits its heads across the processes; training stages run data-parallel; rank 0 alone writes files. The
latent cache comes from `python -m pare_bench encode-latents`.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, gather_object
from diffusers import WanTransformer3DModel

from pare_bench.artifacts import load_pare_transformer, load_transformer, save_depth_artifact, training_stage
from pare_bench.checkpoint import atomic_write_bytes, load_state, save_state
from pare_bench.progress import progress
from pare_bench.wan.build_recipe import BuildRecipe
from pare_bench.wan.latent_cache import cached_items, conditioned, latent_batches, negative_text
from pare_core.distill import JointConfig, RecoveryConfig, recover, to_device, train_joint
from pare_core.heads import (
    HeadProfile,
    all_heads,
    head_errors,
    head_magnitude,
    measure_norm_shift,
    plan_cross_heads,
    plan_heads,
    profile_roles,
    temporal_score,
)
from pare_core.importance import importance_pool
from pare_core.prune import prune_heads
from pare_core.router import BlockRouter
from pare_core.step_distill import StepDistillConfig, distill_steps, guided_velocity, student_sigmas, teacher_trajectory

# stage -> OUT/<folder>
FOLDERS = {"profile": "profile", "width": "width", "recovery": "recovery", "joint": "pare", "step_distill": "pare-sd"}


class BuildError(RuntimeError):
    pass


def load_teacher(model: Path) -> WanTransformer3DModel:
    """The transformer of a local diffusers Wan2.1 folder, frozen; names the missing file."""
    folder = Path(model) / "transformer"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no Wan transformer in {model}: {folder / 'config.json'} is missing")
    if not any(folder.glob("*.safetensors")):
        raise FileNotFoundError(f"no Wan transformer weights in {folder}: no *.safetensors file there")
    return WanTransformer3DModel.from_pretrained(folder).eval().requires_grad_(False)


def calibration_inputs(cache: Path, stage, device: torch.device | str = "cpu") -> list[dict]:
    """One forward's kwargs per (cached video, noise level): batch 1, so 75,600-token videos fit."""
    items = cached_items(cache, stage.inputs)
    generator = torch.Generator().manual_seed(stage.seed)
    inputs = []
    for item in items:
        x0 = item["latents"][None]
        for t in stage.timesteps:
            noise = torch.randn(x0.shape, generator=generator)
            kwargs = {
                "hidden_states": (1 - t) * x0 + t * noise,
                "timestep": torch.tensor([1000.0 * t]),
                "encoder_hidden_states": item["text"][None],
            }
            inputs.append(to_device(conditioned(kwargs, [item]), device))
    return inputs


def my_rows(accelerator: Accelerator, batch: int) -> slice:
    """This process's rows of a global batch (rank, rank + n, ...): with equal shares, DDP's mean of the
    per-process mean losses is the global batch's mean loss."""
    n, rank = accelerator.num_processes, accelerator.process_index
    if batch % n:
        raise BuildError(f"the global batch {batch} does not split over {n} processes; use a multiple of {n}")
    return slice(rank, None, n)


def split_batches(batch_at: Callable[[int], dict], accelerator: Accelerator, batch: int) -> Callable[[int], dict]:
    """Each process's share (`my_rows`) of the step's global batch."""
    rows = my_rows(accelerator, batch)
    return lambda step: {k: v[rows] for k, v in batch_at(step).items()}


class Build:
    """One build: the recipe, the teacher, the cache, the output folder and the process group."""

    def __init__(self, recipe: BuildRecipe, model: Path, cache: Path, out: Path, accelerator: Accelerator):
        self.recipe, self.cache, self.out, self.accelerator = recipe, Path(cache), Path(out), accelerator
        self.teacher = load_teacher(model).to(accelerator.device)
        task = "i2v" if self.teacher.config.image_dim else "t2v"
        if task != recipe.task:
            raise BuildError(f"the recipe is for {recipe.model}, but {model} holds a {task.upper()} transformer")
        self.seconds: dict[str, float] = {}

    # ------------------------------------------------------------------ bookkeeping

    def finished(self, stage: str) -> bool:
        record = self.out / FOLDERS[stage] / "stage.json"
        if not record.is_file():
            return False
        built = json.loads(record.read_text())
        if built["hash"] != self.recipe.stage_hash(stage):
            raise BuildError(
                f"{self.out / FOLDERS[stage]} was built from another recipe (stage digest {built['hash']}, this recipe "
                f"{self.recipe.stage_hash(stage)}): use a new --out, or delete that folder to rebuild it"
            )
        self.seconds[stage] = built["seconds"]
        return True

    def finish(self, stage: str, started: float) -> None:
        seconds = round(time.perf_counter() - started, 2)
        self.seconds[stage] = seconds
        if self.accelerator.is_main_process:
            record = {"hash": self.recipe.stage_hash(stage), "seconds": seconds, "processes": self.num_processes}
            atomic_write_bytes(self.out / FOLDERS[stage] / "stage.json", json.dumps(record).encode())
        self.accelerator.wait_for_everyone()

    @property
    def num_processes(self) -> int:
        return self.accelerator.num_processes

    def run(self) -> dict[str, float]:
        """Every stage of the recipe, skipping finished ones; returns each stage's wall time (seconds)."""
        for stage in FOLDERS:
            if getattr(self.recipe, stage) is None:  # optional stages: joint, step_distill
                continue
            if not self.finished(stage):
                started = time.perf_counter()
                getattr(self, f"_{stage}")()
                self.finish(stage, started)
        return self.seconds

    # ------------------------------------------------------------------ stages

    def _profile(self) -> None:
        stage = self.recipe.profile
        inputs = [to_device(x, self.accelerator.device) for x in calibration_inputs(self.cache, stage)]
        mass, frames = profile_roles(self.teacher, inputs, stage.query_samples, seed=stage.seed)
        heads = all_heads(self.teacher)
        mine = heads[self.accelerator.process_index :: self.num_processes]
        with progress() as bar:
            task = bar.add_task(f"head importance (rank {self.accelerator.process_index})", total=len(mine))
            errors = head_errors(self.teacher, inputs, mine, lambda: bar.advance(task))
        scored = dict(gather_object(list(zip(mine, errors))))  # every process's (head, error) pairs
        importance = [[scored[(b, h)] for h in range(block.attn1.heads)] for b, block in enumerate(self.teacher.blocks)]
        temporal = temporal_score(torch.tensor(mass), frames).tolist()
        profile = HeadProfile(temporal, mass, importance, head_magnitude(self.teacher), frames)
        if self.accelerator.is_main_process:
            (self.out / "profile").mkdir(parents=True, exist_ok=True)
            profile.save(self.out / "profile" / "heads.json")

    def _width(self) -> None:
        width = self.recipe.width
        profile = HeadProfile.load(self.out / "profile" / "heads.json")
        plan = plan_heads(profile, width.score, width.ratio, width.temporal_weight, width.seed, width.temporal_quota)
        if width.cross_ratio > 0:
            plan = replace(plan, cross_keep=plan_cross_heads(self.teacher, width.cross_ratio))
        scales = cross_scales = None
        if width.norm_correction:
            inputs = calibration_inputs(self.cache, self.recipe.profile, self.accelerator.device)
            scales = measure_norm_shift(self.teacher, plan, inputs)
            if plan.cross_keep is not None:
                cross_scales = measure_norm_shift(self.teacher, plan, inputs, attention="attn2")
        student = prune_heads(self.teacher, plan, norm_scales=scales, cross_norm_scales=cross_scales)
        if self.accelerator.is_main_process:
            student.save_pretrained(self.out / "width" / "transformer")
            plan_record = {"keep": plan.keep, "cross_keep": plan.cross_keep, "heads_per_block": plan.heads_per_block}
            atomic_write_bytes(self.out / "width" / "plan.json", json.dumps(plan_record).encode())

    def _recovery(self) -> None:
        stage = self.recipe.recovery
        student = load_transformer(self.out / "width")
        config = RecoveryConfig(
            steps=stage.steps, lr=stage.lr, warmup=stage.warmup, feature_weight=stage.feature_weight,
            checkpoint_every=stage.checkpoint_every, per_sample_features=True,
        )  # fmt: skip
        batches = split_batches(latent_batches(self.cache, stage.batch, stage.seed), self.accelerator, stage.batch)
        directory = self.out / "recovery"
        with training_stage(directory, "recovery", config.steps, self.accelerator.is_main_process) as stage_io:
            state, on_step, on_checkpoint = stage_io
            student = recover(student, self.teacher, batches, config, state, on_checkpoint, on_step, self.accelerator)
        if self.accelerator.is_main_process:
            student.save_pretrained(directory / "transformer")

    def _joint(self) -> None:
        stage = self.recipe.joint
        student = load_transformer(self.out / "recovery")
        dim, blocks = student.config.num_attention_heads * student.config.attention_head_dim, len(student.blocks)
        torch.manual_seed(stage.seed)
        router = BlockRouter(
            dim, blocks, stage.hidden, use_timestep=True, use_content=stage.router == "content",
            content=stage.content, budget=stage.budget,
        )  # fmt: skip
        directory = self.out / "pare"
        pool = self._pool(student, directory)
        config = JointConfig(
            steps=stage.steps, budget=stage.budget, student_lr=stage.student_lr, router_lr=stage.router_lr,
            warmup=stage.warmup, checkpoint_every=stage.checkpoint_every, rank_weight=1.0 if pool else 0.0,
            rank_warmup=stage.rank_warmup, noise_seed=stage.seed,
        )  # fmt: skip
        data = latent_batches(self.cache, stage.batch, 10_000 + stage.seed)  # other draws than stage 3's
        batches = split_batches(data, self.accelerator, stage.batch)
        with training_stage(directory, "joint", config.steps, self.accelerator.is_main_process) as stage_io:
            state, on_step, on_checkpoint = stage_io
            student, router = train_joint(
                student, router, self.teacher, batches, None, config, state, on_checkpoint, on_step,
                self.accelerator, pool=pool,
            )  # fmt: skip
        if self.accelerator.is_main_process:
            record = {"recipe": self.recipe.model_dump(mode="json"), "depth": {"budget": stage.budget}}
            save_depth_artifact(directory, student, router, record)

    def _step_distill(self) -> None:
        stage = self.recipe.step_distill
        base = self.out / ("pare" if self.recipe.joint is not None else "recovery")
        student = load_pare_transformer(base).to(self.accelerator.device)  # routed at its budget when it has a router
        if (base / "router").is_dir():  # hard routing leaves a process's skipped blocks without gradients: tell DDP
            self.accelerator.ddp_handler = DistributedDataParallelKwargs(find_unused_parameters=True)
        directory = self.out / "pare-sd"
        folder = self._trajectories(student, directory)  # of the system as it is, before training changes it
        sigmas = student_sigmas(stage.steps, stage.shift)
        mine = my_rows(self.accelerator, stage.batch)

        def pairs(step: int) -> tuple[dict, torch.Tensor]:
            """This process's rows of the step's global batch of (trajectory, segment) pairs, read from disk:
            4,000 trajectories of a 480p video are ~170 GB, more than a host holds."""
            generator = torch.Generator().manual_seed(stage.seed * 1_000_003 + step)
            n = torch.randint(stage.trajectories, (stage.batch,), generator=generator)[mine]
            k = torch.randint(stage.steps, (stage.batch,), generator=generator)[mine]
            rows = [load_state(folder / f"{int(i):06d}.pt") for i in n]
            start = torch.stack([row["states"][j] for row, j in zip(rows, k.tolist())])
            end = torch.stack([row["states"][j + 1] for row, j in zip(rows, k.tolist())])
            width = (sigmas[k + 1] - sigmas[k]).view(-1, *([1] * (start.dim() - 1)))
            targets = (end - start) / width  # crosses the segment in one Euler step (step_distill.segment_targets)
            inputs = {
                "hidden_states": start,
                "timestep": 1000 * sigmas[k],
                "encoder_hidden_states": torch.stack([row["text"] for row in rows]),
            }
            return conditioned(inputs, rows), targets

        config = StepDistillConfig(
            steps=stage.steps, shift=stage.shift, substeps=stage.substeps, guidance=stage.guidance,
            train_steps=stage.train_steps, batch=stage.batch, lr=stage.lr, warmup=stage.warmup,
            checkpoint_every=stage.checkpoint_every,
        )  # fmt: skip
        with training_stage(directory, "step_distill", config.train_steps, self.accelerator.is_main_process) as io_:
            state, on_step, on_checkpoint = io_
            student = distill_steps(student, pairs, config, state, on_checkpoint, on_step, self.accelerator)
        if self.accelerator.is_main_process:
            student.save_pretrained(directory / "transformer")
            if (base / "router").is_dir():  # the same router, unchanged: the student learnt around its decisions
                shutil.copytree(base / "router", directory / "router", dirs_exist_ok=True)
            record = {"recipe": self.recipe.model_dump(mode="json"), "step_distill": stage.model_dump(mode="json")}
            atomic_write_bytes(directory / "recipe.json", json.dumps(record, indent=2).encode())

    @torch.no_grad()
    def _trajectories(self, system: torch.nn.Module, directory: Path) -> Path:
        """The folder of `trajectories` guided trajectories of the system being distilled, from the cache's
        captions (item n % items), split across the processes and each saved as it is made (`<n>.pt`: the states
        (K+1, ...) at the student's sigmas and the text embedding), so an interrupted build keeps them."""
        stage = self.recipe.step_distill
        items, negative = cached_items(self.cache), negative_text(self.cache)
        sigmas = student_sigmas(stage.steps, stage.shift)
        folder = directory / "trajectories"
        folder.mkdir(parents=True, exist_ok=True)
        mine = list(range(stage.trajectories))[self.accelerator.process_index :: self.num_processes]
        with progress() as bar:
            task = bar.add_task(f"trajectories (rank {self.accelerator.process_index})", total=len(mine))
            for n in mine:
                path = folder / f"{n:06d}.pt"
                if not path.is_file():
                    item = items[n % len(items)]
                    generator = torch.Generator().manual_seed(stage.seed * 1_000_003 + n)
                    noise = torch.randn(item["latents"][None].shape, generator=generator).to(self.accelerator.device)
                    conditioning = {k: item[k] for k in ("condition", "image") if k in item}
                    device = self.accelerator.device
                    context = {"cond": item["text"][None].to(device), "uncond": negative[None].to(device)}
                    batched = {k: v[None].to(device) for k, v in conditioning.items()}
                    velocity = guided_velocity(system, context, batched, stage.guidance)
                    states = teacher_trajectory(velocity, noise, sigmas, stage.substeps)
                    save_state(path, {"states": states[:, 0].cpu(), "text": item["text"], **conditioning})
                bar.advance(task)
        self.accelerator.wait_for_everyone()
        return folder

    def _pool(self, student, directory: Path) -> dict | None:
        """The router's anchor (`pare_core.importance.importance_pool`) on `joint.pool` batches drawn apart from the
        training data; measured on rank 0, kept in `pare/pool.pt` so a resumed build reuses it."""
        stage = self.recipe.joint
        if stage.pool == 0:
            return None
        path = directory / "pool.pt"
        if self.accelerator.is_main_process and not path.is_file():
            data = latent_batches(self.cache, stage.batch, 20_000 + stage.seed)
            with progress() as bar:
                task = bar.add_task("importance pool", total=stage.pool)
                pool = importance_pool(
                    student, [data(i) for i in range(stage.pool)], lambda: bar.advance(task), stage.content
                )
            directory.mkdir(parents=True, exist_ok=True)
            save_state(path, pool)
        self.accelerator.wait_for_everyone()
        return load_state(path)


def build(recipe: BuildRecipe, model: Path, cache: Path, out: Path) -> dict[str, float]:
    """Run (or resume) every stage of `recipe` into `out`; returns each stage's wall time in seconds."""
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    Path(out).mkdir(parents=True, exist_ok=True)
    return Build(recipe, model, cache, out, accelerator).run()
