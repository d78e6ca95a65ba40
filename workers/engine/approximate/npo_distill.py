"""Shrink and noise a copy of the model, then NPO on the forget set while distilling the
original on the retained records."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from workers.engine.approximate.loops import (
    ProgressReporter,
    StepProgress,
    endless_batches,
    finish,
    frozen_copy,
    model_device,
    on_device,
    retain_pass_steps,
    working_copy,
)
from workers.engine.approximate.neggrad import add_weight_noise
from workers.engine.approximate.scrub import distillation_kl
from workers.engine.approximate.settings import NpoDistillSettings
from workers.engine.data import RecordArrays


def npo_losses(
    *, log_probs: torch.Tensor, reference_log_probs: torch.Tensor, beta: float
) -> torch.Tensor:
    """Negative preference optimization's loss per forget record (Zhang et al., 2024):
    ``2/beta * log(1 + (p / p_ref)^beta)``.

    It falls as the model's probability of each record's label drops below the original's,
    and flattens once it has: unlike plain gradient ascent it cannot run away.
    """
    return (2.0 / beta) * F.softplus(beta * (log_probs - reference_log_probs))


def npo_schedule(*, settings: NpoDistillSettings, retain: int) -> tuple[int, float]:
    """Steps and initial learning rate of one run: ``steps`` at ``learning_rate``, or, where
    ``max_retain_passes`` passes over the retained records take fewer steps, that many at a
    learning rate raised by the square root of the cut, so that the shorter run still repairs
    the noise (raised in full proportion it cost 2 to 5 points of accuracy on tuning seeds)."""
    steps = min(
        settings.steps,
        retain_pass_steps(
            passes=settings.max_retain_passes, retain=retain, batch_size=settings.batch_size
        ),
    )
    return steps, settings.learning_rate * math.sqrt(settings.steps / steps)


def forget_passes(*, settings: NpoDistillSettings, steps: int, forget: int) -> float:
    """Passes over the forget set in a run of `steps` steps: ``settings.forget_passes``, fewer
    where a large forget set would otherwise cost more than the run's retained records."""
    return min(float(settings.forget_passes), steps * settings.batch_size / forget)


def spread_passes(
    *, count: int, passes: float, steps: int, generator: torch.Generator, device: torch.device
) -> list[torch.Tensor]:
    """Index batches for `steps` steps that visit each of `count` records about `passes`
    times, reshuffled every pass; a step may get none when there are fewer visits than steps."""
    whole = int(passes)
    orders = [torch.randperm(count, generator=generator) for _ in range(whole)]
    partial = round((passes - whole) * count)
    if partial:
        orders.append(torch.randperm(count, generator=generator)[:partial])
    visits = torch.cat(orders) if orders else torch.empty(0, dtype=torch.long)
    return [chunk.to(device) for chunk in torch.tensor_split(visits, steps)]


def label_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits, dim=1).gather(1, labels[:, None])[:, 0]


def npo_distill(
    *,
    model: nn.Module,
    forget: RecordArrays,
    retain: RecordArrays,
    settings: NpoDistillSettings,
    progress: StepProgress | None = None,
) -> nn.Module:
    """Shrink and noise a copy of `model`, then minimize
    ``cross_entropy + kl_weight * KL(original || student)`` on retained records plus
    ``forget_weight`` retained records' worth of NPO loss per forget record, under a
    cosine-decaying learning rate."""
    student = working_copy(model)
    device = model_device(student)
    generator = torch.Generator().manual_seed(settings.seed)
    retain_x, retain_y = on_device(retain, device=device)
    forget_x, forget_y = on_device(forget, device=device)
    with torch.no_grad():
        teacher = frozen_copy(model)
        teacher_logits = teacher(retain_x)
        reference_log_probs = label_log_probs(teacher(forget_x), forget_y)
        del teacher
        for parameter in student.parameters():
            parameter.mul_(settings.shrink)
        add_weight_noise(model=student, scale=settings.noise, generator=generator)
    retain_batches = endless_batches(
        count=len(retain), batch_size=settings.batch_size, generator=generator, device=device
    )
    steps, learning_rate = npo_schedule(settings=settings, retain=len(retain))
    forget_batches = spread_passes(
        count=len(forget),
        passes=forget_passes(settings=settings, steps=steps, forget=len(forget)),
        steps=steps,
        generator=generator,
        device=device,
    )
    optimizer = torch.optim.Adam(student.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    reporter = ProgressReporter(total=steps, callback=progress)
    for step, f in enumerate(forget_batches):
        r = next(retain_batches)
        logits = student(torch.cat([retain_x[r], forget_x[f]]))
        retain_logits, forget_logits = logits[: len(r)], logits[len(r) :]
        retain_loss = F.cross_entropy(retain_logits, retain_y[r]) + settings.kl_weight * (
            distillation_kl(
                student_logits=retain_logits,
                teacher_logits=teacher_logits[r],
                temperature=settings.temperature,
            )
        )
        # Each forget record weighs `forget_weight` retained records, however many share the step.
        forget_loss = npo_losses(
            log_probs=label_log_probs(forget_logits, forget_y[f]),
            reference_log_probs=reference_log_probs[f],
            beta=settings.beta,
        ).sum() / len(r)
        loss = retain_loss + settings.forget_weight * forget_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        reporter.step(step + 1)
    return finish(student)
