"""Settings of the approximate unlearning methods: frozen dataclasses, validated on creation.

Budgets are counted in optimizer steps, or in passes over the forget set; `neggrad_plus` and
`npo_distill` also cap their steps at a number of passes over the retained records, so that they
stay a fixed small fraction of a retrain. `METHOD_SETTINGS` names each method's settings class;
this module imports no torch, so the API validates a model's policy without PyTorch. Defaults
were chosen on the benchmark's tuning seeds (see README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from workers.engine.validation import validate as _validate

Optimizer = Literal["sgd", "adam"]


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
    """Start from a noised copy of the model, then descend on the retain loss and ascend on the
    forget loss, weighted ``alpha * retain_loss - (1 - alpha) * forget_loss`` (NegGrad+,
    Kurmanji et al., 2023).

    The noise comes from the strongest entries of the NeurIPS 2023 unlearning competition: a
    retrained model is one draw among many (its seed decides much of its output on a record it
    never saw), while an edit of one fixed model varies little from run to run and lands at one
    point. Gaussian noise of ``noise`` times each weight matrix's standard deviation, drawn from
    ``seed``, spreads the runs out the way retraining does; the retain loss then repairs
    accuracy. The forget loss is the cross-entropy of the logits divided by
    ``forget_temperature``: at 1 (the paper's form) its gradient vanishes on confidently fitted
    records, so ascent unlearns the few hard records and leaves the many easy ones as
    over-confident as before.

    The budget is fixed, with no stopping rule that looks at a membership statistic: the gate
    that checks the result would otherwise be checking the rule's own target. Each step takes
    one forget batch and one retain batch, for ``forget_epochs`` passes over the forget set, at
    most ``max_retain_passes`` passes' worth of retain batches (which keeps a large forget set
    within a fixed share of a retrain).

    Attributes:
        noise: standard deviation of the Gaussian noise added to each weight matrix, relative
            to that matrix's standard deviation, >= 0 (0 is plain NegGrad+). Default 0.4.
        forget_epochs: passes over the forget set. Default 20.
        max_retain_passes: the run's steps are capped at this many passes over the retained
            records in retain batches, > 0. Default 1.5 (under 10 % of a 20-epoch retrain).
        batch_size: retained records per step. Default 128.
        forget_batch_size: forget records per step (a pass is split into equal batches of at
            most this size). Default 32.
        alpha: weight of the retain loss, in [0, 1). Default 0.97.
        forget_temperature: softening of the forget loss, > 0. Default 2.0.
        learning_rate: step size. Default 6e-4.
        optimizer: ``adam`` or ``sgd`` (momentum 0.9). Default ``adam``.
        seed: seed of the noise and of the batch order. Default 0.
    """

    noise: float = 0.4
    forget_epochs: int = 20
    max_retain_passes: float = 1.5
    batch_size: int = 128
    forget_batch_size: int = 32
    alpha: float = 0.97
    forget_temperature: float = 2.0
    learning_rate: float = 6e-4
    optimizer: Optimizer = "adam"
    seed: int = 0

    def __post_init__(self) -> None:
        _validate(
            self,
            lambda: {
                "noise": (self.noise >= 0, "must be >= 0"),
                "forget_epochs": (self.forget_epochs >= 1, "must be at least 1"),
                "max_retain_passes": (self.max_retain_passes > 0, "must be positive"),
                "batch_size": (self.batch_size >= 1, "must be at least 1"),
                "forget_batch_size": (self.forget_batch_size >= 1, "must be at least 1"),
                "alpha": (0.0 <= self.alpha < 1.0, "must be in [0, 1)"),
                "forget_temperature": (self.forget_temperature > 0, "must be positive"),
                "learning_rate": (self.learning_rate > 0, "must be positive"),
            },
        )


@dataclass(frozen=True)
class NpoDistillSettings:
    """Shrink and noise a copy of the model, then repair it on the retained records while
    unlearning the forget set with negative preference optimization.

    The start is a shrink-and-perturb of the original: every parameter times ``shrink``, then
    Gaussian noise of ``noise`` times each weight matrix's standard deviation, drawn from
    ``seed``, so that runs spread out the way retrains with different seeds do. Each of the
    ``steps`` steps takes one retain batch, trained on its labels and distilled from the
    original's outputs (KL at ``temperature``, which repairs the noise's damage to test
    accuracy faster than the labels alone), and a share of the forget records, trained with the
    NPO loss against the original's probabilities: it pushes each forget record's label
    probability below the original's and then flattens, where gradient ascent runs away. Each
    forget record weighs ``forget_weight`` retained records and is visited ``forget_passes``
    times over the run, so the push on one record does not depend on how many records are
    forgotten with it (fewer passes where the forget set exceeds the run's retained records).
    Adam's step size decays along a cosine from ``learning_rate`` to zero.

    The budget is a fixed number of steps, with no stopping rule that looks at a membership
    statistic.

    Attributes:
        shrink: factor applied to every parameter before the noise, in (0, 1]. Default 0.95.
        noise: Gaussian noise per weight matrix, relative to its standard deviation, >= 0.
            Default 0.5.
        steps: optimizer steps, one retain batch each. Default 40.
        max_retain_passes: caps the steps at this many passes over the retained records in
            retain batches, > 0; a run the cap shortens takes larger steps (the learning rate
            times the square root of the cut). Default 1.0, binding below 4,993 retained
            records: a pass is a twentieth of a 20-epoch retrain, however small the data.
        batch_size: retained records per step. Default 128.
        forget_passes: visits of each forget record over the run, > 0. Default 20.
        forget_weight: weight of one forget record's NPO loss, in retained records, >= 0.
            Default 1.65.
        beta: NPO's inverse temperature, > 0. Default 1.0.
        temperature: softmax temperature of the distillation, > 0. Default 2.0.
        kl_weight: weight of the distillation term, >= 0. Default 1.0.
        learning_rate: Adam's initial step size. Default 1e-3.
        seed: seed of the noise and of the batch order. Default 0.
    """

    shrink: float = 0.95
    noise: float = 0.5
    steps: int = 40
    max_retain_passes: float = 1.0
    batch_size: int = 128
    forget_passes: float = 20.0
    forget_weight: float = 1.65
    beta: float = 1.0
    temperature: float = 2.0
    kl_weight: float = 1.0
    learning_rate: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        _validate(
            self,
            lambda: {
                **_common_checks(self),
                "shrink": (0.0 < self.shrink <= 1.0, "must be in (0, 1]"),
                "noise": (self.noise >= 0, "must be >= 0"),
                "max_retain_passes": (self.max_retain_passes > 0, "must be positive"),
                "forget_passes": (self.forget_passes > 0, "must be positive"),
                "forget_weight": (self.forget_weight >= 0, "must be >= 0"),
                "beta": (self.beta > 0, "must be positive"),
                "temperature": (self.temperature > 0, "must be positive"),
                "kl_weight": (self.kl_weight >= 0, "must be >= 0"),
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


# Each method's settings class, by method name (the method functions are in `methods`).
METHOD_SETTINGS: dict[str, type] = {
    "finetune": FinetuneSettings,
    "npo_distill": NpoDistillSettings,
    "neggrad_plus": NegGradPlusSettings,
    "scrub": ScrubSettings,
    "l1_sparse": L1SparseSettings,
    "salun": SalUnSettings,
}


def method_names() -> list[str]:
    return list(METHOD_SETTINGS)


def settings_type(method: str) -> type:
    """The settings class of `method`; KeyError lists the known names."""
    if method not in METHOD_SETTINGS:
        raise KeyError(f"unknown unlearning method {method!r}; known: {method_names()}")
    return METHOD_SETTINGS[method]
