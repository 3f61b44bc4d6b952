import json

import pytest

from pare_bench.checkpoint import CorruptCheckpointError
from pare_bench.train_teacher import TeacherRecipe, train_teacher
from pare_bench.zoo import load_tiny


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
