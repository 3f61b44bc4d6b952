"""Held-out accuracy of a multinomial logistic regression: how much of a label a set of features carries.

Used for the world's first-frame leak (`world.trivial.first_frame_leak`) and for what the router's content
features carry (`content_probe`). Fitted with L-BFGS and a small L2 penalty on standardised features: a plain,
well-understood classifier, and scikit-learn is not a dependency of the project for these fits.
"""

from __future__ import annotations

import torch


def probe_accuracy(
    x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, classes: int
) -> float:
    """Fit on (x_train (N, D), y_train (N,)) and return the accuracy on (x_test, y_test)."""
    x_train, x_test = x_train.float(), x_test.float()
    mean, std = x_train.mean(0), x_train.std(0) + 1e-3
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    torch.manual_seed(0)
    linear = torch.nn.Linear(x_train.shape[1], classes)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(x_train), y_train) + 1e-3 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float((linear(x_test).argmax(1) == y_test).float().mean())


def majority_share(y_train: torch.Tensor, y_test: torch.Tensor) -> float:
    """The chance level: accuracy on y_test of always answering y_train's most common label."""
    return float((y_test == torch.mode(y_train).values).float().mean())
