import json

import pytest

from pare_bench.recipes import recipe_hash, width_student
from pare_bench.suite import StopRule, WidthRecipe
from pare_bench.zoo import load_tiny


@pytest.mark.slow
def test_a_stop_rule_ends_recovery_on_a_plateau_and_leaves_old_hashes_alone(tmp_path):
    teacher = load_tiny("tiny-wan-t2v")
    plain = WidthRecipe(ratio=0.5, recovery_steps=60)
    assert recipe_hash("t", plain) == recipe_hash("t", WidthRecipe(ratio=0.5, recovery_steps=60, stop=None))
    stopping = WidthRecipe(ratio=0.5, recovery_steps=60, stop=StopRule(every=2, patience=1, min_delta=0.5))
    assert recipe_hash("t", stopping) != recipe_hash("t", plain)
    width_student(teacher, stopping, root=tmp_path)
    (log_path,) = tmp_path.glob("tiny-wan-t2v/width-*/recovery_log.jsonl")
    log = [json.loads(line) for line in log_path.read_text().splitlines()]
    # a 50% improvement every 2 steps cannot last: the stage stops itself long before its cap of 60
    assert log[-1].get("stopped") == "plateau" and log[-1]["step"] < 60
    assert all("val_loss" in r for r in log if r["step"] % 2 == 0)
