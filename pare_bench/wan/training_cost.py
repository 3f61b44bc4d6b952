"""`python -m pare_bench training-cost`: what PARE's training stages cost on a real Wan2.1 model, on paper.

Per stage and per video: FLOPs from the project's two forward counters (`pare_core.flops.analytic_flops` and the
dispatch-time count on the meta device, `flops_cli.runtime_flops`, which must agree), GPU-hours at a stated
utilisation, and memory per GPU under the FSDP settings of docs/DISTRIBUTED.md. A training step is counted as
the frozen teacher's forward plus the student's forward and backward (`backward_flops`: 2 forwards for the
linears, 2.5 for the attention matmuls, whose fused backward recomputes Q K^T; + 1 forward when activation
checkpointing recomputes it); `tests/pare_bench/test_training_cost.py` checks that rule against torch's FLOP
counter around a real recovery step.

The stage sizes (calibration videos, optimizer steps, batch) are assumptions, stated in `Assumptions`: the
paper's own step counts are not available to this project, so every GPU-hour figure scales linearly with them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from pare_bench.wan.flops_cli import Variant, analytic, runtime_flops
from pare_bench.wan.zoo import IMAGE_TOKENS, TEXT_TOKENS, latent_grid, wan_model
from pare_core.flops import attention_core_flops

# bf16 dense tensor-core peak (NVIDIA datasheets, SXM): H200 is the same GH100 compute with more and faster
# memory (141 GB HBM3e at 4.8 TB/s against 80 GB HBM3 at 3.35 TB/s), so at equal utilisation the GPU-hours are
# equal and the H200's gain is memory: fewer GPUs to shard over, larger micro-batches.
GPUS = {"H100": {"peak_tflops": 989.4, "memory_gb": 80}, "H200": {"peak_tflops": 989.4, "memory_gb": 141}}
RESOLUTIONS = {"480p": (81, 480, 832), "720p": (81, 720, 1280)}


@dataclass(frozen=True)
class Assumptions:
    """The sizes the GPU-hours are computed for (not the paper's: see the module docstring)."""

    width_ratio: float = 0.5  # share of self-attention heads pruned in every block
    budget: float = 0.7  # share of blocks the router runs per step at inference (training runs all, gated)
    calibration_inputs: int = 64  # (video, timestep) inputs of the head profile
    recovery_videos: int = 64_000  # stage 3: optimizer steps x global batch (2,000 x 32)
    joint_videos: int = 64_000  # stage 4: 2,000 x 32
    sd_trajectories: int = 4_000  # stage 5: teacher (PARE) trajectories, one video each
    sd_pairs: int = 64_000  # stage 5: (state, segment) pairs trained on: 2,000 x 32
    sd_steps: int = 4  # student steps
    sd_substeps: int = 6  # teacher Euler steps per student step, each with CFG (2 forwards)
    utilisation: float = 0.4  # model-FLOPs utilisation of training (attention-heavy, FSDP, recompute)
    fsdp_gpus: int = 8  # FSDP world size for 14B (DDP for 1.3B: it fits one GPU)
    checkpointing: bool = True  # activation checkpointing (recompute: one more student forward per step)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_recipe(cls, recipe) -> Assumptions:
        """The sizes a build recipe (`pare_bench.wan.build_recipe.BuildRecipe`) asks for, so the table prices the
        recipe the project ships rather than numbers of its own."""
        sd = recipe.step_distill
        return cls(
            width_ratio=recipe.width.ratio,
            budget=recipe.joint.budget,
            calibration_inputs=recipe.profile.inputs * len(recipe.profile.timesteps),
            recovery_videos=recipe.recovery.steps * recipe.recovery.batch,
            joint_videos=recipe.joint.steps * recipe.joint.batch,
            sd_trajectories=sd.trajectories,
            sd_pairs=sd.train_steps * sd.batch,
            sd_steps=sd.steps,
            sd_substeps=sd.substeps,
        )


def shipped_assumptions(name: str) -> Assumptions:
    """The assumptions of `recipes/<name>.yaml` when the project ships one (the defaults otherwise)."""
    from pare_bench.wan.build_recipe import RECIPES_DIR, load_build_recipe

    path = RECIPES_DIR / f"{name}.yaml"
    return Assumptions.from_recipe(load_build_recipe(path)) if path.is_file() else Assumptions()


def parameter_count(config: dict, heads_per_block: list[int] | None = None) -> int:
    """Parameters of the dense or head-pruned transformer, counted on the meta device (no memory)."""
    from diffusers import WanTransformer3DModel

    from pare_core.prune import PrunedWanTransformer3DModel

    with torch.device("meta"):
        if heads_per_block is None:
            model = WanTransformer3DModel(**config)
        else:
            model = PrunedWanTransformer3DModel(
                **config,
                heads_per_block=heads_per_block,
                cross_heads_per_block=[config["num_attention_heads"]] * len(heads_per_block),
            )
    return sum(p.numel() for p in model.parameters())


def backward_flops(config: dict, grid: tuple[int, int, int], variant: Variant, image: bool) -> float:
    """FLOPs of one backward of `variant`: 2 forwards, plus half the attention matmuls (recomputed scores)."""
    core = attention_core_flops(
        config,
        *grid,
        TEXT_TOKENS,
        IMAGE_TOKENS if image else 0,
        heads_per_block=variant.heads_per_block,
        cross_heads_per_block=variant.cross_heads_per_block,
        blocks_executed=variant.blocks_executed,
    )
    return 2 * analytic(config, grid, variant, image).total + 0.5 * core


def activation_bytes(config: dict, tokens: int, checkpointing: bool) -> float:
    """Activation memory of one video's training step in bf16, after Korthikanti et al. (2022, "Reducing
    activation recomputation"), with flash attention (no score matrix kept) and no dropout: a block keeps about
    tokens x (20 dim + 4 ffn) bytes (self- and cross-attention inputs, q/k/v, outputs, norms and modulation:
    ~20 dim; the FFN's up projection and its activation: 2 x 2 ffn). With checkpointing, each block's input
    (2 dim bytes per token) is kept and one block at a time is recomputed."""
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    block = tokens * (20 * dim + 4 * config["ffn_dim"])
    if checkpointing:
        return config["num_layers"] * tokens * 2 * dim + block
    return config["num_layers"] * block


def stage_costs(name: str, resolution: str, assumptions: Assumptions | None = None) -> dict:
    """FLOPs per unit of work, per stage total and GPU-hours, and memory per GPU, for one model and resolution
    (at the sizes of the model's shipped build recipe unless `assumptions` says otherwise)."""
    assumptions = shipped_assumptions(name) if assumptions is None else assumptions
    model = wan_model(name)
    config, image = dict(model.transformer), model.task == "i2v"
    frames, height, width = RESOLUTIONS[resolution]
    grid = latent_grid(frames, height, width)
    layers, heads = config["num_layers"], config["num_attention_heads"]
    keep = [heads - round(heads * assumptions.width_ratio)] * layers
    variants = {
        "teacher": Variant("teacher"),
        "student": Variant("student", keep, [heads] * layers),
        "pare": Variant("pare", keep, [heads] * layers, math.floor(assumptions.budget * layers + 1e-9)),
    }
    forward = {key: analytic(config, grid, v, image).total for key, v in variants.items()}
    runtime = {key: runtime_flops(config, grid, v, image) for key, v in variants.items() if key != "pare"}
    agreement = max(abs(runtime[key] / forward[key] - 1) for key in runtime)
    if agreement > 0.01:
        raise AssertionError(f"{name} {resolution}: the two FLOP counters differ by {agreement:.2%}")
    recompute = 1 if assumptions.checkpointing else 0
    step = {  # forward (+ recomputed forward) + backward of a trained model
        key: (1 + recompute) * forward[key] + backward_flops(config, grid, variants[key], image)
        for key in ("student", "pare")
    }
    per_unit = {  # FLOPs of one unit of each stage's work
        "profile (roles)": forward["teacher"],  # one forward per input, attention sampled on 256 query rows
        "profile (importance)": (1 + layers * heads) * forward["teacher"],  # every head ablated in turn
        "recovery": forward["teacher"] + step["student"],
        "joint": forward["teacher"] + step["student"],  # training runs every block, gated: the router adds ~0
        "sd trajectories": assumptions.sd_steps * assumptions.sd_substeps * 2 * forward["pare"],
        "sd training": step["pare"],  # the K-step student is the routed PARE model, one forward per step
    }
    units = {
        "profile (roles)": assumptions.calibration_inputs,
        "profile (importance)": assumptions.calibration_inputs,
        "recovery": assumptions.recovery_videos,
        "joint": assumptions.joint_videos,
        "sd trajectories": assumptions.sd_trajectories,
        "sd training": assumptions.sd_pairs,
    }
    stages = []
    for stage, flops in per_unit.items():
        total = flops * units[stage]
        hours = {
            gpu: total / (spec["peak_tflops"] * 1e12 * assumptions.utilisation) / 3600 for gpu, spec in GPUS.items()
        }
        stages.append(
            {"stage": stage, "flops_per_unit": flops, "units": units[stage], "flops": total, "gpu_hours": hours}
        )
    teacher_params, student_params = parameter_count(config), parameter_count(config, keep)
    tokens = math.prod(grid) // math.prod(config["patch_size"])
    shards = 1 if teacher_params < 5e9 else assumptions.fsdp_gpus
    memory = {
        "student_states_gb": 16 * student_params / shards / 1e9,  # fp32 weights, grads, AdamW m and v
        "teacher_gb": 2 * teacher_params / 1e9,  # bf16, one full copy per GPU
        "activations_gb": activation_bytes(config, tokens, assumptions.checkpointing) / 1e9,
    }
    memory["total_gb"] = sum(memory.values())
    return {
        "model": name,
        "resolution": resolution,
        "tokens": tokens,
        "parameters": {"teacher": teacher_params, "student": student_params},
        "forward_flops": forward,
        "counter_agreement": agreement,
        "shards": shards,
        "memory_per_gpu": memory,
        "stages": stages,
        "assumptions": asdict(assumptions),
    }


def cost_markdown(rows: list[dict]) -> str:
    """The tables of docs/TRAINING_COST.md from `stage_costs` rows."""
    lines = [
        "| model | video | tokens | forward TFLOPs: teacher / student / PARE "
        "| memory per GPU (GB): states + teacher + activations = total |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        f, m = row["forward_flops"], row["memory_per_gpu"]
        shards = "DDP" if row["shards"] == 1 else f"FSDP x{row['shards']}"
        lines.append(
            f"| {row['model']} | {row['resolution']} | {row['tokens']:,} | {f['teacher'] / 1e12:.1f} / "
            f"{f['student'] / 1e12:.1f} / {f['pare'] / 1e12:.1f} | {m['student_states_gb']:.1f} + {m['teacher_gb']:.1f}"
            f" + {m['activations_gb']:.1f} = **{m['total_gb']:.1f}** ({shards}) |"
        )
    lines += [
        "",
        "| model | video | stage | PFLOPs per unit | units | GPU-hours H100 | GPU-hours H200 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for stage in row["stages"]:
            hours = stage["gpu_hours"]
            lines.append(
                f"| {row['model']} | {row['resolution']} | {stage['stage']} | {stage['flops_per_unit'] / 1e15:.3g} | "
                f"{stage['units']:,} | {hours['H100']:,.0f} | {hours['H200']:,.0f} |"
            )
    return "\n".join(lines) + "\n"
