"""Training data for real models: mp4 files with captions, encoded once to latents and text embeddings.

PARE's recovery and joint stages train on video-text pairs (the paper used about 30K). `encode_dataset` reads
a folder of mp4 files and a captions file (JSONL lines `{"file": "clip.mp4", "caption": "..."}`), resizes and
trims each video to the model's frame count (4k+1) and resolution, and encodes it with the pipeline's own VAE
(the latent mean, normalized as WanPipeline un-normalizes before decoding) and text encoder. Every item lands
in `CACHE/<index>.pt` atomically; a rerun skips what is there, so an interrupted encode resumes and a second
training run reuses the cache. `cache.json` records the settings and refuses a cache made with others. Under
`accelerate launch` each process encodes every n-th video.

`latent_batches(cache, batch, seed)` is the step -> forward-kwargs function the distillation loops take
(`pare_core.distill.recover` / `train_joint`): flow-matching inputs x_t = (1 - t) x0 + t noise at
logit-normal shifted t, as the tiny world's recovery batches.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from pare_bench.checkpoint import atomic_write_bytes
from pare_bench.distributed import ranks
from pare_bench.progress import progress
from pare_bench.tiny.train_teacher import shifted_timesteps
from pare_bench.wan.zoo import latent_grid


def read_captions(videos: Path, captions: Path) -> list[dict]:
    """The captions file's entries, each naming an mp4 in `videos`; missing files are named together."""
    entries = []
    for number, line in enumerate(Path(captions).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            entries.append({"file": str(entry["file"]), "caption": str(entry["caption"])})
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f'{captions}:{number}: expected {{"file": ..., "caption": ...}}: {error}') from None
    missing = [str(Path(videos) / e["file"]) for e in entries if not (Path(videos) / e["file"]).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} video(s) named in {captions} are missing: {', '.join(missing)}")
    if not entries:
        raise ValueError(f"{captions} lists no videos")
    return entries


def read_video(path: Path, frames: int, height: int, width: int) -> torch.Tensor:
    """(3, frames, height, width) in [-1, 1]: the first `frames` frames, resized (bicubic); shorter videos refused."""
    with av.open(str(path)) as container:
        decoded = [
            frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
            for _, frame in zip(range(frames), container.decode(video=0))
        ]
    if len(decoded) < frames:
        raise ValueError(f"{path} has {len(decoded)} frames; the model takes {frames}")
    video = torch.from_numpy(np.stack(decoded)).permute(3, 0, 1, 2).float() / 127.5 - 1
    return video


@torch.no_grad()
def encode_dataset(
    pipe, videos: Path, captions: Path, cache: Path, frames: int, height: int, width: int, max_text: int = 512
) -> int:
    """Encode every captioned video not yet in `cache`; returns how many were encoded now."""
    latent_grid(frames, height, width)  # checks 4k+1 frames and multiples of 16
    entries = read_captions(videos, captions)
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    settings = {
        "frames": frames,
        "height": height,
        "width": width,
        "max_text": max_text,
        "z_dim": pipe.vae.config.z_dim,
    }
    split = _claim(cache, settings)
    z = pipe.vae.config.z_dim
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, z, 1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(1, z, 1, 1, 1)
    encoded = 0
    with progress() as bar:
        mine = split.part(list(enumerate(entries)))
        task = bar.add_task("encode latents", total=len(mine))
        for index, entry in mine:
            path = cache / f"{index:06d}.pt"
            if not path.is_file():
                video = read_video(Path(videos) / entry["file"], frames, height, width)[None].to(pipe.vae.dtype)
                latents = (pipe.vae.encode(video).latent_dist.mean - mean) / std
                text, _ = pipe.encode_prompt(
                    entry["caption"], do_classifier_free_guidance=False, max_sequence_length=max_text
                )
                item = {"latents": latents[0].float(), "text": text[0].float(), **entry}
                if getattr(pipe, "image_encoder", None) is not None:
                    item.update(image_conditioning(pipe, video[0], frames))
                _write(path, item)
                encoded += 1
            bar.advance(task)
    if split.main and not (cache / NEGATIVE).is_file():  # classifier-free guidance's other branch (step distillation)
        text, _ = pipe.encode_prompt("", do_classifier_free_guidance=False, max_sequence_length=max_text)
        _write(cache / NEGATIVE, {"text": text[0].float()})
    split.barrier()
    return encoded


def _claim(cache: Path, settings: dict):
    """Refuse a cache encoded with other settings, record ours (rank 0), and return this process's `Ranks`:
    under accelerate launch / torchrun each process encodes every n-th video."""
    recorded = cache / "cache.json"
    if recorded.is_file() and json.loads(recorded.read_text()) != settings:
        raise ValueError(
            f"{cache} was encoded with {json.loads(recorded.read_text())}, not {settings}: use another cache"
        )
    split = ranks()
    if split.main:
        atomic_write_bytes(recorded, json.dumps(settings).encode())
    return split


@torch.no_grad()
def image_conditioning(pipe, video: torch.Tensor, frames: int) -> dict[str, torch.Tensor]:
    """What WanImageToVideoPipeline conditions on, from the video's first frame ((3, F, H, W) in [-1, 1]):
    `condition`, the first-frame mask and VAE latents that join the noisy latents on the channel axis, and
    `image`, the CLIP image embedding for the image cross-attention; both made by the pipeline's own code."""
    first = video[:, 0]
    height, width = first.shape[-2:]
    _, condition = pipe.prepare_latents(
        first[None].to(pipe.vae.dtype), 1, pipe.vae.config.z_dim, height, width, frames, torch.float32, "cpu"
    )
    pixels = ((first.permute(1, 2, 0).float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    image = pipe.encode_image(Image.fromarray(pixels), device="cpu")
    return {"condition": condition[0].float(), "image": image[0].float()}


def conditioned(kwargs: dict, items: list[dict]) -> dict:
    """I2V: `kwargs` (a transformer call on noisy latents) with each item's first-frame condition joined to its
    latents and its image embedding passed; T2V items have neither and pass through."""
    if "condition" not in items[0]:
        return kwargs
    condition = torch.stack([item["condition"] for item in items]).to(kwargs["hidden_states"])
    image = torch.stack([item["image"] for item in items]).to(kwargs["hidden_states"])
    hidden = torch.cat([kwargs["hidden_states"], condition], dim=1)
    return {**kwargs, "hidden_states": hidden, "encoder_hidden_states_image": image}


@torch.no_grad()
def encode_world(model, cache: Path, videos: int, seed: int = 0) -> int:
    """The tiny world as a build's data source: `videos` train-split scenes rendered as its teacher trains on
    them (`train_teacher.training_batch`), each with the teacher's text embedding (and, for I2V, its first-frame
    condition and image tokens), in the layout `encode_dataset` writes; so `build` treats a tiny teacher like a
    Wan2.1 model. Video n depends on (seed, n) alone. Returns how many were encoded now."""
    import random

    from pare_bench.tiny.train_teacher import TeacherRecipe, training_batch
    from pare_bench.tiny.world.prompts import tokenize

    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    split = _claim(cache, {"world": model.name, "seed": seed})
    one = TeacherRecipe(batch=1, prompt_dropout=0.0)
    encoded = 0
    with progress() as bar:
        mine = split.part(list(range(videos)))
        task = bar.add_task("encode world videos", total=len(mine))
        for index in mine:
            path = cache / f"{index:06d}.pt"
            if not path.is_file():
                batch = training_batch(model, one, random.Random(seed * 1_000_003 + index), "cpu")
                item = {"latents": batch["video"][0], "text": model.text_encoder(batch["tokens"])[0]}
                item.update({k: batch[k][0] for k in ("condition", "image") if k in batch})
                _write(path, {**item, "file": f"world:{seed}:{index}", "caption": ""})
                encoded += 1
            bar.advance(task)
    if split.main and not (cache / NEGATIVE).is_file():
        tokens = torch.tensor([tokenize("")])  # the empty prompt, as classifier-free guidance's other branch
        _write(cache / NEGATIVE, {"text": model.text_encoder(tokens)[0]})
    split.barrier()
    return encoded


def _write(path: Path, item: dict) -> None:
    buffer = io.BytesIO()
    torch.save(item, buffer)
    atomic_write_bytes(path, buffer.getvalue())


NEGATIVE = "negative_prompt.pt"  # the empty prompt's text embedding, WanPipeline's default negative prompt


def cached_items(cache: Path, limit: int | None = None) -> list[dict]:
    """The cache's encoded videos in order (`latents`, `text`, `file`, `caption`), the first `limit` of them."""
    paths = sorted(Path(cache).glob("[0-9]*.pt"))[:limit]
    if not paths:
        raise FileNotFoundError(f"no encoded items in {cache}: run `python -m pare_bench encode-latents` first")
    return [torch.load(p, weights_only=True) for p in paths]


def negative_text(cache: Path) -> torch.Tensor:
    """The empty prompt's text embedding that `encode-latents` stored beside the items."""
    path = Path(cache) / NEGATIVE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: rerun `python -m pare_bench encode-latents` on this cache")
    return torch.load(path, weights_only=True)["text"]


def latent_batches(cache: Path, batch: int, seed: int = 0, time_shift: float = 3.0):
    """step -> transformer forward kwargs from the cached latents and text embeddings (seeded by step)."""
    items = cached_items(cache)
    latents = torch.stack([item["latents"] for item in items])
    text = torch.stack([item["text"] for item in items])

    def batch_at(step: int) -> dict:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        chosen = torch.randint(len(items), (batch,), generator=generator)
        t = shifted_timesteps(batch, time_shift, generator)
        x0 = latents[chosen]
        noise = torch.randn(x0.shape, generator=generator)
        t_ = t.view(-1, 1, 1, 1, 1)
        kwargs = {
            "hidden_states": (1 - t_) * x0 + t_ * noise,
            "timestep": 1000 * t,
            "encoder_hidden_states": text[chosen],
        }
        return conditioned(kwargs, [items[i] for i in chosen.tolist()])

    return batch_at
