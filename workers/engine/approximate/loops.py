"""Pieces the unlearning methods share: copying the model, batches, optimizers, progress."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from workers.engine.data import RecordArrays

# Called with (steps completed, steps in total), like the trainer's per-epoch progress.
StepProgress = Callable[[int, int], None]

_PROGRESS_REPORTS = 20


def working_copy(model: nn.Module) -> nn.Module:
    """A deep copy in train mode on the model's device; the input model is never modified."""
    clone = copy.deepcopy(model)
    clone.train()
    return clone


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with gradients off, for a teacher."""
    clone = copy.deepcopy(model)
    clone.eval()
    for parameter in clone.parameters():
        parameter.requires_grad_(False)
    return clone


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def on_device(records: RecordArrays, *, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels as tensors on `device`."""
    return (
        torch.from_numpy(np.ascontiguousarray(records.features)).to(device),
        torch.from_numpy(np.ascontiguousarray(records.labels)).to(device),
    )


def endless_batches(
    *, count: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """Index batches over `count` records, reshuffled every pass, never ending.

    Each pass is cut into ``batches_per_pass(count, batch_size)`` batches of near-equal size (65
    records in batches of 64 give 33 + 32, not 64 + 1), so no record weighs more than another.
    """
    if count == 0:
        raise ValueError("cannot draw batches from zero records")
    while True:
        order = torch.randperm(count, generator=generator).to(device)
        yield from torch.tensor_split(order, batches_per_pass(count, batch_size))


def batches_per_pass(count: int, batch_size: int) -> int:
    """Batches that one pass over `count` records takes."""
    return -(-count // batch_size)


def retain_pass_steps(*, passes: float, retain: int, batch_size: int) -> int:
    """Steps that `passes` passes over `retain` records in batches of `batch_size` take (at
    least one): the cap that keeps a method's run a fixed share of a retrain."""
    return max(1, round(passes * batches_per_pass(retain, batch_size)))


def make_optimizer(
    *, parameters: list[nn.Parameter], name: str, learning_rate: float
) -> torch.optim.Optimizer:
    """SGD with momentum 0.9, or Adam with torch's defaults."""
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=learning_rate)
    raise ValueError(f"unknown optimizer {name!r}")


class ProgressReporter:
    """Forwards step progress to a callback about twenty times per run, and at the end."""

    def __init__(self, *, total: int, callback: StepProgress | None) -> None:
        self.total = max(total, 1)
        self.callback = callback
        self.every = max(1, self.total // _PROGRESS_REPORTS)

    def step(self, done: int) -> None:
        if self.callback is not None and (done % self.every == 0 or done == self.total):
            self.callback(done, self.total)


def finish(model: nn.Module) -> nn.Module:
    """Hand a trained working copy back the way the trainer returns models: in eval mode."""
    model.eval()
    return model
