"""Training stages as their logs say: steps, the plateau stop, the validation curve and compute time."""

import json

from pare_bench.artifacts import stage_summary
from pare_bench.plots import plot_training
from pare_bench.records import record_line


def _log(directory, lines):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "recovery_log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_stage_summary_reads_the_curve_and_leaves_a_resume_out_of_the_time(tmp_path):
    times = [0.0, 1.5, 3.0, 1003.0, 1004.5]  # stopped after step 3, resumed 1,000 s later
    lines = [{"step": i + 1, "loss": 0.1, "time": t} for i, t in enumerate(times)]
    lines[1]["val_loss"], lines[4]["val_loss"] = 0.02, 0.01
    lines[4]["stopped"] = "plateau"
    _log(tmp_path / "width-abc", lines)
    summary = stage_summary(tmp_path / "width-abc", "recovery")
    assert summary["steps"] == 5 and summary["stopped"] == "plateau" and summary["directory"] == "width-abc"
    assert summary["curve"] == [[2, 0.02], [5, 0.01]]
    assert summary["seconds"] == 1.5 + 1.5 + 1.5  # the 1,000 s pause is not compute
    record_line({"kind": "training", "system": "pw", **summary})  # a valid run record


def test_a_log_without_times_has_no_compute_time_and_no_log_no_summary(tmp_path):
    _log(tmp_path / "width-old", [{"step": 1, "loss": 0.1}, {"step": 2, "loss": 0.1, "val_loss": 0.05}])
    assert stage_summary(tmp_path / "width-old", "recovery")["seconds"] is None
    assert stage_summary(tmp_path / "nothing", "recovery") is None


def test_training_plot_is_drawn_from_training_records(tmp_path):
    curve = [[50, 0.02], [100, 0.01]]
    records = [
        {"kind": "training", "system": s, "stage": "recovery", "directory": "width-a", "steps": 100,
         "stopped": "plateau", "seconds": 10.0, "curve": curve}
        for s in ("pare-s0", "pare+sd-s0")
    ]  # fmt: skip
    assert plot_training(records, tmp_path / "training.png") and (tmp_path / "training.png").stat().st_size > 0
    assert not plot_training([], tmp_path / "none.png")


def test_a_stage_started_from_scratch_replaces_a_log_left_without_its_checkpoint(tmp_path):
    """A shipped log (or one whose checkpoint was deleted) must not be continued by a new training's steps; a
    resume from a checkpoint continues its log."""
    from pare_bench.artifacts import training_stage

    directory = tmp_path / "width-abc"
    _log(directory, [{"step": 1, "loss": 0.5, "time": 0.0}, {"step": 2, "loss": 0.4, "time": 1.0}])
    with training_stage(directory, "recovery", 3) as (state, on_step, on_checkpoint):
        assert state is None
        on_step({"step": 1, "loss": 0.3})
        on_checkpoint({"step": 1})
    assert [line["loss"] for line in map(json.loads, (directory / "recovery_log.jsonl").open())] == [0.3]
    with training_stage(directory, "recovery", 3) as (state, on_step, on_checkpoint):
        assert state == {"step": 1}
        on_step({"step": 2, "loss": 0.2})
    assert stage_summary(directory, "recovery")["steps"] == 2
