"""The real Wan2.1 models: their diffusers configs, default sampling and offline loading.

Weights are never downloaded at run time. `load_wan(name, path)` reads a local diffusers directory, or, with no
path, the local Hugging Face cache (`local_files_only=True`); when neither holds the files, the error names
where it looked and how to get them. The configs alone (`WAN_MODELS[name].transformer`) are enough for FLOPs:
`pare_bench.wan.flops_cli` builds the model on the meta device, with no weights and no memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_COMMON = dict(
    patch_size=(1, 2, 2),
    attention_head_dim=128,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
)
_14B = dict(num_attention_heads=40, ffn_dim=13824, num_layers=40)
_I2V = dict(in_channels=36, image_dim=1280, added_kv_proj_dim=5120)

TEXT_TOKENS = 512  # umT5 context, padded
IMAGE_TOKENS = 257  # CLIP ViT-H/14 tokens of the first frame (I2V)
VAE_TIME, VAE_SPACE = 4, 8  # Wan-VAE compression
WAN_FPS = 16  # Wan2.1 writes its videos at 16 fps (81 frames: 5.06 s, so VBench-Long applies)


@dataclass(frozen=True)
class WanModel:
    repo: str  # Hugging Face repository of the diffusers-format weights
    task: str  # "t2v" or "i2v"
    transformer: dict  # WanTransformer3DModel config
    height: int  # default resolution
    width: int
    shift: float  # default flow shift at that resolution
    frames: int = 81
    steps: int = 50
    guidance: float = 5.0

    @property
    def pipeline(self) -> str:
        return "WanPipeline" if self.task == "t2v" else "WanImageToVideoPipeline"


WAN_MODELS = {
    "wan2.1-t2v-1.3b": WanModel(
        "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        "t2v",
        {**_COMMON, "num_attention_heads": 12, "ffn_dim": 8960, "num_layers": 30, "in_channels": 16},
        480,
        832,
        3.0,
    ),
    "wan2.1-t2v-14b": WanModel(
        "Wan-AI/Wan2.1-T2V-14B-Diffusers", "t2v", {**_COMMON, **_14B, "in_channels": 16}, 720, 1280, 5.0
    ),
    "wan2.1-i2v-14b-480p": WanModel(
        "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", "i2v", {**_COMMON, **_14B, **_I2V}, 480, 832, 3.0
    ),
    "wan2.1-i2v-14b-720p": WanModel(
        "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers", "i2v", {**_COMMON, **_14B, **_I2V}, 720, 1280, 5.0
    ),
}


def wan_model(name: str) -> WanModel:
    if name not in WAN_MODELS:
        raise ValueError(f"unknown Wan model {name!r}; known: {sorted(WAN_MODELS)}")
    return WAN_MODELS[name]


def latent_grid(frames: int, height: int, width: int) -> tuple[int, int, int]:
    """Latent (frames, height, width) of a video, checked against what Wan2.1 can take."""
    problems = []
    if frames < 1 or (frames - 1) % VAE_TIME:
        problems.append(f"frames must be 4k+1 (the VAE compresses time 4x after the first frame), got {frames}")
    for label, size in (("height", height), ("width", width)):
        if size < 16 or size % 16:
            problems.append(f"{label} must be a positive multiple of 16 (VAE 8x, patch 2), got {size}")
    if problems:
        raise ValueError("; ".join(problems))
    return (frames - 1) // VAE_TIME + 1, height // VAE_SPACE, width // VAE_SPACE


REQUIRED_FILES = ("model_index.json", "transformer/config.json", "vae/config.json", "text_encoder/config.json")


def missing_files(directory: Path) -> list[str]:
    return [str(directory / f) for f in REQUIRED_FILES if not (directory / f).is_file()]


def locate_weights(name: str, path: Path | None = None) -> Path:
    """The local diffusers directory of `name`: `path`, else its snapshot in the local Hugging Face cache."""
    model = wan_model(name)
    how = (
        f"download it once where a network is available (`huggingface-cli download {model.repo} --local-dir DIR`) "
        "and set the suite's `weights:` (or --weights) to DIR"
    )
    if path is not None:
        missing = missing_files(Path(path))
        if missing:
            raise FileNotFoundError(f"{name}: not a complete diffusers directory: missing {', '.join(missing)}; {how}")
        return Path(path)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model.repo, local_files_only=True))
    except LocalEntryNotFoundError:
        from huggingface_hub.constants import HF_HUB_CACHE

        raise FileNotFoundError(
            f"{name}: no weights given and {model.repo} is not in the local cache {HF_HUB_CACHE}; {how}"
        ) from None


def load_wan(name: str, path: Path | None = None, **kwargs):
    """The diffusers pipeline of `name` from local files only (kwargs go to `from_pretrained`, e.g. dtype)."""
    import diffusers

    directory = locate_weights(name, path)
    pipeline = getattr(diffusers, wan_model(name).pipeline)
    return pipeline.from_pretrained(directory, local_files_only=True, **kwargs)
