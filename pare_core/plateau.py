"""Stop a training stage when its held-out validation loss stops falling.

A fixed step count either stops while the loss still falls (the students of the first tiny runs) or spends
compute after it has flattened. `Plateau` reads a validation loss every `every` steps and says stop after
`patience` validations in a row that did not beat the best one by `min_delta` (relative). Its state goes into
the stage's checkpoint, so a resumed run stops where an uninterrupted one would.

`start` keeps the rule off while the stage's objective still moves on a schedule: validations before it are
recorded and set the best, but never count toward patience. The joint stage anneals its gate temperature over
its whole length, and its validation loss flattens for a while mid-anneal before it falls again (a router
stopped there at step 500 with a validation loss of 0.067; the same recipe on another seed, run on, reached
0.018), so it sets `start` to the anneal's end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Plateau:
    every: int  # steps between validations
    patience: int = 3  # validations without an improvement before the stage stops
    min_delta: float = 0.01  # relative improvement over the best loss that counts as one
    start: int = 0  # the first step whose validation may count toward patience
    best: float = math.inf
    since_best: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)

    def __post_init__(self):
        if self.every < 1 or self.patience < 1 or not 0 <= self.min_delta < 1:
            raise ValueError(f"Plateau needs every >= 1, patience >= 1 and 0 <= min_delta < 1, got {self}")

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def update(self, step: int, loss: float) -> bool:
        """Record the validation loss at `step`; True when the stage should stop."""
        self.history.append((step, loss))
        if loss < self.best * (1 - self.min_delta):
            self.best, self.since_best = loss, 0
        elif step >= self.start:
            self.since_best += 1
        else:
            self.since_best = 0
        return self.stopped

    @property
    def stopped(self) -> bool:
        return self.since_best >= self.patience and bool(self.history) and self.history[-1][0] >= self.start

    def state_dict(self) -> dict:
        return {"best": self.best, "since_best": self.since_best, "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.since_best = state["best"], state["since_best"]
        self.history = [tuple(item) for item in state["history"]]


def validation_loss(models: tuple[nn.Module, ...], loss: Callable[[], torch.Tensor]) -> float:
    """`loss()` with `models` in eval mode and no gradients, their modes restored after."""
    modes = [model.training for model in models]
    try:
        for model in models:
            model.eval()
        with torch.no_grad():
            return float(loss())
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)


def resume_plateau(plateau: Plateau | None, state: dict) -> None:
    """Restore the plateau's state from a stage checkpoint (one written with `with_plateau`)."""
    if plateau is not None and "plateau" in state:
        plateau.load_state_dict(state["plateau"])


def with_plateau(checkpoint: dict, plateau: Plateau | None) -> dict:
    """The checkpoint with the plateau's state in it."""
    return checkpoint if plateau is None else {**checkpoint, "plateau": plateau.state_dict()}


def validate_step(
    record: dict, plateau: Plateau | None, validate: Callable | None, models: tuple[nn.Module, ...]
) -> bool:
    """At a validation step: put `val_loss` in `record` and return whether the plateau says stop."""
    if plateau is None or validate is None or not plateau.due(record["step"]):
        return False
    record["val_loss"] = validation_loss(models, lambda: validate(models[0]))
    stop = plateau.update(record["step"], record["val_loss"])
    if stop:
        record["stopped"] = "plateau"
    return stop
