"""Training and evaluating one model on one set of records.

A model is a function of its record *set*, spec, seed and starting state: records are ordered by
record id before training, and every random draw comes from `seed`, so on the CPU the same inputs
give bit-identical parameters (on CUDA see `workers.engine.device`). The caller's global torch RNG
state is left untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from workers.engine.architectures import ArchitectureSpec
from workers.engine.data import RecordArrays
from workers.engine.device import autocast, pick_device, synchronize

# Called after each epoch with (epochs completed, epochs in total); a trailing partial epoch
# counts as one.
EpochProgress = Callable[[int, int], None]

StateDict = Mapping[str, torch.Tensor]


def build_model(
    *,
    spec: ArchitectureSpec,
    input_shape: tuple[int, ...],
    num_classes: int,
    seed: int,
    init_state: StateDict | None = None,
) -> nn.Module:
    """A fresh CPU model, initialized from `seed`, or loaded from `init_state` when given."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build(input_shape, num_classes)
    if init_state is not None:
        model.load_state_dict(init_state)
    return model


def epoch_sizes(*, records: int, epochs: float) -> list[int]:
    """Samples drawn per epoch: whole epochs, then a partial one for a fractional `epochs`."""
    if epochs < 0:
        raise ValueError("epochs must be >= 0")
    whole = math.floor(epochs)
    sizes = [records] * whole
    partial = round((epochs - whole) * records)
    if partial > 0:
        sizes.append(partial)
    return sizes


def train_model(
    *,
    spec: ArchitectureSpec,
    data: RecordArrays,
    num_classes: int,
    seed: int,
    epochs: float | None = None,
    device: torch.device | str | None = None,
    progress: EpochProgress | None = None,
    init_state: StateDict | None = None,
) -> nn.Module:
    """Train a model of `spec` on `data` and return it in eval mode, on `device`.

    `epochs` defaults to the spec's and may be fractional (the last epoch then visits that share
    of the records). With `init_state` training continues from those parameters with a fresh
    optimizer.
    """
    if len(data) == 0:
        raise ValueError("cannot train on zero records")
    target = torch.device(device) if device is not None else pick_device()
    model = build_model(
        spec=spec,
        input_shape=data.input_shape,
        num_classes=num_classes,
        seed=seed,
        init_state=init_state,
    ).to(target)
    ordered = data.subset(np.argsort(data.record_ids, kind="stable"))
    features = torch.from_numpy(ordered.features).to(target)
    labels = torch.from_numpy(ordered.labels).to(target)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay
    )
    loss_fn = nn.CrossEntropyLoss()
    shuffler = torch.Generator().manual_seed(seed)
    sizes = epoch_sizes(records=len(ordered), epochs=spec.epochs if epochs is None else epochs)

    model.train()
    for epoch, size in enumerate(sizes, start=1):
        order = torch.randperm(len(ordered), generator=shuffler)[:size].to(target)
        for start in range(0, size, spec.batch_size):
            batch = order[start : start + spec.batch_size]
            optimizer.zero_grad(set_to_none=True)
            with autocast(target):
                loss = loss_fn(model(features[batch]), labels[batch])
            loss.backward()
            optimizer.step()
        if progress is not None:
            progress(epoch, len(sizes))
    model.eval()
    synchronize(target)
    return model


@torch.no_grad()
def predict_proba(*, model: nn.Module, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Softmax class probabilities, shape [n, num_classes], as float32 numpy."""
    model.eval()
    device = next(model.parameters()).device
    inputs = torch.from_numpy(np.asarray(features, dtype=np.float32))
    chunks = [
        torch.softmax(model(inputs[start : start + batch_size].to(device)), dim=1).cpu()
        for start in range(0, inputs.shape[0], batch_size)
    ]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0), dtype=np.float32)


def accuracy(*, model: nn.Module, data: RecordArrays) -> float:
    """Share of `data` whose most probable class is the label."""
    if len(data) == 0:
        return float("nan")
    predicted = predict_proba(model=model, features=data.features).argmax(axis=1)
    return float((predicted == data.labels).mean())
