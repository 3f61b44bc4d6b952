"""Step distillation on a tiny random Wan: the teacher trajectory, targets that reproduce it, training, resume."""

import copy

import torch
from diffusers import WanTransformer3DModel
from wan_tiny import CONFIG, inputs

from pare_core.step_distill import (
    StepDistillConfig,
    distill_steps,
    segment_targets,
    student_sigmas,
    teacher_trajectory,
)


def test_student_sigmas_are_the_samplers():
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    scheduler.set_timesteps(4)
    sigmas = student_sigmas(4, 3.0)
    assert torch.equal(sigmas, scheduler.sigmas.float()) and sigmas[0] == 1 and sigmas[-1] == 0


def test_targets_cross_each_segment_in_one_euler_step():
    """A linear flow is integrated exactly, and one Euler step with the target lands on the teacher's state."""
    sigmas = student_sigmas(4, 3.0)
    data = torch.randn(2, 3, 4, 8, 8)
    noise = torch.randn(2, 3, 4, 8, 8)
    states = teacher_trajectory(lambda x, sigma: noise - data, noise, sigmas, substeps=3)
    torch.testing.assert_close(states[-1], data, atol=1e-5, rtol=0)  # straight flow: Euler is exact
    targets = segment_targets(states, sigmas)
    for k in range(4):
        torch.testing.assert_close(states[k] + (sigmas[k + 1] - sigmas[k]) * targets[k], states[k + 1])


def test_training_lowers_the_loss_and_resumes_exactly():
    torch.manual_seed(0)
    student = WanTransformer3DModel(**CONFIG)
    start = copy.deepcopy(student)
    target = torch.randn(2, 3, 8, 24, 24)

    def pairs_at(step):
        return inputs(2, seed=0), target

    config = StepDistillConfig(train_steps=30, warmup=1, lr=1e-3, checkpoint_every=15)
    log, saved = [], []
    distill_steps(student, pairs_at, config, on_step=log.append, on_checkpoint=lambda s: saved.append(copy.deepcopy(s)))
    assert log[-1]["loss"] < 0.7 * log[0]["loss"]
    resumed = copy.deepcopy(start)
    distill_steps(resumed, pairs_at, config, state=saved[0])  # from step 15 to 30
    for a, b in zip(resumed.parameters(), student.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
