"""NegGrad+: gradient descent on retained records, gradient ascent on the forget set."""

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
from workers.engine.approximate.settings import NegGradPlusSettings
from workers.engine.approximate.stopping import UnseenStop
from workers.engine.data import RecordArrays


def neggrad_plus(
    *,
    model: nn.Module,
    forget: RecordArrays,
    retain: RecordArrays,
    settings: NegGradPlusSettings,
    progress: StepProgress | None = None,
    reference: RecordArrays | None = None,
) -> nn.Module:
    """Minimize ``alpha * retain_loss - (1 - alpha) * forget_loss`` on a copy of `model`.

    With `reference` records and ``settings.stop_at_unseen``, stop once the forget records
    score like the reference (see `UnseenStop`), after at most ``max_forget_epochs`` passes.
    """
    student = working_copy(model)
    device = model_device(student)
    retain_x, retain_y = on_device(retain, device=device)
    forget_x, forget_y = on_device(forget, device=device)
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
    optimizer = make_optimizer(
        parameters=list(student.parameters()),
        name=settings.optimizer,
        learning_rate=settings.learning_rate,
    )
    stop = UnseenStop(
        forget=forget,
        reference=reference if settings.stop_at_unseen else None,
        every=settings.check_every,
    )
    passes = settings.max_forget_epochs if stop.enabled else settings.forget_epochs
    steps = passes * batches_per_pass(len(forget), settings.forget_batch_size)
    reporter = ProgressReporter(total=steps, callback=progress)
    for step in range(steps):
        if stop.reached(model=student, step=step):
            reporter.step(steps)
            break
        r, f = next(retain_batches), next(forget_batches)
        retain_loss = F.cross_entropy(student(retain_x[r]), retain_y[r])
        forget_logits = student(forget_x[f]) / settings.forget_temperature
        forget_loss = F.cross_entropy(forget_logits, forget_y[f])
        loss = settings.alpha * retain_loss - (1.0 - settings.alpha) * forget_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        reporter.step(step + 1)
    return finish(student)
