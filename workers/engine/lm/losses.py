"""Completion-only losses and log-likelihoods for causal LMs, batched.

An example is a prompt and its completion; only the completion's tokens are scored. Examples are
encoded as `encoding` encodes them for training: end-of-text, then the prompt's and the
completion's tokens, each tokenized on its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.engine.lm.corpus import TextExample
from workers.engine.lm.encoding import collate, encode_example

# The label of a position that is not scored (the prompt, padding): cross_entropy's default.
IGNORED = -100


class PromptCompletion(Protocol):
    @property
    def prompt(self) -> str: ...

    @property
    def completion(self) -> str: ...


@dataclass(frozen=True)
class EncodedBatch:
    """Right-padded token ids; ``labels`` is ``IGNORED`` outside the completions."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def to(self, device: torch.device) -> EncodedBatch:
        return EncodedBatch(
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            labels=self.labels.to(device),
        )

    def rows(self, index: torch.Tensor) -> EncodedBatch:
        """The examples at `index`, trimmed to their longest row."""
        mask = self.attention_mask[index]
        width = int(mask.sum(dim=1).max())
        return EncodedBatch(
            input_ids=self.input_ids[index, :width],
            attention_mask=mask[:, :width],
            labels=self.labels[index, :width],
        )

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def encode_examples(
    *,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[PromptCompletion],
    end_with_eos: bool = False,
) -> EncodedBatch:
    """Token ids as training encodes them (see `encoding`), labels on the completion only and,
    unless `end_with_eos`, no end-of-text after it: the completion's own tokens are what is
    scored."""
    if not examples:
        raise ValueError("no examples to encode")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = [
        encode_example(
            tokenizer=tokenizer,
            example=TextExample(prompt=example.prompt, completion=example.completion),
            end_with_eos=end_with_eos,
        )
        for example in examples
    ]
    if any(len(item.input_ids) == item.prompt_length for item in encoded):
        raise ValueError("an example has an empty completion")
    batch = collate(encoded=encoded, pad_token_id=pad_id, device=torch.device("cpu"))
    return EncodedBatch(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels
    )


def token_logprobs(
    *, model: PreTrainedModel, batch: EncodedBatch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each next token and whether it is scored, both (rows, width - 1)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    targets = batch.labels[:, 1:]
    scored = targets != IGNORED
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * scored, scored


def sequence_logprobs(*, model: PreTrainedModel, batch: EncodedBatch) -> torch.Tensor:
    """Log-likelihood of each example's completion (a sum over its tokens), shape (rows,)."""
    picked, _ = token_logprobs(model=model, batch=batch)
    return picked.sum(dim=1)


def completion_nll(*, model: PreTrainedModel, batch: EncodedBatch) -> torch.Tensor:
    """Mean negative log-likelihood per completion token over the batch (a scalar)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), batch.labels[:, 1:].flatten(), ignore_index=IGNORED
    )


@torch.no_grad()
def mean_token_logprob(
    *, model: PreTrainedModel, batch: EncodedBatch, batch_size: int = 64
) -> float:
    """Mean log-probability per completion token over every example of `batch`."""
    total, count = 0.0, 0
    for index in _chunks(len(batch), batch_size):
        picked, scored = token_logprobs(model=model, batch=batch.rows(index))
        total += float(picked.sum())
        count += int(scored.sum())
    return total / count


@dataclass(frozen=True)
class CompletionScores:
    """Per example: the log probability of each completion token, and whether greedy decoding
    after the prompt reproduces the completion."""

    token_logprobs: list[np.ndarray]
    greedy_match: torch.Tensor  # bool, (rows,)


@torch.no_grad()
def completion_scores(
    *, model: PreTrainedModel, batch: EncodedBatch, batch_size: int = 64
) -> CompletionScores:
    """Both figures from one forward pass per chunk of `batch`.

    The match is teacher-forced: every completion token is the argmax given the tokens before
    it, which is exactly when greedy generation emits the completion (as a prefix of what it
    generates).
    """
    values: list[np.ndarray] = []
    matches: list[torch.Tensor] = []
    for index in _chunks(len(batch), batch_size):
        rows = batch.rows(index)
        logits = model(input_ids=rows.input_ids, attention_mask=rows.attention_mask).logits
        targets = rows.labels[:, 1:]
        scored = targets != IGNORED
        logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        wrong = (logits[:, :-1].argmax(dim=-1) != targets) & scored
        matches.append(~wrong.any(dim=1))
        values += [row[mask].cpu().numpy() for row, mask in zip(picked, scored, strict=True)]
    return CompletionScores(token_logprobs=values, greedy_match=torch.cat(matches))


def greedy_matches(
    *, model: PreTrainedModel, batch: EncodedBatch, batch_size: int = 64
) -> torch.Tensor:
    """Whether greedy decoding after each prompt would reproduce its completion, shape (rows,)
    (teacher-forced, see `completion_scores`)."""
    return completion_scores(model=model, batch=batch, batch_size=batch_size).greedy_match


def _chunks(count: int, size: int) -> Iterator[torch.Tensor]:
    for start in range(0, count, size):
        yield torch.arange(start, min(start + size, count))


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Dropout off for the block (deterministic, and what scoring sees); the mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
