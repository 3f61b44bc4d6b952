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


TINY_CLIPS = (
    ("a red square moving right", (220, 40, 40), (2, 0)),
    ("a blue square moving down", (40, 40, 220), (0, 2)),
    ("a green square moving left", (40, 200, 40), (-2, 0)),
    ("a yellow square standing still", (230, 220, 40), (0, 0)),
)


def write_tiny_wan(out: Path, task: str = "t2v", frames: int = 12, size: int = 48) -> None:
    """Stand-ins for what a build starts from, made here with no download: random tiny Wan2.1 components as a
    diffusers folder (`out/weights`), mp4 files of a square crossing a grey frame (`out/videos`), their
    captions (`out/captions.jsonl`), and `out/suite.yaml`, the leaderboard of a build into `out/build`. The
    weights are random, so what a build makes of them tests the pipeline, not PARE's quality."""
    import json

    import numpy as np
    from diffusers import WanImageToVideoPipeline, WanPipeline

    from pare_bench.store import encode_mp4

    out = Path(out)
    pipeline = WanImageToVideoPipeline if task == "i2v" else WanPipeline
    pipeline(**tiny_components(task=task)).save_pretrained(out / "weights")
    (out / "videos").mkdir(parents=True, exist_ok=True)
    lines = []
    for index, (caption, colour, (dx, dy)) in enumerate(TINY_CLIPS):
        video = np.full((frames, size, size, 3), 128, dtype=np.uint8)
        for f in range(frames):
            x, y = (size // 2 - 6 + dx * f) % size, (size // 2 - 6 + dy * f) % size
            video[f, y : y + 12, x : x + 12] = colour
        (out / "videos" / f"clip{index}.mp4").write_bytes(encode_mp4(video))
        lines.append(json.dumps({"file": f"clip{index}.mp4", "caption": caption}))
    (out / "captions.jsonl").write_text("\n".join(lines) + "\n")
    (out / "prompts.txt").write_text("".join(f"{caption}\n" for caption, _, _ in TINY_CLIPS[:2]))
    (out / "suite.yaml").write_text(TINY_BUILD_SUITE)


# The leaderboard of a build into OUT/build (`write_tiny_wan`'s OUT): the teacher, PARE and PARE + 4-step student,
# as suites/vbench_t2v.yaml compares them at full size.
TINY_BUILD_SUITE = """\
suite: tiny_wan_build
task: t2v
model: wan2.1-t2v-1.3b
weights: weights
prompts: prompts.txt
height: 32
width: 32
frames: 9
sampling: {steps: 8, guidance: 5.0, shift: 3.0, scheduler: unipc}
systems:
  - {name: baseline}
  - {name: pare, artifact: build/pare}
  - {name: pare+sd, artifact: build/pare-sd, sampling: {steps: 2, guidance: 1.0, scheduler: euler}}
metrics:
  - {metric: psnr, reference: baseline}
  - {metric: ssim, reference: baseline}
  - {metric: flops, videos: 1}
  - {metric: latency, warmup: 1, repeats: 3}
"""
