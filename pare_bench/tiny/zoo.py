"""Model presets. The embedded tiny Wan models are `WanTransformer3DModel`s built from config whose
trained weights ship inside the package (diffusers layout, safetensors), so nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel

from pare_bench.tiny.world.conditioning import WAN_TEXT_CONTEXT, WorldTextEncoder
from pare_bench.tiny.world.prompts import MAX_TOKENS
from pare_bench.tiny.world.render import WorldConfig

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

_TINY_TRANSFORMER = dict(
    patch_size=(1, 4, 4),  # 8 frames x 6 x 6 patches = 288 tokens for a 8x24x24 video
    num_attention_heads=8,  # >= 8 so head pruning has room
    attention_head_dim=16,
    out_channels=3,  # pixel-space RGB velocity
    text_dim=64,
    freq_dim=64,
    ffn_dim=512,
    num_layers=8,  # >= 8 so routing has room
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",  # as Wan2.1
    rope_max_seq_len=64,
)
IMAGE_PATCH = 4  # first-frame patch size for the I2V image tokens: 36 tokens of 48 features


@dataclass(frozen=True)
class TinySpec:
    task: str  # "t2v" or "i2v"
    transformer: dict  # WanTransformer3DModel config
    text_context: int  # text positions given to the transformer
    world: WorldConfig = field(default_factory=WorldConfig)


TINY_MODELS = {
    "tiny-wan-t2v": TinySpec("t2v", {**_TINY_TRANSFORMER, "in_channels": 3}, text_context=MAX_TOKENS),
    "tiny-wan-i2v": TinySpec(
        "i2v",
        # 3 noisy channels + 1 frame mask + 3 first-frame channels, the Wan2.1-I2V layout in pixels.
        {**_TINY_TRANSFORMER, "in_channels": 7, "image_dim": 3 * IMAGE_PATCH**2, "added_kv_proj_dim": 128},
        text_context=WAN_TEXT_CONTEXT,
    ),
}


@dataclass
class TinyWan:
    """A tiny teacher: the diffusers transformer plus the world text encoder that conditions it."""

    name: str
    spec: TinySpec
    transformer: WanTransformer3DModel
    text_encoder: WorldTextEncoder
    current_timestep: int = 1000  # set by the sampler at each step, for timestep-aware cache hooks

    def save(self, directory: Path) -> None:
        self.transformer.save_pretrained(directory / "transformer")
        self.text_encoder.save_pretrained(directory / "text_encoder")

    def to(self, device: torch.device | str) -> TinyWan:
        self.transformer.to(device)
        self.text_encoder.to(device)
        return self


def tiny_spec(name: str) -> TinySpec:
    if name not in TINY_MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(TINY_MODELS)}")
    return TINY_MODELS[name]


def build_tiny(name: str, seed: int = 0) -> TinyWan:
    """A freshly initialised tiny model (random weights), for training or tests."""
    spec = tiny_spec(name)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(**spec.transformer)
    text_encoder = WorldTextEncoder(dim=spec.transformer["text_dim"], context_len=spec.text_context)
    return TinyWan(name, spec, transformer, text_encoder)


def load_tiny(name: str, directory: Path | None = None) -> TinyWan:
    """Load trained tiny weights from `directory` (default: the copy shipped in the package)."""
    spec = tiny_spec(name)
    directory = Path(directory) if directory else WEIGHTS_DIR / name
    missing = [
        str(directory / part / file)
        for part, file in (
            ("transformer", "diffusion_pytorch_model.safetensors"),
            ("text_encoder", "diffusion_pytorch_model.safetensors"),
        )
        if not (directory / part / file).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"weights for {name} not found: {', '.join(missing)}. "
            f"Train them with `python -m pare_bench train-teacher {name}` or pass the directory that holds them."
        )
    transformer = owned(WanTransformer3DModel.from_pretrained(directory / "transformer").eval())
    text_encoder = owned(WorldTextEncoder.from_pretrained(directory / "text_encoder").eval())
    return TinyWan(name, spec, transformer, text_encoder)


@torch.no_grad()
def owned(module: torch.nn.Module) -> torch.nn.Module:
    """Copy parameters out of the safetensors mapping into fresh, aligned memory.

    Tensors read from a safetensors file sit at the file's byte offsets (here 40 mod 64), and CPU
    kernels pick different code paths for unaligned data: the same weights then give outputs that
    differ by ~2e-6 from a model built in memory. Owned copies make a loaded model compute exactly
    like one rebuilt from its state dict (a pruned keep-all copy, a deepcopy, a distilled student).
    """
    for parameter in module.parameters():
        parameter.data = parameter.data.clone()
    return module
