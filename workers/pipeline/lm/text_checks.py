"""What a language model still says about erased records: a figure set for the job and the
certificate, beside the exact verification (which is what proves the erasure).

- exact match: greedy decoding after the record's prompt reproduces its completion;
- mean log probability per completion token, for the erased records and for records of people
  the model never trained on (the holdout split);
- membership AUC: telling the erased records from the holdout ones by their loss (0.5: they
  look alike). With few records the AUC is noisy: it is a figure, not a gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.engine.lm.adapter_sisa import TextRecord
from workers.engine.lm.losses import (
    IGNORED,
    EncodedBatch,
    encode_examples,
    greedy_matches,
    mean_token_logprob,
    sequence_logprobs,
)
from workers.engine.lm.scoring import mia_auc

MAX_RECORDS = 200  # per side: the figures are a sample, their cost bounded


def _scored(records: Sequence[TextRecord]) -> list[TextRecord]:
    return [r for r in records if r.example.completion][:MAX_RECORDS]


def _batch(
    *, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, records: Sequence[TextRecord]
) -> EncodedBatch:
    batch = encode_examples(tokenizer=tokenizer, examples=[r.example for r in records])
    return batch.to(next(model.parameters()).device)


@torch.no_grad()
def _per_token_logprobs(*, model: PreTrainedModel, batch: EncodedBatch) -> list[float]:
    values: list[float] = []
    for start in range(0, len(batch), 64):
        rows = batch.rows(torch.arange(start, min(start + 64, len(batch))))
        totals = sequence_logprobs(model=model, batch=rows)
        lengths = (rows.labels[:, 1:] != IGNORED).sum(dim=1).clamp(min=1)
        values += [float(v) for v in (totals / lengths)]
    return values


def text_figures(
    *,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[TextRecord],
    holdout: Sequence[TextRecord],
    name: str = "erased",
) -> dict[str, Any]:
    """Figures of `records` (keys starting with `name`) against the holdout split's. `model` is
    a causal LM or an `AdapterEnsemble`, which answers the same calls."""
    lm = cast(PreTrainedModel, model)
    erased, holdout = _scored(records), _scored(holdout)
    figures: dict[str, Any] = {
        f"{name}_records_scored": len(erased),
        "holdout_records_scored": len(holdout),
    }
    member_scores: list[float] = []
    if erased:
        batch = _batch(model=model, tokenizer=tokenizer, records=erased)
        with torch.no_grad():
            matches = greedy_matches(model=lm, batch=batch)
        figures[f"{name}_exact_match"] = round(float(matches.float().mean()), 4)
        figures[f"{name}_mean_token_logprob"] = round(
            mean_token_logprob(model=lm, batch=batch),
            4,
        )
        member_scores = _per_token_logprobs(model=lm, batch=batch)
    if holdout:
        batch = _batch(model=model, tokenizer=tokenizer, records=holdout)
        with torch.no_grad():
            holdout_matches = greedy_matches(model=lm, batch=batch)
        figures["holdout_exact_match"] = round(float(holdout_matches.float().mean()), 4)
        figures["holdout_mean_token_logprob"] = round(
            mean_token_logprob(model=lm, batch=batch),
            4,
        )
        if member_scores:
            nonmember_scores = _per_token_logprobs(model=lm, batch=batch)
            figures["membership_auc"] = round(
                mia_auc(member_scores=member_scores, nonmember_scores=nonmember_scores), 4
            )
    return figures
