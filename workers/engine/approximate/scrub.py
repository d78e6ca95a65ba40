"""SCRUB (Kurmanji et al., 2023, "Towards Unbounded Machine Unlearning"): a student, copied from
the original model, is pushed away from it on the forget set and held close to it on the rest."""

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
    frozen_copy,
    make_optimizer,
    model_device,
    on_device,
    working_copy,
)
from workers.engine.approximate.settings import ScrubSettings
from workers.engine.data import RecordArrays


def distillation_kl(
    *, student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened outputs, per record, scaled by T^2
    so that its gradients keep their size across temperatures (Hinton et al., 2015)."""
    student_log_probs = F.log_softmax(student_logits / temperature, dim=1)
    teacher_probs = F.softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(student_log_probs, teacher_probs, reduction="batchmean")
    return kl * temperature**2


def scrub(
    *,
    model: nn.Module,
    forget: RecordArrays,
    retain: RecordArrays,
    settings: ScrubSettings,
    progress: StepProgress | None = None,
) -> nn.Module:
    """Run SCRUB's alternating max- and min-steps on a copy of `model`."""
    teacher = frozen_copy(model)
    student = working_copy(model)
    device = model_device(student)
    retain_x, retain_y = on_device(retain, device=device)
    forget_x, _ = on_device(forget, device=device)
    generator = torch.Generator().manual_seed(settings.seed)
    retain_batches = endless_batches(
        count=len(retain), batch_size=settings.batch_size, generator=generator, device=device
    )
    forget_order = torch.Generator().manual_seed(settings.seed + 1)
    optimizer = make_optimizer(
        parameters=list(student.parameters()),
        name=settings.optimizer,
        learning_rate=settings.learning_rate,
    )
    max_steps_per_pass = batches_per_pass(len(forget), settings.forget_batch_size)
    total = (
        settings.max_epochs * max_steps_per_pass + settings.epochs * settings.min_steps_per_epoch
    )
    reporter = ProgressReporter(total=total, callback=progress)
    done = 0

    def take_step(loss: torch.Tensor) -> None:
        nonlocal done
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done += 1
        reporter.step(done)

    for epoch in range(settings.epochs):
        # Min-steps come first in each round: a student identical to its teacher sits at the
        # minimum of the KL divergence, where its gradient is zero and max-steps cannot start.
        for _ in range(settings.min_steps_per_epoch):
            r = next(retain_batches)
            with torch.no_grad():
                teacher_logits = teacher(retain_x[r])
            student_logits = student(retain_x[r])
            divergence = distillation_kl(
                student_logits=student_logits,
                teacher_logits=teacher_logits,
                temperature=settings.temperature,
            )
            task = F.cross_entropy(student_logits, retain_y[r])
            take_step(settings.kl_weight * divergence + settings.task_weight * task)
        if epoch < settings.max_epochs:
            order = torch.randperm(len(forget), generator=forget_order).to(device)
            for indices in torch.tensor_split(order, max_steps_per_pass):
                batch = forget_x[indices]
                with torch.no_grad():
                    teacher_logits = teacher(batch)
                divergence = distillation_kl(
                    student_logits=student(batch),
                    teacher_logits=teacher_logits,
                    temperature=settings.temperature,
                )
                take_step(-divergence)
    return finish(student)
