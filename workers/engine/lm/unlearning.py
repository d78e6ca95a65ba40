"""Approximate unlearning of a causal LM's fine-tuning examples: gradient difference and NPO.

Both methods update the model in place (copy it first to keep the original) and only its
trainable parameters: on a peft-adapted model that is the adapter, on a plain model every
weight. They run with dropout off (eval mode), so on the CPU a run is a function of the model,
the examples and the seed, bit for bit.

Forgetting here is approximate: the methods push the forget completions' likelihood down while
holding the retained ones up. They do not prove that the model no longer holds the data; an
exact retrain without it (per-shard adapters) is what does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.engine.lm.losses import (
    EncodedBatch,
    PromptCompletion,
    completion_nll,
    encode_examples,
    eval_mode,
    mean_token_logprob,
    sequence_logprobs,
)


@dataclass(frozen=True)
class ForgetTarget:
    """Stop once the forget completions' mean log-probability per token is at most `logprob`
    (for example the level of people the model never saw), checked every `check_every` steps.

    The statistic that stops a run must not be the one that then verifies it: a run stopped when
    the forget log-probability reaches the holdout level passes a test on that same quantity by
    construction. Verify with other statistics (exact match, a membership test on other scores,
    truth ratios) or on other holdout people.
    """

    logprob: float
    check_every: int = 5


@dataclass(frozen=True)
class UnlearningResult:
    steps: int
    # Mean completion NLL per token over the whole forget and retain sets after the last step.
    forget_loss: float
    retain_loss: float
    seconds: float
    reached_target: bool


def gradient_difference(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget: Sequence[PromptCompletion],
    retain: Sequence[PromptCompletion],
    steps: int,
    learning_rate: float,
    retain_weight: float = 1.0,
    batch_size: int = 8,
    seed: int = 0,
    target: ForgetTarget | None = None,
) -> UnlearningResult:
    """Minimize ``retain_weight * retain_nll - forget_nll`` for up to `steps` Adam steps.

    Gradient ascent on the forget completions' loss, descent on the retained ones' (Liu et al.,
    2022; Maini et al., 2024). The ascent term is unbounded: keep `steps` small or set `target`.
    See `ForgetTarget` for the caveat on stopping rules.
    """

    def loss(forget_rows: EncodedBatch, _: torch.Tensor, retain_rows: EncodedBatch) -> torch.Tensor:
        return retain_weight * completion_nll(model=model, batch=retain_rows) - completion_nll(
            model=model, batch=forget_rows
        )

    return _run(
        model=model,
        tokenizer=tokenizer,
        forget=forget,
        retain=retain,
        loss=loss,
        reference_logprobs=None,
        steps=steps,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
        target=target,
    )


def npo(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget: Sequence[PromptCompletion],
    retain: Sequence[PromptCompletion],
    steps: int,
    learning_rate: float,
    beta: float = 0.1,
    retain_weight: float = 1.0,
    reference_model: PreTrainedModel | None = None,
    batch_size: int = 8,
    seed: int = 0,
    target: ForgetTarget | None = None,
) -> UnlearningResult:
    """Negative preference optimization (Zhang et al., 2024) plus a retain NLL term.

    The forget loss is ``(2 / beta) * log(1 + (pi / pi_ref) ** beta)`` of each forget
    completion's likelihood, computed as ``-(2 / beta) * logsigmoid(-beta * (logp - logp_ref))``.
    Unlike gradient ascent it flattens out once a completion is far less likely than under the
    reference, so it degrades the model more slowly. `reference_model` defaults to `model` as it
    is before the first step; its log-likelihoods are taken once, up front.
    """
    encoded_forget = encode_examples(tokenizer=tokenizer, examples=forget)
    reference = model if reference_model is None else reference_model
    with eval_mode(reference), torch.no_grad():
        reference_logprobs = sequence_logprobs(
            model=reference, batch=encoded_forget.to(reference.device)
        ).to(model.device)

    def loss(
        forget_rows: EncodedBatch, forget_reference: torch.Tensor, retain_rows: EncodedBatch
    ) -> torch.Tensor:
        ratio = sequence_logprobs(model=model, batch=forget_rows) - forget_reference
        forget_loss = -(2.0 / beta) * F.logsigmoid(-beta * ratio).mean()
        return forget_loss + retain_weight * completion_nll(model=model, batch=retain_rows)

    return _run(
        model=model,
        tokenizer=tokenizer,
        forget=forget,
        retain=retain,
        loss=loss,
        reference_logprobs=reference_logprobs,
        steps=steps,
        learning_rate=learning_rate,
        batch_size=batch_size,
        seed=seed,
        target=target,
    )


# (forget rows, their reference log-likelihoods, retain rows) -> the loss to minimize.
_Loss = Callable[[EncodedBatch, torch.Tensor, EncodedBatch], torch.Tensor]


def _run(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget: Sequence[PromptCompletion],
    retain: Sequence[PromptCompletion],
    loss: _Loss,
    reference_logprobs: torch.Tensor | None,
    steps: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    target: ForgetTarget | None,
) -> UnlearningResult:
    if steps < 0 or batch_size < 1:
        raise ValueError("steps must be >= 0 and batch_size >= 1")
    if not retain:
        raise ValueError("no retained examples: the retain term keeps the model usable")
    started = time.perf_counter()
    device = model.device
    encoded_forget = encode_examples(tokenizer=tokenizer, examples=forget).to(device)
    encoded_retain = encode_examples(tokenizer=tokenizer, examples=retain).to(device)
    references = (
        reference_logprobs
        if reference_logprobs is not None
        else torch.zeros(len(encoded_forget), device=device)
    )
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters")
    optimizer = torch.optim.Adam(trainable, lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    forget_batches = _endless_batches(count=len(forget), size=batch_size, generator=generator)
    retain_batches = _endless_batches(count=len(retain), size=batch_size, generator=generator)
    taken, reached = 0, False
    with eval_mode(model):
        for step in range(steps):
            if target is not None and step % target.check_every == 0:
                reached = mean_token_logprob(model=model, batch=encoded_forget) <= target.logprob
                if reached:
                    break
            forget_index, retain_index = next(forget_batches), next(retain_batches)
            value = loss(
                encoded_forget.rows(forget_index.to(device)),
                references[forget_index.to(device)],
                encoded_retain.rows(retain_index.to(device)),
            )
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            taken = step + 1
        with torch.no_grad():
            forget_loss = -mean_token_logprob(model=model, batch=encoded_forget)
            retain_loss = -mean_token_logprob(model=model, batch=encoded_retain)
    if target is not None and not reached:
        reached = -forget_loss <= target.logprob
    return UnlearningResult(
        steps=taken,
        forget_loss=forget_loss,
        retain_loss=retain_loss,
        seconds=time.perf_counter() - started,
        reached_target=reached,
    )


def _endless_batches(
    *, count: int, size: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """Index batches of at most `size` and near-equal length (9 examples in batches of 8 give
    5 + 4, not 8 + 1), reshuffled every pass over the `count` examples."""
    if count == 0:
        raise ValueError("cannot draw batches from zero examples")
    sections = -(-count // size)
    while True:
        order = torch.randperm(count, generator=generator)
        yield from order.tensor_split(sections)
