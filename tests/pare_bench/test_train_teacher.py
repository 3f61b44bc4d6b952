import json

import pytest
import torch

from pare_bench.checkpoint import CorruptCheckpointError
from pare_bench.tiny.train_teacher import TeacherRecipe, train_teacher
from pare_bench.tiny.zoo import load_tiny


@pytest.mark.slow
def test_training_checkpoints_resume_and_detect_corruption(tmp_path):
    recipe = TeacherRecipe(steps=2, batch=2, eval_every=0, checkpoint_every=1, warmup=1)
    ema_dir = train_teacher("tiny-wan-t2v", tmp_path, recipe)
    assert load_tiny("tiny-wan-t2v", ema_dir).transformer.config.num_layers == 8
    longer = TeacherRecipe(steps=3, batch=2, eval_every=0, checkpoint_every=1, warmup=1)
    train_teacher("tiny-wan-t2v", tmp_path, longer)
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # resumed at step 2, did not redo steps 1-2
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-100])
    with pytest.raises(CorruptCheckpointError, match="checkpoint.pt"):
        train_teacher("tiny-wan-t2v", tmp_path, longer)


def test_motion_mask_marks_the_pixels_that_change_between_frames():
    import torch

    from pare_bench.tiny.train_teacher import motion_mask
    from pare_bench.tiny.world.render import render, sample_scene

    still, moving = (render([sample_scene(f"a red square {m}", 3)]) for m in ("standing still", "moving right"))
    assert motion_mask(still).sum() == 0
    share = float(motion_mask(moving).mean())
    assert 0.05 < share < 0.3, share  # the leading and trailing edges, not the whole frame
    assert torch.equal(motion_mask(moving)[:, :, 0], motion_mask(moving)[:, :, 0].bool().float())


def test_object_mask_covers_still_objects_that_the_motion_mask_misses():
    from pare_bench.tiny.train_teacher import motion_mask, object_mask
    from pare_bench.tiny.world.render import BACKGROUND, render, sample_scene

    still = render([sample_scene("a red square standing still", 3)]) * 2 - 1  # training range [-1, 1]
    mask = object_mask(still)
    assert motion_mask(still).sum() == 0 and mask.sum() > 0
    assert torch.equal(mask[:, :, 0], mask[:, :, -1])  # a still object covers the same pixels in every frame
    background = torch.tensor(BACKGROUND).view(1, 3, 1, 1, 1).expand_as(still) * 2 - 1
    assert object_mask(background).sum() == 0


def test_swap_probe_is_zero_for_a_model_blind_to_words_and_not_for_the_teacher():
    """The probe swaps each direction word for its opposite: a model whose text encoder outputs a constant
    cannot tell, so the loss difference is exactly zero; the shipped teacher reads its words."""
    import torch

    from pare_bench.tiny.train_teacher import probe_batch, swap_probe

    teacher = load_tiny("tiny-wan-t2v")
    batches = probe_batch(teacher, size=4)
    assert any(abs(v) > 0 for v in swap_probe(teacher, batches).values())
    with torch.no_grad():
        teacher.text_encoder.word.weight.zero_()  # every word the same embedding
    assert all(v == 0.0 for v in swap_probe(teacher, batches).values())


def test_binding_probe_exchanges_the_motion_words_between_two_objects():
    """The binding probe's wrong text holds the same words as the right one, in another order: each object
    gets the other's motion. A model that ignores words scores exactly zero on it."""
    import torch

    from pare_bench.tiny.train_teacher import _probe_prompts, probe_batch, swap_probe
    from pare_bench.tiny.world.prompts import parse_prompt

    pairs = _probe_prompts("bind", 16)
    for prompt, wrong in pairs:
        right, exchanged = prompt.objects, parse_prompt(wrong).objects
        assert [o.motion for o in exchanged] == [o.motion for o in reversed(right)] != [o.motion for o in right]
        assert [(o.colour, o.shape) for o in exchanged] == [(o.colour, o.shape) for o in right]
        assert sorted(prompt.text.split()) == sorted(wrong.split())
    teacher = load_tiny("tiny-wan-t2v")
    batches = probe_batch(teacher, size=4, kind="bind")
    assert set(swap_probe(teacher, batches, "bind")) == {"bind_0.5", "bind_0.75", "bind_0.9"}
    with torch.no_grad():
        teacher.text_encoder.word.weight.zero_()
    assert all(v == 0.0 for v in swap_probe(teacher, batches, "bind").values())


@pytest.mark.slow
def test_training_from_shipped_weights_stops_cleanly_on_sigint(tmp_path):
    import os
    import signal
    import threading

    recipe = TeacherRecipe(steps=50, batch=2, eval_every=0, checkpoint_every=100, warmup=1, init="shipped")
    before = signal.getsignal(signal.SIGINT)  # CI runs in the background, where SIGINT starts out ignored
    threading.Timer(3.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    ema_dir = train_teacher("tiny-wan-t2v", tmp_path, recipe)
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert 0 < len(steps) < 50  # stopped early, after a whole step
    assert (ema_dir / "transformer").is_dir() and (tmp_path / "checkpoint.pt").is_file()
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def test_text_attention_starts_as_the_identity_and_round_trips(tmp_path):
    from pare_bench.tiny.train_teacher import TeacherRecipe, initial_model
    from pare_bench.tiny.world.prompts import tokenize

    shipped = load_tiny("tiny-wan-t2v")
    grown = initial_model("tiny-wan-t2v", TeacherRecipe(init="shipped", text_attention=1))
    ids = torch.tensor([tokenize("a magenta circle standing still and a yellow square moving down")])
    assert grown.text_encoder.config.attention_layers == 1
    assert torch.equal(grown.text_encoder(ids), shipped.text_encoder(ids))  # zero-init: nothing changes yet
    with torch.no_grad():
        grown.text_encoder.attentions[0].out_proj.weight.normal_()
    grown.save(tmp_path)
    loaded = load_tiny("tiny-wan-t2v", tmp_path)
    assert torch.equal(loaded.text_encoder(ids), grown.text_encoder(ids))
    assert not torch.equal(loaded.text_encoder(ids), shipped.text_encoder(ids))  # now each word sees its phrase


def test_relative_positions_let_a_motion_word_read_its_own_object():
    """With the relative-position bias, changing the colour of the motion word's own object moves the word's
    output more than changing the other object's colour (the window looks back along the phrase). Without it
    the positions are all the attention has to tell the phrases apart, and at their trained size (norm ~0.3
    beside words of ~8) the two changes were equal. A transposed offset table would look forward and fail."""
    from pare_bench.tiny.train_teacher import TeacherRecipe, initial_model
    from pare_bench.tiny.world.prompts import tokenize

    recipe = TeacherRecipe(init="shipped", text_attention=1, text_relative_positions=True)
    encoder = initial_model("tiny-wan-t2v", recipe).text_encoder
    with torch.no_grad():
        encoder.attentions[0].out_proj.weight.copy_(torch.eye(encoder.config.dim))
    prompts = [
        "a red circle moving up and a blue square standing still",
        "a green circle moving up and a blue square standing still",  # own colour changed
        "a red circle moving up and a green square standing still",  # other colour changed
    ]
    out = encoder(torch.tensor([tokenize(p) for p in prompts])).detach()
    up = tokenize(prompts[0]).index(tokenize("up")[0])
    own, other = (out[0, up] - out[1, up]).norm(), (out[0, up] - out[2, up]).norm()
    assert own > 3 * other


def test_the_attention_learning_rate_scale_reaches_only_the_added_layers(tmp_path):
    """One step of training from shipped weights with `attention_lr_scale` 10: the zero-initialised attention
    layers take their first step at 10x the rate (AdamW's first step moves every weight by about its rate), and
    the other weights at 1x."""
    from pare_bench.checkpoint import load_state
    from pare_bench.tiny.train_teacher import initial_model

    recipe = TeacherRecipe(
        steps=1, batch=2, warmup=1, eval_every=0, probe_every=0, init="shipped", text_attention=1,
        attention_lr_scale=10.0, lr=1e-3, weight_decay=0.0,
    )  # fmt: skip
    train_teacher("tiny-wan-t2v", tmp_path, recipe)
    before = initial_model("tiny-wan-t2v", recipe).text_encoder.state_dict()
    after = load_state(tmp_path / "checkpoint.pt")["model.text_encoder"]
    step = {k: float((after[k] - before[k]).abs().max()) for k in before}
    assert step["attentions.0.out_proj.weight"] == pytest.approx(1e-2, rel=0.05)
    assert step["mlp.0.weight"] == pytest.approx(1e-3, rel=0.05)
