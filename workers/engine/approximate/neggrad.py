"""NegGrad+ from a noised copy: Gaussian weight noise, then gradient descent on retained records
and gradient ascent on the forget set."""

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
    retain_pass_steps,
    working_copy,
)
from workers.engine.approximate.settings import NegGradPlusSettings
from workers.engine.data import RecordArrays


@torch.no_grad()
def add_weight_noise(*, model: nn.Module, scale: float, generator: torch.Generator) -> None:
    """Add Gaussian noise of `scale` times each weight matrix's standard deviation, in place.

    Only weight matrices and kernels (two or more dimensions) get noise: biases are few, and
    their spread says little about the scale of the layer.
    """
    if scale <= 0:
        return
    for parameter in model.parameters():
        if parameter.dim() < 2:
            continue
        noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
        parameter.add_(scale * parameter.std() * noise.to(parameter.device))


def neggrad_steps(*, settings: NegGradPlusSettings, forget: int, retain: int) -> int:
    """Steps of one run: ``forget_epochs`` passes over the forget set, capped at
    ``max_retain_passes`` passes over the retained records."""
    wanted = settings.forget_epochs * batches_per_pass(forget, settings.forget_batch_size)
    cap = retain_pass_steps(
        passes=settings.max_retain_passes, retain=retain, batch_size=settings.batch_size
    )
    return min(wanted, cap)


def neggrad_plus(
    *,
    model: nn.Module,
    forget: RecordArrays,
    retain: RecordArrays,
    settings: NegGradPlusSettings,
    progress: StepProgress | None = None,
) -> nn.Module:
    """Noise a copy of `model`, then minimize
    ``alpha * retain_loss - (1 - alpha) * forget_loss``."""
    student = working_copy(model)
    device = model_device(student)
    generator = torch.Generator().manual_seed(settings.seed)
    add_weight_noise(model=student, scale=settings.noise, generator=generator)
    retain_x, retain_y = on_device(retain, device=device)
    forget_x, forget_y = on_device(forget, device=device)
    retain_batches = endless_batches(
        count=len(retain), batch_size=settings.batch_size, generator=generator, device=device
    )
    forget_batches = endless_batches(
        count=len(forget),
        batch_size=settings.forget_batch_size,
        generator=generator,
        device=device,
    )
    optimizer = make_optimizer(
        parameters=list(student.parameters()),
        name=settings.optimizer,
        learning_rate=settings.learning_rate,
    )
    steps = neggrad_steps(settings=settings, forget=len(forget), retain=len(retain))
    reporter = ProgressReporter(total=steps, callback=progress)
    for step in range(steps):
        r, f = next(retain_batches), next(forget_batches)
        # One forward pass for both batches: on small models the per-call cost dominates.
        logits = student(torch.cat([retain_x[r], forget_x[f]]))
        retain_loss = F.cross_entropy(logits[: len(r)], retain_y[r])
        forget_logits = logits[len(r) :] / settings.forget_temperature
        forget_loss = F.cross_entropy(forget_logits, forget_y[f])
        loss = settings.alpha * retain_loss - (1.0 - settings.alpha) * forget_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        reporter.step(step + 1)
    return finish(student)
