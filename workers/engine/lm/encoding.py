"""Turning text records into token ids, the same way for training and for scoring.

Every sequence starts with the end-of-text token, as GPT-2's documents do, so the first real token
is predicted too; a training sequence also ends with it, which teaches the model where an answer
stops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from workers.engine.lm.corpus import TextExample


@dataclass(frozen=True)
class EncodedExample:
    input_ids: list[int]
    prompt_length: int  # tokens before the completion, the leading end-of-text included


def encode_example(
    *, tokenizer: PreTrainedTokenizerBase, example: TextExample, end_with_eos: bool
) -> EncodedExample:
    eos = tokenizer.eos_token_id
    assert isinstance(eos, int)
    prompt = (
        tokenizer(example.prompt, add_special_tokens=False)["input_ids"] if example.prompt else []
    )
    completion = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    ids = [eos, *prompt, *completion, *([eos] if end_with_eos else [])]
    return EncodedExample(input_ids=ids, prompt_length=1 + len(prompt))


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # (batch, length), right-padded
    attention_mask: torch.Tensor
    labels: torch.Tensor  # -100 outside the completions


def collate(*, encoded: Sequence[EncodedExample], pad_token_id: int, device: torch.device) -> Batch:
    length = max(len(item.input_ids) for item in encoded)
    input_ids = torch.full((len(encoded), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), length), dtype=torch.long)
    labels = torch.full((len(encoded), length), -100, dtype=torch.long)
    for row, item in enumerate(encoded):
        ids = torch.tensor(item.input_ids, dtype=torch.long)
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
        labels[row, item.prompt_length : len(ids)] = ids[item.prompt_length :]
    return Batch(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        labels=labels.to(device),
    )
