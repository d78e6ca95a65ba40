"""SalUn (Fan et al., 2024, "SalUn: Empowering Machine Unlearning via Gradient-based Weight
Saliency"): random-label unlearning restricted to the weights that matter for the forget set."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workers.engine.approximate.loops import (
    ProgressReporter,
    StepProgress,
    batches_per_pass,
    endless_batches,
    finish,
    make_optimizer,
    model_device,
    on_device,
    working_copy,
)
from workers.engine.approximate.settings import SalUnSettings
from workers.engine.data import RecordArrays

_SALIENCY_BATCH = 1024


def saliency_masks(
    *, model: nn.Module, features: torch.Tensor, labels: torch.Tensor, fraction: float
) -> list[torch.Tensor]:
    """One 0/1 mask per parameter: 1 where |d forget_loss / d weight| is in the top `fraction`
    of all the model's weights (one global threshold, as in the paper)."""
    model.zero_grad(set_to_none=True)
    for start in range(0, len(features), _SALIENCY_BATCH):
        batch = slice(start, start + _SALIENCY_BATCH)
        loss = F.cross_entropy(model(features[batch]), labels[batch], reduction="sum")
        loss.backward()
    # A parameter the loss does not reach has no gradient: it is never salient.
    magnitudes = [
        p.grad.abs() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()
    ]
    model.zero_grad(set_to_none=True)
    everything = torch.cat([m.flatten() for m in magnitudes])
    keep = max(1, round(fraction * everything.numel()))
    threshold = torch.topk(everything, keep, sorted=False).values.min()
    return [(m >= threshold).to(m.dtype) for m in magnitudes]


def random_other_labels(
    *, labels: torch.Tensor, num_classes: int, generator: torch.Generator
) -> torch.Tensor:
    """A uniformly random label different from each true label."""
    shift = torch.randint(1, num_classes, labels.shape, generator=generator).to(labels.device)
    return (labels + shift) % num_classes


def salun(
    *,
    model: nn.Module,
    forget: RecordArrays,
    retain: RecordArrays,
    settings: SalUnSettings,
    progress: StepProgress | None = None,
) -> nn.Module:
    """Train a copy of `model`: random labels on `forget`, true labels on `retain`, and only the
    salient weights move."""
    student = working_copy(model)
    device = model_device(student)
    retain_x, retain_y = on_device(retain, device=device)
    forget_x, forget_y = on_device(forget, device=device)
    masks = saliency_masks(
        model=student, features=forget_x, labels=forget_y, fraction=settings.saliency_fraction
    )
    generator = torch.Generator().manual_seed(settings.seed)
    retain_batches = endless_batches(
        count=len(retain), batch_size=settings.batch_size, generator=generator, device=device
    )
    forget_batches = endless_batches(
        count=len(forget),
        batch_size=settings.forget_batch_size,
        generator=generator,
        device=device,
    )
    parameters = list(student.parameters())
    optimizer = make_optimizer(
        parameters=parameters, name=settings.optimizer, learning_rate=settings.learning_rate
    )
    steps = settings.forget_epochs * batches_per_pass(len(forget), settings.forget_batch_size)
    reporter = ProgressReporter(total=steps, callback=progress)
    for step in range(steps):
        r, f = next(retain_batches), next(forget_batches)
        forget_logits = student(forget_x[f])
        relabelled = random_other_labels(
            labels=forget_y[f], num_classes=forget_logits.shape[1], generator=generator
        )
        loss = F.cross_entropy(student(retain_x[r]), retain_y[r])
        loss = loss + settings.forget_weight * F.cross_entropy(forget_logits, relabelled)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for parameter, mask in zip(parameters, masks, strict=True):
            if parameter.grad is not None:
                parameter.grad.mul_(mask)
        optimizer.step()
        reporter.step(step + 1)
    return finish(student)
