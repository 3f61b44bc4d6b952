"""PARE transformers inside diffusers' `WanPipeline`, and tiny random pipeline components for tests.

`with_transformer(pipe, transformer)` returns the same pipeline class over the same components with the PARE
transformer swapped in: WanPipeline's own call path (its prompt encoding, CFG loop, scheduler and VAE decode)
then runs the pruned and/or routed student. `load_pare_transformer(directory)` loads a width or depth artifact
(`artifacts/<teacher>/width-*` or `depth-*`, see `recipes.artifacts_root`) with its router attached.

`tiny_components()` builds a WanPipeline's parts from config, with no downloads: a small `AutoencoderKLWan`, a
small UMT5 encoder and a word-level tokenizer made in code. The weights are random; the shapes and call path
are the real ones, which is what tests of the pipeline path need.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, DiffusionPipeline, UniPCMultistepScheduler, WanTransformer3DModel

from pare_core.router import apply_router

TINY_TEXT_DIM = 32
TINY_WORDS = "a an the red green blue circle square moving left right up down slowly quickly on black".split()


def tiny_tokenizer(words: list[str] = TINY_WORDS):
    """A word-level tokenizer made in code (no vocabulary download); unknown words map to <unk>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["<pad>", "</s>", "<unk>", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


TINY_IMAGE_DIM = 32  # the tiny CLIP vision encoder's width (I2V)


def tiny_transformer_config(task: str = "t2v") -> dict:
    """A WanTransformer3DModel config that fits the tiny VAE (16 latent channels) and text encoder; for I2V also
    the tiny CLIP image encoder, with Wan2.1-I2V's input layout (16 noise + 16 image latent + 4 mask channels)."""
    i2v = dict(in_channels=36, image_dim=TINY_IMAGE_DIM, added_kv_proj_dim=32) if task == "i2v" else {}
    config = dict(
        patch_size=(1, 2, 2),
        num_attention_heads=4,
        attention_head_dim=8,
        in_channels=16,
        out_channels=16,
        text_dim=TINY_TEXT_DIM,
        freq_dim=32,
        ffn_dim=64,
        num_layers=4,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    return {**config, **i2v}


def tiny_components(seed: int = 0, task: str = "t2v") -> dict:
    """Random tiny WanPipeline components built from config: VAE (8x spatial, 4x temporal), UMT5, tokenizer; for
    `task="i2v"` (WanImageToVideoPipeline) also a CLIP vision encoder and its image processor."""
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=4, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    tokenizer = tiny_tokenizer()
    text_config = UMT5Config(
        vocab_size=len(tokenizer), d_model=TINY_TEXT_DIM, d_kv=8, d_ff=64, num_layers=1, num_heads=4
    )
    components = {
        "vae": vae.eval(),
        "text_encoder": UMT5EncoderModel(text_config).eval(),
        "tokenizer": tokenizer,
        "transformer": WanTransformer3DModel(**tiny_transformer_config(task)).eval(),
        "scheduler": UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0),
    }
    if task == "i2v":
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

        vision = CLIPVisionConfig(
            hidden_size=TINY_IMAGE_DIM, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            image_size=32, patch_size=8,
        )  # fmt: skip
        components["image_encoder"] = CLIPVisionModel(vision).eval()
        components["image_processor"] = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size=32)
    return components


def with_transformer(pipe: DiffusionPipeline, transformer: torch.nn.Module) -> DiffusionPipeline:
    """The same pipeline class over the same components, with `transformer` as its denoiser."""
    return type(pipe)(**{**pipe.components, "transformer": transformer})


def load_pare_transformer(directory: Path) -> torch.nn.Module:
    """A saved PARE student (`transformer/`, and `router/` for a depth artifact) with its router
    attached at the recipe's budget. Names the missing file when the directory is incomplete."""
    directory = Path(directory)
    weights = directory / "transformer" / "diffusion_pytorch_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"no PARE transformer at {directory}: {weights} is missing")
    from pare_bench.recipes import load_depth_artifact, load_transformer

    if not (directory / "router" / "config.json").is_file():
        return load_transformer(directory)
    transformer, router = load_depth_artifact(directory)
    apply_router(transformer, router)  # at the budget it was trained for (its config)
    return transformer
