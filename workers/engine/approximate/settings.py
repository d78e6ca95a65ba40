"""Settings of the approximate unlearning methods: frozen dataclasses, validated on creation.

Budgets are counted in optimizer steps, or in passes over the forget set, never in epochs over
the retained records: an approximate erasure then costs the same whatever the size of the
training set, and stays a small fraction of a retrain on large ones. Defaults were chosen on the
benchmark's tuning seeds (synthetic Purchase-100, seeds 100-102; see README.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Optimizer = Literal["sgd", "adam"]
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")


def _type_problems(settings: Any) -> list[str]:
    """Type errors of a settings dataclass, by the annotation of each field."""
    problems = []
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        annotation = str(field.type)
        if annotation == "int":
            if not isinstance(value, int) or isinstance(value, bool):
                problems.append(f"{field.name} must be an integer, got {value!r}")
        elif annotation == "float":
            if not isinstance(value, int | float) or isinstance(value, bool):
                problems.append(f"{field.name} must be a number, got {value!r}")
            else:
                object.__setattr__(settings, field.name, float(value))
        elif annotation == "bool":
            if not isinstance(value, bool):
                problems.append(f"{field.name} must be true or false, got {value!r}")
        elif annotation == "Optimizer" and value not in OPTIMIZERS:
            problems.append(f"{field.name} must be one of {list(OPTIMIZERS)}, got {value!r}")
    return problems


def _validate(settings: Any, checks: Callable[[], dict[str, tuple[bool, str]]]) -> None:
    """Raise one ValueError listing every type error or, when the types are right, every
    failed range check (`checks` is only called then, so it may compare freely)."""
    problems = _type_problems(settings)
    if not problems:
        problems = [f"{name} {rule}" for name, (ok, rule) in checks().items() if not ok]
    if problems:
        raise ValueError(f"invalid {type(settings).__name__}: " + "; ".join(problems))


@dataclass(frozen=True)
class FinetuneSettings:
    """Fine-tune on the retained records only, relying on catastrophic forgetting.

    Attributes:
        steps: optimizer steps, one retain batch each. Default 300 (under a tenth of the
            steps of a 20-epoch retrain on 21,000 records).
        batch_size: retained records per step. Default 128.
        learning_rate: step size. Default 1e-3.
        optimizer: ``adam`` or ``sgd`` (with momentum 0.9). Default ``adam``.
        seed: seed of the batch order. Default 0.
    """

    steps: int = 300
    batch_size: int = 128
    learning_rate: float = 1e-3
    optimizer: Optimizer = "adam"
    seed: int = 0

    def __post_init__(self) -> None:
        _validate(self, lambda: _common_checks(self))


@dataclass(frozen=True)
class NegGradPlusSettings:
    """Descend on the retain loss and ascend on the forget loss, weighted
    ``alpha * retain_loss - (1 - alpha) * forget_loss`` (Kurmanji et al., 2023).

    The forget loss is the cross-entropy of the logits divided by ``forget_temperature``. At 1
    (the paper's form) its gradient vanishes on confidently fitted records, so ascent unlearns
    the few hard records and leaves the many easy ones as over-confident as before, which a
    membership test still sees; softening spreads the ascent over all the forget records.

    Each step takes one forget batch and one retain batch; the run makes ``forget_epochs``
    passes over the forget set, so its cost grows with the forget set, not the training set.

    Given reference records (never trained on; `unlearn_and_verify` passes a calibration share
    of the holdout) and ``stop_at_unseen``, the run instead stops as soon as the forget records'
    membership AUC against the reference falls to 0.5, checked every ``check_every`` steps, and
    makes at most ``max_forget_epochs`` passes. A fixed budget forgets a large forget set too
    little and a small one too much; a retrain leaves both looking unseen, which this targets.

    Attributes:
        forget_epochs: passes over the forget set when the run does not stop at unseen.
            Default 10.
        batch_size: retained records per step. Default 128.
        forget_batch_size: forget records per step (a pass is split into equal batches of at
            most this size). Default 32.
        alpha: weight of the retain loss, in [0, 1). Default 0.97.
        forget_temperature: softening of the forget loss, > 0. Default 2.0.
        learning_rate: step size. Default 3e-4.
        optimizer: ``adam`` or ``sgd`` (momentum 0.9). Default ``adam``.
        seed: seed of the batch order. Default 0.
        stop_at_unseen: stop once the forget records look unseen, when reference records are
            given (without them, or when false, the run makes ``forget_epochs`` passes).
            Default true.
        check_every: optimizer steps between two checks of the stopping rule. Default 5.
        max_forget_epochs: passes over the forget set at most, when stopping at unseen.
            Default 30.
    """

    forget_epochs: int = 10
    batch_size: int = 128
    forget_batch_size: int = 32
    alpha: float = 0.97
    forget_temperature: float = 2.0
    learning_rate: float = 3e-4
    optimizer: Optimizer = "adam"
    seed: int = 0
    stop_at_unseen: bool = True
    check_every: int = 5
    max_forget_epochs: int = 30

    def __post_init__(self) -> None:
        _validate(
            self,
            lambda: {
                "forget_epochs": (self.forget_epochs >= 1, "must be at least 1"),
                "batch_size": (self.batch_size >= 1, "must be at least 1"),
                "forget_batch_size": (self.forget_batch_size >= 1, "must be at least 1"),
                "alpha": (0.0 <= self.alpha < 1.0, "must be in [0, 1)"),
                "forget_temperature": (self.forget_temperature > 0, "must be positive"),
                "learning_rate": (self.learning_rate > 0, "must be positive"),
                "check_every": (self.check_every >= 1, "must be at least 1"),
                "max_forget_epochs": (self.max_forget_epochs >= 1, "must be at least 1"),
            },
        )


@dataclass(frozen=True)
class ScrubSettings:
    """SCRUB (Kurmanji et al., 2023): the original model is a teacher; the student starts as a
    copy and alternates max-steps, which push its outputs on the forget set away from the
    teacher's (maximizing their KL divergence), with min-steps, which keep it close to the
    teacher on retained records while fitting their labels.

    The run has ``epochs`` rounds. Every round takes ``min_steps_per_epoch`` min-steps with the
    loss ``task_weight * cross_entropy + kl_weight * KL(teacher || student)``; each of the first
    ``max_epochs`` rounds then makes one pass over the forget set in max-steps.

    Attributes:
        epochs: rounds. Default 6.
        max_epochs: rounds that include a max pass, at most ``epochs``. Default 6.
        min_steps_per_epoch: min-steps per round, one retain batch each. Default 10.
        batch_size: retained records per min-step. Default 128.
        forget_batch_size: forget records per max-step. Default 32.
        temperature: softmax temperature of the distillation. Default 4.0.
        kl_weight: weight of the distillation term in min-steps. Default 1.0.
        task_weight: weight of the cross-entropy term in min-steps. Default 1.0.
        learning_rate: step size. Default 5e-4.
        optimizer: ``adam`` or ``sgd`` (momentum 0.9). Default ``adam``.
        seed: seed of the batch order. Default 0.
    """

    epochs: int = 6
    max_epochs: int = 6
    min_steps_per_epoch: int = 10
    batch_size: int = 128
    forget_batch_size: int = 32
    temperature: float = 4.0
    kl_weight: float = 1.0
    task_weight: float = 1.0
    learning_rate: float = 5e-4
    optimizer: Optimizer = "adam"
    seed: int = 0

    def __post_init__(self) -> None:
        _validate(
            self,
            lambda: {
                "epochs": (self.epochs >= 1, "must be at least 1"),
                "max_epochs": (0 <= self.max_epochs <= self.epochs, "must be in [0, epochs]"),
                "min_steps_per_epoch": (self.min_steps_per_epoch >= 0, "must be >= 0"),
                "batch_size": (self.batch_size >= 1, "must be at least 1"),
                "forget_batch_size": (self.forget_batch_size >= 1, "must be at least 1"),
                "temperature": (self.temperature > 0, "must be positive"),
                "kl_weight": (self.kl_weight >= 0, "must be >= 0"),
                "task_weight": (self.task_weight >= 0, "must be >= 0"),
                "learning_rate": (self.learning_rate > 0, "must be positive"),
            },
        )


@dataclass(frozen=True)
class L1SparseSettings:
    """Fine-tune on retained records with an L1 penalty on the weights that decays linearly to
    zero over the run ("l1-sparse", Jia et al., 2023): sparsity removes capacity that memorized
    the forget set.

    Attributes:
        steps: optimizer steps, one retain batch each. Default 300.
        batch_size: retained records per step. Default 128.
        l1_strength: initial weight of the summed absolute parameters. Default 3e-4.
        learning_rate: step size. Default 1e-3.
        optimizer: ``adam`` or ``sgd`` (momentum 0.9). Default ``adam``.
        seed: seed of the batch order. Default 0.
    """

    steps: int = 300
    batch_size: int = 128
    l1_strength: float = 3e-4
    learning_rate: float = 1e-3
    optimizer: Optimizer = "adam"
    seed: int = 0

    def __post_init__(self) -> None:
        _validate(
            self,
            lambda: {
                **_common_checks(self),
                "l1_strength": (self.l1_strength >= 0, "must be >= 0"),
            },
        )


@dataclass(frozen=True)
class SalUnSettings:
    """SalUn (Fan et al., 2024): find the weights most salient to the forget loss (largest
    gradient magnitude), then update only those, training the forget records towards random
    other labels while fitting the retained records. Each step takes one forget and one retain
    batch; the run makes ``forget_epochs`` passes over the forget set.

    Attributes:
        forget_epochs: passes over the forget set. Default 5.
        batch_size: retained records per step. Default 128.
        forget_batch_size: forget records per step. Default 64.
        saliency_fraction: share of the weights (by gradient magnitude, over the whole model)
            that may change, in (0, 1]. Default 0.5.
        forget_weight: weight of the random-label loss on the forget batch. Default 0.5.
        learning_rate: step size. Default 5e-4.
        optimizer: ``adam`` or ``sgd`` (momentum 0.9). Default ``adam``.
        seed: seed of the batch order and of the random labels. Default 0.
    """

    forget_epochs: int = 5
    batch_size: int = 128
    forget_batch_size: int = 64
    saliency_fraction: float = 0.5
    forget_weight: float = 0.5
    learning_rate: float = 5e-4
    optimizer: Optimizer = "adam"
    seed: int = 0

    def __post_init__(self) -> None:
        _validate(
            self,
            lambda: {
                "forget_epochs": (self.forget_epochs >= 1, "must be at least 1"),
                "batch_size": (self.batch_size >= 1, "must be at least 1"),
                "forget_batch_size": (self.forget_batch_size >= 1, "must be at least 1"),
                "saliency_fraction": (0.0 < self.saliency_fraction <= 1.0, "must be in (0, 1]"),
                "forget_weight": (self.forget_weight >= 0, "must be >= 0"),
                "learning_rate": (self.learning_rate > 0, "must be positive"),
            },
        )


def _common_checks(settings: Any) -> dict[str, tuple[bool, str]]:
    return {
        "steps": (settings.steps >= 1, "must be at least 1"),
        "batch_size": (settings.batch_size >= 1, "must be at least 1"),
        "learning_rate": (settings.learning_rate > 0, "must be positive"),
    }
