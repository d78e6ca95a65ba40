"""Gradient difference and NPO forget one person's facts and keep the others'."""

from __future__ import annotations

import pytest
import torch

from tests.engine.lm.conftest import FineTuned
from workers.engine.lm.losses import encode_examples, greedy_matches, mean_token_logprob
from workers.engine.lm.unlearning import ForgetTarget, gradient_difference, npo

# Retained people's exact match may fall by at most this much.
RETAIN_MARGIN = 0.1


def exact_match(fine_tuned: FineTuned, model: torch.nn.Module, examples: list) -> float:
    batch = encode_examples(tokenizer=fine_tuned.tokenizer, examples=examples)
    return float(greedy_matches(model=model, batch=batch).float().mean())


@pytest.fixture(scope="module")
def split(fine_tuned: FineTuned) -> tuple[list, list]:
    return fine_tuned.examples(fine_tuned.people[:1]), fine_tuned.examples(fine_tuned.people[1:])


@pytest.mark.parametrize("method", ["gradient_difference", "npo"])
def test_forgets_one_person_and_keeps_the_rest(fine_tuned: FineTuned, split, method: str) -> None:
    forget, retain = split
    model = fine_tuned.copy()
    assert exact_match(fine_tuned, model, forget) == 1.0
    retain_before = exact_match(fine_tuned, model, retain)
    before = mean_token_logprob(
        model=model, batch=encode_examples(tokenizer=fine_tuned.tokenizer, examples=forget)
    )
    common = dict(
        model=model,
        tokenizer=fine_tuned.tokenizer,
        forget=forget,
        retain=retain,
        steps=20,
        retain_weight=1.0,
        batch_size=8,
        seed=0,
    )
    if method == "npo":
        result = npo(learning_rate=1e-3, beta=1.0, **common)
    else:
        result = gradient_difference(learning_rate=3e-4, **{**common, "retain_weight": 3.0})
    assert result.steps == 20
    assert exact_match(fine_tuned, model, forget) <= 1 / 6
    assert -result.forget_loss < before - 1.0
    assert exact_match(fine_tuned, model, retain) >= retain_before - RETAIN_MARGIN


def test_same_seed_same_weights(fine_tuned: FineTuned, split) -> None:
    forget, retain = split
    models = [fine_tuned.copy() for _ in range(3)]
    for model, seed in zip(models, [0, 0, 1], strict=True):
        npo(
            model=model,
            tokenizer=fine_tuned.tokenizer,
            forget=forget,
            retain=retain,
            steps=3,
            learning_rate=1e-3,
            beta=1.0,
            retain_weight=1.0,
            batch_size=4,
            seed=seed,
        )
    weights = [model.state_dict() for model in models]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    assert not all(torch.equal(weights[0][name], weights[2][name]) for name in weights[0])


def test_only_trainable_parameters_change(fine_tuned: FineTuned, split) -> None:
    forget, retain = split
    model = fine_tuned.copy()
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(".mlp." in name)
    frozen = {
        name: parameter.detach().clone()
        for name, parameter in model.named_parameters()
        if not parameter.requires_grad
    }
    gradient_difference(
        model=model,
        tokenizer=fine_tuned.tokenizer,
        forget=forget,
        retain=retain,
        steps=2,
        learning_rate=1e-3,
        retain_weight=1.0,
        batch_size=4,
        seed=0,
    )
    current = dict(model.named_parameters())
    assert all(torch.equal(value, current[name]) for name, value in frozen.items())


def test_stops_once_the_forget_target_is_reached(fine_tuned: FineTuned, split) -> None:
    forget, retain = split
    result = npo(
        model=fine_tuned.copy(),
        tokenizer=fine_tuned.tokenizer,
        forget=forget,
        retain=retain,
        steps=200,
        learning_rate=1e-3,
        beta=1.0,
        retain_weight=1.0,
        batch_size=8,
        seed=0,
        target=ForgetTarget(logprob=-1.0, check_every=2),
    )
    assert result.reached_target
    assert result.steps < 200
    assert -result.forget_loss <= -1.0
