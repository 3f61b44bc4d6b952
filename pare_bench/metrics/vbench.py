"""The real VBench package, run in its own environment through a subprocess.

vbench pins numpy<2 and transformers 4.33, which cannot live beside this project's stack, so
`python -m pare_bench setup-vbench` creates a separate virtual environment (default
~/.cache/pare-bench/vbench-<version>, or $PARE_VBENCH_ENV) and `run_vbench` calls
`pare_bench/vbench_worker.py` there. Each system's videos (`videos/<system>/{prompt}-{index}.mp4`, VBench's
naming) are scored; VBench's `<name>_eval_results.json` is parsed and every per-video raw score is kept.

Preflight (`vbench_problems`) runs before any generation: the environment must be complete (`READY`, written
last by `setup_env`), and each requested dimension's weight files must be under VBENCH_CACHE_DIR (default
~/.cache/vbench), since the worker runs VBench in local mode and this machine cannot download them.
`temporal_flickering` needs no weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import venv
from importlib.metadata import version
from pathlib import Path

from filelock import FileLock

from pare_bench.metrics.registry import register_metric
from pare_bench.metrics.vbench_scoring import DIMENSIONS

VBENCH_VERSION = "0.1.5"
ENV_VAR = "PARE_VBENCH_ENV"
# VBench's custom_input mode refuses the dimensions that need its own prompt suite's metadata.
STANDARD_ONLY = ("object_class", "multiple_objects", "color", "spatial_relationship", "scene", "appearance_style")
CUSTOM_INPUT = tuple(d for d in DIMENSIONS if d not in STANDARD_ONLY)
# vbench2_beta_i2v's image-conditioned dimensions; its quality dimensions are the custom_input ones.
I2V_DIMENSIONS = ("i2v_subject", "i2v_background", "camera_motion")
LONG_SECONDS = 5.0  # VBench: videos this long or longer go through VBench-Long (vbench2_beta_long)
MODES = ("custom_input", "standard", "i2v")
READY = ".pare-bench-ready"  # written by setup_env once vbench imports; a half-made environment lacks it

_CLIP_B = (
    "clip_model/ViT-B-32.pt",
    "https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
)
_GRIT = (
    "grit_model/grit_b_densecap_objectdet.pth",
    "https://datarelease.blob.core.windows.net/grit/models/grit_b_densecap_objectdet.pth",
)
_VICLIP = (
    "ViCLIP/ViClip-InternVid-10M-FLT.pth",
    "https://huggingface.co/OpenGVLab/VBench_Used_Models/resolve/main/ViClip-InternVid-10M-FLT.pth",
)
# dimension -> (file under VBENCH_CACHE_DIR, where it comes from), as vbench 0.1.5's init_submodules(local=True)
WEIGHTS: dict[str, tuple[tuple[str, str], ...]] = {
    "temporal_flickering": (),
    "subject_consistency": (
        ("dino_model/facebookresearch_dino_main/hubconf.py", "git clone https://github.com/facebookresearch/dino"),
        (
            "dino_model/dino_vitbase16_pretrain.pth",
            "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
        ),
    ),
    "background_consistency": (_CLIP_B,),
    "motion_smoothness": (("amt_model/amt-s.pth", "https://huggingface.co/lalala125/AMT/resolve/main/amt-s.pth"),),
    "dynamic_degree": (
        ("raft_model/models/raft-things.pth", "https://dl.dropboxusercontent.com/s/4j4z58wuv8o0mfz/models.zip (unzip)"),
    ),
    "aesthetic_quality": (
        (
            "clip_model/ViT-L-14.pt",
            "https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
        ),
        (
            "aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth",
            "https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_l_14_linear.pth",
        ),
    ),
    "imaging_quality": (
        (
            "pyiqa_model/musiq_spaq_ckpt-358bb6af.pth",
            "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_spaq_ckpt-358bb6af.pth",
        ),
    ),
    "object_class": (_GRIT,),
    "multiple_objects": (_GRIT,),
    "color": (_GRIT,),
    "spatial_relationship": (_GRIT,),
    "human_action": (
        (
            "umt_model/l16_ptk710_ftk710_ftk400_f16_res224.pth",
            "https://huggingface.co/OpenGVLab/VBench_Used_Models/resolve/main/l16_ptk710_ftk710_ftk400_f16_res224.pth",
        ),
    ),
    "scene": (
        (
            "caption_model/tag2text_swin_14m.pth",
            "https://huggingface.co/spaces/xinyu1205/recognize-anything/resolve/main/tag2text_swin_14m.pth",
        ),
    ),
    "i2v_subject": (
        ("dino_model/facebookresearch_dino_main/hubconf.py", "git clone https://github.com/facebookresearch/dino"),
        (
            "dino_model/dino_vitbase16_pretrain.pth",
            "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
        ),
    ),
    # dreamsim(pretrained=True) reads ./models; the worker links it to VBENCH_CACHE_DIR/dreamsim_models
    "i2v_background": (
        (
            "dreamsim_models/ensemble_lora/adapter_config.json",
            "pip install dreamsim; dreamsim(pretrained=True, cache_dir=...)",
        ),
    ),
    "camera_motion": (
        (
            "torch_hub/facebookresearch_co-tracker_main/hubconf.py",
            "torch.hub.load('facebookresearch/co-tracker', 'cotracker2') with TORCH_HOME=VBENCH_CACHE_DIR/..",
        ),
    ),
    "appearance_style": (_CLIP_B,),
    "temporal_style": (_VICLIP,),
    "overall_consistency": (_VICLIP,),
}


class VBenchError(RuntimeError):
    pass


def default_env() -> Path:
    return Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "pare-bench" / f"vbench-{VBENCH_VERSION}")


def cache_dir() -> Path:
    """VBench's weight directory, read the way vbench reads it (vbench/utils.py)."""
    return Path(os.environ.get("VBENCH_CACHE_DIR") or Path.home() / ".cache" / "vbench")


def _python(env: Path) -> Path:
    return env / "bin" / "python"


def env_ready(env: Path) -> bool:
    return _python(env).is_file() and (env / READY).is_file()


def setup_env(env: Path) -> None:
    """Create the environment: the same torch/torchvision as this one (from the local wheels), vbench, numpy<2.

    Safe to rerun and to start twice: a lock next to the environment makes a second setup wait for the first
    (two at once had one clear the environment under the other's pip), an existing environment is completed by
    pip rather than deleted, and `READY` is written only after vbench imports, so an interrupted setup leaves an
    environment that preflight calls incomplete instead of one that fails mid-run.
    """
    env.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(env.with_name(env.name + ".lock"))):
        if env_ready(env):
            return
        if not _python(env).is_file():
            venv.create(env, with_pip=True, clear=env.exists())
        packages = [
            f"torch=={version('torch').split('+')[0]}",
            f"torchvision=={version('torchvision').split('+')[0]}",
            f"vbench=={VBENCH_VERSION}",
            "numpy<2",
        ]
        subprocess.run([str(_python(env)), "-m", "pip", "install", *packages], check=True)
        subprocess.run([str(_python(env)), "-c", "import vbench"], check=True)
        (env / READY).write_text(f"vbench {VBENCH_VERSION}\n")


def missing_weights(dimensions: list[str], root: Path | None = None) -> list[str]:
    """'<path> (from <source>)' for every weight file a dimension needs that is not under VBENCH_CACHE_DIR."""
    root = root or cache_dir()
    missing = {}
    for dimension in dimensions:
        for relative, source in WEIGHTS[dimension]:
            if not (root / relative).is_file():
                missing[str(root / relative)] = f"{root / relative} (for {dimension}; from {source})"
    return list(missing.values())


def vbench_problems(dimensions: list[str], env: Path | None = None) -> list[str]:
    """What keeps VBench from running these dimensions here; checked before any generation."""
    env = env or default_env()
    problems = []
    if not _python(env).is_file():
        problems.append(f"no VBench environment at {env}: create it with `python -m pare_bench setup-vbench`")
    elif not env_ready(env):
        problems.append(
            f"the VBench environment at {env} is incomplete (a setup was interrupted or is running): "
            "rerun `python -m pare_bench setup-vbench`"
        )
    problems += [f"missing VBench weights: {line}" for line in missing_weights(dimensions)]
    return problems


def full_info_path(env: Path | None = None) -> Path:
    """VBench's prompt suite (VBench_full_info.json) inside the VBench environment."""
    env = env or default_env()
    found = sorted(env.glob("lib/python*/site-packages/vbench/VBench_full_info.json"))
    if not found:
        raise FileNotFoundError(
            f"no VBench environment at {env} (its prompt suite is read from there): "
            "create it with `python -m pare_bench setup-vbench`"
        )
    return found[0]


def standard_prompts(selection: str, env: Path | None = None) -> list[str]:
    """VBench's own prompts: `standard` (944 distinct in its 946 entries) or one dimension's, in its order."""
    info = json.loads(full_info_path(env).read_text())
    if selection != "standard" and selection not in DIMENSIONS:
        raise VBenchError(f"unknown VBench prompt selection {selection!r}: use `standard` or one of {list(DIMENSIONS)}")
    chosen = [item["prompt_en"] for item in info if selection == "standard" or selection in item["dimension"]]
    return list(dict.fromkeys(chosen))


def dimension_prompts(dimensions: list[str], env: Path | None = None) -> dict[str, set[str]]:
    """dimension -> the VBench prompts standard mode scores it on."""
    info = json.loads(full_info_path(env).read_text())
    return {d: {item["prompt_en"] for item in info if d in item["dimension"]} for d in dimensions}


def long_problems(env: Path | None = None) -> list[str]:
    """Why VBench-Long (vbench2_beta_long) cannot run in the VBench environment, if it cannot."""
    env = env or default_env()
    if not _python(env).is_file():
        return []  # vbench_problems names the missing environment
    check = subprocess.run([str(_python(env)), "-c", "import vbench2_beta_long"], capture_output=True, text=True)
    if check.returncode == 0:
        return []
    reason = (check.stderr.strip().splitlines() or ["unknown error"])[-1]
    return [
        f"videos of {LONG_SECONDS:g} s or longer are scored by VBench-Long, which does not import in {env}: {reason}"
    ]


def run_vbench(
    videos: Path,
    prompts: dict[str, str],
    dimensions: list[str],
    work: Path,
    env: Path | None = None,
    mode: str = "custom_input",
    images: dict[str, str] | None = None,
    long: bool = False,
    image_dimensions: dict[str, list[str]] | None = None,
) -> dict:
    """{dimension: {"score": VBench's aggregate, "videos": {file name: raw score}}} for the mp4 files in `videos`.

    `prompts`: file name -> prompt of every video. `mode`: custom_input (the harness's prompts), standard
    (VBench's prompt suite: each dimension scores the videos of its own prompts) or i2v (`images`: prompt ->
    conditioning image file; `image_dimensions`: prompt -> the dimensions its image is scored on, as VBench's I2V
    suite assigns them; default all). `long`: the videos are 5 s or longer (VBench-Long)."""
    env = env or default_env()
    if mode not in MODES:
        raise VBenchError(f"unknown VBench mode {mode!r}; known: {MODES}")
    work.mkdir(parents=True, exist_ok=True)
    request = {
        "videos": str(videos),
        "name": "pare",
        "output": str(work),
        "dimensions": list(dimensions),
        "mode": "vbench_standard" if mode == "standard" else mode,
        "prompts": prompts if mode == "custom_input" else {},
        "images": images or {},
        "image_dimensions": image_dimensions or {},
        "long": long,
        "device": "cuda" if _has_cuda() else "cpu",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=work, delete=False) as handle:
        json.dump(request, handle)
    worker = Path(__file__).parents[1] / "vbench_worker.py"
    done = subprocess.run(
        [str(_python(env)), str(worker), handle.name],
        capture_output=True,
        text=True,
        env={**os.environ, "VBENCH_CACHE_DIR": str(cache_dir())},
    )
    if done.returncode != 0:
        raise VBenchError(f"vbench failed on {videos} (exit {done.returncode}):\n{done.stderr[-3000:]}")
    expected = {d: set(prompts) for d in dimensions}
    if mode == "standard":
        scored = dimension_prompts(dimensions, env)
        expected = {d: {name for name, prompt in prompts.items() if prompt in scored[d]} for d in dimensions}
    if image_dimensions:  # VBench's I2V suite scores each image on its own dimensions
        expected = {
            d: {name for name, prompt in prompts.items() if d in image_dimensions.get(prompt, dimensions)}
            for d in dimensions
        }
    return parse_results(work / "pare_eval_results.json", dimensions, expected=expected)


def parse_results(path: Path, dimensions: list[str], expected: set[str] | dict[str, set[str]]) -> dict:
    """VBench's eval_results.json -> per dimension its aggregate and every video's raw score.

    VBench skips a video it cannot decode and averages the rest; here a missing video is an error.
    `expected`: the file names every dimension must score, or per dimension (standard mode).
    """
    results = json.loads(Path(path).read_text())
    parsed = {}
    for dimension in dimensions:
        aggregate, per_video = results[dimension]
        scores = {Path(item["video_path"]).name: float(item["video_results"]) for item in per_video}
        wanted = expected[dimension] if isinstance(expected, dict) else expected
        if set(scores) != wanted:
            raise VBenchError(f"vbench {dimension} scored {sorted(scores)}, expected {sorted(wanted)}")
        parsed[dimension] = {"score": float(aggregate), "videos": scores}
    return parsed


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def video_seconds(suite) -> float:
    """How long the suite's videos play (mp4 files at VIDEO_FPS)."""
    from pare_bench.store import VIDEO_FPS
    from pare_bench.tiny.zoo import TINY_MODELS
    from pare_bench.wan.zoo import WAN_FPS, WAN_MODELS

    if suite.model in WAN_MODELS:
        return (suite.frames or WAN_MODELS[suite.model].frames) / WAN_FPS
    frames = suite.frames or (TINY_MODELS[suite.model].world.frames if suite.model in TINY_MODELS else 0)
    return frames / VIDEO_FPS


def vbench_dimensions(suite) -> list[str]:
    return [d for spec in suite.metrics if spec.metric == "vbench" for d in spec.options["dimensions"]]


def vbench_mode(suite, dimensions: list[str]) -> str:
    """i2v for I2V dimensions or VBench's I2V image suite (its protocol scores every dimension through
    vbench2_beta_i2v); otherwise the suite's `mode` (custom_input or standard)."""
    from pare_bench import vbench_i2v

    if any(d in I2V_DIMENSIONS for d in dimensions) or suite.prompts.startswith(vbench_i2v.PREFIX):
        return "i2v"
    return next(spec.options.get("mode", "custom_input") for spec in suite.metrics if spec.metric == "vbench")


def _suite_problems(suite) -> list[str]:
    """The vbench environment for the suite's dimensions, and VBench-Long's for T2V videos of 5 s or more."""
    dimensions = vbench_dimensions(suite)
    problems = vbench_problems(dimensions) if dimensions else []
    if dimensions and video_seconds(suite) >= LONG_SECONDS and vbench_mode(suite, dimensions) != "i2v":
        problems += long_problems()  # VBench-Long is for T2V; vbench2_beta_i2v scores whole videos
    return problems


@register_metric(
    "vbench",
    kind="vbench",
    higher_is_better=True,
    columns=tuple(f"vbench_{name}" for name in (*DIMENSIONS, "total", "quality", "semantic")),
    options=("dimensions", "mode"),
    tolerance=0.02,
    problems=_suite_problems,
)
def vbench_metric(*args, **kwargs) -> dict:
    """Registered for validation and the report; the runner calls `run_vbench` once per system."""
    return run_vbench(*args, **kwargs)
