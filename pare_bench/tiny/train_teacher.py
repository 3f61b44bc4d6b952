"""Train a tiny Wan teacher on the tiny world with flow matching (velocity target, as Wan2.1).

x_t = (1 - t) x0 + t * noise, target v = noise - x0, timestep = 1000 t. Timesteps are drawn
logit-normal and then shifted towards high noise (the same shift map the sampler uses), because
layout and motion are decided at high noise. Scenes are rendered on the fly, so every step sees new
positions. Checkpoints resume; an EMA copy is what ships.

Two additions make the motion word pay on a 2-core CPU (docs/TEACHERS.md has the trials):
- `motion_weight`: pixels that change between consecutive frames (an object's leading and trailing
  edges) weigh 1 + motion_weight in the loss. They are the only pixels that tell the direction, and
  without the weight they are a few percent of the loss.
- `object_weight`: pixels an object covers weigh 1 + object_weight. A still object changes no pixel,
  so the motion weight never reaches it; this weight makes drifting a still object cost as much.
- the swap probe (`swap_probe`): the loss with each moving object's direction word swapped for its
  opposite, minus the loss with the right word, at fixed noise levels. Zero means the word is
  ignored; it is logged every `probe_every` steps.
- the binding probe (same function, `kind="bind"`): two-object prompts with the two motion words
  exchanged between the objects. Zero means the model reads the words but not which object each
  belongs to, the failure of the one-object-trained teachers (docs/TEACHERS.md).
"""

from __future__ import annotations

import copy
import json
import math
import random
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pare_bench.checkpoint import load_checkpoint, save_checkpoint
from pare_bench.progress import progress
from pare_bench.tiny.world.conditioning import WorldTextEncoder, image_condition, image_tokens
from pare_bench.tiny.world.prompts import EVAL_SEED_BASE, Prompt, WorldObject, sample_prompt, tokenize, train_objects
from pare_bench.tiny.world.render import BACKGROUND, render, sample_scene
from pare_bench.tiny.zoo import IMAGE_PATCH, TinyWan, build_tiny, load_tiny


@dataclass
class TeacherRecipe:
    steps: int = 6000  # optimizer steps (the LR schedule spans these)
    batch: int = 64  # videos per step
    lr: float = 1e-3  # peak AdamW learning rate
    warmup: int = 200  # linear warm-up steps
    weight_decay: float = 0.01
    ema: float = 0.999  # EMA decay of the shipped weights
    grad_clip: float = 1.0
    prompt_dropout: float = 0.1  # share of null prompts, for CFG
    two_object_prob: float = 0.4  # share of two-object prompts
    time_shift: float = 3.0  # shift of the logit-normal timestep draw towards high noise
    eval_every: int = 500  # steps between EMA evaluations on held-out seeds (0: never)
    checkpoint_every: int = 250
    seed: int = 0
    motion_weight: float = 0.0  # extra loss weight on pixels that change between consecutive frames
    object_weight: float = 0.0  # extra loss weight on pixels an object covers (still objects included)
    init: str | None = None  # start from these weights ("shipped": the package's); None: from scratch
    probe_every: int = 50  # steps between swap probes (0: never)
    text_attention: int = 0  # self-attention layers of the text encoder (more than `init` has: added, zero-init)
    attention_lr_scale: float = 1.0  # learning-rate multiplier of the text encoder's self-attention layers
    text_relative_positions: bool = False  # added attention layers get a learned relative-position bias (as UMT5)


def shifted_timesteps(batch: int, shift: float, generator: torch.Generator) -> torch.Tensor:
    """Logit-normal t in (0, 1), then t' = s t / (1 + (s - 1) t): more weight on high noise for s > 1."""
    t = torch.sigmoid(torch.randn(batch, generator=generator))
    return shift * t / (1 + (shift - 1) * t)


def training_batch(model: TinyWan, recipe: TeacherRecipe, rng: random.Random, device) -> dict:
    """Render a fresh batch of train-split scenes and their conditioning."""
    objects = train_objects()
    prompts = [sample_prompt(rng, objects, recipe.two_object_prob) for _ in range(recipe.batch)]
    scenes = [sample_scene(prompt, rng.randrange(EVAL_SEED_BASE), model.spec.world) for prompt in prompts]
    video = render(scenes, model.spec.world, device) * 2 - 1  # (B, 3, F, H, W) in [-1, 1]
    texts = ["" if rng.random() < recipe.prompt_dropout else prompt.text for prompt in prompts]
    batch = {"video": video, "tokens": torch.tensor([tokenize(text) for text in texts], device=device)}
    if model.spec.task == "i2v":
        first = video[:, :, 0]
        batch["condition"] = image_condition(first, model.spec.world.frames)
        batch["image"] = image_tokens(first, IMAGE_PATCH)
    return batch


def noised_inputs(batch: dict, t: torch.Tensor, noise: torch.Tensor, context: torch.Tensor) -> dict:
    """Transformer forward kwargs for the batch's videos at noise levels t (B,): x_t = (1 - t) x0 + t noise."""
    t_ = t.view(-1, 1, 1, 1, 1)
    noisy = (1 - t_) * batch["video"] + t_ * noise
    hidden = noisy if "condition" not in batch else torch.cat([noisy, batch["condition"]], dim=1)
    kwargs = {"hidden_states": hidden, "timestep": 1000 * t, "encoder_hidden_states": context}
    if "image" in batch:
        kwargs["encoder_hidden_states_image"] = batch["image"]
    return kwargs


def motion_mask(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, F, H, W) -> (B, 1, F, H, W): 1 where a pixel differs from the same pixel one frame before or after."""
    change = (video[:, :, 1:] - video[:, :, :-1]).abs().amax(dim=1, keepdim=True) > 1e-3  # (B, 1, F-1, H, W)
    mask = torch.zeros_like(video[:, :1], dtype=torch.bool)
    mask[:, :, 1:] |= change
    mask[:, :, :-1] |= change
    return mask.float()


def object_mask(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, F, H, W) in [-1, 1] -> (B, 1, F, H, W): 1 where the frame is not the plain background."""
    background = (torch.tensor(BACKGROUND, dtype=video.dtype, device=video.device) * 2 - 1).view(1, 3, 1, 1, 1)
    return ((video - background).abs().amax(dim=1, keepdim=True) > 1e-3).float()


def flow_matching_loss(
    model: TinyWan, batch: dict, recipe: TeacherRecipe, generator: torch.Generator, t: torch.Tensor | None = None
) -> torch.Tensor:
    video = batch["video"]
    if t is None:
        t = shifted_timesteps(video.shape[0], recipe.time_shift, generator).to(video.device)
    noise = torch.randn(video.shape, generator=generator).to(video.device)
    inputs = noised_inputs(batch, t, noise, model.text_encoder(batch["tokens"]))
    prediction = model.transformer(**inputs, return_dict=False)[0]
    weight = 1 + recipe.motion_weight * motion_mask(video)  # (B, 1, F, H, W)
    if recipe.object_weight:
        weight = weight + recipe.object_weight * object_mask(video)
    return ((prediction - (noise - video)) ** 2 * weight).mean()


OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
PROBE_TIMES = (0.5, 0.75, 0.9)


def _probe_prompts(kind: str, size: int) -> list[tuple[Prompt, str]]:
    """`size` fixed probe prompts of `kind`, each with its wrong text.

    - "swap": one moving object; the wrong text names the opposite direction.
    - "bind": two objects of different colours and motions; the wrong text exchanges the two motion words,
      so both texts name the same words and only which object each belongs to differs.
    """
    rng = random.Random(12345)
    objects = train_objects()
    pairs = []
    while len(pairs) < size:
        if kind == "swap":
            first = rng.choice([obj for obj in objects if obj.motion in OPPOSITE])
            wrong = WorldObject(first.colour, first.shape, OPPOSITE[first.motion])
            pairs.append((Prompt((first,)), Prompt((wrong,)).text))
            continue
        first, second = rng.sample(objects, 2)
        if first.colour == second.colour or first.motion == second.motion:
            continue
        wrong = (
            WorldObject(first.colour, first.shape, second.motion),
            WorldObject(second.colour, second.shape, first.motion),
        )
        pairs.append((Prompt((first, second)), Prompt(wrong).text))
    return pairs


def probe_batch(model: TinyWan, size: int = 32, kind: str = "swap") -> tuple[dict, dict]:
    """A fixed batch of probe prompts (`_probe_prompts`) rendered on held-out seeds, and the same videos
    with the wrong text."""
    pairs = _probe_prompts(kind, size)
    scenes = [sample_scene(prompt, EVAL_SEED_BASE + i, model.spec.world) for i, (prompt, _) in enumerate(pairs)]
    video = render(scenes, model.spec.world) * 2 - 1
    batch = {"video": video, "tokens": torch.tensor([tokenize(prompt.text) for prompt, _ in pairs])}
    batch_swapped = {**batch, "tokens": torch.tensor([tokenize(wrong) for _, wrong in pairs])}
    if model.spec.task == "i2v":
        first = video[:, :, 0]
        for b in (batch, batch_swapped):
            b["condition"] = image_condition(first, model.spec.world.frames)
            b["image"] = image_tokens(first, IMAGE_PATCH)
    return batch, batch_swapped


PROBES = ("swap", "bind")


@torch.no_grad()
def swap_probe(model: TinyWan, batches: tuple[dict, dict], name: str = "swap") -> dict[str, float]:
    """Plain (unweighted) loss with the wrong text minus with the right text, at each of PROBE_TIMES,
    keyed `{name}_{t}`. Zero means the model cannot tell the texts apart."""
    plain = TeacherRecipe(motion_weight=0.0)
    deltas = {}
    for level in PROBE_TIMES:
        t = torch.full((batches[0]["video"].shape[0],), level)
        losses = [
            flow_matching_loss(model, b, plain, torch.Generator().manual_seed(7), t).item() for b in batches
        ]  # same noise for both: only the text differs
        deltas[f"{name}_{level}"] = losses[1] - losses[0]
    return deltas


def lr_at(step: int, progress: float, recipe: TeacherRecipe) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak over `progress` in [0, 1]."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _ema_update(ema: TinyWan, model: TinyWan, decay: float) -> None:
    with torch.no_grad():
        for part in ("transformer", "text_encoder"):
            for e, p in zip(getattr(ema, part).parameters(), getattr(model, part).parameters()):
                e.lerp_(p, 1 - decay)


class GracefulStop:
    """Turns SIGINT and SIGTERM into a flag the training loop checks between steps."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = {signum: signal.signal(signum, self._request) for signum in (signal.SIGINT, signal.SIGTERM)}

    def _request(self, signum, frame) -> None:
        self.requested = True

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


ADDED = ("attention", "relative_bias")  # the text encoder's parameters that `with_text_attention` adds


def with_text_attention(encoder: WorldTextEncoder, layers: int, relative: bool = False) -> WorldTextEncoder:
    """`encoder` with `layers` self-attention layers (`relative`: with a relative-position bias); the added
    ones start as the identity (zero output projection), so the model's outputs are unchanged until they
    train."""
    torch.manual_seed(0)
    grown = WorldTextEncoder(**{**encoder.config, "attention_layers": layers, "relative_positions": relative})
    missing, unexpected = grown.load_state_dict(encoder.state_dict(), strict=False)
    assert not unexpected and all(key.startswith(ADDED) for key in missing), (missing, unexpected)
    return grown


def initial_model(name: str, recipe: TeacherRecipe) -> TinyWan:
    """Random weights, or the weights `recipe.init` names ("shipped": the package's copy)."""
    if recipe.init is None:
        model = build_tiny(name, seed=recipe.seed)
    else:
        model = load_tiny(name, None if recipe.init == "shipped" else Path(recipe.init))
    if recipe.text_attention > model.text_encoder.config.attention_layers:
        model.text_encoder = with_text_attention(
            model.text_encoder, recipe.text_attention, recipe.text_relative_positions
        )
    model.transformer.requires_grad_(True)
    model.text_encoder.requires_grad_(True)
    return model


def train_teacher(
    name: str, out: Path, recipe: TeacherRecipe, device: str = "cpu", minutes: float | None = None
) -> Path:
    """Train (or resume) a teacher in `out`; returns the directory of the EMA weights."""
    out.mkdir(parents=True, exist_ok=True)
    model = initial_model(name, recipe).to(device)
    ema = copy.deepcopy(model)
    params = [*model.transformer.parameters(), *model.text_encoder.parameters()]
    attention = {id(p) for n, p in model.text_encoder.named_parameters() if n.startswith(ADDED)}
    groups = [{"params": [p for p in params if id(p) not in attention], "lr_scale": 1.0}]
    if attention:  # the zero-initialised layers grow from nothing: a larger step lets them matter sooner
        groups.append({"params": [p for p in params if id(p) in attention], "lr_scale": recipe.attention_lr_scale})
    optimizer = torch.optim.AdamW(groups, lr=recipe.lr, weight_decay=recipe.weight_decay)
    state = {
        "step": 0,
        "rng": random.Random(recipe.seed).getstate(),
        "torch_rng": torch.Generator().manual_seed(recipe.seed).get_state(),
    }
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists():
        state = load_checkpoint(checkpoint, model=model, ema=ema, optimizer=optimizer)
    rng = random.Random()
    rng.setstate(state["rng"])
    generator = torch.Generator()
    generator.set_state(state["torch_rng"])
    log = (out / "log.jsonl").open("a")
    deadline = time.monotonic() + 60 * minutes if minutes else math.inf
    model.transformer.train()
    step = state["step"]
    probes = {kind: probe_batch(model, kind=kind) for kind in PROBES} if recipe.probe_every else None
    stop = GracefulStop()  # SIGINT / SIGTERM: finish the step, write the checkpoint and the EMA, then return
    with progress(
        None,
        TextColumn(f"train {name}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("train", total=recipe.steps, completed=step, loss=float("nan"))
        started = time.monotonic()
        while step < recipe.steps and time.monotonic() < deadline and not stop.requested:
            # With a wall-clock budget the schedule follows whichever runs out first, steps or time.
            share = max(step / recipe.steps, (time.monotonic() - started) / (deadline - started))
            lr = lr_at(step, share, recipe)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            loss = flow_matching_loss(model, training_batch(model, recipe, rng, device), recipe, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
            optimizer.step()
            _ema_update(ema, model, recipe.ema if step > recipe.warmup else 0.0)
            step += 1
            bar.update(task, completed=step, loss=loss.item())
            record = {"step": step, "loss": loss.item(), "lr": lr, "seconds": time.monotonic() - started}
            if probes and (step % recipe.probe_every == 0 or step == 1):
                for kind, batches in probes.items():  # the EMA is what ships and what is evaluated
                    record.update(swap_probe(ema, batches, kind))
                probe = " ".join(f"{k} {v:+.5f}" for k, v in record.items() if k.startswith(PROBES))
                bar.console.print(f"step {step} loss {loss.item():.4f} {probe}")
            if recipe.eval_every and step % recipe.eval_every == 0:
                from pare_bench.tiny.evaluate import evaluate  # sampling and scoring: not needed to build the CLI

                record["eval"] = evaluate(ema, "eval")
                bar.console.print(f"step {step} eval {json.dumps({k: round(v, 3) for k, v in record['eval'].items()})}")
            log.write(json.dumps(record) + "\n")
            if step % recipe.checkpoint_every == 0 or step == recipe.steps:
                save_checkpoint(
                    checkpoint,
                    model=model,
                    ema=ema,
                    optimizer=optimizer,
                    state={
                        "step": step,
                        "rng": rng.getstate(),
                        "torch_rng": generator.get_state(),
                        "recipe": asdict(recipe),
                    },
                )
                log.flush()
    stop.restore()
    log.close()
    save_checkpoint(
        checkpoint,
        model=model,
        ema=ema,
        optimizer=optimizer,
        state={"step": step, "rng": rng.getstate(), "torch_rng": generator.get_state(), "recipe": asdict(recipe)},
    )
    ema.to("cpu").save(out / "ema")
    return out / "ema"
