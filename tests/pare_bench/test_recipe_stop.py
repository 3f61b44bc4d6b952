import json

import pytest

from pare_bench.artifacts import recipe_hash
from pare_bench.suite import StopRule, WidthRecipe
from pare_bench.tiny.recipes import width_student
from pare_bench.tiny.zoo import load_tiny


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


@pytest.mark.slow
def test_a_stop_rule_ends_step_distillation_on_held_out_trajectories(tmp_path):
    from pare_bench.artifacts import artifact_hash, step_hash
    from pare_bench.suite import Recipe, StepDistillRecipe
    from pare_bench.tiny.recipes import sd_student

    teacher = load_tiny("tiny-wan-t2v")
    plain = StepDistillRecipe(steps=2, substeps=1, trajectories=8, train_steps=40, batch=2)
    before = {"step_distill": {k: v for k, v in plain.model_dump(mode="json").items() if k != "stop"}}
    assert step_hash("t", Recipe(step_distill=plain)) == artifact_hash("t", before)  # older students keep their hash
    stopping = plain.model_copy(update={"stop": StopRule(every=2, patience=1, min_delta=0.5)})
    assert step_hash("t", Recipe(step_distill=stopping)) != step_hash("t", Recipe(step_distill=plain))
    sd_student(teacher, Recipe(step_distill=stopping), root=tmp_path)
    (folder,) = tmp_path.glob("tiny-wan-t2v/sd-*")
    assert len(list((folder / "validation").glob("*.pt"))) == 2  # 16 held-out trajectories, in chunks of 8
    log = [json.loads(line) for line in (folder / "step_distill_log.jsonl").read_text().splitlines()]
    assert log[-1].get("stopped") == "plateau" and log[-1]["step"] < 40


def test_a_static_floor_enters_the_depth_hash_only_when_set():
    from pare_bench.artifacts import artifact_hash, depth_hash
    from pare_bench.suite import DepthRecipe, Recipe

    plain = DepthRecipe(budget=0.64, router="static")
    parts = {k: v for k, v in plain.model_dump(mode="json").items() if k not in ("rank_weight", "pool", "content")}
    later = ("stop", "static_floor", "anneal")  # fields added after the first depth students were trained
    before = {"width": None, "depth": {k: v for k, v in parts.items() if k not in later}}
    assert depth_hash("t", Recipe(depth=plain)) == artifact_hash("t", before)  # older students keep their hash
    floored = plain.model_copy(update={"static_floor": 0.58})
    assert depth_hash("t", Recipe(depth=floored)) != depth_hash("t", Recipe(depth=plain))


def test_an_anneal_enters_the_depth_hash_only_when_set_and_fits_in_the_cap():
    from pare_bench.artifacts import artifact_hash, depth_hash
    from pare_bench.suite import DepthRecipe, Recipe

    plain = DepthRecipe(budget=0.64, steps=2400)
    before = {"width": None, "depth": {k: v for k, v in plain.model_dump(mode="json").items() if v is not None}}
    assert depth_hash("t", Recipe(depth=plain)) == artifact_hash("t", before)  # older students keep their hash
    annealed = plain.model_copy(update={"anneal": 1200})
    assert depth_hash("t", Recipe(depth=annealed)) != depth_hash("t", Recipe(depth=plain))
    with pytest.raises(ValueError, match="anneal 2401 is longer than the stage's 2400 steps"):
        DepthRecipe(budget=0.64, steps=2400, anneal=2401)


def _log(directory, stage="joint"):
    return [json.loads(line) for line in (directory / f"{stage}_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_higher_cap_continues_the_shorter_run_of_the_same_schedule(tmp_path):
    from pare_bench.suite import DepthRecipe, Recipe
    from pare_bench.tiny.recipes import depth_directory, depth_student

    teacher = load_tiny("tiny-wan-t2v")
    short = Recipe(depth=DepthRecipe(budget=0.64, router="timestep", steps=4, pool=0))
    longer = Recipe(depth=short.depth.model_copy(update={"steps": 8, "anneal": 4}))  # the same anneal, run on
    other = Recipe(depth=short.depth.model_copy(update={"steps": 8}))  # anneals over 8 steps: not a continuation
    for recipe in (short, longer, other):
        depth_student(teacher, recipe, root=tmp_path)
    folders = {name: depth_directory(teacher, r, tmp_path) for name, r in [("short", short), ("longer", longer),
                                                                           ("other", other)]}  # fmt: skip
    record = json.loads((folders["longer"] / "recipe.json").read_text())
    assert record["continued_from"] == folders["short"].name and record["continued_at"] == 4
    assert _log(folders["longer"])[:4] == _log(folders["short"]) and _log(folders["longer"])[4]["step"] == 5
    assert [r["step"] for r in _log(folders["longer"])] == list(range(1, 9))
    assert "continued_from" not in json.loads((folders["other"] / "recipe.json").read_text())
    assert [r["step"] for r in _log(folders["other"])] == list(range(1, 9))


@pytest.mark.slow
def test_a_higher_cap_continues_the_shorter_step_distillation_with_its_trajectories(tmp_path):
    from pare_bench.suite import Recipe, StepDistillRecipe
    from pare_bench.tiny.recipes import sd_directory, sd_student

    teacher = load_tiny("tiny-wan-t2v")
    short = Recipe(step_distill=StepDistillRecipe(steps=2, substeps=1, trajectories=8, train_steps=3, batch=2))
    longer = Recipe(step_distill=short.step_distill.model_copy(update={"train_steps": 6}))
    for recipe in (short, longer):
        sd_student(teacher, recipe, root=tmp_path)
    before, after = sd_directory(teacher, short, tmp_path), sd_directory(teacher, longer, tmp_path)
    record = json.loads((after / "recipe.json").read_text())
    assert record["continued_from"] == before.name and record["continued_at"] == 3
    assert _log(after, "step_distill")[:3] == _log(before, "step_distill")
    assert [r["step"] for r in _log(after, "step_distill")] == list(range(1, 7))
    names = sorted(p.name for p in (before / "trajectories").iterdir())
    assert names and names == sorted(p.name for p in (after / "trajectories").iterdir())


def _finished_run(root, name, depth, teacher="t"):
    """A fake finished joint stage: its record and a checkpoint file (continue_shorter_run copies, never reads)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "recipe.json").write_text(json.dumps({"teacher": teacher, "width": None, "depth": depth.model_dump()}))
    (folder / "joint.pt").write_text(name)
    return folder


def test_only_a_prefix_of_the_same_schedule_is_continued_and_the_longest_wins(tmp_path):
    from pare_bench.artifacts import continue_shorter_run
    from pare_bench.suite import DepthRecipe, Recipe, StopRule

    rule = StopRule(every=50, patience=3, min_delta=0.01)
    target = DepthRecipe(budget=0.64, steps=6000, anneal=2400, stop=rule.model_copy(update={"patience": 5}))
    more_patient, other_gain = rule.model_copy(update={"patience": 6}), rule.model_copy(update={"min_delta": 0.02})
    unrelated = {
        "depth-other-teacher": (target.model_copy(update={"steps": 2400}), "u"),
        "depth-other-anneal": (target.model_copy(update={"steps": 3000, "anneal": None}), "t"),  # over all 3,000
        "depth-other-budget": (target.model_copy(update={"steps": 2400, "budget": 0.5}), "t"),
        "depth-longer-cap": (target.model_copy(update={"steps": 7000}), "t"),
        "depth-more-patient": (target.model_copy(update={"steps": 2400, "stop": more_patient}), "t"),
        "depth-other-gain": (target.model_copy(update={"steps": 2400, "stop": other_gain}), "t"),
    }
    for name, (depth, teacher) in unrelated.items():
        _finished_run(tmp_path, name, depth, teacher)
    assert continue_shorter_run(tmp_path / "depth-new", "t", Recipe(depth=target)) is None
    _finished_run(tmp_path, "depth-a-short", target.model_copy(update={"steps": 1200, "anneal": 1200}))
    _finished_run(tmp_path, "depth-b-long", target.model_copy(update={"steps": 2400, "anneal": None, "stop": rule}))
    continued = continue_shorter_run(tmp_path / "depth-new", "t", Recipe(depth=target))
    assert continued == {"continued_from": "depth-b-long", "continued_at": 2400}  # less patient, anneal over 2,400
    assert (tmp_path / "depth-new" / "joint.pt").read_text() == "depth-b-long"
    assert continue_shorter_run(tmp_path / "depth-new", "t", Recipe(depth=target)) is None  # has its own now
