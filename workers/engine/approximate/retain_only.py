"""Methods that only ever see the retained records: fine-tuning, and fine-tuning under an L1
penalty. They forget by overwriting; neither looks at the forget set."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workers.engine.approximate.loops import (
    ProgressReporter,
    StepProgress,
    endless_batches,
    finish,
    make_optimizer,
    model_device,
    on_device,
    working_copy,
)
from workers.engine.approximate.settings import FinetuneSettings, L1SparseSettings
from workers.engine.data import RecordArrays


def finetune(
    *,
    model: nn.Module,
    forget: RecordArrays,
    retain: RecordArrays,
    settings: FinetuneSettings,
    progress: StepProgress | None = None,
) -> nn.Module:
    """Fine-tune a copy of `model` on `retain` (the baseline every other method should beat)."""
    del forget  # fine-tuning forgets by training on everything else
    return _fit_retain(
        model=model,
        retain=retain,
        steps=settings.steps,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        optimizer_name=settings.optimizer,
        seed=settings.seed,
        l1_strength=0.0,
        progress=progress,
    )


def l1_sparse(
    *,
    model: nn.Module,
    forget: RecordArrays,
    retain: RecordArrays,
    settings: L1SparseSettings,
    progress: StepProgress | None = None,
) -> nn.Module:
    """Fine-tune a copy of `model` on `retain` with a linearly decaying L1 penalty."""
    del forget
    return _fit_retain(
        model=model,
        retain=retain,
        steps=settings.steps,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        optimizer_name=settings.optimizer,
        seed=settings.seed,
        l1_strength=settings.l1_strength,
        progress=progress,
    )


def _fit_retain(
    *,
    model: nn.Module,
    retain: RecordArrays,
    steps: int,
    batch_size: int,
    learning_rate: float,
    optimizer_name: str,
    seed: int,
    l1_strength: float,
    progress: StepProgress | None,
) -> nn.Module:
    student = working_copy(model)
    device = model_device(student)
    features, labels = on_device(retain, device=device)
    batches = endless_batches(
        count=len(retain),
        batch_size=batch_size,
        generator=torch.Generator().manual_seed(seed),
        device=device,
    )
    parameters = [p for p in student.parameters() if p.requires_grad]
    optimizer = make_optimizer(
        parameters=parameters, name=optimizer_name, learning_rate=learning_rate
    )
    reporter = ProgressReporter(total=steps, callback=progress)
    for step in range(steps):
        batch = next(batches)
        loss = F.cross_entropy(student(features[batch]), labels[batch])
        if l1_strength > 0:
            # Linear decay to zero: sparsify early, then let the task loss recover accuracy.
            strength = l1_strength * (1.0 - step / steps)
            loss = loss + strength * sum(p.abs().sum() for p in parameters)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        reporter.step(step + 1)
    return finish(student)
