"""Recipe artifacts are keyed by the teacher's weights, not only its name."""

import torch

from pare_bench.tiny.recipes import profile_path, teacher_key
from pare_bench.tiny.zoo import build_tiny


def test_a_retrained_teacher_gets_new_artifact_keys(tmp_path):
    teacher = build_tiny("tiny-wan-t2v", seed=0)
    key = teacher_key(teacher)
    assert key.startswith("tiny-wan-t2v@") and key == teacher_key(build_tiny("tiny-wan-t2v", seed=0))
    with torch.no_grad():
        next(teacher.transformer.parameters()).add_(1e-3)
    assert teacher_key(teacher) != key
    assert profile_path(teacher, tmp_path) != profile_path(build_tiny("tiny-wan-t2v", seed=0), tmp_path)
