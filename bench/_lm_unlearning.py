"""The approximate unlearning runs both language-model benchmarks use, with one set of settings
per method, chosen on `bench.lm` seeds 100 and 101 (200 people, forgetting 1 %: forget quality
above 0.05, retained exact match within 2 points of the retrained adapter's, a small share of a
retrain's time; see bench/RESULTS.md). `bench.lm` takes other settings from its command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.engine.lm.corpus import TextExample
from workers.engine.lm.unlearning import UnlearningResult, gradient_difference, npo

UNLEARNING_METHODS = ("gradient_difference", "npo")


@dataclass(frozen=True)
class UnlearningSettings:
    """One method's settings. `beta` applies to NPO only."""

    steps: int
    learning_rate: float
    retain_weight: float
    beta: float = 1.0
    batch_size: int = 8


DEFAULT_SETTINGS: dict[str, UnlearningSettings] = {
    "npo": UnlearningSettings(steps=20, learning_rate=3e-4, retain_weight=3.0, beta=1.0),
    "gradient_difference": UnlearningSettings(steps=20, learning_rate=3e-4, retain_weight=3.0),
}


def unlearn(
    name: str,
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget: Sequence[TextExample],
    retain: Sequence[TextExample],
    settings: UnlearningSettings | None = None,
    seed: int = 0,
) -> UnlearningResult:
    """Run `name` on `model` in place, with `settings` or else the method's defaults."""
    if name not in DEFAULT_SETTINGS:
        raise ValueError(f"unknown unlearning method {name!r}; known: {UNLEARNING_METHODS}")
    chosen = DEFAULT_SETTINGS[name] if settings is None else settings
    common: dict[str, Any] = {
        "model": model,
        "tokenizer": tokenizer,
        "forget": forget,
        "retain": retain,
        "steps": chosen.steps,
        "batch_size": chosen.batch_size,
        "seed": seed,
        "learning_rate": chosen.learning_rate,
        "retain_weight": chosen.retain_weight,
    }
    if name == "npo":
        return npo(beta=chosen.beta, **common)
    return gradient_difference(**common)
