"""The approximate unlearning runs both language-model benchmarks use, with one set of settings
(chosen on seed 0's 50-people run of `bench.lm_methods`; see workers/engine/lm/README.md)."""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.engine.lm.corpus import TextExample
from workers.engine.lm.unlearning import UnlearningResult, gradient_difference, npo

UNLEARNING_METHODS = ("gradient_difference", "npo")
UNLEARNING_STEPS = 20


def unlearn(
    name: str,
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget: Sequence[TextExample],
    retain: Sequence[TextExample],
    steps: int = UNLEARNING_STEPS,
    seed: int = 0,
) -> UnlearningResult:
    """Run `name` on `model` in place."""
    if name == "npo":
        return npo(
            model=model,
            tokenizer=tokenizer,
            forget=forget,
            retain=retain,
            steps=steps,
            batch_size=8,
            seed=seed,
            learning_rate=1e-3,
            beta=1.0,
            retain_weight=1.0,
        )
    if name == "gradient_difference":
        return gradient_difference(
            model=model,
            tokenizer=tokenizer,
            forget=forget,
            retain=retain,
            steps=steps,
            batch_size=8,
            seed=seed,
            learning_rate=3e-4,
            retain_weight=3.0,
        )
    raise ValueError(f"unknown unlearning method {name!r}; known: {UNLEARNING_METHODS}")
