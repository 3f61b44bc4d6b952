"""Training stages that stop when the held-out validation loss stops falling."""

import copy

import pytest
import torch
from diffusers import WanTransformer3DModel
from wan_tiny import CONFIG, inputs

from pare_core.distill import RecoveryConfig, recover
from pare_core.plateau import Plateau
from pare_core.prune import HeadPlan, prune_heads


def test_plateau_stops_after_patience_validations_without_a_real_improvement():
    plateau = Plateau(every=10, patience=2, min_delta=0.02)
    decisions = [plateau.update(10 * (i + 1), loss) for i, loss in enumerate([1.0, 0.8, 0.79, 0.795, 0.5])]
    assert decisions == [False, False, False, True, False]  # 0.79 and 0.795 are within 2% of 0.8
    assert plateau.best == 0.5 and plateau.history[0] == (10, 1.0)
    restored = Plateau(every=10)
    restored.load_state_dict(plateau.state_dict())
    assert restored.state_dict() == plateau.state_dict()
    with pytest.raises(ValueError, match="patience >= 1"):
        Plateau(every=10, patience=0)


def test_validations_before_start_set_the_best_but_never_stop_the_stage():
    losses = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8]  # flat mid-schedule, then a drop, then a real plateau
    plateau = Plateau(every=10, patience=2, min_delta=0.01, start=60)
    decisions = [plateau.update(10 * (i + 1), loss) for i, loss in enumerate(losses)]
    assert decisions == [False] * 8 + [True]  # the flat stretch at 30-60 counts for nothing; 80 and 90 do
    assert plateau.best == 0.8 and plateau.stopped
    # a checkpoint written by a rule without `start` that had stopped mid-schedule resumes and runs on
    early = Plateau(every=10, patience=2, min_delta=0.01)
    assert [early.update(10 * (i + 1), loss) for i, loss in enumerate(losses[:4])][-1]
    resumed = Plateau(every=10, patience=2, min_delta=0.01, start=60)
    resumed.load_state_dict(early.state_dict())
    assert not resumed.stopped
    assert not resumed.update(50, 0.9) and resumed.since_best == 0


def _stage(teacher, student, steps, plateau, state=None, saved=None, log=None):
    held_out = [inputs(batch=2, seed=1000 + i) for i in range(2)]

    def validate(model):
        return sum(
            torch.nn.functional.mse_loss(model(**x, return_dict=False)[0], teacher(**x, return_dict=False)[0])
            for x in held_out
        ) / len(held_out)

    config = RecoveryConfig(steps=steps, lr=3e-3, warmup=1, checkpoint_every=4)
    return recover(
        student,
        teacher,
        lambda step: inputs(batch=2, seed=step),
        config,
        state=state,
        on_checkpoint=None if saved is None else lambda state: saved.append(copy.deepcopy(state)),
        on_step=None if log is None else log.append,
        validate=validate,
        plateau=plateau,
    )


def test_recovery_stops_on_a_plateau_and_a_resumed_run_stops_at_the_same_step():
    torch.manual_seed(0)
    teacher = WanTransformer3DModel(**CONFIG).eval()
    plan = HeadPlan(((0, 1, 2, 3),) * CONFIG["num_layers"])
    student = prune_heads(teacher, plan)
    log, saved = [], []
    _stage(teacher, copy.deepcopy(student), 400, Plateau(every=4, patience=2, min_delta=0.05), saved=saved, log=log)
    stop = log[-1]
    assert stop.get("stopped") == "plateau" and stop["step"] < 400  # it stopped itself, well before the cap
    validations = [r["val_loss"] for r in log if "val_loss" in r]
    assert len(validations) == stop["step"] // 4 and validations[-1] < validations[0]
    assert saved[-1]["step"] == stop["step"] and saved[-1]["plateau"]["since_best"] == 2
    resumed_log = []
    middle = saved[len(saved) // 2]
    plateau = Plateau(every=4, patience=2, min_delta=0.05)
    _stage(teacher, copy.deepcopy(student), 400, plateau, state=middle, log=resumed_log)
    assert resumed_log[-1]["step"] == stop["step"]
    assert resumed_log[-1]["val_loss"] == pytest.approx(stop["val_loss"], rel=1e-5)
